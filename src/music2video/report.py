"""Report stage: one static ``report.html`` per run folder, readable offline, from whatever artifacts exist.

    from music2video.report import write_report
    write_report(Path("song.music2video"))   # -> song.music2video/report.html

The page shows, top to bottom: the song and how it was made (the video beside the key
figures: tempo, meter, duration, shots, key, cuts on a beat, beat alignment, AV-Align,
pipeline, time taken), and for an animatic, once, what a preview draws; a table of contents;
every warning of every artifact with what to do about it (fallbacks are never silent); the
timeline (sections, waveform with beats, downbeats, planned and detected cuts; the energy and
brightness curves and the listener's valence/arousal per shot); the sync and quality metrics
of ``evaluation.json``; the storyboard (concept, style bible, characters, sections, and the
sentences every prompt repeats, shown once); a card per shot (its middle frame, scene, what its
prompt adds, tags, lyrics), foldable and filterable by section; the models and settings used;
and the time each stage took.

Plots are PNG files drawn by matplotlib's Agg renderer (no pyplot, no display) and frames are
JPEG files, all in ``report/`` beside the HTML, so the page needs no network. One small inline
script (``_SCRIPT``) makes the page interactive: clicking the waveform, a section or a shot
plays the video from there, a playhead follows the video, and the shot cards filter and fold.
Any missing or unreadable artifact leaves its part out with a note instead of failing the
report.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from music2video.artifacts import (
    Analysis,
    Artifact,
    AssemblyResult,
    AudioInfo,
    Descriptions,
    KeyframeSet,
    ReferenceSet,
    RenderResult,
    RunSummary,
    SegmentDescription,
    ShotPlan,
    Storyboard,
    StoryboardShot,
)
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import is_temporary, write_text_atomic
from music2video.settings import meter_label

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
ASSETS_FOLDER = "report"
"""Images of the report, beside ``report.html``; rewritten on every report."""

THUMBNAIL_WIDTH_PX = 240
"""Width of the contact sheet's frames."""

THUMBNAIL_JPEG_QUALITY = 82
PLOT_WIDTH_IN = 12.0
PLOT_DPI = 110  # 1320 px wide: sharp on a laptop screen, ~100 kB per plot
# Fixed margins (inches / figure fractions) instead of tight_layout, so the time axes of the
# plots stacked on the page line up exactly.
PLOT_LEFT, PLOT_RIGHT = 0.03, 0.995
PLOT_BOTTOM_IN, PLOT_TOP_IN = 0.42, 0.06
CURVE_SMOOTHING_S = 1.0
"""Window of the moving average drawn over the energy and brightness curves."""
WAVEFORM_BINS = 2400
"""Columns of the waveform's min/max envelope (more than the plot's pixels, so it looks continuous)."""

# One colour per section letter (A, B, C ...): the same letter has the same colour everywhere.
SECTION_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"]
CUT_COLOUR = "#e15759"
DETECTED_CUT_COLOUR = "#1b1f24"

A = TypeVar("A", bound=BaseModel)


@dataclass
class RunArtifacts:
    """Every artifact of a run folder that exists and parses; ``problems`` says why others are missing."""

    root: Path
    audio: AudioInfo | None = None
    analysis: Analysis | None = None
    plan: ShotPlan | None = None
    descriptions: Descriptions | None = None
    storyboard: Storyboard | None = None
    references: ReferenceSet | None = None
    keyframes: KeyframeSet | None = None
    render: RenderResult | None = None
    video: AssemblyResult | None = None
    run: RunSummary | None = None
    evaluation: Any = None  # music2video.evaluate.Evaluation (imported lazily: it pulls in the metrics)
    problems: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> RunArtifacts:
        from music2video.evaluate import EVALUATION_ARTIFACT, Evaluation

        found = cls(root=Path(root))
        for attribute, name, model in (
            ("audio", "audio.json", AudioInfo),
            ("analysis", "analysis.json", Analysis),
            ("plan", "shots.json", ShotPlan),
            ("descriptions", "descriptions.json", Descriptions),
            ("storyboard", "storyboard.json", Storyboard),
            ("references", "references.json", ReferenceSet),
            ("keyframes", "keyframes.json", KeyframeSet),
            ("render", "clips.json", RenderResult),
            ("video", "video.json", AssemblyResult),
            ("run", "run.json", RunSummary),
            ("evaluation", EVALUATION_ARTIFACT, Evaluation),
        ):
            setattr(found, attribute, found._read(name, model))
        return found

    def _read(self, name: str, model: type[A]) -> A | None:
        path = self.root / name
        if not path.is_file():
            return None
        try:
            return model.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError, OSError) as error:
            self.problems[name] = " ".join(str(error).split())[:300]
            return None

    def named(self) -> list[tuple[str, Artifact]]:
        """(file name, artifact) of everything loaded, in pipeline order."""
        pairs = [
            ("audio.json", self.audio), ("analysis.json", self.analysis), ("shots.json", self.plan),
            ("descriptions.json", self.descriptions), ("storyboard.json", self.storyboard),
            ("references.json", self.references), ("keyframes.json", self.keyframes), ("clips.json", self.render), ("video.json", self.video), ("evaluation.json", self.evaluation),
            ("run.json", self.run),
        ]  # fmt: skip
        return [(name, artifact) for name, artifact in pairs if artifact is not None]

    @property
    def duration_s(self) -> float | None:
        for source in (self.audio, self.analysis, self.plan, self.video):
            if source is not None:
                return float(source.duration_s)
        return None


def write_report(run_folder: Path, progress: ProgressCallback = no_progress) -> Path:
    """Build ``report.html`` (and its images in ``report/``) in ``run_folder``; returns the HTML's path.

    Args:
        run_folder: a music2video run folder; every artifact is optional.
        progress: called with (step, steps, message).

    Returns:
        the path of ``report.html``. Images that an earlier report left in ``report/`` and
        this one does not use are deleted.
    """
    started = time.perf_counter()
    root = Path(run_folder)
    if not root.is_dir():
        from music2video.errors import InputError

        raise InputError(f"{root} is not a run folder")
    # 1. Read every artifact there is
    art = RunArtifacts.load(root)
    assets = root / ASSETS_FOLDER
    (assets / "shots").mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    progress(1, 4, "artifacts read")

    # 2. Plots
    timeline = _plot_timeline(art, assets / "timeline.png")
    curves = _plot_curves(art, assets / "curves.png")
    written.update(p for p in (timeline, curves) if p is not None)
    progress(2, 4, "plots drawn")

    # 3. Contact sheet frames
    thumbnails = _write_thumbnails(art, assets / "shots")
    written.update(thumbnails.values())
    progress(3, 4, "frames extracted")

    # 4. The page
    page = _page(art, timeline, curves, thumbnails)
    output = root / REPORT_FILE
    write_text_atomic(output, page)
    for stale in assets.rglob("*"):
        # Never another process's temporary file (a run writing its own report beside this one).
        if stale.is_file() and stale not in written and not is_temporary(stale):
            stale.unlink()
    log.info("report written in %.2f s: %s", time.perf_counter() - started, output)
    progress(4, 4, "report written")
    return output


# --------------------------------------------------------------------------------------------
# plots


