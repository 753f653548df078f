"""Export a run's cut to a video editor: OpenTimelineIO, Final Cut Pro XML, CMX 3600 EDL.

The timeline is built once with OpenTimelineIO (``pip install 'music2video[export]'``) and
written through OTIO's own adapters:

* a video track with one clip per shot, in shot order, each the rendered clip
  (``clips/<shot>-<hash>.mp4``) whole: the clip's first frame sits at the shot's first frame
  in the finished video (``Shot.frame_range``), every time a ``RationalTime`` at the video's
  frame rate, so an editor sees the same frame-exact cuts as ``video.mp4``;
* an audio track with the song (``audio.wav`` of the run folder: the audio the video was
  made with, sample for sample) from frame 0 to the song's end;
* a marker at the start of every section (its label and role), and each clip's storyboard
  entry (scene, prompt, seed, camera) in its metadata under ``music2video``.

Formats (:data:`FORMATS`): ``otio`` (OTIO's JSON), ``fcpxml`` (Final Cut Pro X / DaVinci
Resolve), ``xml`` (Final Cut Pro 7 XML: Premiere Pro, Resolve), ``edl`` (CMX 3600). FCP XML and
EDL count in SMPTE timecode, so they need a frame rate timecode knows (24, 25, 30 ...); the EDL
adapter writes the video track only (an EDL has no place for a song without a reel).

Media paths are absolute ``file://`` URLs: the exported file works from anywhere on the machine
that holds the run folder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from music2video.artifacts import RenderResult
from music2video.errors import MissingDependencyError, Music2VideoError, WriteError
from music2video.optional import require

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportFormat:
    adapter: str = ""
    suffix: str = ""
    description: str = ""
    smpte: bool = False  # counts in SMPTE timecode: needs one of its frame rates


FORMATS: dict[str, ExportFormat] = {
    "otio": ExportFormat("otio_json", ".otio", "OpenTimelineIO"),
    "fcpxml": ExportFormat("fcpx_xml", ".fcpxml", "Final Cut Pro X XML", smpte=True),
    "xml": ExportFormat("fcp_xml", ".xml", "Final Cut Pro 7 XML", smpte=True),
    "edl": ExportFormat("cmx_3600", ".edl", "CMX 3600 EDL", smpte=True),
}

ADAPTER_PACKAGES = {"fcpx_xml": "otio-fcpx-xml-adapter", "fcp_xml": "otio-fcp-adapter", "cmx_3600": "otio-cmx3600-adapter"}
"""The PyPI package of each OTIO adapter (the ``export`` extra installs them all)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    clips: int
    fps: float
    duration_s: float


def export_timeline(run: str | Path, format: str = "otio", output: str | Path | None = None) -> ExportResult:
    """Write the run's cut as ``format`` (one of :data:`FORMATS`) to ``output`` (default: in the
    run folder, named after the video: ``song.otio``). The run must have rendered clips for
    every shot of its plan. Returns where it went and what it holds."""
    # 1. Check the inputs before anything is built.
    chosen = FORMATS.get(format)
    if chosen is None:
        raise Music2VideoError(f"unknown export format {format!r}; {suggest_format(format)}choose one of {', '.join(FORMATS)}")
    from music2video.edit import changed_shots, open_run

    state = open_run(run)
    render = _clips_of(state)
    fps = render.fps
    if chosen.smpte:
        _check_smpte_rate(fps, format)
    pending = changed_shots(state.root)
    if pending:
        log.warning(
            "%d shots changed since they were rendered (%s); the export holds their earlier clips",
            len(pending), ", ".join(pending[:5]) + (" ..." if len(pending) > 5 else ""),
        )  # fmt: skip
    summary = state.summary
    name = Path(summary.output).stem if summary.output else state.root.name.removesuffix(".music2video")
    path = Path(output) if output is not None else state.root / f"{name}{chosen.suffix}"
    if path.is_dir():
        raise Music2VideoError(f"{path} is a folder; give the file to write, e.g. {path / (name + chosen.suffix)}")

    # 2. Build the timeline and write it through the format's adapter.
    timeline = build_timeline(state, render, name)
    otio = _otio()
    _check_adapter(format)
    from music2video.runfolder import atomic_path

    try:
        with atomic_path(path) as tmp:
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name=chosen.adapter)
    except OSError as error:
        raise WriteError(f"cannot write {path}: {error.strerror or error}") from error
    except (otio.exceptions.OTIOError, ValueError) as error:
        raise Music2VideoError(f"{chosen.description} export failed: {error}") from error
    return ExportResult(path, format, len(render.clips), fps, state.analysis.duration_s)


