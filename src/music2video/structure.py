"""Structure stage: tempo, beats, bars, sections and feature curves of a song.

Everything is derived from one short-time Fourier transform of the mono signal at
``ANALYSIS_RATE_HZ`` (hop ``HOP_LENGTH`` samples, about 23 ms):

1. **Beat grid** — beats, tempo, meter and downbeats: see ``beat_grid`` (a numpy tracker that
   picks the metrical level from the whole song's evidence, user overrides from
   ``GridSettings``, and an independent check of the metrical level and phase).
2. **Sections** — bar-synchronous timbre (MFCC), harmony (chroma) and loudness form a
   self-similarity matrix; Foote's checkerboard novelty on it gives boundaries, which are bar
   lines by construction. Sections are labelled by agglomerative clustering of their mean
   features (repeated sections share a letter) and given a role from repetition, position and
   energy.
3. **Curves** — RMS energy, spectral centroid and onset strength, resampled to
   ``CURVE_RATE_HZ`` and normalised to 0..1.

Silence or audio without a pulse falls back to a steady grid at ``beat_grid.FALLBACK_TEMPO_BPM`` with a
warning; sections are then still split by novelty where the sound changes.
"""

from __future__ import annotations

import logging
import string

import numpy as np
import scipy.cluster.hierarchy
import scipy.signal
import scipy.spatial.distance

from music2video import beat_grid, spectral
from music2video.artifacts import Analysis, GridCheck, Section
from music2video.decode import ANALYSIS_RATE_HZ
from music2video.music import KeyEstimate, brightness_from_centroid, estimate_key, mood_from_cues, spectral_flatness_db
from music2video.progress import ProgressCallback, no_progress
from music2video.settings import GridSettings

log = logging.getLogger(__name__)

N_FFT = 2048
HOP_LENGTH = 512
"""STFT hop in samples: 23 ms at 22 050 Hz, fine enough for beats (evaluated at ±70 ms)."""

CURVE_RATE_HZ = 10.0
"""Rate of the feature curves in analysis.json: 3 × 12 000 values for a 20-minute song."""

NOVELTY_KERNEL_BARS = 3
NOVELTY_KERNEL_MIN_S = 8.0
"""Half-width of Foote's checkerboard kernel: the bars compared before and after a bar line,
at least 8 s' worth, so that a fast bar grid (or a doubled tempo) does not turn the chord
changes inside a section into boundaries."""
NOVELTY_WEIGHTS = (1.0, 0.5, 1.0)
"""Weights of timbre (MFCC), harmony (chroma) and loudness in the novelty. Harmony counts
half: it changes with every chord inside a section, while timbre and loudness mostly change
between sections (on synthetic songs with 4-bar sections this finds 5 of 5 boundaries where
equal weights find 4)."""
MIN_SECTION_BARS = 2
"""Shortest section, in bars (an intro or a turnaround can be this short)."""
NOVELTY_PEAK_PROMINENCE = 0.2
"""Boundary peaks must rise this much (novelty normalised to 0..1) above their surroundings."""
LABEL_TIMBRE_SCALE = 2.5
LABEL_LEVEL_SCALE_DB = 2.5
LABEL_CHROMA_SCALE = 0.05
"""Differences between two sections that each count as "audibly different" when labelling:
MFCC (RMS over coefficients, about dB), level (dB) and chroma (cosine distance). Repeats of
the same material measure well under a tenth of these."""

KEY_CHROMA_LOG_GAMMA = 1000.0
"""Log compression of the power spectrum before it is folded into the key chroma (see
``_Features._tonal_features``); the dsp listener compresses its CQT the same way."""
TONAL_FRAME_STEP = 4
"""At most every 4th frame (93 ms apart) feeds the song's key and spectral flatness: they are
whole-song means, and the full-rate log spectrum cost a third of the structure stage."""
TONAL_MIN_FRAMES = 2000
"""The key and flatness use every (frames // TONAL_MIN_FRAMES)-th frame, 1 to
``TONAL_FRAME_STEP``: songs under 92 s (4000 frames) keep at least 2000 of them."""
AUDIBLE_LEVEL_DBFS = -60.0
"""Frames quieter than this (RMS) do not count towards the mood cues: silence has no mood."""

