"""LRC times checked against the detected voice: a constant offset found and reported (or fixed),
and each line ended where its voice ends rather than where the next line starts.

An LRC file made for another release of a song (a radio edit, a version with a longer intro) or
typed against a player with latency is often off by a constant: every line early or late by the
same second or two. :func:`estimate_lrc_offset` scans shifts of up to ``MAX_OFFSET_S`` and
scores each by how well the shifted line starts fall on voice onsets (voiced time just after the
start minus voiced time just before it); a shift is reported only when it beats no shift
clearly and is larger than ``OFFSET_TOLERANCE_S``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from music2video.lyrics.artifact import LyricLine
from music2video.lyrics.user import LRC_MAX_LINE_S, MIN_LINE_S, SLOWEST_SYLLABLES_PER_S, spread_words, syllables

MAX_OFFSET_S = 5.0  # largest offset looked for; a bigger one is a different song or edit
OFFSET_STEP_S = 0.02  # resolution of the scan
ONSET_WINDOW_S = 0.5  # voiced time compared just after and just before a line start
OFFSET_TOLERANCE_S = 0.25  # smaller shifts are within the detector's own precision: not reported
MIN_GAIN = 0.15  # the best shift must beat no shift by this much onset score (0..1) to count
MIN_LINES = 3  # fewer lines cannot show a consistent offset
VOICE_START_SLACK_S = 0.5  # a line starting this much before its voice span still belongs to it


@dataclass(frozen=True)
class OffsetEstimate:
    offset_s: float  # add to the LRC times to put them on the voice (negative: the LRC is late)
    score: float  # mean onset score at that offset (-1..1)
    score_unshifted: float  # the same at no shift

    @property
    def significant(self) -> bool:
        return abs(self.offset_s) > OFFSET_TOLERANCE_S and self.score - self.score_unshifted >= MIN_GAIN


def estimate_lrc_offset(starts_s: list[float], spans_s: list[tuple[float, float]], duration_s: float) -> OffsetEstimate | None:
    """The shift that puts the LRC line ``starts_s`` best on the voice onsets of ``spans_s``;
    None when there are too few lines or no voice to compare with."""
    if len(starts_s) < MIN_LINES or not spans_s or duration_s <= 0:
        return None
    step = OFFSET_STEP_S
    frames = int(np.ceil(duration_s / step)) + 1
    voiced = np.zeros(frames)
    for a, b in spans_s:
        voiced[int(round(a / step)) : int(round(b / step))] = 1.0
    cumulative = np.concatenate([[0.0], np.cumsum(voiced)])
    window = int(round(ONSET_WINDOW_S / step))

    def voiced_between(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        lo, hi = np.clip(lo, 0, frames), np.clip(hi, 0, frames)
        return (cumulative[hi] - cumulative[lo]) / window

    shifts = np.arange(-round(MAX_OFFSET_S / step), round(MAX_OFFSET_S / step) + 1)
    at = np.round(np.asarray(starts_s) / step).astype(int)[None, :] + shifts[:, None]  # (shifts, lines)
    onset = voiced_between(at, at + window) - voiced_between(at - window, at)
    scores = onset.mean(axis=1)
    best = int(np.argmax(scores - 1e-6 * np.abs(shifts)))  # ties go to the smallest shift
    zero = int(np.flatnonzero(shifts == 0)[0])
    return OffsetEstimate(round(float(shifts[best] * step), 3), float(scores[best]), float(scores[zero]))


def shift_lines(lines: list[LyricLine], offset_s: float, duration_s: float) -> list[LyricLine]:
    """``lines`` with every time moved by ``offset_s`` (kept inside the song); lines pushed past
    the end are dropped."""
    moved = []
    for line in lines:
        start = min(max(0.0, line.start_s + offset_s), duration_s)
        if start >= duration_s:
            continue
        end = min(max(start, line.end_s + offset_s), duration_s)
        words = [
            w.model_copy(update={"start_s": round(min(max(start, w.start_s + offset_s), end), 3), "end_s": round(min(max(start, w.end_s + offset_s), end), 3)})
            for w in line.words
        ]
        moved.append(line.model_copy(update={"start_s": round(start, 3), "end_s": round(end, 3), "words": words}))
    return moved


def end_lines_with_voice(lines: list[LyricLine], spans_s: list[tuple[float, float]], duration_s: float) -> list[LyricLine]:
    """Each LRC line ends where the voice it starts in ends (never after the next line starts,
    at most ``LRC_MAX_LINE_S`` after its start). A line with no voice around its start keeps
    what its syllables need at the slowest singing rate, and is flagged ``no_voice_detected``.
    Words spread by syllables are spread again over the new length; word-tagged times are kept
    (clamped to the line)."""
    result = []
    ordered = sorted(lines, key=lambda line: line.start_s)
    for k, line in enumerate(ordered):
        following = ordered[k + 1].start_s if k + 1 < len(ordered) else duration_s
        start = line.start_s
        span_end = next((b for a, b in spans_s if a <= start + VOICE_START_SLACK_S and b > start), None)
        flags = list(line.flags)
        if span_end is None:
            end = start + syllables(line.text) / SLOWEST_SYLLABLES_PER_S
            if "no_voice_detected" not in flags:
                flags.append("no_voice_detected")
        else:
            end = span_end
        end = min(end, following, start + LRC_MAX_LINE_S, duration_s)
        end = round(max(end, min(duration_s, start + MIN_LINE_S)), 3)
        if line.words == spread_words(line.text, line.start_s, line.end_s, None):
            words = spread_words(line.text, start, end, None)
        else:
            words = [
                w.model_copy(update={"start_s": min(w.start_s, end), "end_s": min(max(w.end_s, w.start_s), end)})
                for w in line.words
            ]
        result.append(line.model_copy(update={"end_s": end, "words": words, "flags": flags}))
    return result


def check_lrc(
    lines: list[LyricLine], spans_s: list[tuple[float, float]], duration_s: float, offset: str | float
) -> tuple[list[LyricLine], list[str]]:
    """LRC ``lines`` checked against the voice: returns (lines, warnings).

    ``offset``: ``"warn"`` reports a consistent offset and keeps the times; ``"auto"`` shifts the
    lines by it; a number shifts them by that many seconds (negative: earlier) without looking.
    Line ends then follow the voice (:func:`end_lines_with_voice`).
    """
    warnings: list[str] = []
    if isinstance(offset, (int, float)) and not isinstance(offset, bool):
        if offset:
            lines = shift_lines(lines, float(offset), duration_s)
            warnings.append(f"lyrics: shifted the LRC times by {float(offset):+.2f} s as asked")
    else:
        estimate = estimate_lrc_offset([line.start_s for line in lines], spans_s, duration_s)
        if estimate is not None and estimate.significant:
            late = "after" if estimate.offset_s < 0 else "before"
            found = f"the LRC lines start {abs(estimate.offset_s):.2f} s {late} the detected voice"
            if offset == "auto":
                lines = shift_lines(lines, estimate.offset_s, duration_s)
                warnings.append(f"lyrics: {found}; shifted them by {estimate.offset_s:+.2f} s (--lyrics-offset auto)")
            else:
                warnings.append(
                    f"lyrics: {found}; check the file, or pass --lyrics-offset auto (or --lyrics-offset "
                    f"{estimate.offset_s:+.2f}) to shift them"
                )
    if spans_s:
        lines = end_lines_with_voice(lines, spans_s, duration_s)
    return lines, warnings
