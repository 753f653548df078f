"""Report stage: one static ``report.html`` per run folder, readable offline, from whatever artifacts exist.

    from music2video.report import write_report
    write_report(Path("song.music2video"))   # -> song.music2video/report.html

The page shows, top to bottom: the song and how it was made (duration, tempo, meter, key,
pipeline, the video itself when it sits beside the run folder); every warning of every
artifact (fallbacks are never silent); the timeline (waveform with sections, beats,
downbeats, planned and detected cuts); the feature curves (energy, brightness) and the
listener's valence/arousal per shot; the sync and quality metrics of ``evaluation.json``; the
storyboard's concept; a contact sheet (the middle frame of every shot beside its scene,
prompt, tags and lyrics); the models and settings used; and the time each stage took.

Plots are PNG files drawn by matplotlib's Agg renderer (no pyplot, no display) and frames are
JPEG files, all in ``report/`` beside the HTML, so the page needs no network and no script.
Any missing or unreadable artifact leaves its part out with a note instead of failing the
report.
"""

from __future__ import annotations

import html
import json
import logging
import os
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
    RenderResult,
    RunSummary,
    SegmentDescription,
    ShotPlan,
    Storyboard,
)
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import write_text_atomic

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
            ("clips.json", self.render), ("video.json", self.video), ("evaluation.json", self.evaluation),
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
        if stale.is_file() and stale not in written:
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


def _waveform_envelope(wav: Path, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
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
    envelope = _waveform_envelope(art.root / "audio.wav", WAVEFORM_BINS)
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


def _fmt_time(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:05.2f}"


def _page(art: RunArtifacts, timeline: Path | None, curves: Path | None, thumbnails: dict[str, Path]) -> str:
    title = _song_name(art)
    parts = [
        _header(art, title),
        _warnings(art),
        _timeline_section(art, timeline, curves),
        _metrics_section(art),
        _storyboard_section(art),
        _contact_sheet(art, thumbnails),
        _models_section(art),
        _timing_section(art),
    ]
    body = "\n".join(part for part in parts if part)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)} · music2video report</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n<footer>Made by music2video from the artifacts in {_e(art.root.name)}/.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def _song_name(art: RunArtifacts) -> str:
    if art.run is not None and art.run.song:
        return Path(art.run.song).stem
    if art.audio is not None:
        return Path(art.audio.source_path).stem
    name = art.root.name
    return name[: -len(".music2video")] if name.endswith(".music2video") else name


def _song_key(art: RunArtifacts) -> str | None:
    song = art.descriptions.song if art.descriptions is not None else None
    if song is None:
        return None
    labels = song.tags.get("key")  # the dsp listener's Krumhansl-Schmuckler estimate
    return labels[0].label if labels else None


def _header(art: RunArtifacts, title: str) -> str:
    facts: list[tuple[str, str]] = []
    if art.duration_s is not None:
        facts.append(("duration", _fmt_time(art.duration_s)))
    if art.analysis is not None:
        facts.append(("tempo", f"{art.analysis.tempo_bpm:.1f} BPM"))
        facts.append(("meter", f"{art.analysis.beats_per_bar}/4"))
        facts.append(("sections", str(len(art.analysis.sections))))
    key = _song_key(art)
    if key:
        facts.append(("key", key))
    shots = _shot_spans(art)
    if shots:
        facts.append(("shots", str(len(shots))))
    if art.run is not None:
        facts.append(("pipeline", art.run.pipeline))
    if art.video is not None:
        facts.append(("video", f"{art.video.width}×{art.video.height} @ {art.video.fps:g} fps"))
    chips = "".join(f"<div class=\"fact\"><span>{_e(k)}</span><b>{_e(v)}</b></div>" for k, v in facts)
    subtitle = ""
    if art.storyboard is not None:
        subtitle = f"<p class=\"subtitle\"><i>{_e(art.storyboard.title)}</i> — {_e(art.storyboard.concept)}</p>"
    player = ""
    video = _video_path(art)
    if video is not None:
        player = f"<video class=\"player\" controls preload=\"metadata\" src=\"{_rel(video, art.root)}\"></video>"
    status = ""
    if art.run is not None and not art.run.finished:
        status = "<span class=\"badge warn\">run not finished</span>"
    return (
        f"<header><p class=\"eyebrow\">music2video report {status}</p><h1>{_e(title)}</h1>{subtitle}"
        f"<div class=\"facts\">{chips}</div>{player}</header>"
    )