def _figure(width_in: float, height_in: float):
    """A matplotlib Figure drawn by the Agg renderer, outside pyplot: no GUI, no global state to clean up."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in))


def section_colour(label: str) -> str:
    """Colour of a section letter: A is the first colour, B the second ... (wrapping)."""
    index = (ord(label[:1].upper()) - ord("A")) if label else 0
    return SECTION_COLOURS[index % len(SECTION_COLOURS)]


def waveform_envelope(wav: Path, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(bin centre times s, min, max) of the mono mix, or None without a readable WAV."""
    import soundfile as sf

    try:
        samples, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    except (OSError, RuntimeError):
        return None
    mono = samples.mean(axis=1)
    if mono.size == 0:
        return None
    per_bin = max(1, mono.size // bins)
    usable = (mono.size // per_bin) * per_bin
    blocks = mono[:usable].reshape(-1, per_bin)
    times = (np.arange(len(blocks)) + 0.5) * per_bin / rate
    return times, blocks.min(axis=1), blocks.max(axis=1)


def _shade_sections(ax, art: RunArtifacts, label_y: float | None) -> None:
    if art.analysis is None:
        return
    for section in art.analysis.sections:
        ax.axvspan(section.start_s, section.end_s, color=section_colour(section.label), alpha=0.16, lw=0)
        if label_y is not None:
            ax.text(
                (section.start_s + section.end_s) / 2, label_y, f"{section.label} · {section.role}",
                ha="center", va="top", fontsize=8, color="#1b1f24", clip_on=True,
            )  # fmt: skip


def _style_axes(ax, duration_s: float) -> None:
    ax.set_xlim(0, duration_s)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="both", labelsize=8, colors="#52606d")
    ax.set_yticks([])


def _plot_timeline(art: RunArtifacts, path: Path) -> Path | None:
    """Waveform, sections, beats, downbeats, planned cuts (red) and detected cuts (black ticks)."""
    duration = art.duration_s
    if duration is None:
        return None
    fig = _figure(PLOT_WIDTH_IN, 2.9)
    ax = fig.subplots()
    envelope = waveform_envelope(art.root / "audio.wav", WAVEFORM_BINS)
    if envelope is not None:
        times, low, high = envelope
        peak = float(max(np.abs(low).max(), np.abs(high).max(), 1e-6))
        ax.fill_between(times, low / peak, high / peak, color="#3e4c59", lw=0)
    _shade_sections(ax, art, label_y=1.32)
    if art.analysis is not None:
        ax.vlines(art.analysis.beats_s, -1.05, 1.05, color="#9aa5b1", lw=0.4, alpha=0.7)
        ax.vlines(art.analysis.downbeats_s, -1.1, 1.1, color="#52606d", lw=0.9)
    if art.plan is not None:
        cuts = [shot.start_s for shot in art.plan.shots[1:]]
        ax.vlines(cuts, -1.2, 1.2, color=CUT_COLOUR, lw=1.1, linestyles=(0, (3, 2)))
    if art.evaluation is not None:
        detected = art.evaluation.cuts.times_s
        ax.plot(detected, [-1.28] * len(detected), marker="^", ls="none", ms=4, color=DETECTED_CUT_COLOUR)
    ax.set_ylim(-1.35, 1.38)
    _style_axes(ax, duration)
    ax.set_xlabel("seconds", fontsize=8, color="#52606d")
    _set_margins(fig)
    fig.savefig(path, dpi=PLOT_DPI)
    return path


def _plot_curves(art: RunArtifacts, path: Path) -> Path | None:
    """Energy and brightness (analysis curves); valence and arousal per shot (listener features)."""
    duration = art.duration_s
    shots = _shot_features(art)
    has_curves = art.analysis is not None and len(art.analysis.energy) > 0
    has_mood = any("valence" in f or "arousal" in f for _, _, f in shots)
    if duration is None or not (has_curves or has_mood):
        return None
    rows = int(has_curves) + int(has_mood)
    fig = _figure(PLOT_WIDTH_IN, 1.9 * rows + 0.3)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    row = 0
    if has_curves:
        ax = axes[row][0]
        analysis = art.analysis
        _shade_sections(ax, art, label_y=None)
        # Raw curves faint, a one-second moving average on top: the trend reads at a glance.
        window = max(1, int(round(CURVE_SMOOTHING_S * analysis.curve_rate_hz)))
        for values, colour, label in ((analysis.energy, "#d64933", "energy"), (analysis.brightness, "#3b6ea5", "brightness")):
            if not values:
                continue
            t = np.arange(len(values)) / analysis.curve_rate_hz
            ax.plot(t, values, color=colour, lw=0.6, alpha=0.3)
            ax.plot(t, _moving_average(np.asarray(values, float), window), color=colour, lw=1.5, label=label)
        ax.set_ylim(0, 1.05)
        _style_axes(ax, duration)
        ax.set_yticks([0, 0.5, 1])
        _legend(ax)
        row += 1
    if has_mood:
        ax = axes[row][0]
        _shade_sections(ax, art, label_y=None)
        for key, colour in (("valence", "#2a9d8f"), ("arousal", "#e76f51")):
            edges = [start for start, _, f in shots if key in f]
            if not edges:
                continue
            values = [f[key] for _, _, f in shots if key in f]
            ends = [end for _, end, f in shots if key in f]
            xs = [x for start, end in zip(edges, ends, strict=True) for x in (start, end)]
            ys = [v for v in values for _ in range(2)]
            ax.plot(xs, ys, color=colour, lw=1.4, label=f"{key} (per shot)")
        ax.axhline(0, color="#9aa5b1", lw=0.6)
        ax.set_ylim(-1.05, 1.05)
        _style_axes(ax, duration)
        ax.set_yticks([-1, 0, 1])
        _legend(ax)
    axes[-1][0].set_xlabel("seconds", fontsize=8, color="#52606d")
    _set_margins(fig, hspace=0.12)
    fig.savefig(path, dpi=PLOT_DPI)
    return path


def _legend(ax) -> None:
    ax.legend(loc="upper right", fontsize=8, ncols=2, frameon=True, framealpha=0.85, edgecolor="none", facecolor="white")


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of ``window`` samples, same length (edges average what exists)."""
    if window <= 1 or values.size == 0:
        return values
    kernel = np.ones(window)
    return np.convolve(values, kernel, mode="same") / np.convolve(np.ones_like(values), kernel, mode="same")


def _set_margins(fig, hspace: float = 0.0) -> None:
    height_in = fig.get_figheight()
    fig.subplots_adjust(
        left=PLOT_LEFT, right=PLOT_RIGHT, bottom=PLOT_BOTTOM_IN / height_in, top=1 - PLOT_TOP_IN / height_in, hspace=hspace
    )


def _shot_features(art: RunArtifacts) -> list[tuple[float, float, dict[str, float]]]:
    if art.descriptions is None:
        return []
    return [(d.start_s, d.end_s, d.features) for d in art.descriptions.shots]


# --------------------------------------------------------------------------------------------
# contact sheet frames


def _write_thumbnails(art: RunArtifacts, folder: Path) -> dict[str, Path]:
    """The middle frame of every shot as a JPEG ``THUMBNAIL_WIDTH_PX`` wide: shot id -> file.

    Frames come from each shot's clip in ``clips/`` (decoding stops at the middle frame); shots
    without a clip come from the finished video, in one pass that stops at the last one needed.
    """
    from PIL import Image

    from music2video.metrics.frames import read_frames_at

    shots = _shot_spans(art)
    if not shots:
        return {}
    pictures: dict[str, np.ndarray] = {}
    clips = {clip.shot_id: clip for clip in art.render.clips} if art.render is not None else {}
    for shot_id, _, _ in shots:
        clip = clips.get(shot_id)
        if clip is None or not (art.root / clip.path).is_file():
            continue
        middle = max(0, clip.frames // 2)
        try:
            frame = read_frames_at(art.root / clip.path, [middle], THUMBNAIL_WIDTH_PX).get(middle)
        except Exception as error:  # a damaged clip costs its thumbnail, not the report
            log.warning("no thumbnail for %s from %s (%s)", shot_id, clip.path, error)
            continue
        if frame is not None:
            pictures[shot_id] = frame

    missing = [(shot_id, start, end) for shot_id, start, end in shots if shot_id not in pictures]
    video = _video_path(art)
    if missing and video is not None:
        fps = art.video.fps
        wanted = {shot_id: (round(start * fps) + round(end * fps)) // 2 for shot_id, start, end in missing}
        try:
            frames = read_frames_at(video, wanted.values(), THUMBNAIL_WIDTH_PX)
        except Exception as error:
            log.warning("no thumbnails from %s (%s)", video, error)
            frames = {}
        for shot_id, index in wanted.items():
            if index in frames:
                pictures[shot_id] = frames[index]

    written = {}
    for shot_id, picture in pictures.items():
        path = folder / f"{_safe_name(shot_id)}.jpg"
        Image.fromarray(picture).save(path, quality=THUMBNAIL_JPEG_QUALITY)
        written[shot_id] = path
    return written


def _shot_spans(art: RunArtifacts) -> list[tuple[str, float, float]]:
    if art.storyboard is not None:
        return [(s.id, s.start_s, s.end_s) for s in art.storyboard.shots]
    if art.plan is not None:
        return [(s.id, s.start_s, s.end_s) for s in art.plan.shots]
    return []


def _video_path(art: RunArtifacts) -> Path | None:
    if art.video is None:
        return None
    path = Path(art.video.video_path)
    if not path.is_absolute():  # the assembler writes it relative to the run folder
        path = art.root / path
    return path if path.is_file() else None


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "shot"


# --------------------------------------------------------------------------------------------
# the page


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _rel(path: Path, root: Path) -> str:
    return _e(Path(os.path.relpath(path, root)).as_posix())


def _fmt_time(seconds: float, digits: int = 2) -> str:
    """m:ss.ss (or m:ss with digits=0)."""
    minutes, rest = divmod(round(max(0.0, seconds), digits), 60)
    width = 3 + digits if digits else 2
    return f"{int(minutes)}:{rest:0{width}.{digits}f}"


def _page(art: RunArtifacts, timeline: Path | None, curves: Path | None, thumbnails: dict[str, Path]) -> str:
    title = _song_name(art)
    sections = [
        ("warnings", "Warnings", _warnings(art)),
        ("timeline", "Timeline", _timeline_section(art, timeline, curves)),
        ("sync", "Sync and quality", _metrics_section(art)),
        ("storyboard", "Storyboard", _storyboard_section(art)),
        ("shots", "Shots", _contact_sheet(art, thumbnails)),
        ("models", "Models and settings", _models_section(art)),
        ("timing", "Time per stage", _timing_section(art)),
    ]
    present = [(anchor, name, part) for anchor, name, part in sections if part]
    toc = "".join(f"<a href=\"#{anchor}\">{_e(name)}</a>" for anchor, name, _ in present)
    body = "\n".join([_header(art, title), f"<nav class=\"toc\" aria-label=\"contents\">{toc}</nav>", *(p for _, _, p in present)])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)} · music2video report</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n<footer>Made by music2video from the artifacts in {_e(art.root.name)}/.</footer>\n"
        f"</main>\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _song_name(art: RunArtifacts) -> str:
    if art.run is not None and art.run.song:
        return Path(art.run.song).stem
    if art.audio is not None:
        return Path(art.audio.source_path).stem
    name = art.root.name
    return name[: -len(".music2video")] if name.endswith(".music2video") else name


def _song_key(art: RunArtifacts) -> str | None:
    """The key in analysis.json; for an analysis made before it had one, a listener's key tag."""
    if art.analysis is not None and art.analysis.musical_key is not None:
        return art.analysis.musical_key.name
    song = art.descriptions.song if art.descriptions is not None else None
    if song is None:
        return None
    labels = song.tags.get("key")
    return labels[0].label if labels else None


_GRID_AGAINST_REFERENCE = {
    "double": "the grid counts twice as fast",
    "half": "the grid counts half as fast",
    "3:2": "the grid counts 3 beats to its 2",
    "2:3": "the grid counts 2 beats to its 3",
    "other": "unrelated to the grid's tempo",
}


def _reference_count(relation: str, reference_bpm: float) -> str:
    """What the independent tracker counts, said from the grid's side."""
    if reference_bpm <= 0:
        return "no pulse"
    if relation == "same":
        return "the same tempo"
    return f"{reference_bpm:.1f} BPM ({_GRID_AGAINST_REFERENCE[relation]})"


def _key_figures(art: RunArtifacts) -> list[tuple[str, str, str]]:
    """(name, value, note) of the figures a reader looks for first: the music, the cut, the sync."""
    figures: list[tuple[str, str, str]] = []
    if art.analysis is not None:
        source = art.analysis.grid_source
        if "tracker:beatnet" in source or "tracker:hybrid" in source:
            from music2video.beatnet import ATTRIBUTION

            source += f" ({ATTRIBUTION})"
        figures.append(("tempo", f"{art.analysis.tempo_bpm:.1f}", f"BPM, grid from {source}"))
        check = art.analysis.grid_check
        if check is not None:  # shown whether or not it warned: a disagreement the onsets do not back is no warning
            counts = _reference_count(check.relation, check.reference_tempo_bpm)
            figures.append(("beats another tracker shares", f"{check.agreement:.0%}", f"±70 ms; it counts {counts}"))
        figures.append(("meter", meter_label(art.analysis.beats_per_bar), f"{len(art.analysis.sections)} sections"))
    if art.duration_s is not None:
        figures.append(("duration", _fmt_time(art.duration_s, digits=0), "min:s"))
    shots = _shot_spans(art)
    if shots and art.duration_s:
        figures.append(("shots", str(len(shots)), f"{art.duration_s / len(shots):.1f} s on average"))
    key = _song_key(art)
    if key:
        figures.append(("key", key, "estimated"))
    mood = art.analysis.mood if art.analysis is not None else None
    if mood is not None:
        figures.append(("mood", mood.words[0] if mood.words else mood.quadrant, f"valence {mood.valence:+.2f}, arousal {mood.arousal:+.2f}"))
    ev = art.evaluation
    if ev is not None:
        on_beat = ev.cut_on_beat.beat.within_frame
        if on_beat is not None:
            figures.append(("cuts on a beat", f"{on_beat:.0%}", "within one frame"))
        if ev.beat_alignment.visual_to_music is not None:
            figures.append(("beat alignment", f"{ev.beat_alignment.visual_to_music:.2f}", "BAS, 0..1"))
        if ev.av_align is not None and ev.av_align.score is not None:
            figures.append(("AV-Align", f"{ev.av_align.score:.2f}", "0..1"))
    if art.run is not None:
        backends = art.run.backends
        made = " · ".join(backends[k] for k in ("listener", "writer", "renderer") if backends.get(k))
        figures.append(("pipeline", art.run.pipeline, made))
        total = sum(stage.seconds for stage in art.run.stages if not stage.reused)
        if total > 0 and art.duration_s:
            figures.append(("made in", f"{total:.0f} s", f"{art.duration_s / total:.1f}× real time"))
    if art.video is not None:
        figures.append(("video", f"{art.video.width}×{art.video.height}", f"{art.video.fps:g} fps"))
    return figures


def _header(art: RunArtifacts, title: str) -> str:
    figures = "".join(
        f"<div class=\"figure\"><span>{_e(name)}</span><b>{_e(value)}</b><small>{_e(note)}</small></div>"
        for name, value, note in _key_figures(art)
    )
    subtitle = ""
    if art.storyboard is not None:
        subtitle = f"<p class=\"subtitle\"><i>{_e(art.storyboard.title)}</i></p>"
    player = ""
    video = _video_path(art)
    if video is not None:
        # The slot keeps the player's place when the player docks in a corner (see _SCRIPT).
        player = (
            "<div class=\"player-slot\"><video class=\"player\" id=\"player\" controls preload=\"metadata\" "
            f"src=\"{_rel(video, art.root)}\"></video></div>"
        )
    status = ""
    if art.run is not None and not art.run.finished:
        status = "<span class=\"badge warn\">run not finished</span>"
    return (
        f"<header><div class=\"intro\"><p class=\"eyebrow\">music2video report {status}</p><h1>{_e(title)}</h1>{subtitle}"
        f"{player}</div><div class=\"figures\">{figures}</div>{_preview_note(art)}</header>"
    )


def _preview_note(art: RunArtifacts) -> str:
    """Said once: what the animatic takes from a prompt and what only a video model will show."""
    renderer = art.render.renderer if art.render is not None else (art.run.backends.get("renderer") if art.run else None)
    if renderer != "animatic":
        return ""
    from music2video.render.animatic import PREVIEW_NOTE

    first, rest = PREVIEW_NOTE.split(": ", 1)
    return f"<p class=\"preview-note\"><b>{_e(first)}.</b> {_e(rest[0].upper() + rest[1:])}</p>"


# What a reader can do about a warning, by the artifact that carries it.
WARNING_ACTIONS = {
    "audio.json": "Check the song file; if the problem is audible, export it again (WAV or FLAC) and run again.",
    "analysis.json": "Every cut follows these beats and sections: check them on the timeline below.",
    "shots.json": "Change the shot lengths with --min-shot and --max-shot and run again.",
    "descriptions.json": "The listener's words set each shot's mood: check them on the shot cards below.",
    "lyrics.json": "Give your own lyrics with --lyrics FILE (plain text or LRC) and run again.",
    "storyboard.json": "Edit storyboard.json (or give --style) and run the same command again: only changed shots are redrawn.",
    "references.json": "Run the same command again to retry, or give your own picture: --reference \"NAME=FILE\".",
    "keyframes.json": "Run the same command again to retry, or put your own picture at keyframes/<shot>.png.",
    "clips.json": "Run the same command again: failed shots are retried, finished ones reused.",
    "video.json": "Run the same command again to rebuild the video.",
    "evaluation.json": "These figures describe the finished video; run music2video evaluate again after a change.",
}


def _warnings(art: RunArtifacts) -> str:
    groups: dict[str, list[str]] = {}
    for name, artifact in art.named():
        for warning in artifact.warnings:
            groups.setdefault(name, []).append(warning)
    if art.render is not None:
        for shot_id, why in art.render.failed_shots.items():
            groups.setdefault("clips.json", []).append(f"{shot_id} could not be rendered and shows a placeholder: {why}")
    unreadable = [(name, why) for name, why in art.problems.items()]
    count = sum(len(v) for v in groups.values()) + len(unreadable)
    if not count:
        return "<section id=\"warnings\" class=\"ok\"><h2>Warnings</h2><p>No fallbacks, roundings or failures were recorded.</p></section>"
    blocks = []
    for name, texts in groups.items():
        items = "".join(f"<li>{_e(text)}</li>" for text in texts)
        action = WARNING_ACTIONS.get(name, f"See {name} in the run folder.")
        blocks.append(f"<div class=\"warning\"><code>{_e(name)}</code><ul>{items}</ul><p class=\"action\">→ {_e(action)}</p></div>")
    for name, why in unreadable:
        blocks.append(
            f"<div class=\"warning\"><code>{_e(name)}</code><ul><li>unreadable, left out of this report: {_e(why)}</li></ul>"
            f"<p class=\"action\">→ Delete {_e(name)} and run the same command again to rebuild it.</p></div>"
        )
    return f"<section id=\"warnings\" class=\"warnings\"><h2>Warnings <span class=\"count\">{count}</span></h2>{''.join(blocks)}</section>"


def _section_chip(label: str, role: str, seek_s: float | None = None) -> str:
    colour = section_colour(label)
    seek = f" data-seek=\"{seek_s:.3f}\"" if seek_s is not None else ""
    return f"<span class=\"chip\"{seek} style=\"background:{colour}33;border-color:{colour}\">{_e(label)} {_e(role)}</span>"


def _timeline_section(art: RunArtifacts, timeline: Path | None, curves: Path | None) -> str:
    if timeline is None and curves is None:
        return ""
    duration = art.duration_s or 0.0
    legend = (
        "<p class=\"legend\"><span class=\"sw beat\"></span>beat <span class=\"sw bar\"></span>downbeat "
        "<span class=\"sw cut\"></span>planned cut <span class=\"tri\">▲</span>cut found in the video"
        " · click anywhere to play from there</p>"
    )
    # The sections as a clickable strip, aligned with the plots' time axis.
    strip = ""
    if art.analysis is not None and duration > 0:
        span = PLOT_RIGHT - PLOT_LEFT
        blocks = "".join(
            f"<button class=\"band\" data-seek=\"{s.start_s:.3f}\" title=\"{_e(s.label)} {_e(s.role)} · "
            f"{_fmt_time(s.start_s)}–{_fmt_time(s.end_s)}\" style=\"left:{100 * (PLOT_LEFT + span * s.start_s / duration):.3f}%;"
            f"width:{100 * span * s.duration_s / duration:.3f}%;background:{section_colour(s.label)}\">"
            f"{_e(s.label)} {_e(s.role)}</button>"
            for s in art.analysis.sections
        )
        strip = f"<div class=\"bands\">{blocks}</div>"
    images = ""
    for path, alt in ((timeline, "waveform with sections, beats and cuts"), (curves, "energy, brightness, valence and arousal")):
        if path is not None:
            images += (
                f"<div class=\"seekable\" data-duration=\"{duration:.3f}\" data-left=\"{PLOT_LEFT}\" data-right=\"{PLOT_RIGHT}\">"
                f"<img class=\"plot\" src=\"{_rel(path, art.root)}\" alt=\"{alt}\">"
                f"<div class=\"playhead\" style=\"left:{100 * PLOT_LEFT:.2f}%\"></div></div>"
            )
    return f"<section id=\"timeline\"><h2>Timeline</h2>{legend}{strip}{images}</section>"


def _metrics_section(art: RunArtifacts) -> str:
    ev = art.evaluation
    if ev is None:
        return (
            "<section id=\"sync\"><h2>Sync and quality</h2><p class=\"muted\">No evaluation.json in this run folder: "
            "run <code>music2video evaluate</code> on the video to measure how it follows the music.</p>"
            f"{_colour_drift_table(art)}</section>"
        )

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0%}"

    def num(value: float | None, digits: int = 3) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    cards = [
        ("cuts on a beat", pct(ev.cut_on_beat.beat.within_frame), f"±1 frame; {pct(ev.cut_on_beat.beat.within_50ms)} within ±50 ms"),
        ("cuts on a downbeat", pct(ev.cut_on_beat.downbeat.within_frame), f"±1 frame; {pct(ev.cut_on_beat.downbeat.within_50ms)} within ±50 ms"),
        ("cuts on an independent beat", pct(ev.cut_on_beat.reference_beat.within_50ms if ev.cut_on_beat.reference_beat else None), "±50 ms of another tracker's beats"),
        ("beat alignment", num(ev.beat_alignment.visual_to_music), f"AIST++ BAS, σ = {ev.beat_alignment.sigma_s:g} s; Bailando direction {num(ev.beat_alignment.music_to_visual)}"),
    ]
    if ev.av_align is not None:
        av = ev.av_align
        cards.append(("AV-Align", num(av.score), f"{av.matched} of {av.audio_peaks} onsets met a {av.motion_method} peak within one frame"))
    tempo = ev.tempo
    cards.append(("visual tempo", f"{num(tempo.visual_bpm, 1)} BPM", f"music {num(tempo.music_bpm, 1)} BPM; ratio {num(tempo.ratio, 2)} ({tempo.match or 'no simple ratio'})"))
    if ev.cuts.recall is not None:
        cards.append(("planned cuts visible", pct(ev.cuts.recall), f"{len(ev.cuts.frames)} cuts found, precision {pct(ev.cuts.precision)}"))
    if ev.semantic is not None:
        if ev.semantic.mean_clip_similarity is not None:
            cards.append(("CLIP prompt match", num(ev.semantic.mean_clip_similarity), f"mean cosine, {ev.semantic.clip_model}"))
        if ev.semantic.mean_clap_similarity is not None:
            cards.append(("CLAP scene match", num(ev.semantic.mean_clap_similarity), f"mean cosine, {ev.semantic.clap_model}"))
    identity, fidelity = getattr(ev, "identity", None), getattr(ev, "keyframe_fidelity", None)
    if identity is not None and identity.consistency is not None:
        cards.append(("identity consistency", num(identity.consistency), f"same character across shots, margin {num(identity.margin)} over other shots; {identity.model}"))
    if fidelity is not None and fidelity.mean_cosine is not None:
        cards.append(("keyframe fidelity", num(fidelity.mean_cosine), f"first frame against its keyframe, {len(fidelity.shots)} shots; colour ΔE {num(fidelity.mean_colour_delta_e, 1)}"))
    html_cards = "".join(
        f"<div class=\"metric\"><span>{_e(name)}</span><b>{_e(value)}</b><small>{_e(note)}</small></div>"
        for name, value, note in cards
    )
    groups = ""
    if ev.semantic is not None and ev.semantic.groups:
        rows = "".join(
            f"<tr><td>{_e(g.kind)}</td><td>{_e(g.name)}</td><td>{len(g.shot_ids)}</td><td>{g.within:.3f}</td>"
            f"<td>{num(g.between)}</td><td>{num(g.margin)}</td></tr>"
            for g in ev.semantic.groups
        )
        groups = (
            "<h3>Consistency of recurring characters and settings</h3><table><thead><tr><th>kind</th><th>name</th>"
            "<th>shots</th><th>within</th><th>to others</th><th>margin</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    groups += _identity_table(identity) + _colour_drift_table(art)
    note = f"<p class=\"muted\">Measured on {_e(Path(ev.video_path).name)} in {ev.seconds:.1f} s; beats {_e(ev.beats_source)}.</p>"
    return f"<section id=\"sync\"><h2>Sync and quality</h2><div class=\"metrics\">{html_cards}</div>{groups}{note}</section>"


def _identity_table(identity: Any) -> str:
    """Per character: how alike its shots look, against the shots without it."""
    if identity is None or not identity.characters:
        return ""
    rows = "".join(
        f"<tr><td>{_e(c.name)}</td><td>{len(c.shot_ids)}</td><td>{c.within:.3f}</td>"
        f"<td>{'—' if c.between is None else f'{c.between:.3f}'}</td><td>{'—' if c.margin is None else f'{c.margin:+.3f}'}</td></tr>"
        for c in identity.characters
    )
    return (
        f"<h3>Identity consistency ({_e(identity.model)})</h3><table><thead><tr><th>character</th><th>shots</th>"
        "<th>same character</th><th>other shots</th><th>margin</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def colour_drift_by_scene(render: RenderResult | None) -> list[tuple[str, str, int, float, float, str]]:
    """(first shot, last shot, shots, mean drift before, mean drift after, reference) per scene, in
    shot order: consecutive clips matched to the same keyframe form a scene."""
    scenes: list[tuple[str, str, int, float, float, str]] = []
    if render is None:
        return scenes
    run: list[Any] = []

    def close() -> None:
        if run:
            before = float(np.mean([clip.colour.drift_before for clip in run]))
            after = float(np.mean([clip.colour.drift_after for clip in run]))
            scenes.append((run[0].shot_id, run[-1].shot_id, len(run), before, after, run[0].colour.reference))
            run.clear()

    for clip in render.clips:
        colour = getattr(clip, "colour", None)
        if colour is None or (run and run[-1].colour.reference != colour.reference):
            close()
        if colour is not None:
            run.append(clip)
    close()
    return scenes


def _colour_drift_table(art: RunArtifacts) -> str:
    """Colour drift per scene before and after matching to the scene's first keyframe."""
    scenes = colour_drift_by_scene(art.render)
    if not scenes:
        return ""
    rows = "".join(
        f"<tr><td>{_e(first)}{'' if first == last else ' – ' + _e(last)}</td><td>{count}</td><td>{before:.1f}</td>"
        f"<td>{after:.1f}</td><td>{_e(Path(reference).name)}</td></tr>"
        for first, last, count, before, after, reference in scenes
    )
    return (
        "<h3>Colour drift per scene</h3><p class=\"muted\">Mean CIE76 ΔE between each frame's mean Lab colour and the "
        "scene's first keyframe (about 2 is visible side by side), before and after matching (Lab mean and spread).</p>"
        "<table><thead><tr><th>shots</th><th>clips</th><th>before</th><th>after</th><th>keyframe</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _storyboard_section(art: RunArtifacts) -> str:
    board = art.storyboard
    if board is None:
        return ""
    palette = "".join(f"<span class=\"swatch\" style=\"background:{_e(c)}\" title=\"{_e(c)}\"></span>" for c in board.style.palette)
    style_rows = [("look", board.style.look), ("medium", board.style.medium), ("lens", board.style.lens), ("era", board.style.era)]
    style = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in style_rows if v)
    characters = "".join(f"<li><b>{_e(c.name)}</b> — {_e(c.description)}</li>" for c in board.characters)
    starts = {s.index: s.start_s for s in art.analysis.sections} if art.analysis is not None else {}
    sections = "".join(
        f"<li>{_section_chip(s.label, s.role, starts.get(s.section_index))} "
        f"{_e(s.motif)}{(' — ' + _e(s.setting)) if s.setting else ''}</li>"
        for s in board.sections
    )
    song_words = ""
    heard = art.descriptions.song.text.strip() if art.descriptions is not None else ""
    if heard and heard not in board.concept:  # the template writer's concept quotes it already
        song_words = f"<p><b>What the listener heard:</b> {_e(heard)}</p>"
    shared = shared_prompt_sentences(board)
    shared_html = ""
    if shared:
        shared_html = (
            "<h3>In every prompt</h3><p class=\"prompt\">" + _e(" ".join(shared)) + "</p>"
            "<p class=\"muted\">The shot cards below show only what each prompt adds to this.</p>"
        )
    return (
        f"<section id=\"storyboard\"><h2>Storyboard</h2><p class=\"concept\">{_e(board.concept)}</p>{song_words}"
        f"<div class=\"columns\"><div><h3>Style bible</h3><dl>{style}</dl>"
        f"<div class=\"palette\">{palette}</div></div>"
        f"<div><h3>Characters</h3><ul>{characters or '<li class=muted>none</li>'}</ul></div>"
        f"<div><h3>Sections</h3><ul class=\"plain\">{sections}</ul></div></div>{shared_html}</section>"
    )


OPEN_CARDS_MAX = 24
"""Shot cards start unfolded up to this many shots, folded above (the frames stay visible)."""

SHARED_SENTENCE_SHARE = 0.6
"""A prompt sentence found in at least this share of the shots belongs to the style, not the shot."""


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?;])\s+", text.strip()) if s]


