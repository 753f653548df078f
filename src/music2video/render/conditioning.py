"""Which pictures each shot is rendered from: its keyframe, the next shot's, its scene's first.

The keyframes stage (``keyframes/<shot>-<hash>.png``) gives the render stage a mapping from
storyboard shot index to a PNG on disk. From it, :func:`shot_images` derives for every shot:

* ``first``: the shot's own keyframe, its first frame;
* ``last``: the next shot's keyframe, where that shot *continues* this one
  (``StoryboardShot.continues``: same place, same action, no change of view) and the video model
  takes a last frame (first-and-last-frame conditioning), so the cut between them is seamless;
* ``colour_reference``: the first keyframe of the shot's **scene**, which the clip's colours are
  matched to (:mod:`music2video.render.colour`). A scene is a run of consecutive shots of one
  storyboard section (the writer gives a section one setting and one palette) in one place
  (``StoryboardShot.places``: a new place starts a new scene).

Every picture a clip is made from is part of the clip's hash (:func:`images_key`), by the
sha256 of its bytes: replacing or editing a keyframe re-renders the shots it conditions (its own
shot; the previous shot where that one ends on it; the shots of its scene when it is the
scene's first keyframe) and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from music2video.artifacts import Storyboard
from music2video.errors import InputError
from music2video.runfolder import file_sha256


@dataclass(frozen=True)
class ShotImages:
    """Pictures (PNG paths) one shot is conditioned on; None where there is none."""

    first: Path | None = None
    last: Path | None = None
    colour_reference: Path | None = None

    def __bool__(self) -> bool:
        return any((self.first, self.last, self.colour_reference))


def scene_starts(storyboard: Storyboard) -> list[int]:
    """For each shot, the index of the first shot of its scene: consecutive shots of one section
    in one place (a shot naming no place stays in the scene before it)."""
    starts: list[int] = []
    for index, shot in enumerate(storyboard.shots):
        previous = storyboard.shots[index - 1] if index else None
        same = (
            previous is not None
            and previous.section_index == shot.section_index
            and (not shot.places or shot.places[:1] == previous.places[:1])
        )
        starts.append(starts[-1] if same else index)
    return starts


def shot_images(
    storyboard: Storyboard, keyframes: Mapping[int, Path] | None, *, last_frame: bool
) -> list[ShotImages]:
    """The pictures of every shot, in storyboard order (module docstring).

    Args:
        storyboard: the shots.
        keyframes: storyboard shot index -> keyframe PNG; None or empty: text only.
        last_frame: the video model can be given a last frame.

    Raises:
        InputError: a keyframe index outside the storyboard, or a keyframe file that is missing.
    """
    keyframes = dict(keyframes or {})
    shots = storyboard.shots
    for index, path in keyframes.items():
        if not 0 <= index < len(shots):
            raise InputError(f"keyframe {path} is for shot index {index}, but the storyboard has {len(shots)} shots")
        if not Path(path).is_file():
            raise InputError(f"keyframe {path} of {shots[index].id} is missing; run the keyframes stage again")
    starts = scene_starts(storyboard)
    # Each scene's first keyframe: of its first shot, or of the first shot of the scene that has one.
    references: dict[int, Path] = {}
    for index in sorted(keyframes):
        references.setdefault(starts[index], keyframes[index])
    images = []
    for index in range(len(shots)):
        following = index + 1
        continued = last_frame and following < len(shots) and shots[following].continues
        images.append(
            ShotImages(
                first=keyframes.get(index),
                last=keyframes.get(following) if continued else None,
                colour_reference=references.get(starts[index]),
            )
        )
    return images


def images_key(images: ShotImages) -> dict[str, str | None]:
    """The sha256 of every picture a clip is made from: what its hash depends on."""
    return {
        role: (file_sha256(path) if path is not None else None)
        for role, path in (("first", images.first), ("last", images.last), ("colour", images.colour_reference))
    }
