"""How well the picture follows the music: cut-on-beat rates, Beat Alignment Score, AV-Align, tempo.

All times are seconds from the start of the video; frame ``k`` starts at ``k / fps``.

**Cut-on-beat rate.** A cut at frame ``k`` is *on a beat* within one frame when
``|k - round(b * fps)| <= 1`` for some beat ``b`` (the assembler puts a cut on the frame
nearest its beat, so a perfect video scores 1.0 at any frame rate), and within 50 ms when
``|k / fps - b| <= 0.050``. The same two rates are given for downbeats.

**Beat Alignment Score (BAS).** AIST++ (Li et al., "AI Choreographer", ICCV 2021):

    BAS = 1/|V| * sum over visual beats v of exp(-min_m (v - m)^2 / (2 sigma^2))

where the ``m`` are the music beats. The average runs over the *visual* (kinematic) beats,
each looking for its nearest *music* beat: that is the formula in the paper and in its
released code (``mint/tools/calculate_beat_scores.py``, ``alignment_score``). It asks "does
every visual event land on a beat?", and a video with few but well-placed cuts scores high.
Bailando (Li et al., CVPR 2022) averages the other way (each music beat looks for its nearest
visual beat: "is every beat marked?"); that variant is reported as well, as
``music_to_visual``. AIST++ used sigma = 3 frames at 60 fps (50 ms); here sigma is in seconds
(default 0.1 s), independent of the frame rate. Visual beats are the detected cuts plus the
peaks of the motion curve between cuts (:func:`motion_peaks`), merged when closer than one frame.

**AV-Align.** Yariv et al., "Diverse and Aligned Audio-to-Video Generation via Text-to-Video
Model Adaptation" (AAAI 2024), as in their reference code ``av_align.py``: audio peaks are
librosa's onsets of the audio, video peaks are the strict local maxima of the per-frame
optical-flow magnitude, an audio peak *matches* when a video peak lies strictly within one
frame (``|a - v| < 1/fps``), and

    AV-Align = matched / (|audio peaks| + |video peaks| - matched)

an intersection over union in [0, 1]. One deviation, to keep codec noise out: local maxima
below ``AV_ALIGN_NOISE_FRACTION`` of the curve's maximum are not peaks (the reference counts
every one, so on a still picture each flicker of the encoder is a "motion peak").

**Visual tempo.** The tempo of the picture's activity curve (motion normalised to its 99th
percentile, plus a unit impulse on every cut), estimated with librosa's autocorrelation
tempogram and its default log-normal prior around 120 BPM, then compared with the music's
tempo: the ratio, and which of 1x, 1/2x, 2x it is within 5 % of, if any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CUT_TOLERANCE_FRAMES = 1
"""A cut counts as on a beat if its frame is within this many frames of the beat's frame."""

CUT_TOLERANCE_S = 0.050
"""A cut counts as on a beat if it is within this many seconds of the beat."""

AV_ALIGN_NOISE_FRACTION = 0.01
"""Local maxima of the motion curve below this share of its maximum are encoder noise, not peaks."""

MOTION_PEAK_PROMINENCE = 0.25
"""A motion peak (visual beat between cuts) must rise this share of the curve's 99th percentile above its surroundings."""

MOTION_PEAK_MIN_GAP_S = 0.15
"""Motion peaks closer than this are one visual beat."""

TEMPO_TOLERANCE = 0.05
"""Visual and music tempo 'match' when their ratio is within 5 % of 1, 1/2 or 2."""

TEMPO_MIN_DURATION_S = 4.0
"""Shorter videos get no visual tempo: the autocorrelation needs a few periods."""

_TIME_EPS_S = 1e-6  # keeps 0.050 s from failing a <= 0.050 s test through float rounding