def shared_prompt_sentences(board: Storyboard) -> list[str]:
    """The sentences that most prompts repeat word for word (the style preamble), in first-seen order."""
    if len(board.shots) < 2:
        return []
    counts: dict[str, int] = {}
    for shot in board.shots:
        for sentence in dict.fromkeys(_sentences(shot.prompt)):
            counts[sentence] = counts.get(sentence, 0) + 1
    needed = max(2, SHARED_SENTENCE_SHARE * len(board.shots))
    return [sentence for sentence, n in counts.items() if n >= needed]


def own_prompt(shot: StoryboardShot, board: Storyboard, shared: set[str]) -> str:
    """What a shot's prompt says beyond the shared sentences, its scene and its characters' descriptions."""
    scene = _bare(shot.scene)
    kept = []
    for sentence in _sentences(shot.prompt):
        if sentence in shared:
            continue
        for character in board.characters:  # the style bible lists each description once
            # "the dancer, a young woman ..., who laughs" -> "the dancer, who laughs"; "..., runs" -> "the dancer runs"
            apposition = re.escape(f"{character.name}, {character.description}") + r",?(\s+who\b)?"
            sentence = re.sub(
                apposition,
                lambda m: m.group(0)[: len(character.name)] + ("," + m.group(1) if m.group(1) else ""),
                sentence,
                flags=re.IGNORECASE,
            )
        if _bare(sentence) == scene:  # the scene is on the card already
            continue
        kept.append(sentence)
    return " ".join(kept)


