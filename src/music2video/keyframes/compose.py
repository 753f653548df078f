"""Keyframes: one first-frame image per shot, composed from its prompt and its references.

A shot that names characters, places or props with a reference is composed by the edit model
(``keyframes.keyframe_model``, default Qwen-Image-Edit-2509) from up to its
``max_references`` reference images, characters first, then the place, then props; a shot
that names none is drawn by the text-to-image model from its prompt. Every keyframe is
``keyframes/<shot id>-<hash>.png``, the hash covering the shot's prompt, negative prompt and
seed, the bytes of its references, the model and its settings and the size, so an edited shot
or reference makes that keyframe again and nothing else. The shot's clip is keyed by the
keyframe's bytes (``Keyframe.sha256``), so a new keyframe re-renders that shot alone.

Hand edits win:

* a generated keyframe edited in place (its bytes differ from what ``keyframes.json`` recorded)
  is kept and marked ``user_edited``; if the shot's inputs change later, a new keyframe is
  made under a new name and the edited file stays where it is;
* ``keyframes/<shot id>.png`` (or .jpg, .jpeg, .webp) is your keyframe for that shot: used
  as given, never regenerated, never written to.

All keyframes are made in one pass (text-to-image shots first, while that model is still
loaded from the references, then the edit model), before the video model loads.
"""

from __future__ import annotations

import logging
from pathlib import Path

from music2video.artifacts import Keyframe, KeyframeSet, ReferenceSet, Storyboard, StoryboardShot
from music2video.errors import Music2VideoError
from music2video.keyframes.generator import ImageModels, image_fingerprint
from music2video.keyframes.image_models import ImageModel, resolve_image_model
from music2video.keyframes.references import IMAGE_SUFFIXES, _why, save_png
from music2video.preflight import is_disk_full
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import RunFolder, file_sha256, stable_hash
from music2video.settings import KeyframeSettings

log = logging.getLogger(__name__)

KEYFRAMES_FOLDER = "keyframes"
KEYFRAMES_ARTIFACT = "keyframes.json"


def shot_references(shot: StoryboardShot, references: ReferenceSet, most: int) -> list[str]:
    """Names of the references a shot's keyframe is composed from: the characters it shows,
    then its places, then its props, those with a reference, at most ``most``."""
    available = references.by_name()
    names = [name for name in dict.fromkeys([*shot.characters, *shot.places, *shot.props]) if name in available]
    return names[:most]


def keyframe_prompt(shot: StoryboardShot, names: list[str]) -> str:
    """The shot's prompt, preceded for an edit model by which picture shows whom (the order
    the pictures are passed in)."""
    if not names:
        return shot.prompt
    cast = "; ".join(f"picture {number} shows {name}" for number, name in enumerate(names, start=1))
    return f"The first frame of a film shot. {cast[0].upper()}{cast[1:]}. {shot.prompt}"