def nearest_distance_s(times: Sequence[float], references: Sequence[float]) -> np.ndarray:
    """For each time, the distance (seconds) to the nearest reference time; inf when there is none."""
    t = np.asarray(times, np.float64)
    r = np.sort(np.asarray(references, np.float64))
    if len(r) == 0:
        return np.full(len(t), np.inf)
    idx = np.clip(np.searchsorted(r, t), 1, len(r) - 1) if len(r) > 1 else np.zeros(len(t), int)
    left = np.abs(t - r[idx - 1]) if len(r) > 1 else np.abs(t - r[0])
    right = np.abs(t - r[idx])
    return np.minimum(left, right)


@dataclass
class OnBeatRates:
    """Share of cuts on beats: within one frame and within 50 ms (0..1; None when there are no cuts)."""

    within_frame: float | None
    within_50ms: float | None
    mean_offset_ms: float | None
    """Mean distance of a cut to its nearest beat, milliseconds."""


def cut_on_beat_rates(cut_frames: Sequence[int], fps: float, beats_s: Sequence[float]) -> OnBeatRates:
    """How many cuts sit on a beat (see the module docstring for the two tolerances).

    Args:
        cut_frames: first frame of each new shot.
        fps: frames per second of the video.
        beats_s: beat (or downbeat) times, seconds.
    """
    if len(cut_frames) == 0 or len(beats_s) == 0:
        return OnBeatRates(None, None, None)
    frames = np.asarray(cut_frames, np.int64)
    beat_frames = np.round(np.asarray(beats_s, np.float64) * fps)
    frame_dist = nearest_distance_s(frames.astype(np.float64), beat_frames)
    time_dist = nearest_distance_s(frames / fps, beats_s)
    return OnBeatRates(
        within_frame=float(np.mean(frame_dist <= CUT_TOLERANCE_FRAMES)),
        within_50ms=float(np.mean(time_dist <= CUT_TOLERANCE_S + _TIME_EPS_S)),
        mean_offset_ms=float(np.mean(time_dist) * 1000.0),
    )


def beat_alignment_score(from_s: Sequence[float], to_s: Sequence[float], sigma_s: float) -> float | None:
    """Mean over ``from_s`` of ``exp(-d^2 / (2 sigma^2))``, ``d`` the distance to the nearest ``to_s``.

    ``beat_alignment_score(visual, music, sigma)`` is AIST++'s BAS;
    ``beat_alignment_score(music, visual, sigma)`` is Bailando's. In [0, 1]; None when
    ``from_s`` is empty; 0 when ``to_s`` is empty.
    """
    if sigma_s <= 0:
        raise ValueError(f"sigma_s must be positive seconds, got {sigma_s}")
    if len(from_s) == 0:
        return None
    distances = nearest_distance_s(from_s, to_s)
    return float(np.mean(np.exp(-(distances**2) / (2.0 * sigma_s**2))))


def merge_times(times: Sequence[float], min_gap_s: float) -> list[float]:
    """Sorted times with any time closer than ``min_gap_s`` to the previous kept one dropped."""
    merged: list[float] = []
    for t in sorted(times):
        if not merged or t - merged[-1] >= min_gap_s:
            merged.append(float(t))
    return merged


def motion_peaks(motion: np.ndarray, fps: float, cut_frames: Sequence[int] = ()) -> list[int]:
    """Frames where the motion curve peaks between cuts: the visual beats besides the cuts.

    The frames around each cut (the cut and the one after) are set to their neighbourhood's
    level first, so a cut's own spike neither counts twice nor hides the smaller peaks. A
    peak must be at least ``MOTION_PEAK_PROMINENCE`` of the curve's 99th percentile more
    prominent than its surroundings and ``MOTION_PEAK_MIN_GAP_S`` from the next.

    Args:
        motion: per-frame motion curve (any unit).
        fps: frames per second.
        cut_frames: detected cuts.

    Returns:
        peak frame indices, increasing.
    """
    curve = np.asarray(motion, np.float64).copy()
    if len(curve) < 3:
        return []
    for k in cut_frames:
        for j in (k, k + 1):
            if 0 <= j < len(curve):
                curve[j] = curve[j - 1] if j > 0 else 0.0
    scale = float(np.percentile(curve, 99))
    if scale <= 0:
        return []
    import scipy.signal  # here, not at the top: a rerun that reuses evaluation.json never pays for it

    peaks, _ = scipy.signal.find_peaks(
        curve,
        prominence=MOTION_PEAK_PROMINENCE * scale,
        distance=max(1, int(round(MOTION_PEAK_MIN_GAP_S * fps))),
    )
    return [int(p) for p in peaks]