def _bare(text: str) -> str:
    """Lower-case words only, for comparing sentences that differ in commas and capitals."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _contact_sheet(art: RunArtifacts, thumbnails: dict[str, Path]) -> str:
    spans = _shot_spans(art)
    if not spans:
        return ""
    board = {s.id: s for s in art.storyboard.shots} if art.storyboard is not None else {}
    shared = set(shared_prompt_sentences(art.storyboard)) if art.storyboard is not None else set()
    plan = {s.id: s for s in art.plan.shots} if art.plan is not None else {}
    sections = {s.index: s for s in art.analysis.sections} if art.analysis is not None else {}
    heard = _descriptions_by_shot(art, spans)
    clip_scores = {}
    if art.evaluation is not None and art.evaluation.semantic is not None:
        clip_scores = {s.shot_id: s for s in art.evaluation.semantic.shots}
    failed = art.render.failed_shots if art.render is not None else {}
    # A long song's cards start folded: a contact sheet of frames, each one click from its details.
    fold = "" if len(spans) > OPEN_CARDS_MAX else " open"
    cards = []
    filters: dict[str, tuple[str, int]] = {}  # section label -> (role, shots)
    for shot_id, start, end in spans:
        shot = board.get(shot_id)
        planned = plan.get(shot_id)
        section_index = shot.section_index if shot else (planned.section_index if planned else None)
        section = sections.get(section_index) if section_index is not None else None
        image = thumbnails.get(shot_id)
        picture = (
            f"<img src=\"{_rel(image, art.root)}\" alt=\"middle frame of {_e(shot_id)}\" loading=\"lazy\">"
            if image is not None
            else "<div class=\"noframe\">no frame</div>"
        )
        chips = []
        label = heading_chip = ""
        if section is not None:
            label = section.label
            role, n = filters.get(label, (section.role, 0))
            filters[label] = (role, n + 1)
            heading_chip = _section_chip(section.label, section.role)
        if planned is not None:
            chips.append(f"<span class=\"chip\">cut on {_e(planned.cut)}</span>")
        if shot is not None and shot.camera:
            chips.append(f"<span class=\"chip\">{_e(shot.camera)}</span>")
        if shot is not None and shot.motif:
            chips.append(f"<span class=\"chip\">{_e(shot.motif)}</span>")
        for name in shot.characters if shot else []:
            chips.append(f"<span class=\"chip person\">{_e(name)}</span>")
        if shot_id in failed:
            chips.append("<span class=\"chip bad\">placeholder</span>")
        lines = []
        if shot is not None:
            lines.append(f"<p class=\"scene\">{_e(shot.scene)}</p>")
            own = own_prompt(shot, art.storyboard, shared)
            if own:
                lines.append(f"<p class=\"prompt\"><span>prompt adds</span>{_e(own)}</p>")
            if shot.lyrics:
                lines.append(f"<p class=\"lyrics\">♪ {_e(shot.lyrics)}</p>")
        description = heard.get(shot_id)
        if description is not None:
            tags = " ".join(
                f"<span class=\"tag\" title=\"{_e(vocabulary)} {labels[0].score:.2f}\">{_e(labels[0].label)}</span>"
                for vocabulary, labels in description.tags.items()
                if labels and vocabulary not in ("key",)
            )
            mood = ""
            if "valence" in description.features or "arousal" in description.features:
                mood = (
                    f"<span class=\"mood\">valence {description.features.get('valence', float('nan')):+.2f} · "
                    f"arousal {description.features.get('arousal', float('nan')):+.2f}</span>"
                )
            if tags or mood:
                lines.append(f"<p class=\"tags\">{tags} {mood}</p>")
        score = clip_scores.get(shot_id)
        if score is not None and (score.clip_similarity is not None or score.clap_similarity is not None):
            bits = []
            if score.clip_similarity is not None:
                bits.append(f"CLIP {score.clip_similarity:.3f}")
            if score.clap_similarity is not None:
                bits.append(f"CLAP {score.clap_similarity:.3f}")
            lines.append(f"<p class=\"muted\">{_e(' · '.join(bits))}</p>")
        if shot is not None:
            lines.append(f"<details class=\"full\"><summary>full prompt</summary><p>{_e(shot.prompt)}</p></details>")
        palette = "".join(f"<span class=\"swatch small\" style=\"background:{_e(c)}\"></span>" for c in (shot.palette if shot else []))
        cards.append(
            f"<article class=\"shot\" id=\"{_e(shot_id)}\" data-section=\"{_e(label)}\" data-start=\"{start:.3f}\" data-end=\"{end:.3f}\">"
            f"<button class=\"frame\" data-seek=\"{start:.3f}\" title=\"play from {_fmt_time(start)}\">{picture}<span class=\"play\">▶</span></button>"
            f"<details class=\"body\"{fold}><summary><b>{_e(shot_id)}</b> <small>{_fmt_time(start)}–{_fmt_time(end)} · {end - start:.2f} s</small>"
            f" {heading_chip}{palette}</summary><div class=\"chips\">{''.join(chips)}</div>{''.join(lines)}</details></article>"
        )
    buttons = "<button class=\"filter on\" data-filter=\"\">all <small>" + str(len(spans)) + "</small></button>" + "".join(
        f"<button class=\"filter\" data-filter=\"{_e(label)}\" style=\"border-color:{section_colour(label)}\">"
        f"{_e(label)} {_e(role)} <small>{n}</small></button>"
        for label, (role, n) in sorted(filters.items())
    )
    tools = (
        f"<div class=\"tools\"><span class=\"muted\">sections</span> {buttons}"
        "<span class=\"spacer\"></span><button class=\"fold\" data-open=\"0\">collapse all</button>"
        "<button class=\"fold\" data-open=\"1\">expand all</button></div>"
    )
    return f"<section id=\"shots\"><h2>Shots</h2>{tools}<div class=\"sheet\">{''.join(cards)}</div></section>"


def _descriptions_by_shot(art: RunArtifacts, spans: list[tuple[str, float, float]]) -> dict[str, SegmentDescription]:
    """The listener's description of each shot: by position when the counts agree, else by start time."""
    if art.descriptions is None or not art.descriptions.shots:
        return {}
    described = art.descriptions.shots
    if len(described) == len(spans):
        return {shot_id: d for (shot_id, _, _), d in zip(spans, described, strict=True)}
    starts = np.asarray([d.start_s for d in described])
    return {shot_id: described[int(np.argmin(np.abs(starts - start)))] for shot_id, start, _ in spans}


