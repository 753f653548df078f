"""Render: turn every storyboard shot into a clip of exactly its frame count.

A backend (``animatic``: :mod:`music2video.render.animatic`, ``diffusers``:
:mod:`music2video.render.diffusion`) implements :class:`ShotRenderer`; :func:`open_renderer`
picks one by name and hands it its settings. The driver below does what every backend needs
the same way:

* frame counts from the shot plan's frame-exact cuts (``Shot.frame_range``), so clips tile the
  finished video with no drift,
* one clip file per shot named ``clips/<shot>-<hash>.mp4``, where the hash covers the
  storyboard entry, the concept it draws on, the render settings and the sha256 of every
  keyframe the clip is made from (:mod:`music2video.render.conditioning`); a clip is reused when
  its file exists under that name, so editing one shot, or replacing its keyframe, re-renders
  that shot only,
* keyframes (``keyframes=``, shot index -> PNG) go to a renderer whose ``takes_images`` is true;
  one that renders from text only is told nothing and the log says so once,
* a failure in one shot (out of memory, a model error) fails that shot alone: a placeholder
  clip stands in, ``failed_shots`` names it and a rerun tries it again,
* a full disk stops rendering at once (every later shot, and its placeholder, would fail the
  same way): finished clips are kept, and the same command resumes once there is room.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import numpy as np

from music2video.artifacts import (
    Analysis,
    ClipColour,
    RenderedClip,
    RenderResult,
    ShotTime,
    Storyboard,
    StoryboardShot,
)
from music2video.errors import InputError, Music2VideoError, WriteError
from music2video.preflight import is_disk_full
from music2video.render.conditioning import ShotImages, images_key, shot_images
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import RunFolder, stable_hash
from music2video.videofile import X264_OPTIONS, ClipWriter

if TYPE_CHECKING:
    from music2video.render.executors import ShotExecutor
    from music2video.settings import VideoModelSettings

log = logging.getLogger(__name__)

RENDERERS = ("animatic", "diffusers")

CLIPS_FOLDER = "clips"
RENDER_ARTIFACT = "clips.json"
LOCAL_WORKER = "local"  # the worker name of shots rendered in this process


class ShotRenderer(Protocol):
    """A backend that draws one shot. Used as a context manager: load on enter, free on exit."""

    name: str
    model: str | None

    def settings_fingerprint(self) -> object:
        """Everything besides the storyboard that changes the pixels (model, steps, size ...)."""

    # A renderer may also define ``finish() -> dict[str, str]``: called after the last shot,
    # it waits for clips still being written in the background and returns {shot id: why}
    # for those that failed.
    #
    # A renderer that starts shots from pictures sets ``takes_images = True`` (and
    # ``takes_last_frame``, ``needs_images`` as its model allows): its render_shot then also
    # receives ``images=`` (a ShotImages) and may write ``colour_sidecar(output)``.

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


def shot_hash(
    shot: StoryboardShot,
    storyboard: Storyboard,
    frame_count: int,
    fingerprint: object,
    images: ShotImages | None = None,
) -> str:
    """Hash of what one clip depends on: its entry, the shared look, the render settings and the
    sha256 of each picture it is made from (keyframe, last frame, colour reference)."""
    shared = {"style": storyboard.style, "characters": storyboard.characters}
    # Encoder settings count too: the assembler joins clips by copying packets, which needs
    # every clip encoded alike.
    parts: list[object] = [shot, shared, frame_count, fingerprint, X264_OPTIONS]
    if images:  # text-only clips keep the hashes they had before keyframes existed
        parts.append(images_key(images))
    return stable_hash(*parts)


def colour_sidecar(clip: Path) -> Path:
    """``clips/<shot>-<hash>.colour.json`` beside a clip: its :class:`ClipColour`, kept for reruns that reuse it."""
    return clip.with_suffix(".colour.json")


@dataclass(frozen=True)
class ShotJob:
    """One shot to render: the storyboard entry, its exact frame count, the clip's hash and where
    the clip goes (``clips/<shot>-<hash>.mp4``). Executors receive these; they never hash."""

    shot: StoryboardShot
    frame_count: int
    digest: str
    path: Path
    images: ShotImages | None = None
    """The shot's pictures (its keyframe, the next shot's where it ends on it, its scene's first)
    for renderers that animate a picture; they reach Ray actors as paths, so they must sit in the
    run folder (which every node sees)."""


def shot_jobs(
    renderer: ShotRenderer,
    storyboard: Storyboard,
    run: RunFolder,
    fps: float,
    keyframes: Mapping[int, Path] | None = None,
) -> list[ShotJob]:
    """The clip every shot of ``storyboard`` needs, in shot order: frame count, hash, file, pictures.

    One place names clips: :func:`render_storyboard` renders the jobs whose file is missing,
    and the edit API (``music2video.edit``) finds the shots that changed the same way.
    """
    fingerprint = renderer.settings_fingerprint()
    images = _images_for(renderer, storyboard, keyframes)
    jobs: list[ShotJob] = []
    for index, shot in enumerate(storyboard.shots):
        frame_count = round(shot.end_s * fps) - round(shot.start_s * fps)
        if frame_count < 1:
            raise Music2VideoError(
                f"{shot.id} lasts {shot.duration_s:.3f} s, less than one frame at {fps:g} fps; "
                "merge it with a neighbour in storyboard.json"
            )
        pictures = images[index] if images else None
        digest = shot_hash(shot, storyboard, frame_count, fingerprint, pictures)
        jobs.append(ShotJob(shot, frame_count, digest, run.path(f"{CLIPS_FOLDER}/{shot.id}-{digest}.mp4"), pictures))
    return jobs


def render_one(renderer: ShotRenderer, job: ShotJob, storyboard: Storyboard, analysis: Analysis) -> str | None:
    """Render one shot with an entered renderer; None when it worked, else why it failed.

    The one per-shot step of every executor (local or Ray). A full disk raises: every later
    shot would fail the same way."""
    try:
        # Only renderers that animate a picture are handed pictures (the keyword is theirs).
        extra = {"images": job.images} if job.images else {}
        renderer.render_shot(job.shot, storyboard, analysis, job.frame_count, job.path, **extra)
    except Exception as error:
        if is_disk_full(error):
            raise
        if not isinstance(error, Music2VideoError):
            log.exception("rendering %s failed", job.shot.id)  # one broken shot must not sink the others
        return failure_reason(error)
    return None


def failure_reason(error: Exception) -> str:
    """Why a shot failed, in one line, as clips.json and the report give it: a Music2VideoError's own
    message, else the exception's type and the first line of its message. Renderers that write clips in the background report them so too."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(error, Music2VideoError):
        return line or type(error).__name__
    return f"{type(error).__name__}: {line}"


