"""Render: turn every storyboard shot into a clip of exactly its frame count.

A backend (``animatic``: :mod:`music2video.render.animatic`, ``diffusers``:
:mod:`music2video.render.diffusion`) implements :class:`ShotRenderer`; :func:`open_renderer`
picks one by name and hands it its settings. The driver below does what every backend needs
the same way:

* frame counts from the shot plan's frame-exact cuts (``Shot.frame_range``), so clips tile the
  finished video with no drift,
* one clip file per shot named ``clips/<shot>-<hash>.mp4``, where the hash covers the
  storyboard entry, the concept it draws on and the render settings; a clip is reused when its
  file exists under that name, so editing one shot re-renders that shot only,
* a failure in one shot (out of memory, a model error) fails that shot alone: a placeholder
  clip stands in, ``failed_shots`` names it and a rerun tries it again,
* a full disk stops rendering at once (every later shot, and its placeholder, would fail the
  same way): finished clips are kept, and the same command resumes once there is room.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import numpy as np

from music2video.artifacts import Analysis, RenderedClip, RenderResult, Storyboard, StoryboardShot
from music2video.errors import Music2VideoError, WriteError
from music2video.preflight import is_disk_full
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import RunFolder, stable_hash
from music2video.videofile import X264_OPTIONS, ClipWriter

if TYPE_CHECKING:
    from music2video.settings import VideoModelSettings

log = logging.getLogger(__name__)

RENDERERS = ("animatic", "diffusers")

CLIPS_FOLDER = "clips"
RENDER_ARTIFACT = "clips.json"


class ShotRenderer(Protocol):
    """A backend that draws one shot. Used as a context manager: load on enter, free on exit."""

    name: str
    model: str | None

    def settings_fingerprint(self) -> object:
        """Everything besides the storyboard that changes the pixels (model, steps, size ...)."""

    # A renderer may also define ``finish() -> dict[str, str]``: called after the last shot,
    # it waits for clips still being written in the background and returns {shot id: why}
    # for those that failed.

    def render_shot(
        self,
        shot: StoryboardShot,
        storyboard: Storyboard,
        analysis: Analysis,
        frame_count: int,
        output: Path,
    ) -> None:
        """Write exactly ``frame_count`` frames of ``shot`` to ``output`` (use ``ClipWriter``)."""

    def __enter__(self) -> ShotRenderer: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def open_renderer(name: str, width: int, height: int, fps: float, video: VideoModelSettings) -> ShotRenderer:
    """The renderer called ``name`` (one of :data:`RENDERERS`) for output frames of
    ``width`` x ``height`` at ``fps``; ``video`` (the ``[video]`` settings section) goes to the
    diffusers renderer, which reads all of its fields itself. Nothing loads until the renderer
    is entered as a context manager. Its ``settings_fingerprint()`` keys the clips."""
    if name == "animatic":
        from music2video.render.animatic import AnimaticRenderer

        return AnimaticRenderer(width, height, fps)
    if name == "diffusers":
        from music2video.render.diffusion import DiffusersRenderer

        return DiffusersRenderer(video, width, height, fps)
    raise Music2VideoError(f"unknown renderer {name!r}; choose {' or '.join(RENDERERS)}")


def shot_hash(shot: StoryboardShot, storyboard: Storyboard, frame_count: int, fingerprint: object) -> str:
    """Hash of what one clip depends on: its entry, the shared look and the render settings."""
    shared = {"style": storyboard.style, "characters": storyboard.characters}
    # Encoder settings count too: the assembler joins clips by copying packets, which needs
    # every clip encoded alike.
    return stable_hash(shot, shared, frame_count, fingerprint, X264_OPTIONS)


def render_storyboard(
    renderer: ShotRenderer,
    storyboard: Storyboard,
    analysis: Analysis,
    run: RunFolder,
    fps: float,
    width: int,
    height: int,
    progress: ProgressCallback = no_progress,
) -> RenderResult:
    """Render every shot that has no up-to-date clip yet; return the list of clips in shot order."""
    fingerprint = renderer.settings_fingerprint()
    plan: list[tuple[StoryboardShot, int, str, Path]] = []
    for shot in storyboard.shots:
        frame_count = round(shot.end_s * fps) - round(shot.start_s * fps)
        if frame_count < 1:
            raise Music2VideoError(
                f"{shot.id} lasts {shot.duration_s:.3f} s, less than one frame at {fps:g} fps; "
                "merge it with a neighbour in storyboard.json"
            )
        digest = shot_hash(shot, storyboard, frame_count, fingerprint)
        plan.append((shot, frame_count, digest, run.path(f"{CLIPS_FOLDER}/{shot.id}-{digest}.mp4")))

    missing = [item for item in plan if not item[3].exists()]
    reused = len(plan) - len(missing)
    if reused:
        log.info("reusing %d of %d clips", reused, len(plan))
    failed: dict[str, str] = {}
    done = reused
    progress(done, len(plan), "rendering")
    if missing:
        try:
            with renderer:
                for shot, frame_count, _digest, path in missing:
                    try:
                        renderer.render_shot(shot, storyboard, analysis, frame_count, path)
                    except Exception as error:
                        if is_disk_full(error):
                            raise
                        if isinstance(error, Music2VideoError):
                            failed[shot.id] = str(error)
                        else:  # one broken shot must not sink the other shots
                            log.exception("rendering %s failed", shot.id)
                            failed[shot.id] = f"{type(error).__name__}: {error}"
                    if shot.id in failed:
                        log.error("%s failed and is replaced by a placeholder: %s", shot.id, failed[shot.id])
                    done += 1
                    progress(done, len(plan), f"rendered {shot.id}")
                # A renderer that writes clips in the background reports their failures here.
                finish = getattr(renderer, "finish", None)
                if finish is not None:
                    for shot_id, why in finish().items():
                        log.error("%s failed and is replaced by a placeholder: %s", shot_id, why)
                        failed[shot_id] = why
        except Exception as error:
            if not is_disk_full(error):
                raise
            finished = sum(1 for item in plan if item[3].exists())
            raise WriteError(
                f"the disk is full writing {run.path(CLIPS_FOLDER)}: rendering stopped with {finished} of "
                f"{len(plan)} clips finished, and they are kept; free some space and run the same command again"
            ) from error

    clips = []
    for shot, frame_count, digest, path in plan:
        if shot.id in failed:
            # The placeholder goes under another name so that the next run retries the shot.
            path = run.path(f"{CLIPS_FOLDER}/{shot.id}-failed.mp4")
            write_placeholder(path, frame_count, fps, width, height)
        clips.append(
            RenderedClip(
                shot_id=shot.id,
                path=str(path.relative_to(run.root)),
                frames=frame_count,
                fps=fps,
                width=width,
                height=height,
                shot_hash=digest,
            )
        )
    warnings = [f"{shot_id} could not be rendered: {why}" for shot_id, why in failed.items()]
    return RenderResult(
        renderer=renderer.name,
        model=renderer.model,
        fps=fps,
        width=width,
        height=height,
        clips=clips,
        failed_shots=failed,
        warnings=warnings,
    )


def write_placeholder(path: Path, frame_count: int, fps: float, width: int, height: int) -> None:
    """A dark grey clip of the right length, so a failed shot never shifts the cuts after it."""
    frame = np.full((height, width, 3), 24, np.uint8)
    with ClipWriter(path, width, height, fps) as writer:
        for _ in range(frame_count):
            writer.write(frame)