def _models_section(art: RunArtifacts) -> str:
    backends = dict(art.run.backends) if art.run is not None else {}
    settings = art.run.settings if art.run is not None else {}
    rows: list[tuple[str, str]] = []
    if art.run is not None:
        rows.append(("pipeline", art.run.pipeline))
    # What each artifact says it was made with wins over the plan in run.json.
    if art.descriptions is not None:
        rows.append(("listener", _with_model(art.descriptions.listener, art.descriptions.model)))
    elif "listener" in backends:
        rows.append(("listener", backends["listener"]))
    writer = art.storyboard.writer if art.storyboard is not None else backends.get("writer")
    if writer:
        llm = settings.get("llm", {}) if writer == "llm" else {}
        rows.append(("storyboard writer", _with_model(writer, llm.get("base_url") or llm.get("model"))))
    if art.render is not None:
        rows.append(("renderer", _with_model(art.render.renderer, art.render.model)))
        rows.append(("clips", f"{len(art.render.clips)} at {art.render.width}×{art.render.height}, {art.render.fps:g} fps"))
    elif "renderer" in backends:
        rows.append(("renderer", backends["renderer"]))
    if art.evaluation is not None:
        rows.append(("evaluation motion", art.evaluation.av_align.motion_method if art.evaluation.av_align else "—"))
        if art.evaluation.semantic is not None:
            for name in ("clip_model", "clap_model"):
                value = getattr(art.evaluation.semantic, name)
                if value:
                    rows.append((f"evaluation {name.replace('_', ' ')}", value))
    if not rows:
        return ""
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    settings = ""
    if art.run is not None and art.run.settings:
        settings = (
            "<details><summary>All settings of this run</summary>"
            f"<pre>{_e(json.dumps(art.run.settings, indent=2, sort_keys=True))}</pre></details>"
        )
    return f"<section id=\"models\"><h2>Models and settings</h2><table class=\"kv\">{table}</table>{settings}</section>"


