"""The offline "dsp" listener: signal descriptors and plain words instead of a neural model.

``describe_dsp`` turns the song's samples into a :class:`~music2video.artifacts.Descriptions`
with one :class:`~music2video.artifacts.SegmentDescription` for the whole song, one per
analysis section and one per planned shot. It needs nothing beyond numpy and scipy (through
``music2video.spectral``, librosa's features without its numba kernels) and runs on a CPU
in about a second per three minutes of music.

How it works, top to bottom:

1. Heavy features are computed **once** for the whole song at one hop (``HOP_LENGTH``):
   STFT magnitude, frame RMS, spectral centroid, an onset envelope and its peaks, a
   harmonic/percussive split (HPSS on a mel spectrogram, much cheaper than on the full STFT)
   and a CQT chroma. Every segment then only slices and averages frames.
2. Per segment: energy (relative to the song), loudness, brightness, onset density, local
   tempo (from the analysis' beats), harmonic ratio and a key estimate.
3. The key is the Krumhansl–Schmuckler estimate: the segment's mean chroma is correlated
   with the 24 rotations of the major and minor key profiles (``music.estimate_key``); the best
   correlation names tonic and mode. Spans shorter than ``KEY_MIN_SPAN_S`` (most shots) have
   too few notes for this, so they take the key of their section (sections take the song's);
   the feature ``key_inherited`` says when that happened.
4. Valence and arousal (each -1..1) come from ``music.mood_from_cues``: a logistic model per
   axis over loudness, tempo, onset density and spectral flux (arousal) and mode, tonal
   clarity, brightness and spectral flatness (valence), fitted on labelled real recordings
   and dev-set renders (``benchmarks/bench_mood.py``). The whole song's key and mood are read
   from the analysis; sections and shots are measured here with the same cues and weights.
5. Words: ordinal vocabularies (energy, tempo_feel, brightness, texture), the mode, the key,
   and mood words placed on Russell's valence/arousal circumplex, plus a readable sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from music2video.artifacts import Analysis, Descriptions, ScoredLabel, SegmentDescription, ShotPlan
from music2video.music import (
    MOOD_WORDS,
    QUADRANTS,
    KeyEstimate,
    Mood,
    brightness_from_centroid,
    circumplex_scores,
    estimate_key,
    mood_from_cues,
    spectral_flatness_db,
)
from music2video.progress import ProgressCallback, no_progress


# --------------------------------------------------------------------------------------------
# Analysis geometry

N_FFT = 2048  # samples; 93 ms at 22050 Hz
HOP_LENGTH = 512  # samples; 23 ms at 22050 Hz, one frame of every feature curve
N_MELS = 128  # mel bands for the onset envelope and the harmonic/percussive split
HPSS_KERNEL_FRAMES = 17  # median-filter width in frames (time) and mel bands (frequency)
MIN_CQT_SECONDS = 2.0  # below this, the CQT's longest filter does not fit: use STFT chroma
CQT_BINS_PER_OCTAVE = 36  # three bins per semitone, as librosa's chroma_cqt uses
CQT_BINS = 7 * CQT_BINS_PER_OCTAVE  # seven octaves up from C1 (32.7 Hz)
CHROMA_LOG_GAMMA = 1000.0  # log compression of the CQT before folding it into chroma

# --------------------------------------------------------------------------------------------
# Scales that turn raw descriptors into 0..1 values

ENERGY_REFERENCE_PERCENTILE = 95.0  # the song's loud level = this percentile of frame RMS
SILENCE_DBFS = -60.0  # a segment quieter than this (RMS, dBFS) is described as near-silent
LOUDNESS_FLOOR_DBFS = -120.0  # reported for digital silence instead of -inf

KEY_MIN_SPAN_S = 6.0  # shorter spans inherit their parent's key (too few notes to judge)
CONFIDENT_SPAN_S = 4.0  # spans at least this long get full confidence from their length
MIN_PULSE_BEATS = 4  # beats needed inside a span to measure its own tempo

# --------------------------------------------------------------------------------------------
# Vocabularies. Ordinal ones are (word, centre): the nearest centre wins, so the thresholds
# sit half-way between centres.

ENERGY_WORDS = [("calm", 0.125), ("moderate", 0.375), ("energetic", 0.625), ("intense", 0.875)]
TEMPO_WORDS = [("slow", 70.0), ("mid-tempo", 100.0), ("up-tempo", 125.0), ("fast", 155.0)]  # BPM
BRIGHTNESS_WORDS = [("dark", 0.2), ("warm", 0.5), ("bright", 0.8)]
TEXTURE_WORDS = [("sparse", 0.75), ("steady", 2.5), ("busy", 4.5)]  # onsets per second

EPS = 1e-10


# --------------------------------------------------------------------------------------------
# Public entry point


def describe_dsp(
    samples: np.ndarray,
    sample_rate_hz: int,
    analysis: Analysis,
    plan: ShotPlan,
    progress: ProgressCallback = no_progress,
) -> Descriptions:
    """Describe the song, each section and each shot from signal features alone.

    Args:
        samples: mono audio, float, -1..1 (a ``(channels, n)`` or ``(n, channels)`` array is
            downmixed, with a warning in the result).
        sample_rate_hz: rate of ``samples`` (22050 Hz is what the pipeline passes).
        analysis: tempo, beats and sections; beats give each span its local tempo.
        plan: the shots to describe.
        progress: called as ``progress(done, total, message)``.

    Returns:
        ``Descriptions(listener="dsp")`` with ``sections`` aligned to ``analysis.sections`` and
        ``shots`` aligned to ``plan.shots``. Each description's ``features`` hold
        ``energy`` (0..1, relative to the song's loud level), ``loudness_db`` (RMS dBFS),
        ``brightness`` (0..1), ``spectral_centroid_hz``, ``onset_density_hz``, ``tempo_bpm``,
        ``harmonic_ratio`` (0..1), ``key_tonic`` (0 = C ... 11 = B), ``key_mode_major``
        (1 major, 0 minor), ``key_clarity`` (best profile correlation), ``key_inherited``,
        ``valence`` and ``arousal`` (-1..1); key features are absent where no key could be
        heard (silence).
    """
    # 1. Check inputs
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    warnings: list[str] = []
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim == 2:
        channel_axis = 0 if y.shape[0] <= y.shape[1] else 1  # librosa's (channels, n) or soundfile's (n, channels)
        warnings.append(f"dsp listener: downmixed {y.shape[channel_axis]} channels to mono")
        y = y.mean(axis=channel_axis)
    elif y.ndim != 1:
        raise ValueError(f"samples must be a mono 1-D array, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        warnings.append("dsp listener: replaced NaN/inf samples with 0")
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)

    total = 2 + len(analysis.sections) + len(plan.shots)
    done = 0
    progress(done, total, "dsp: computing features")

    # 2. Whole-song features, once
    frames = _song_features(y, sample_rate_hz)
    done += 1
    progress(done, total, "dsp: describing the song")

    # 3. The song, then sections (inheriting the song's key), then shots (inheriting their
    #    section's key)
    song_start, song_end = 0.0, max(analysis.duration_s, len(y) / sample_rate_hz)
    # The song's key and mood are the analysis' (one measurement for every stage); an analysis
    # made before they were part of it gets them measured here.
    if analysis.musical_key is not None:
        song_key = KeyEstimate.from_key(analysis.musical_key)
    else:
        song_key = estimate_key(frames.chroma_mean(song_start, song_end))
    song = _describe_span(
        frames, y, analysis, song_start, song_end, song_key, parent_key=None, noun="song", known_mood=analysis.mood
    )
    done += 1
    progress(done, total, "dsp: describing sections")

    sections: list[SegmentDescription] = []
    section_keys: dict[int, KeyEstimate | None] = {}  # by Section.index, which shots refer to
    for section in analysis.sections:
        own = estimate_key(frames.chroma_mean(section.start_s, section.end_s)) if section.duration_s >= KEY_MIN_SPAN_S else None
        section_keys[section.index] = own or song_key
        sections.append(
            _describe_span(frames, y, analysis, section.start_s, section.end_s, own, parent_key=song_key, parent_name="song")
        )
        done += 1
        progress(done, total, f"dsp: section {section.index}")

    shots: list[SegmentDescription] = []
    for shot in plan.shots:
        parent = section_keys.get(shot.section_index, song_key)
        own = estimate_key(frames.chroma_mean(shot.start_s, shot.end_s)) if shot.duration_s >= KEY_MIN_SPAN_S else None
        shots.append(_describe_span(frames, y, analysis, shot.start_s, shot.end_s, own, parent_key=parent))
        done += 1
        progress(done, total, f"dsp: {shot.id}")

    return Descriptions(listener="dsp", model=None, song=song, sections=sections, shots=shots, warnings=warnings)


# --------------------------------------------------------------------------------------------
# Whole-song features


@dataclass
class SongFrames:
    """Frame-wise features of the whole song, all at ``HOP_LENGTH`` (frame i is at i*hop/sr)."""

    sample_rate_hz: int
    rms: np.ndarray  # linear RMS per frame
    centroid_hz: np.ndarray  # spectral centroid per frame
    harmonic: np.ndarray  # harmonic energy per frame (HPSS on mel power)
    percussive: np.ndarray  # percussive energy per frame
    chroma: np.ndarray  # (12, frames), each frame max-normalised
    flux: np.ndarray  # onset strength per frame (rise of the log-mel spectrum, dB)
    flatness_db: np.ndarray  # spectral flatness per frame, dB
    onset_times_s: np.ndarray  # detected onsets
    loud_rms: float  # the song's loud level (ENERGY_REFERENCE_PERCENTILE of rms)

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / HOP_LENGTH

    def frame_slice(self, start_s: float, end_s: float) -> slice:
        """Frames covering ``start_s..end_s``; at least one frame, clamped to the song."""
        count = self.rms.shape[0]
        lo = min(max(int(math.floor(start_s * self.frame_rate_hz)), 0), count - 1)
        hi = min(max(int(math.ceil(end_s * self.frame_rate_hz)), lo + 1), count)
        return slice(lo, hi)

    def chroma_mean(self, start_s: float, end_s: float) -> np.ndarray:
        """Mean chroma of the span, each frame weighted by its loudness so silence adds nothing."""
        span = self.frame_slice(start_s, end_s)
        weights = self.rms[span]
        if weights.sum() <= EPS:
            return np.zeros(12)
        return (self.chroma[:, span] * weights).sum(axis=1) / weights.sum()


def _song_features(y: np.ndarray, sr: int) -> SongFrames:
    """Compute every frame-wise feature of the song once (see the module docstring, step 1)."""
    from music2video import spectral  # numpy only: nothing to compile on a first run

    if len(y) < N_FFT:  # very short input: pad so every transform has one full frame
        y = np.pad(y, (0, N_FFT - len(y)))

    stft_mag = spectral.stft_magnitude(y, n_fft=N_FFT, hop_length=HOP_LENGTH)
    power = stft_mag**2
    rms = spectral.rms_from_magnitude(stft_mag, N_FFT)
    centroid = spectral.spectral_centroid(stft_mag, sr)

    mel = spectral.melspectrogram(power, sr, n_mels=N_MELS)
    onset_env = spectral.onset_strength(spectral.power_to_db(mel, ref=np.max), n_fft=N_FFT, hop_length=HOP_LENGTH)
    if onset_env.max() > EPS:
        onset_times = spectral.frames_to_time(spectral.onset_detect(onset_env, sr, HOP_LENGTH), sr, HOP_LENGTH)
    else:  # silence: nothing to pick, and normalising a zero envelope would divide by zero
        onset_times = np.zeros(0)

    # HPSS on the mel magnitude instead of the full STFT: 16x fewer rows, ~10x faster, and
    # all we need is the harmonic share of each frame's energy.
    harmonic_mel, percussive_mel = spectral.hpss(np.sqrt(mel), kernel_size=HPSS_KERNEL_FRAMES)
    harmonic = (harmonic_mel**2).sum(axis=0)
    percussive = (percussive_mel**2).sum(axis=0)

    # CQT chroma resolves the low notes that carry the harmony better than an STFT does;
    # the CQT's lowest filters are long, so very short inputs fall back to STFT chroma.
    # Log compression (Mueller's CLP chroma) keeps the roots and fifths, which every note's
    # overtones reinforce, from drowning the third that decides major or minor: on an
    # A-minor pad without it, A and E dominate and the estimate flips to A major.
    # A flat (noise-like) chroma offset does not move a Pearson correlation, so drums and
    # noise barely disturb the key estimate even without removing them first.
    if len(y) >= MIN_CQT_SECONDS * sr and np.abs(y).max() > EPS:
        cqt = spectral.cqt_magnitude(y, sr, hop_length=HOP_LENGTH, n_bins=CQT_BINS, bins_per_octave=CQT_BINS_PER_OCTAVE)
        chroma = spectral.chroma_cqt(_log_compress(cqt), bins_per_octave=CQT_BINS_PER_OCTAVE)
    else:
        chroma = spectral.chroma_stft(_log_compress(power), sr, tuning=0.0)
    chroma = np.nan_to_num(chroma)

    count = min(len(rms), len(centroid), len(harmonic), chroma.shape[1])
    loud = rms[:count][rms[:count] > EPS]
    loud_rms = float(np.percentile(loud, ENERGY_REFERENCE_PERCENTILE)) if loud.size else 0.0
    return SongFrames(
        sample_rate_hz=sr,
        rms=rms[:count],
        centroid_hz=np.nan_to_num(centroid[:count]),
        harmonic=harmonic[:count],
        percussive=percussive[:count],
        chroma=chroma[:, :count],
        flux=np.pad(onset_env, (0, max(0, count - len(onset_env))))[:count],
        flatness_db=spectral_flatness_db(power)[:count],
        onset_times_s=np.asarray(onset_times, dtype=float),
        loud_rms=loud_rms,
    )


def _log_compress(spectrum: np.ndarray) -> np.ndarray:
    """log(1 + gamma * X / max X): loud partials count less, quiet ones more."""
    peak = float(spectrum.max())
    return np.log1p(CHROMA_LOG_GAMMA * spectrum / peak) if peak > EPS else spectrum


# --------------------------------------------------------------------------------------------
# One span


def _describe_span(
    frames: SongFrames,
    y: np.ndarray,
    analysis: Analysis,
    start_s: float,
    end_s: float,
    own_key: KeyEstimate | None,
    parent_key: KeyEstimate | None,
    noun: str = "passage",
    parent_name: str = "section",
    known_mood: Mood | None = None,
) -> SegmentDescription:
    """Features, words and a sentence for ``start_s..end_s`` (seconds); ``known_mood`` (the
    song's, from the analysis) is used instead of measuring the span's own."""
    span = frames.frame_slice(start_s, end_s)
    duration_s = max(end_s - start_s, 0.0)
    sr = frames.sample_rate_hz

    # Loudness straight from the samples: exact, and cheap for one span.
    chunk = y[int(start_s * sr) : max(int(end_s * sr), int(start_s * sr) + 1)]
    mean_square = float(np.mean(chunk.astype(np.float64) ** 2)) if chunk.size else 0.0
    loudness_db = max(10.0 * math.log10(mean_square), LOUDNESS_FLOOR_DBFS) if mean_square > 0 else LOUDNESS_FLOOR_DBFS
    silent = loudness_db < SILENCE_DBFS

    rms = frames.rms[span]
    energy = float(np.clip(rms.mean() / frames.loud_rms, 0.0, 1.0)) if frames.loud_rms > EPS else 0.0

    # Loudness-weighted centroid: quiet frames (reverb tails, silence) say little about timbre.
    weights = rms if rms.sum() > EPS else None
    centroid_hz = float(np.average(frames.centroid_hz[span], weights=weights)) if not silent else 0.0
    brightness = brightness_from_centroid(centroid_hz)

    onsets = frames.onset_times_s
    onset_count = int(np.count_nonzero((onsets >= start_s) & (onsets < end_s)))
    onset_density_hz = onset_count / duration_s if duration_s > 0 else 0.0

    harmonic = float(frames.harmonic[span].sum())
    percussive = float(frames.percussive[span].sum())
    harmonic_ratio = harmonic / (harmonic + percussive) if harmonic + percussive > EPS else 0.0

    tempo_bpm = _local_tempo(analysis, start_s, end_s)
    key = own_key or parent_key
    if silent:
        key = None  # a key "heard" in silence would be noise

    if silent:
        # No cue at all: neutral valence, the lowest arousal (quiet is as calm as it gets).
        valence, arousal = 0.0, -1.0
    else:
        mood = known_mood or mood_from_cues(_mood_cues(frames, span, onset_density_hz, tempo_bpm, brightness, key))
        valence, arousal = mood.valence, mood.arousal

    features = {
        "duration_s": duration_s,
        "energy": energy,
        "loudness_db": loudness_db,
        "brightness": brightness,
        "spectral_centroid_hz": centroid_hz,
        "onset_density_hz": onset_density_hz,
        "tempo_bpm": tempo_bpm,
        "harmonic_ratio": harmonic_ratio,
        "valence": valence,
        "arousal": arousal,
    }
    if key is not None:
        features.update(
            **key.key.features(),
            key_clarity=key.clarity,
            key_inherited=0.0 if own_key is not None else 1.0,
        )
    features = {name: round(float(value), 4) for name, value in features.items()}

    tags = _tags(energy, tempo_bpm, brightness, onset_density_hz, key, valence, arousal)
    text = _sentence(noun, tags, key, parent_name if own_key is None else None, tempo_bpm, loudness_db, silent)

    # Confidence: longer spans average more frames; silence and keyless noise say little.
    span_factor = min(max(duration_s / CONFIDENT_SPAN_S, 0.25), 1.0)
    clarity = max(key.clarity, 0.0) if key is not None else 0.0
    confidence = 0.05 if silent else span_factor * (0.6 + 0.4 * clarity)

    return SegmentDescription(
        start_s=start_s,
        end_s=end_s,
        text=text,
        features=features,
        tags=tags,
        confidence=round(confidence, 3),
    )


def _local_tempo(analysis: Analysis, start_s: float, end_s: float) -> float:
    """BPM from the median beat interval inside the span; the song's tempo when too few beats."""
    beats = [b for b in analysis.beats_s if start_s <= b < end_s]
    if len(beats) >= MIN_PULSE_BEATS:
        interval_s = float(np.median(np.diff(beats)))
        if interval_s > 0:
            return 60.0 / interval_s
    return float(analysis.tempo_bpm)


# --------------------------------------------------------------------------------------------
# Emotion


def _mood_cues(
    frames: SongFrames, span: slice, onset_density_hz: float, tempo_bpm: float, brightness: float, key: KeyEstimate | None
) -> dict[str, float]:
    """The span's mood cues in the units of ``music.MOOD_CUES`` (the same the structure stage
    measures for the whole song), over its audible frames."""
    rms = frames.rms[span]
    audible = 20 * np.log10(rms + EPS) > SILENCE_DBFS
    if not np.any(audible):
        audible = np.ones_like(rms, dtype=bool)
    cues = {
        "loudness_dbfs": float(10 * np.log10(np.mean(np.square(rms[audible])) + 1e-12)),
        "onset_density_hz": onset_density_hz,
        "spectral_flux": float(np.mean(frames.flux[span][audible])),
        "brightness": brightness,
        "spectral_flatness_db": float(np.mean(frames.flatness_db[span][audible])),
    }
    if tempo_bpm > 0:
        cues["tempo_bpm"] = tempo_bpm
    if key is not None:
        cues["major_strength"] = key.major_strength
        cues["key_clarity"] = key.clarity
    return cues


# --------------------------------------------------------------------------------------------
# Words


def _ladder(value: float, words: list[tuple[str, float]]) -> list[ScoredLabel]:
    """Every word of an ordinal vocabulary, scored by closeness to its centre, best first."""
    centres = [centre for _, centre in words]
    width = min(b - a for a, b in zip(centres, centres[1:]))  # spacing sets how fast scores fall
    scored = [(word, math.exp(-(((value - centre) / width) ** 2))) for word, centre in words]
    scored.sort(key=lambda item: -item[1])
    return [ScoredLabel(label=word, score=round(score, 3)) for word, score in scored]


def _circumplex(valence: float, arousal: float, points: tuple[tuple[str, float, float], ...], keep: int) -> list[ScoredLabel]:
    return [ScoredLabel(label=word, score=round(score, 3)) for word, score in circumplex_scores(valence, arousal, points)[:keep]]


def _tags(
    energy: float,
    tempo_bpm: float,
    brightness: float,
    onset_density_hz: float,
    key: KeyEstimate | None,
    valence: float,
    arousal: float,
) -> dict[str, list[ScoredLabel]]:
    tags = {
        "energy": _ladder(energy, ENERGY_WORDS),
        "brightness": _ladder(brightness, BRIGHTNESS_WORDS),
        "texture": _ladder(onset_density_hz, TEXTURE_WORDS),
        "mood": _circumplex(valence, arousal, MOOD_WORDS, keep=3),
        "mood_quadrant": _circumplex(valence, arousal, QUADRANTS, keep=4),
    }
    if tempo_bpm > 0:
        tags["tempo_feel"] = _ladder(tempo_bpm, TEMPO_WORDS)
    if key is not None:
        modes = [("major", key.best_major), ("minor", key.best_minor)]
        modes.sort(key=lambda item: item[0] != ("major" if key.major else "minor"))  # the key's mode first
        tags["mode"] = [ScoredLabel(label=mode, score=round(r, 3)) for mode, r in modes]
        tags["key"] = [ScoredLabel(label=name, score=r) for name, r in key.ranked]
    return tags


def _sentence(
    noun: str,
    tags: dict[str, list[ScoredLabel]],
    key: KeyEstimate | None,
    key_from: str | None,
    tempo_bpm: float,
    loudness_db: float,
    silent: bool,
) -> str:
    """E.g. 'Energetic, bright, up-tempo passage in A minor (128 BPM); busy rhythm; mood: tense, driving.'"""
    if silent:
        return f"Near-silent {noun} ({loudness_db:.0f} dBFS); no clear key or rhythm."
    words = [tags["energy"][0].label, tags["brightness"][0].label]
    if "tempo_feel" in tags:
        words.append(tags["tempo_feel"][0].label)
    text = f"{', '.join(words).capitalize()} {noun}"
    if key is not None:
        text += f" in {key.name}"
        if key_from is not None and noun != "song":
            text += f" ({key_from} key)"
    if tempo_bpm > 0:
        text += f" ({tempo_bpm:.0f} BPM)"
    moods = ", ".join(label.label for label in tags["mood"][:2])
    return f"{text}; {tags['texture'][0].label} rhythm; mood: {moods}."