def render_storyboard(
    renderer: ShotRenderer,
    storyboard: Storyboard,
    analysis: Analysis,
    run: RunFolder,
    fps: float,
    width: int,
    height: int,
    progress: ProgressCallback = no_progress,
    executor: ShotExecutor | None = None,
    keyframes: Mapping[int, Path] | None = None,
    only: Collection[str] | None = None,
) -> RenderResult:
    """Render every shot that has no up-to-date clip yet; return the list of clips in shot order.

    ``keyframes`` maps storyboard shot indices to PNGs (the keyframes stage): a renderer that
    takes images starts each of those shots from its picture (module docstring).

    ``executor`` runs the shots (:mod:`music2video.render.executors`): None renders them here,
    one after another; a Ray executor spreads them over its workers. Either way the clips get
    the same names and are written the same way, so one can resume the other's run.

    ``only`` (shot ids) renders just those of the missing clips (``music2video.edit.rerender``);
    the result then names clips of other shots that may not exist yet, so it is no clips.json.
    """
    plan = shot_jobs(renderer, storyboard, run, fps, keyframes)
    missing = [job for job in plan if not job.path.exists() and (only is None or job.shot.id in only)]
    reused = len(plan) - len(missing)
    if reused:
        log.info("reusing %d of %d clips", reused, len(plan))
    failed: dict[str, str] = {}
    times = _earlier_shot_times(run, plan, missing)
    done = reused
    progress(done, len(plan), "rendering")

    def shot_done(job: ShotJob, failure: str | None, worker: str, seconds: float) -> None:
        nonlocal done
        if failure is not None:
            log.error("%s failed and is replaced by a placeholder: %s", job.shot.id, failure)
        else:
            times[job.shot.id] = ShotTime(shot_id=job.shot.id, worker=worker, seconds=round(seconds, 3))
        done += 1
        progress(done, len(plan), f"rendered {job.shot.id}" + ("" if worker == LOCAL_WORKER else f" on {worker}"))

    if missing:
        if executor is None:
            from music2video.render.executors import LocalExecutor

            executor = LocalExecutor()
        try:
            for shot_id, why in executor.render(renderer, missing, storyboard, analysis, shot_done).items():
                failed[shot_id] = why
                times.pop(shot_id, None)
        except Exception as error:
            if not is_disk_full(error):
                raise
            finished = sum(1 for job in plan if job.path.exists())
            raise WriteError(
                f"the disk is full writing {run.path(CLIPS_FOLDER)}: rendering stopped with {finished} of "
                f"{len(plan)} clips finished, and they are kept; free some space and run the same command again"
            ) from error

    clips = []
    for job in plan:
        shot, frame_count, digest, path = job.shot, job.frame_count, job.digest, job.path
        colour = None
        if shot.id in failed:
            # The placeholder goes under another name so that the next run retries the shot.
            path = run.path(f"{CLIPS_FOLDER}/{shot.id}-failed.mp4")
            write_placeholder(path, frame_count, fps, width, height)
        elif colour_sidecar(path).is_file():
            colour = ClipColour.model_validate_json(colour_sidecar(path).read_text(encoding="utf-8"))
            colour.reference = _relative(Path(colour.reference), run)
        keyframe = job.images.first if job.images else None
        clips.append(
            RenderedClip(
                shot_id=shot.id,
                path=str(path.relative_to(run.root)),
                frames=frame_count,
                fps=fps,
                width=width,
                height=height,
                shot_hash=digest,
                keyframe=_relative(keyframe, run) if keyframe is not None else None,
                colour=colour,
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
        shot_times=[times[job.shot.id] for job in plan if job.shot.id in times],
    )


def _images_for(
    renderer: ShotRenderer, storyboard: Storyboard, keyframes: Mapping[int, Path] | None
) -> list[ShotImages] | None:
    """Per-shot pictures for a renderer that takes them; None for text-only rendering."""
    takes_images = getattr(renderer, "takes_images", False)
    if getattr(renderer, "needs_images", False):
        missing = [shot.id for index, shot in enumerate(storyboard.shots) if index not in (keyframes or {})]
        if missing:
            raise InputError(
                f"{renderer.model} makes video from a picture only, and {len(missing)} shots have no keyframe "
                f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); make keyframes first, or choose a "
                "video model that also renders from text, e.g. --video-model wan2.1-vace-1.3b"
            )
    if not keyframes:
        return None
    if not takes_images:
        log.info("%s renders from text only: the %d keyframes are not used", renderer.model or renderer.name, len(keyframes))
        return None
    return shot_images(storyboard, keyframes, last_frame=getattr(renderer, "takes_last_frame", False))


def _relative(path: Path, run: RunFolder) -> str:
    """``path`` relative to the run folder when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(run.root.resolve()))
    except ValueError:
        return str(path)


def _earlier_shot_times(run: RunFolder, plan: list[ShotJob], missing: list[ShotJob]) -> dict[str, ShotTime]:
    """The render times recorded in clips.json for the clips reused now (same shot, same hash)."""
    previous = run.load(RENDER_ARTIFACT, RenderResult)
    if previous is None:
        return {}
    hashes = {clip.shot_id: clip.shot_hash for clip in previous.clips}
    to_render = {job.shot.id for job in missing}
    reused = {job.shot.id for job in plan if job.shot.id not in to_render and hashes.get(job.shot.id) == job.digest}
    return {time.shot_id: time for time in previous.shot_times if time.shot_id in reused}


def write_placeholder(path: Path, frame_count: int, fps: float, width: int, height: int) -> None:
    """A dark grey clip of the right length, so a failed shot never shifts the cuts after it."""
    frame = np.full((height, width, 3), 24, np.uint8)
    with ClipWriter(path, width, height, fps) as writer:
        for _ in range(frame_count):
            writer.write(frame)