def _with_model(backend: str, model: str | None) -> str:
    return f"{backend} — {model}" if model else backend


def _timing_section(art: RunArtifacts) -> str:
    if art.run is None or not art.run.stages:
        workers = _render_workers(art)
        return f"<section id=\"timing\"><h2>Time per stage</h2>{workers}</section>" if workers else ""
    total = sum(stage.seconds for stage in art.run.stages) or 1.0
    longest = max(stage.seconds for stage in art.run.stages) or 1.0
    rows = "".join(
        f"<tr><td>{_e(stage.name)}</td><td class=\"num\">{stage.seconds:.2f} s</td>"
        f"<td class=\"bar\"><div style=\"width:{100 * stage.seconds / longest:.1f}%\"></div></td>"
        f"<td>{'reused' if stage.reused else ''}</td></tr>"
        for stage in art.run.stages
    )
    return (
        f"<section id=\"timing\"><h2>Time per stage</h2><table class=\"timing\">{rows}"
        f"<tr class=\"total\"><td>total</td><td class=\"num\">{total:.2f} s</td><td></td><td></td></tr></table>"
        f"{_render_workers(art)}</section>"
    )


def _render_workers(art: RunArtifacts) -> str:
    """Render time per worker (``local``, or each Ray worker) and per shot, from clips.json."""
    times = art.render.shot_times if art.render is not None else []
    if not times:
        return ""
    by_worker: dict[str, list[float]] = {}
    for time in times:
        by_worker.setdefault(time.worker, []).append(time.seconds)
    busiest = max(sum(seconds) for seconds in by_worker.values()) or 1.0
    rows = "".join(
        f"<tr><td>{_e(worker)}</td><td class=\"num\">{len(seconds)} shots</td><td class=\"num\">{sum(seconds):.2f} s</td>"
        f"<td class=\"bar\"><div style=\"width:{100 * sum(seconds) / busiest:.1f}%\"></div></td>"
        f"<td class=\"num\">{float(np.median(seconds)):.2f} s a shot</td></tr>"
        for worker, seconds in sorted(by_worker.items())
    )
    shots = "".join(
        f"<tr><td>{_e(time.shot_id)}</td><td>{_e(time.worker)}</td><td class=\"num\">{time.seconds:.2f} s</td></tr>"
        for time in times
    )
    return (
        f"<h3>Render workers</h3><table class=\"timing workers\">{rows}</table>"
        f"<details><summary>Each shot's worker and time</summary><table class=\"timing\">{shots}</table></details>"
    )