def audio_onsets_s(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Onset times (seconds) as the AV-Align reference finds them: librosa's default onset
    detector (hop 512), computed by its numpy twin in ``music2video.spectral``."""
    from music2video import spectral

    envelope = spectral.onset_strength_from_samples(np.asarray(samples, np.float32), sample_rate_hz)
    return spectral.frames_to_time(spectral.onset_detect(envelope, sample_rate_hz), sample_rate_hz, 512)


def av_align_video_peaks(motion: np.ndarray, fps: float) -> np.ndarray:
    """Times (seconds) of the strict local maxima of the motion curve above the noise floor."""
    curve = np.asarray(motion, np.float64)
    if len(curve) < 3 or curve.max() <= 0:
        return np.zeros(0)
    floor = AV_ALIGN_NOISE_FRACTION * curve.max()
    middle = curve[1:-1]
    is_peak = (curve[:-2] < middle) & (middle > curve[2:]) & (middle >= floor)
    return (np.nonzero(is_peak)[0] + 1) / fps


@dataclass
class AvAlign:
    score: float
    audio_peaks: int
    video_peaks: int
    matched: int


def av_align(audio_peaks_s: Sequence[float], video_peaks_s: Sequence[float], fps: float) -> AvAlign:
    """AV-Align intersection over union of audio and video peaks (module docstring).

    An audio peak matches when a video peak lies strictly within one frame of it; each audio
    peak counts at most once, as in the reference code.
    """
    audio = np.asarray(audio_peaks_s, np.float64)
    video = np.asarray(video_peaks_s, np.float64)
    if len(audio) + len(video) == 0:
        return AvAlign(0.0, 0, 0, 0)
    matched = int(np.sum(nearest_distance_s(audio, video) < 1.0 / fps)) if len(video) else 0
    score = matched / (len(audio) + len(video) - matched)
    return AvAlign(float(score), len(audio), len(video), matched)


def activity_curve(motion: np.ndarray, cut_frames: Sequence[int]) -> np.ndarray:
    """Motion scaled to its 99th percentile (clipped to 1) with 1.0 added on every cut frame."""
    curve = np.asarray(motion, np.float64)
    scale = float(np.percentile(curve, 99)) if len(curve) else 0.0
    activity = np.clip(curve / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(curve)
    for k in cut_frames:
        if 0 <= k < len(activity):
            activity[k] += 1.0
    return activity


def visual_tempo_bpm(activity: np.ndarray, fps: float) -> float | None:
    """Tempo of an activity curve (beats per minute), or None when it is too short or flat."""
    if len(activity) < TEMPO_MIN_DURATION_S * fps or float(np.ptp(activity)) <= 0:
        return None
    from music2video.spectral import tempo

    value = tempo(np.asarray(activity, np.float32), fps, hop_length=1)  # librosa.feature.tempo's estimate
    return value if value > 0 else None


TEMPO_MULTIPLES = {"1x": 1.0, "1/2x": 0.5, "2x": 2.0}


def tempo_relation(visual_bpm: float | None, music_bpm: float | None) -> tuple[float | None, str | None]:
    """(visual / music ratio, the multiple in ``TEMPO_MULTIPLES`` it is within 5 % of, or None)."""
    if not visual_bpm or not music_bpm:
        return None, None
    ratio = visual_bpm / music_bpm
    for name, multiple in TEMPO_MULTIPLES.items():
        if abs(ratio / multiple - 1.0) <= TEMPO_TOLERANCE:
            return ratio, name
    return ratio, None