def _warnings(art: RunArtifacts) -> str:
    items = []
    for name, artifact in art.named():
        for warning in artifact.warnings:
            items.append((name, warning))
    if art.render is not None:
        for shot_id, why in art.render.failed_shots.items():
            items.append(("clips.json", f"{shot_id} could not be rendered and shows a placeholder: {why}"))
    for name, why in art.problems.items():
        items.append((name, f"unreadable, left out of this report: {why}"))
    if not items:
        return "<section class=\"ok\"><h2>Warnings</h2><p>No fallbacks, roundings or failures were recorded.</p></section>"
    rows = "".join(f"<li><code>{_e(name)}</code> {_e(text)}</li>" for name, text in items)
    return f"<section class=\"warnings\"><h2>Warnings <span class=\"count\">{len(items)}</span></h2><ul>{rows}</ul></section>"


def _timeline_section(art: RunArtifacts, timeline: Path | None, curves: Path | None) -> str:
    if timeline is None and curves is None:
        return ""
    legend = (
        "<p class=\"legend\"><span class=\"sw beat\"></span>beat <span class=\"sw bar\"></span>downbeat "
        "<span class=\"sw cut\"></span>planned cut <span class=\"tri\">▲</span>cut found in the video"
    )
    if art.analysis is not None:
        seen: dict[str, str] = {}
        for section in art.analysis.sections:
            seen.setdefault(section.label, section.role)
        legend += " · sections " + " ".join(
            f"<span class=\"chip\" style=\"background:{section_colour(label)}33;border-color:{section_colour(label)}\">{_e(label)} {_e(role)}</span>"
            for label, role in seen.items()
        )
    legend += "</p>"
    images = ""
    if timeline is not None:
        images += f"<img class=\"plot\" src=\"{_rel(timeline, art.root)}\" alt=\"waveform with sections, beats and cuts\">"
    if curves is not None:
        images += f"<img class=\"plot\" src=\"{_rel(curves, art.root)}\" alt=\"energy, brightness, valence and arousal\">"
    return f"<section><h2>Timeline</h2>{legend}{images}</section>"


def _metrics_section(art: RunArtifacts) -> str:
    ev = art.evaluation
    if ev is None:
        return (
            "<section><h2>Sync and quality</h2><p class=\"muted\">No evaluation.json in this run folder: "
            "run <code>music2video evaluate</code> on the video to measure how it follows the music.</p></section>"
        )

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.0%}"

    def num(value: float | None, digits: int = 3) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    cards = [
        ("cuts on a beat", pct(ev.cut_on_beat.beat.within_frame), f"±1 frame; {pct(ev.cut_on_beat.beat.within_50ms)} within ±50 ms"),
        ("cuts on a downbeat", pct(ev.cut_on_beat.downbeat.within_frame), f"±1 frame; {pct(ev.cut_on_beat.downbeat.within_50ms)} within ±50 ms"),
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
    note = f"<p class=\"muted\">Measured on {_e(Path(ev.video_path).name)} in {ev.seconds:.1f} s; beats {_e(ev.beats_source)}.</p>"
    return f"<section><h2>Sync and quality</h2><div class=\"metrics\">{html_cards}</div>{groups}{note}</section>"


def _storyboard_section(art: RunArtifacts) -> str:
    board = art.storyboard
    if board is None:
        return ""
    palette = "".join(f"<span class=\"swatch\" style=\"background:{_e(c)}\" title=\"{_e(c)}\"></span>" for c in board.style.palette)
    style_rows = [("look", board.style.look), ("medium", board.style.medium), ("lens", board.style.lens), ("era", board.style.era)]
    style = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in style_rows if v)
    characters = "".join(f"<li><b>{_e(c.name)}</b> — {_e(c.description)}</li>" for c in board.characters)
    sections = "".join(
        f"<li><span class=\"chip\" style=\"background:{section_colour(s.label)}33;border-color:{section_colour(s.label)}\">{_e(s.label)} {_e(s.role)}</span> "
        f"{_e(s.motif)}{(' — ' + _e(s.setting)) if s.setting else ''}</li>"
        for s in board.sections
    )
    song_words = ""
    if art.descriptions is not None and art.descriptions.song.text:
        song_words = f"<p><b>What the listener heard:</b> {_e(art.descriptions.song.text)}</p>"
    return (
        f"<section><h2>Storyboard</h2>{song_words}<div class=\"columns\"><div><h3>Style</h3><dl>{style}</dl>"
        f"<div class=\"palette\">{palette}</div></div>"
        f"<div><h3>Characters</h3><ul>{characters or '<li class=muted>none</li>'}</ul></div>"
        f"<div><h3>Sections</h3><ul class=\"plain\">{sections}</ul></div></div></section>"
    )