def make_keyframes(
    storyboard: Storyboard,
    references: ReferenceSet,
    run: RunFolder,
    settings: KeyframeSettings,
    size: tuple[int, int],
    models: ImageModels,
    progress: ProgressCallback = no_progress,
) -> KeyframeSet:
    """A keyframe of ``size`` (width, height) for every shot of ``storyboard``.

    Keyframes on disk for the same inputs are reused (and a hand edit of one is kept); the
    missing ones are made with ``models`` (one model loaded at a time). A keyframe that cannot
    be made is listed in ``failed``: that shot renders from its text, and a rerun tries again.
    """
    # 1. What each shot needs, and what is already there.
    edit = resolve_image_model(settings.keyframe_model, "edit")
    plain = resolve_image_model(settings.reference_model, "text-to-image")
    fingerprints = {entry.name: image_fingerprint(entry, settings) for entry in (edit, plain)}
    previous = _previous(run)
    by_name = references.by_name()
    folder = run.path(KEYFRAMES_FOLDER)
    frames: dict[int, Keyframe] = {}
    missing: list[tuple[int, StoryboardShot, ImageModel, list[str], str, Path]] = []
    for index, shot in enumerate(storyboard.shots):
        user = _user_keyframe(shot, folder)
        if user is not None:
            frames[index] = Keyframe(
                shot=index, shot_id=shot.id, path=str(user.relative_to(run.root)), sha256=file_sha256(user),
                user_edited=True,
            )  # fmt: skip
            continue
        names = shot_references(shot, references, edit.max_references)
        entry = edit if names else plain
        prompt = keyframe_prompt(shot, names)
        digest = stable_hash(
            prompt, shot.negative_prompt, shot.seed, [by_name[name].sha256 for name in names], list(size),
            fingerprints[entry.name],
        )  # fmt: skip
        path = folder / f"{shot.id}-{digest}.png"
        if path.exists():
            relative = str(path.relative_to(run.root))
            sha = file_sha256(path)
            earlier = previous.get(relative)
            edited = earlier is not None and (earlier.user_edited or earlier.sha256 != sha)
            if edited and not (earlier and earlier.user_edited):
                log.info("%s was edited by hand; your version is kept and %s re-renders", relative, shot.id)
            frames[index] = Keyframe(
                shot=index, shot_id=shot.id, path=relative, sha256=sha, user_edited=edited, references=names
            )
        else:
            missing.append((index, shot, entry, names, prompt, path))

    # A name the cast lacks (a typo in a hand-edited storyboard) is said once, not skipped silently.
    cast = {m.name for m in (*storyboard.characters, *storyboard.places, *storyboard.props)}
    unknown = [f"{shot.id} {name!r}" for shot in storyboard.shots
               for name in dict.fromkeys([*shot.characters, *shot.places, *shot.props]) if name not in cast]
    notes = [f"{len(unknown)} names in shots are no character, place or prop of the storyboard, so no reference "
             f"shows them: {', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}"] if unknown else []

    # 2. Make the missing ones: text-to-image shots first (that model may still be loaded from
    #    the references), then the edit model's.
    missing.sort(key=lambda item: (item[2].task != "text-to-image", item[0]))
    failed: dict[str, str] = {}
    total = len(storyboard.shots)
    done = total - len(missing)
    progress(done, total, "keyframes")
    for index, shot, entry, names, prompt, path in missing:
        try:
            images = [_open_image(run.root / by_name[name].path) for name in names]
            generator = models.get(entry)
            image = generator.generate(prompt, shot.negative_prompt, shot.seed, size, images or None, what=shot.id)
            save_png(image, path)
            frames[index] = Keyframe(
                shot=index, shot_id=shot.id, path=str(path.relative_to(run.root)), sha256=file_sha256(path),
                references=names,
            )  # fmt: skip
        except Exception as error:
            if is_disk_full(error) or _is_load_failure(error):
                raise
            failed[shot.id] = _why(error)
            if not isinstance(error, Music2VideoError):
                log.exception("keyframe of %s failed", shot.id)
            log.error("%s has no keyframe and renders from its text: %s", shot.id, failed[shot.id])
        done += 1
        progress(done, total, f"keyframe {shot.id}")

    models_used = sorted({edit.hf_id if frame.references else plain.hf_id for frame in frames.values() if not frame.user_edited})
    return KeyframeSet(
        model=", ".join(models_used) or "none (your keyframes)",
        shots=[frames[index] for index in sorted(frames)],
        failed=failed,
        warnings=notes + [f"{shot_id} has no keyframe and renders from its text: {why}" for shot_id, why in failed.items()]
        + [w for w in models.warnings if w not in references.warnings],
    )


def _previous(run: RunFolder) -> dict[str, Keyframe]:
    """The keyframes the last run recorded, by path (how an edit in place is recognised)."""
    earlier = run.load(KEYFRAMES_ARTIFACT, KeyframeSet)
    return {frame.path: frame for frame in earlier.shots} if earlier is not None else {}


def _user_keyframe(shot: StoryboardShot, folder: Path) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{shot.id}{suffix}"
        if path.is_file():
            return path
    return None


def _open_image(path: Path) -> object:
    import PIL.Image

    with PIL.Image.open(path) as image:
        return image.convert("RGB")


def _is_load_failure(error: BaseException) -> bool:
    """A model that cannot load fails the run (as the video model does), not one image after another."""
    from music2video.errors import MissingDependencyError, ModelLoadError

    return isinstance(error, (ModelLoadError, MissingDependencyError))