# The page's only script: seeking, the docked player, the playhead, section filters and folding.
# Everything works from data- attributes written above, so the page stays one static file.
_SCRIPT = """
(() => {
  const video = document.getElementById('player');
  const seek = (t) => {
    if (!video || !isFinite(t)) return;
    video.currentTime = Math.max(0, t);
    const played = video.play();
    if (played && played.catch) played.catch(() => {});
  };
  document.addEventListener('click', (event) => {
    const target = event.target.closest('[data-seek]');
    if (target) { event.preventDefault(); seek(parseFloat(target.dataset.seek)); return; }
    const plot = event.target.closest('.seekable');
    if (plot) {
      const box = plot.getBoundingClientRect();
      const left = parseFloat(plot.dataset.left), right = parseFloat(plot.dataset.right);
      const share = ((event.clientX - box.left) / box.width - left) / (right - left);
      seek(Math.min(1, Math.max(0, share)) * parseFloat(plot.dataset.duration));
      return;
    }
    const filter = event.target.closest('.filter');
    if (filter) {
      document.querySelectorAll('.filter').forEach((b) => b.classList.toggle('on', b === filter));
      const wanted = filter.dataset.filter;
      document.querySelectorAll('.shot').forEach((card) => { card.hidden = wanted !== '' && card.dataset.section !== wanted; });
      return;
    }
    const fold = event.target.closest('.fold');
    if (fold) document.querySelectorAll('.shot details.body').forEach((d) => { d.open = fold.dataset.open === '1'; });
  });
  if (!video) return;
  // While it plays, the player docks in a corner when its place is scrolled away, so a click on
  // a shot far down the page plays where the reader is.
  const slot = video.parentElement;
  let away = false;
  const dock = () => video.classList.toggle('docked', away && !video.paused);
  new IntersectionObserver(([entry]) => { away = !entry.isIntersecting; dock(); }, { threshold: 0.2 }).observe(slot);
  video.addEventListener('play', dock);
  video.addEventListener('pause', dock);
  const heads = document.querySelectorAll('.seekable');
  const cards = Array.from(document.querySelectorAll('.shot'));
  let playing = null;
  video.addEventListener('timeupdate', () => {
    const t = video.currentTime;
    heads.forEach((plot) => {
      const left = parseFloat(plot.dataset.left), right = parseFloat(plot.dataset.right);
      const share = t / (parseFloat(plot.dataset.duration) || 1);
      plot.querySelector('.playhead').style.left = (100 * (left + (right - left) * share)) + '%';
    });
    const now = cards.find((c) => t >= parseFloat(c.dataset.start) && t < parseFloat(c.dataset.end)) || null;
    if (now !== playing) {
      if (playing) playing.classList.remove('playing');
      if (now) now.classList.add('playing');
      playing = now;
    }
  });
})();
"""