EDGE_SECTION_MAX_SHARE = 0.25
"""Longest intro or outro, as a share of the song: on the dev set's two- and three-part pieces
a verse at the start and a chorus at the end were called intro and outro."""
CHORUS_ENERGY_SHARE = 0.95
"""A one-off section at least this loud (relative to the chorus) is called a chorus too: a
chorus heard once with a different arrangement, or a climax."""

_PROGRESS_STEPS = 6


def analyze_structure(
    samples: np.ndarray,
    sample_rate_hz: int = ANALYSIS_RATE_HZ,
    progress: ProgressCallback = no_progress,
    grid: GridSettings | None = None,
) -> Analysis:
    """Analyse a song's tempo, beats, bars, sections and feature curves.

    Args:
        samples: mono float samples, shape (n,), normally at ``ANALYSIS_RATE_HZ`` (see
            ``decode.load_audio``). A (channels, n) array is averaged to mono.
        sample_rate_hz: rate of ``samples``.
        progress: called as ``progress(done, total, message)`` after each step.
        grid: the beat tracker, or the user's tempo, meter, bar phase or beats (``GridSettings``).

    Returns:
        ``Analysis`` with times in seconds: beats, downbeats, sections that tile
        ``[0, duration_s]`` and start on downbeats, and curves at ``CURVE_RATE_HZ``.
        ``warnings`` says when a fallback was used.
    """
    # 1. Check inputs.
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"samples must be a non-empty mono array, got shape {np.shape(samples)}")
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    duration_s = len(y) / sample_rate_hz
    warnings: list[str] = []

    # 2. One STFT; every feature below is derived from it.
    features = _Features(y, sample_rate_hz)
    progress(1, _PROGRESS_STEPS, "spectrum")

    # 3. Beat grid (the user's settings have the last word), checked against another tracker.
    found_grid = beat_grid.estimate_grid(features, grid)
    warnings.extend(found_grid.warnings)
    beats_s, downbeats_s, tempo_bpm = found_grid.beats_s, found_grid.downbeats_s, found_grid.tempo_bpm
    fallback = found_grid.source.startswith("fallback")
    grid_check = None
    if found_grid.source.startswith("tracker:"):
        checked = beat_grid.check_grid(features, found_grid)
        grid_check = GridCheck(
            reference="tempogram+comb (librosa autocorrelation tempogram, steady pulse phased per 8 s)",
            reference_tempo_bpm=round(checked.reference_tempo_bpm, 3),
            relation=checked.relation,
            agreement=round(checked.agreement, 4),
            support=round(checked.support, 4),
            reference_beats_s=_rounded(checked.reference_beats_s, 4),
        )
        if checked.warning:
            warnings.append(checked.warning)
    progress(3, _PROGRESS_STEPS, "beats and bars")

    # 5. Sections.
    energy_curve = _normalise(features.curve(features.rms, np.mean))
    sections = _find_sections(features, downbeats_s, duration_s, energy_curve)
    progress(4, _PROGRESS_STEPS, "sections")

    # 6. Key and mood of the whole song.
    key_estimate = _song_key(features)
    mood = mood_from_cues(_mood_cues(features, None if fallback else float(tempo_bpm), key_estimate))
    progress(5, _PROGRESS_STEPS, "key and mood")

    # 7. Curves.
    analysis = Analysis(
        warnings=warnings,
        duration_s=duration_s,
        tempo_bpm=round(float(tempo_bpm), 3),
        beats_per_bar=int(found_grid.beats_per_bar),
        beats_s=_rounded(beats_s, 4),
        downbeats_s=_rounded(downbeats_s, 4),
        sections=sections,
        musical_key=key_estimate.key if key_estimate is not None else None,
        mood=mood,
        curve_rate_hz=CURVE_RATE_HZ,
        energy=_rounded(energy_curve, 4),
        brightness=_rounded(features.brightness_curve(), 4),
        onset_strength=_rounded(_normalise(features.curve(features.onset_envelope, np.max)), 4),
        grid_source=found_grid.source,
        grid_check=grid_check,
    )
    for message in warnings:
        log.warning(message)
    progress(6, _PROGRESS_STEPS, "curves")
    return analysis