def build_timeline(state: Any, render: RenderResult, name: str) -> Any:  # (RunState, ...) -> otio Timeline
    """The OTIO timeline of a run (see the module docstring); ``state`` from :func:`music2video.edit.open_run`."""
    otio = _otio()
    RationalTime, TimeRange = otio.opentime.RationalTime, otio.opentime.TimeRange
    fps = render.fps

    def frames(count: int, start: int = 0) -> Any:
        return TimeRange(RationalTime(start, fps), RationalTime(count, fps))

    timeline = otio.schema.Timeline(name=name, global_start_time=RationalTime(0, fps))
    video = otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)
    entries = {entry.id: entry for entry in state.storyboard.shots} if state.storyboard is not None else {}
    for shot, clip in zip(state.plan.shots, render.clips):
        count = shot.frame_count(fps)
        media = otio.schema.ExternalReference(
            target_url=(state.root / clip.path).resolve().as_uri(), available_range=frames(clip.frames)
        )
        entry = entries.get(shot.id)
        metadata = {"shot": shot.id, "start_s": shot.start_s, "end_s": shot.end_s, "section": shot.section_index, "cut": shot.cut}
        if entry is not None:
            metadata.update(scene=entry.scene, prompt=entry.prompt, seed=entry.seed, camera=entry.camera)
        # An EDL names sources by reel (8 characters): SHOT007B for shot-007b.
        reel = re.sub(r"[^A-Za-z0-9]", "", shot.id).upper()[:8]
        video.append(
            otio.schema.Clip(
                name=shot.id, media_reference=media, source_range=frames(count),
                metadata={"music2video": metadata, "cmx_3600": {"reel": reel}},
            )
        )  # fmt: skip

    total = round(state.analysis.duration_s * fps)
    audio = otio.schema.Track(name="Song", kind=otio.schema.TrackKind.Audio)
    song = otio.schema.Clip(
        name=Path(state.summary.song).name,
        media_reference=otio.schema.ExternalReference(
            target_url=(state.root / "audio.wav").resolve().as_uri(), available_range=frames(total)
        ),
        source_range=frames(total),
        metadata={"music2video": {"song": state.summary.song}},
    )
    # Section starts as markers on the song (the FCP XML adapters write clip markers, not track ones).
    for section in state.analysis.sections[1:]:
        song.markers.append(
            otio.schema.Marker(
                name=f"{section.label} {section.role}", marked_range=frames(0, round(section.start_s * fps)),
                color=otio.schema.MarkerColor.GREEN,
            )
        )  # fmt: skip
    audio.append(song)
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    return timeline


def _clips_of(state: Any) -> RenderResult:
    """clips.json, checked against the shot plan: one existing clip per shot, in order, each
    exactly its shot's frame count."""
    path = state.root / "clips.json"
    if not path.is_file():
        raise Music2VideoError(f"{state.root} has no rendered clips yet; make the video first (music2video SONG)")
    try:
        render = RenderResult.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise Music2VideoError(f"cannot read {path} ({' '.join(str(error).split())[:200]})") from None
    planned = [(shot.id, shot.frame_count(render.fps)) for shot in state.plan.shots]
    rendered = [(clip.shot_id, clip.frames) for clip in render.clips]
    if planned != rendered:
        raise Music2VideoError(
            f"the clips in {path} are not those of the shot plan (it changed since the last render); "
            "render the changed shots first (music2video SONG, or music2video.edit.rerender)"
        )
    missing = [clip.path for clip in render.clips if not (state.root / clip.path).is_file()]
    if missing:
        raise Music2VideoError(f"{len(missing)} clips are missing from {state.root} (first: {missing[0]}); render them again")
    if render.failed_shots:
        log.warning("%d shots failed to render; the export holds their placeholders", len(render.failed_shots))
    return render


def _otio() -> Any:
    require("opentimelineio", extra="export", purpose="Exporting a timeline")
    import opentimelineio

    return opentimelineio


def _check_adapter(format: str) -> None:
    """OTIO's adapters for FCP XML and EDL are packages of their own (since OTIO 0.16)."""
    otio = _otio()
    try:
        otio.adapters.from_name(FORMATS[format].adapter)
    except otio.exceptions.NotSupportedError:
        package = ADAPTER_PACKAGES.get(FORMATS[format].adapter, "opentimelineio")
        raise MissingDependencyError(package, "export", f"{FORMATS[format].description} export") from None


def _check_smpte_rate(fps: float, format: str) -> None:
    otio = _otio()
    if not otio.opentime.RationalTime.is_valid_timecode_rate(fps):
        raise Music2VideoError(
            f"{FORMATS[format].description} counts in SMPTE timecode, which has no {fps:g} fps; "
            "export otio instead, or make the video at a timecode rate (--fps 24, 25 or 30)"
        )


def suggest_format(word: str) -> str:
    """A "did you mean X? " for a near-miss format name, else an empty string."""
    import difflib

    close = difflib.get_close_matches(word.lower(), FORMATS, n=1, cutoff=0.5)
    return f"did you mean {close[0]}? " if close else ""