def _contact_sheet(art: RunArtifacts, thumbnails: dict[str, Path]) -> str:
    spans = _shot_spans(art)
    if not spans:
        return ""
    board = {s.id: s for s in art.storyboard.shots} if art.storyboard is not None else {}
    plan = {s.id: s for s in art.plan.shots} if art.plan is not None else {}
    sections = {s.index: s for s in art.analysis.sections} if art.analysis is not None else {}
    heard = _descriptions_by_shot(art, spans)
    clip_scores = {}
    if art.evaluation is not None and art.evaluation.semantic is not None:
        clip_scores = {s.shot_id: s for s in art.evaluation.semantic.shots}
    failed = art.render.failed_shots if art.render is not None else {}
    cards = []
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
        if section is not None:
            colour = section_colour(section.label)
            chips.append(f"<span class=\"chip\" style=\"background:{colour}33;border-color:{colour}\">{_e(section.label)} {_e(section.role)}</span>")
        if planned is not None:
            chips.append(f"<span class=\"chip\">cut on {_e(planned.cut)}</span>")
        if shot is not None and shot.camera:
            chips.append(f"<span class=\"chip\">{_e(shot.camera)}</span>")
        for name in shot.characters if shot else []:
            chips.append(f"<span class=\"chip person\">{_e(name)}</span>")
        if shot_id in failed:
            chips.append("<span class=\"chip bad\">placeholder</span>")
        lines = []
        if shot is not None:
            lines.append(f"<p class=\"scene\">{_e(shot.scene)}</p>")
            lines.append(f"<p class=\"prompt\"><span>prompt</span>{_e(shot.prompt)}</p>")
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
        palette = "".join(f"<span class=\"swatch small\" style=\"background:{_e(c)}\"></span>" for c in (shot.palette if shot else []))
        cards.append(
            f"<article class=\"shot\" id=\"{_e(shot_id)}\">{picture}<div class=\"body\">"
            f"<h3>{_e(shot_id)} <small>{_fmt_time(start)}–{_fmt_time(end)} · {end - start:.2f} s</small>{palette}</h3>"
            f"<div class=\"chips\">{''.join(chips)}</div>{''.join(lines)}</div></article>"
        )
    return f"<section><h2>Shots</h2><div class=\"sheet\">{''.join(cards)}</div></section>"


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
    return f"<section><h2>Models and settings</h2><table class=\"kv\">{table}</table>{settings}</section>"


def _with_model(backend: str, model: str | None) -> str:
    return f"{backend} — {model}" if model else backend


def _timing_section(art: RunArtifacts) -> str:
    if art.run is None or not art.run.stages:
        return ""
    total = sum(stage.seconds for stage in art.run.stages) or 1.0
    longest = max(stage.seconds for stage in art.run.stages) or 1.0
    rows = "".join(
        f"<tr><td>{_e(stage.name)}</td><td class=\"num\">{stage.seconds:.2f} s</td>"
        f"<td class=\"bar\"><div style=\"width:{100 * stage.seconds / longest:.1f}%\"></div></td>"
        f"<td>{'reused' if stage.reused else ''}</td></tr>"
        for stage in art.run.stages
    )
    return (
        f"<section><h2>Time per stage</h2><table class=\"timing\">{rows}"
        f"<tr class=\"total\"><td>total</td><td class=\"num\">{total:.2f} s</td><td></td><td></td></tr></table></section>"
    )


_CSS = """
:root { --ink:#1b1f24; --muted:#616e7c; --line:#e4e7eb; --bg:#f7f8fa; --card:#fff; --accent:#e15759; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 28px 24px 48px; }
header { background: linear-gradient(135deg, #1f2933, #3e4c59); color: #fff; border-radius: 14px; padding: 26px 28px; }
header h1 { margin: 2px 0 6px; font-size: 34px; letter-spacing: -0.5px; }
.eyebrow { margin:0; text-transform: uppercase; letter-spacing: 1.5px; font-size: 12px; opacity: .7; }
.subtitle { margin: 0 0 14px; opacity: .9; max-width: 900px; }
.facts { display:flex; flex-wrap:wrap; gap:10px; margin-top: 12px; }
.fact { background: rgba(255,255,255,.1); border-radius: 8px; padding: 6px 12px; }
.fact span { display:block; font-size: 11px; text-transform: uppercase; letter-spacing: 1px; opacity: .7; }
.fact b { font-size: 16px; }
.player { display:block; margin-top: 16px; max-width: 640px; width: 100%; border-radius: 8px; background:#000; }
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
.sheet { display:grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 14px; }
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