# ------------------------------------------------------------------------------------------
# Features


class _Features:
    """Frame-level features of one song, all from one magnitude STFT."""

    def __init__(self, y: np.ndarray, rate_hz: int):
        self.rate_hz = rate_hz
        self.samples = y  # for the opt-in neural beat trackers (beat_backends)
        self.duration_s = len(y) / rate_hz
        magnitude = spectral.stft_magnitude(y, n_fft=N_FFT, hop_length=HOP_LENGTH)
        self.n_frames = magnitude.shape[1]
        # The spectrogram of a 20-minute song is ~200 MB: the features computed directly on it
        # are written as single matrix products and reductions, and the power spectrogram
        # reuses the magnitude's memory. Both give what librosa.feature.spectral_centroid and
        # librosa.feature.rms give for S=magnitude, without their full-size temporaries.
        frequencies_hz = spectral.fft_frequencies(rate_hz, N_FFT).astype(np.float32)
        self.centroid_hz = (frequencies_hz @ magnitude) / np.maximum(magnitude.sum(axis=0), 1e-10)
        power = np.square(magnitude, out=magnitude)
        del magnitude
        # Parseval: mean square of the frame = 2 * sum(|X|^2) / n_fft^2, DC and Nyquist counted once.
        energy = 2 * power.sum(axis=0) - power[0] - power[-1]
        self.rms = np.sqrt(np.maximum(energy, 0) / N_FFT**2)
        self.log_rms = np.log10(self.rms + 1e-5)
        # Short songs keep every frame: a 5 s fanfare has too few frames to spare.
        self.tonal_step = int(np.clip(self.n_frames // TONAL_MIN_FRAMES, 1, TONAL_FRAME_STEP))
        self.flatness_db, self.key_chroma = self._tonal_features(power[:, :: self.tonal_step], rate_hz)
        mel_db = spectral.power_to_db(spectral.melspectrogram(power, rate_hz, n_mels=128))
        # center=False: the STFT above is already centred on its frames; librosa's extra shift
        # of n_fft / (2 hop) frames would put the beats 33 ms late (13 ms early without it).
        self.onset_envelope = spectral.onset_strength(mel_db, center=False)
        # Low-frequency onsets (mel bands below ~150 Hz): kick drums and bass notes, which mark
        # bar starts far more often than other beats. High-frequency onsets (above ~4 kHz):
        # hi-hats, snares, the click of a chord, which mark a backbeat (beat_grid.BACKBEAT_HIGH_HZ).
        # One flux for both bands (the middle row is not used).
        mel_hz = spectral.mel_frequencies(128, fmax_hz=rate_hz / 2)
        low_bands = max(1, int(np.searchsorted(mel_hz, 150.0)))
        high_bands = max(low_bands + 1, min(int(np.searchsorted(mel_hz, beat_grid.BACKBEAT_HIGH_HZ)), 127))
        bands = spectral.onset_strength_multi(mel_db, channels=[0, low_bands, high_bands, 128], center=False)
        self.low_onset_envelope, self.high_onset_envelope = bands[0], bands[2]
        # tuning=0: assume A440 rather than estimate it (slow, and it warns on silence); twelve
        # chroma bins are wide enough for a few cents of detuning.
        self.chroma = spectral.chroma_stft(power, rate_hz, tuning=0.0)
        self.mfcc = spectral.mfcc(mel_db, n_mfcc=14)[1:]  # drop c0 (loudness, kept separately)

    @staticmethod
    def _tonal_features(sampled: np.ndarray, rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
        """Spectral flatness (dB) and a log-compressed chroma for the key of each frame of
        ``sampled`` (every ``tonal_step``-th frame of the song).

        Both only feed whole-song means (key and mood), for which one frame in four is plenty
        in a song of a minute or more; it saves most of their cost. The chroma is CLP
        (Mueller): log(1 + gamma * power / max) before folding into pitch classes, so that
        roots and fifths, which every note's overtones reinforce, do not drown the third that
        decides major or minor.
        """
        chroma_filters = spectral.chroma_filters(rate_hz, N_FFT, tuning=0.0)
        peak = float(sampled.max(initial=0.0))
        compressed = np.log1p(KEY_CHROMA_LOG_GAMMA * sampled / peak) if peak > 0 else sampled
        folded = chroma_filters @ compressed
        chroma = folded / np.maximum(folded.max(axis=0, keepdims=True), 1e-10)
        return spectral_flatness_db(sampled).astype(np.float32), chroma

    def frames(self, times_s: np.ndarray) -> np.ndarray:
        return np.clip(spectral.time_to_frames(times_s, self.rate_hz, HOP_LENGTH), 0, self.n_frames - 1)

    def times(self, frames: np.ndarray) -> np.ndarray:
        return spectral.frames_to_time(frames, self.rate_hz, HOP_LENGTH)

    def segment_means(self, frame_values: np.ndarray, start_frames: np.ndarray) -> np.ndarray:
        """Mean of ``frame_values`` (dims × frames) over segments starting at each of
        ``start_frames`` (increasing) and ending at the next one (the last at the end)."""
        counts = np.diff(np.append(start_frames, frame_values.shape[1]))
        return np.add.reduceat(frame_values, start_frames, axis=1) / np.maximum(counts, 1)

    def curve(self, frame_values: np.ndarray, aggregate) -> np.ndarray:
        """Frame-level values resampled to ``CURVE_RATE_HZ`` (mean or max per curve sample)."""
        n_samples = max(1, int(np.ceil(self.duration_s * CURVE_RATE_HZ)))
        bins = np.minimum((self.times(np.arange(len(frame_values))) * CURVE_RATE_HZ).astype(int), n_samples - 1)
        if aggregate is np.max:
            out = np.zeros(n_samples)
            np.maximum.at(out, bins, frame_values)
            return out
        sums = np.bincount(bins, weights=frame_values, minlength=n_samples)
        counts = np.bincount(bins, minlength=n_samples)
        return sums / np.maximum(counts, 1)

    def brightness_curve(self) -> np.ndarray:
        """Spectral centroid on a log-frequency scale, normalised over the song; 0 where silent."""
        audible = self.rms > max(1e-4, 1e-3 * float(self.rms.max(initial=0.0)))
        log_centroid = np.where(audible, np.log2(np.maximum(self.centroid_hz, 20.0)), np.nan)
        if not np.any(audible):
            return np.zeros(max(1, int(np.ceil(self.duration_s * CURVE_RATE_HZ))))
        low, high = np.nanpercentile(log_centroid, [1, 99])
        scaled = np.clip((log_centroid - low) / max(high - low, 1e-6), 0, 1)
        return self.curve(np.nan_to_num(scaled, nan=0.0), np.mean)


# ------------------------------------------------------------------------------------------
# Key and mood


def _audible(features: _Features) -> np.ndarray:
    return 20 * np.log10(features.rms + 1e-10) > AUDIBLE_LEVEL_DBFS


def _song_key(features: _Features) -> KeyEstimate | None:
    """Krumhansl–Schmuckler key of the song's loudness-weighted mean key chroma."""
    weights = np.where(_audible(features), features.rms, 0.0)[:: features.tonal_step]
    if weights.sum() <= 0:
        return None
    return estimate_key(features.key_chroma @ weights / weights.sum())


def _mood_cues(features: _Features, tempo_bpm: float | None, key: KeyEstimate | None) -> dict[str, float]:
    """The song's mood cues (see ``music.MOOD_CUES``) over its audible frames; a cue that cannot
    be measured (no beat, no key, silence) is left out and counts as average."""
    audible = _audible(features)
    if not np.any(audible):
        return {}
    seconds = np.count_nonzero(audible) * HOP_LENGTH / features.rate_hz
    onsets = spectral.onset_detect(features.onset_envelope, features.rate_hz, HOP_LENGTH)
    rms = features.rms[audible]
    cues = {
        "loudness_dbfs": float(10 * np.log10(np.mean(np.square(rms)) + 1e-12)),
        "onset_density_hz": float(np.count_nonzero(audible[np.clip(onsets, 0, len(audible) - 1)]) / seconds),
        "spectral_flux": float(np.mean(features.onset_envelope[audible[: len(features.onset_envelope)]])),
        "brightness": brightness_from_centroid(float(np.average(features.centroid_hz[audible], weights=rms))),
        "spectral_flatness_db": float(np.mean(features.flatness_db[audible[:: features.tonal_step]])),
    }
    if tempo_bpm is not None:
        cues["tempo_bpm"] = tempo_bpm
    if key is not None:
        cues["major_strength"] = key.major_strength
        cues["key_clarity"] = key.clarity
    return cues


# ------------------------------------------------------------------------------------------
# Sections


def _find_sections(features: _Features, downbeats_s: np.ndarray, duration_s: float, energy_curve: np.ndarray) -> list[Section]:
    """Sections tiling [0, duration_s], starting on downbeats, labelled and given roles."""
    # Bar b runs from downbeat b to downbeat b+1 (the last bar to the end of the song); the
    # sound before the first downbeat (a pickup) belongs to the first section.
    bar_starts_s = downbeats_s[downbeats_s < duration_s]
    if len(bar_starts_s) == 0:
        bar_starts_s = np.array([0.0])
    bar_frames = features.frames(bar_starts_s)
    n_bars = len(bar_starts_s)

    # 1. Boundaries (bar indices) from checkerboard novelty.
    bar_s = float(np.median(np.diff(bar_starts_s))) if n_bars > 1 else duration_s
    kernel_bars = max(NOVELTY_KERNEL_BARS, int(round(NOVELTY_KERNEL_MIN_S / max(bar_s, 1e-3))))
    boundaries = _novelty_boundaries(_bar_features(features, bar_frames), kernel_bars)

    # 2. Labels by clustering what the sections sound like. Neighbours that get the same label
    # were split by a boundary that made no audible difference: merge them, then label again.
    while True:
        section_frames = np.array([0, *bar_frames[boundaries]])
        labels = _cluster_labels(_section_descriptors(features, section_frames))
        repeats = {i for i in range(1, len(labels)) if labels[i] == labels[i - 1]}
        if not repeats:
            break
        boundaries = [b for i, b in enumerate(boundaries, start=1) if i not in repeats]

    # 3. Times, energies and roles.
    times = [0.0, *[round(float(bar_starts_s[b]), 4) for b in boundaries], duration_s]
    energies = [_curve_mean(energy_curve, times[i], times[i + 1]) for i in range(len(labels))]
    top = max(energies) if max(energies) > 0 else 1.0
    energies = [e / top for e in energies]
    roles = _guess_roles(labels, energies, [times[i + 1] - times[i] for i in range(len(labels))])
    return [
        Section(index=i, start_s=times[i], end_s=times[i + 1], label=labels[i], role=roles[i], energy=round(energies[i], 4))
        for i in range(len(labels))
    ]


def _bar_features(features: _Features, bar_frames: np.ndarray) -> np.ndarray:
    """Per-bar features (dims × bars) for the novelty: mean MFCC, chroma and log-RMS, each
    group standardised over the song (so the novelty's shape does not depend on the mix's
    scale) and weighted by ``NOVELTY_WEIGHTS``."""
    groups = []
    for frame_features, weight in zip(
        (features.mfcc, features.chroma, features.log_rms[np.newaxis]), NOVELTY_WEIGHTS, strict=True
    ):
        per_bar = features.segment_means(frame_features, bar_frames)
        per_bar = (per_bar - per_bar.mean(axis=1, keepdims=True)) / (per_bar.std(axis=1, keepdims=True) + 1e-6)
        groups.append(weight * per_bar / np.sqrt(per_bar.shape[0]))
    return np.concatenate(groups, axis=0)


def _section_descriptors(features: _Features, start_frames: np.ndarray) -> np.ndarray:
    """One row per section, scaled so that a Euclidean distance of 1 between two rows is
    "audibly different": ``LABEL_TIMBRE_SCALE`` of MFCC difference (RMS over coefficients),
    ``LABEL_LEVEL_SCALE_DB`` of level, or a chroma cosine distance of ``LABEL_CHROMA_SCALE``.

    Unlike the novelty, these scales are absolute: in noise or a steady drone every section
    sounds alike and gets one label, however the z-scores would exaggerate small differences.
    """
    mfcc = features.segment_means(features.mfcc, start_frames)
    chroma = features.segment_means(features.chroma, start_frames)
    chroma /= np.linalg.norm(chroma, axis=0, keepdims=True) + 1e-9
    level_db = 20 * np.log10(features.segment_means(features.rms[np.newaxis], start_frames) + 1e-5)
    return np.concatenate(
        [
            mfcc / (LABEL_TIMBRE_SCALE * np.sqrt(len(mfcc))),
            # For unit vectors |a - b|^2 = 2 (1 - cos): this makes the squared distance cos_dist / scale.
            chroma / np.sqrt(2 * LABEL_CHROMA_SCALE),
            level_db / LABEL_LEVEL_SCALE_DB,
        ]
    ).T


def _novelty_boundaries(bar_features: np.ndarray, kernel_bars: int = NOVELTY_KERNEL_BARS) -> list[int]:
    """Bar indices (1 .. n_bars-1) where a new section starts (Foote 2000)."""
    n_bars = bar_features.shape[1]
    if n_bars < 2 * MIN_SECTION_BARS:
        return []
    # Similarity in 0..1 from the distances between bars (a Gaussian of the Euclidean distance).
    distance = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(bar_features.T, "sqeuclidean"))
    scale = np.median(distance[distance > 0]) if np.any(distance > 0) else 1.0
    similarity = np.exp(-distance / scale)

    width = min(kernel_bars, n_bars // 2)
    taper = scipy.signal.windows.gaussian(2 * width, std=width)
    sign = np.concatenate([-np.ones(width), np.ones(width)])
    kernel = np.outer(taper * sign, taper * sign)  # +1 within past/future blocks, -1 across them
    # Pad with the mean similarity so bars near the ends are judged on what they have.
    padded = np.pad(similarity, width, mode="constant", constant_values=float(similarity.mean()))
    novelty = np.array([np.sum(kernel * padded[b : b + 2 * width, b : b + 2 * width]) for b in range(n_bars)])
    novelty = np.maximum(novelty, 0.0) / np.abs(kernel).sum()
    if novelty.max() <= 0:
        return []
    novelty /= novelty.max()
    peaks, _ = scipy.signal.find_peaks(novelty, prominence=NOVELTY_PEAK_PROMINENCE, distance=MIN_SECTION_BARS)
    return [int(p) for p in peaks if MIN_SECTION_BARS <= p <= n_bars - 1]


def _cluster_labels(descriptors: np.ndarray) -> list[str]:
    """Letters per section (A for the first, then B, C ... in order of appearance); sections
    closer than distance 1 (average linkage on ``_section_descriptors``) share a letter."""
    if len(descriptors) == 1:
        return ["A"]
    tree = scipy.cluster.hierarchy.linkage(descriptors, method="average", metric="euclidean")
    clusters = scipy.cluster.hierarchy.fcluster(tree, t=1.0, criterion="distance")
    letters: dict[int, str] = {}
    for cluster in clusters:
        if cluster not in letters:
            letters[cluster] = _letter(len(letters))
    return [letters[c] for c in clusters]


def _guess_roles(labels: list[str], energies: list[float], durations_s: list[float] | None = None) -> list[str]:
    """intro / verse / chorus / bridge / outro from repetition, position, length and energy.

    1. A label heard only at the start (or only at the start and the end) is the intro, one
       heard only at the end the outro, when it is short: at most ``EDGE_SECTION_MAX_SHARE``
       of the song (``durations_s``, when given). A long first or last part is a verse or a
       chorus that happens to sit at the edge (a song of two halves is not intro and outro).
    2. The most energetic repeated label is the chorus; other repeated labels are verses.
       Without repeats the most energetic inner section is the chorus.
    3. One-offs at least as loud as the chorus (``CHORUS_ENERGY_SHARE``) are choruses too. Of
       the others, at most one is the bridge: the first in the second half of the song between
       two choruses (where songs put their bridge); the rest are verses. Calling every one-off a
       bridge turned whole metal songs, whose varied riffs rarely repeat exactly, into six
       bridges in a row.
    """
    if len(labels) == 1:
        return ["verse"]
    last = len(labels) - 1
    positions = {label: [i for i, l in enumerate(labels) if l == label] for label in labels}
    mean_energy = {label: float(np.mean([energies[i] for i in where])) for label, where in positions.items()}
    total_s = sum(durations_s) if durations_s else 0.0
    at_edges_only = {
        label
        for label, where in positions.items()
        if set(where) <= {0, last}
        and (not durations_s or sum(durations_s[i] for i in where) <= EDGE_SECTION_MAX_SHARE * total_s)
    }
    repeated = [label for label, where in positions.items() if len(where) > 1 and label not in at_edges_only]
    chorus = max(repeated, key=mean_energy.get) if repeated else None
    if chorus is None and len(labels) >= 3:
        chorus = labels[max(range(1, last), key=lambda i: energies[i])]
    chorus_energy = mean_energy[chorus] if chorus is not None else max(energies)

    roles: list[str | None] = []
    for index, label in enumerate(labels):
        if label == chorus:
            roles.append("chorus")
        elif label in at_edges_only:
            roles.append("intro" if index == 0 else "outro")
        elif len(positions[label]) > 1:
            roles.append("verse")
        else:
            roles.append(None)  # a one-off inner section: decided below
    one_offs = [i for i, role in enumerate(roles) if role is None]
    bridge = next(
        (
            i
            for i in one_offs
            if 2 * i >= len(labels)
            and "chorus" in roles[:i]
            and "chorus" in roles[i + 1 :]
            and energies[i] < CHORUS_ENERGY_SHARE * chorus_energy
        ),
        None,
    )
    for i in one_offs:
        if i == bridge:
            roles[i] = "bridge"
        else:
            roles[i] = "chorus" if energies[i] >= CHORUS_ENERGY_SHARE * chorus_energy else "verse"
    return [role or "verse" for role in roles]


# ------------------------------------------------------------------------------------------
# Helpers


def _letter(index: int) -> str:
    """A, B, ... Z, AA, AB, ... for the index-th distinct label."""
    letters = string.ascii_uppercase
    return letters[index] if index < 26 else _letter(index // 26 - 1) + letters[index % 26]


def _normalise(values: np.ndarray) -> np.ndarray:
    """Scale to 0..1 by a robust maximum (99th percentile), clipping the few values above it."""
    top = float(np.percentile(values, 99)) if values.size else 0.0
    if top <= 0:
        top = float(values.max(initial=0.0))
    return np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values)


def _curve_mean(curve: np.ndarray, start_s: float, end_s: float) -> float:
    lo = int(start_s * CURVE_RATE_HZ)
    hi = max(lo + 1, int(np.ceil(end_s * CURVE_RATE_HZ)))
    window = curve[lo:hi]
    return float(window.mean()) if window.size else 0.0


def _rounded(values: np.ndarray, digits: int) -> list[float]:
    return [round(float(v), digits) for v in values]