_CSS = """
:root { --ink:#1b1f24; --muted:#616e7c; --line:#e4e7eb; --bg:#f7f8fa; --card:#fff; --accent:#e15759; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 28px 24px 48px; }
header { background: linear-gradient(135deg, #1f2933, #3e4c59); color: #fff; border-radius: 14px; padding: 24px 28px;
  display: grid; grid-template-columns: minmax(0, 1fr) minmax(280px, 440px); gap: 8px 28px; }
header .intro { min-width: 0; }
header h1 { margin: 2px 0 4px; font-size: 34px; letter-spacing: -0.5px; }
.eyebrow { margin:0; text-transform: uppercase; letter-spacing: 1.5px; font-size: 12px; opacity: .7; }
.subtitle { margin: 0 0 12px; opacity: .9; font-size: 17px; }
.figures { display:grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr)); gap: 10px; align-content: start; }
.figure { background: rgba(255,255,255,.09); border-radius: 10px; padding: 8px 12px; }
.figure span { display:block; font-size: 11px; text-transform: uppercase; letter-spacing: 1px; opacity: .7; }
.figure b { display:block; font-size: 22px; line-height: 1.25; }
.figure small { display:block; font-size: 12px; opacity: .75; }
.preview-note { grid-column: 1 / -1; margin: 6px 0 0; font-size: 14px; background: rgba(240,180,41,.16);
  border-left: 4px solid #f0b429; border-radius: 6px; padding: 8px 12px; }
.preview-note code { background: rgba(255,255,255,.14); color: #fff; }
.player-slot { max-width: 720px; aspect-ratio: 16 / 9; margin-top: 8px; }
.player { display:block; width: 100%; height: 100%; border-radius: 8px; background:#000; }
.player.docked { position: fixed; right: 18px; bottom: 18px; width: 360px; height: auto; z-index: 20;
  box-shadow: 0 8px 28px rgba(0,0,0,.35); }
nav.toc { position: sticky; top: 0; z-index: 10; display:flex; flex-wrap: wrap; gap: 4px 18px; padding: 10px 4px;
  background: var(--bg); border-bottom: 1px solid var(--line); font-size: 14px; }
nav.toc a { color: #3e4c59; text-decoration: none; } nav.toc a:hover { color: var(--accent); }
section { scroll-margin-top: 48px; }
.warning { margin: 8px 0 12px; } .warning ul { margin: 4px 0; } .action { margin: 2px 0 0 18px; color: #3e4c59; font-weight: 500; }
.bands { position: relative; height: 26px; margin-top: 4px; }
.band { position: absolute; top: 0; height: 24px; border: 0; border-radius: 4px; color: #fff; font: 600 12px/24px system-ui, sans-serif;
  overflow: hidden; white-space: nowrap; text-overflow: ellipsis; cursor: pointer; padding: 0 4px; opacity: .85; }
.band:hover { opacity: 1; }
.seekable { position: relative; cursor: crosshair; }
.playhead { position: absolute; top: 0; bottom: 0; width: 2px; background: var(--accent); left: -10px; pointer-events: none; }
.concept { max-width: 980px; }
.tools { display:flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-bottom: 12px; }
.tools .spacer { flex: 1; }
.tools button { font: inherit; font-size: 13px; border: 1px solid #cbd2d9; background: #fff; border-radius: 999px; padding: 2px 10px; cursor: pointer; }
.tools button.on { background: #1f2933; color: #fff; border-color: #1f2933; }
.tools button small { opacity: .65; }
.shot .frame { position: relative; padding: 0; border: 0; background: none; cursor: pointer; display:block; width: 100%; }
.shot .frame .play { position: absolute; left: 10px; bottom: 8px; color: #fff; font-size: 14px; background: rgba(0,0,0,.45);
  border-radius: 999px; padding: 2px 9px; opacity: 0; transition: opacity .15s; }
.shot .frame:hover .play { opacity: 1; }
.shot.playing { outline: 3px solid var(--accent); }
.shot summary { cursor: pointer; font-size: 14px; }
.shot summary small { color: var(--muted); margin-left: 4px; }
details.full summary { color: var(--muted); font-size: 12px; }
details.full p { font-size: 12px; color: #3e4c59; margin: 4px 0 0; }
@media (max-width: 900px) { header { grid-template-columns: 1fr; } }
section { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 18px 22px; margin-top: 18px; }
h2 { margin: 0 0 12px; font-size: 20px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.count { background: #f0b429; color: #1b1f24; border-radius: 10px; padding: 0 8px; font-size: 13px; vertical-align: middle; }
.warnings { border-left: 5px solid #f0b429; }
.warnings ul { margin: 0; padding-left: 18px; }
.warnings li { margin: 3px 0; }
.ok { border-left: 5px solid #3ebd93; }
code { background: #f0f2f5; border-radius: 4px; padding: 0 4px; font-size: 13px; }
.plot { width: 100%; height: auto; display:block; margin-top: 6px; }
.legend { color: var(--muted); font-size: 13px; margin: 0 0 6px; }
.sw { display:inline-block; width: 14px; height: 0; border-top: 2px solid; vertical-align: middle; margin: 0 4px 0 10px; }
.sw.beat { border-color:#9aa5b1; } .sw.bar { border-color:#52606d; } .sw.cut { border-color: var(--accent); border-top-style: dashed; }
.tri { margin-left: 10px; font-size: 10px; }
.chip { display:inline-block; border: 1px solid #cbd2d9; border-radius: 999px; padding: 0 8px; font-size: 12px; margin: 2px 4px 2px 0; background:#f5f7fa; }
.chip.person { background: #e3f8ff; border-color: #81defd; }
.chip.bad { background: #ffe3e3; border-color: var(--accent); color: #a61b1b; }
.badge.warn { background:#f0b429; color:#1b1f24; border-radius: 6px; padding: 0 6px; font-weight: 600; letter-spacing: 0; }
.metrics { display:grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 12px; }
.metric { border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px; }
.metric span { display:block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .8px; }
.metric b { display:block; font-size: 26px; margin: 2px 0; }
.metric small { color: var(--muted); }
.muted { color: var(--muted); }
table { border-collapse: collapse; font-size: 14px; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
table.kv th { color: var(--muted); font-weight: 500; white-space: nowrap; }
pre { background: #f5f7fa; border-radius: 8px; padding: 12px; overflow: auto; font-size: 12px; max-height: 420px; }
.columns { display:grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 18px; }
dl { display:grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; }
ul.plain { list-style: none; padding: 0; margin: 0; } ul.plain li { margin: 4px 0; }
.palette { margin-top: 8px; }
.swatch { display:inline-block; width: 22px; height: 22px; border-radius: 5px; margin-right: 4px; border: 1px solid rgba(0,0,0,.15); vertical-align: middle; }
.swatch.small { width: 12px; height: 12px; border-radius: 3px; margin: 0 0 0 4px; }
.sheet { display:grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; align-items: start; }
.shot { border: 1px solid var(--line); border-radius: 10px; overflow: hidden; background: #fff; display:flex; flex-direction: column; }
.shot img, .noframe { width: 100%; aspect-ratio: 16 / 9; object-fit: cover; background: #1f2933; display:block; }
.noframe { color: #9aa5b1; display:flex; align-items:center; justify-content:center; font-size: 13px; }
.shot .body { padding: 8px 12px 12px; }
.shot h3 { margin: 0 0 4px; font-size: 14px; }
.shot h3 small { color: var(--muted); font-weight: 400; margin-left: 4px; }
.scene { margin: 6px 0; }
.prompt { margin: 6px 0; font-size: 13px; color: #3e4c59; }
.prompt span { display:inline-block; font-size: 10px; text-transform: uppercase; letter-spacing: 1px; color: var(--muted); margin-right: 6px; }
.lyrics { font-style: italic; margin: 6px 0; }
.tags { font-size: 12px; margin: 6px 0 0; }
.tag { background: #f0f4f8; border-radius: 4px; padding: 1px 6px; margin-right: 3px; display:inline-block; margin-bottom: 2px; }
.mood { color: var(--muted); white-space: nowrap; }
.timing { width: 100%; max-width: 760px; }
.timing td.num { text-align: right; white-space: nowrap; }
.timing td.bar { width: 60%; }
.timing td.bar div { height: 10px; background: #4e79a7; border-radius: 3px; min-width: 1px; }
.timing tr.total td { font-weight: 600; border-bottom: none; }
footer { color: var(--muted); font-size: 12px; margin-top: 20px; text-align: center; }
"""
