"""Where in a song someone sings: a DSP vocal-presence detector, and the vocal separation that
feeds Whisper.

Method (all on 16 kHz mono, frames of ``HOP_S`` = 32 ms):

1. **Foreground** (REPET-SIM, Rafii & Pardo 2012, as in librosa's vocal-separation example):
   the accompaniment of a song repeats (a drum pattern, a chord loop), a voice varies. Every
   frame is compared (cosine of full-band log spectra, so that bass, drums and hats, not the
   loud voice, decide which frames look alike) with every frame at least
   ``MIN_REPEAT_DISTANCE_S`` away in the same ``BLOCK_S`` block; in every frequency bin (the
   timbre detector reads 100-7600 Hz, Whisper the whole band), the median of its ``k`` most
   similar frames estimates the repeating background, and a soft
   mask keeps what stands clearly above it (``FOREGROUND_MARGIN``) as the foreground. Blocks of
   30 s keep the cost linear in the song's length and stop a chorus from explaining away the
   next chorus.
2. **Cue** per frame: foreground energy / mix energy in the voice band (0..1).
3. **Spans**: the cue, median-smoothed over ``SMOOTH_S``, above ``threshold`` (default 0.12),
   and the foreground at most ``LEVEL_FLOOR_DB`` below the song's loud vocal frames; gaps
   shorter than ``MAX_GAP_S`` (breaths between words) are bridged and spans shorter than
   ``MIN_SPAN_S`` dropped (a drum fill that escaped the repetition model is shorter).

With Demucs' vocal stem the cue is the stem's band energy over the mix's, and step 1 is skipped.

The default ``timbre`` method replaces step 3's threshold on the cue: REPET also keeps a lead
instrument that does not repeat (a fiddle or sax line through the vocal gaps), which cost the
cue half its precision on the development set (benchmarks/bench_lyrics.py: 0.48). A voice moves
its formants with every phoneme while an instrument keeps its timbre from note to note, so a
frame counts as voiced where the foreground's cepstral envelope changes fast
(:func:`timbre_flux`, hysteresis between ``TIMBRE_FLUX_OFF`` and ``TIMBRE_FLUX_ON``), or where
the foreground owns the voice band (cue above ``HELD_CUE``) and still changes a little (a held
vowel). Precision 0.89, recall 0.94 on the held-out half of the set. Measured on spoken words
(espeak-ng): long sung notes change timbre less than speech, so recall on slow singing is
expected to be lower than that figure.

An earlier version kept only the harmonic part of the foreground (HPSS) to remove drum hits;
it also removed most of fast speech and rap (syllables shorter than its median filter), so it
was dropped: the repetition model already puts repeating drums in the background.

Limits: a lead instrument that does not repeat (a sax solo, a synth lead, a guitar solo) looks
like a voice to REPET; a vocal hook repeated identically many times inside one 30 s block can
look like accompaniment; a voice alone (a cappella) has no repeating bed to stand out from, so
it is found only where its own frames do not repeat. Whisper's own no-speech probability (see :mod:`.whisper`) is the second
opinion that removes most instrumental false positives when a model is available.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from music2video.errors import MissingDependencyError, ModelLoadError

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000  # Whisper's rate; the detector runs at it too (the voice band ends at 3.4 kHz)
N_FFT = 1024  # 64 ms window: 15.6 Hz bins resolve the harmonics of voices above ~100 Hz
HOP = 512
HOP_S = HOP / SAMPLE_RATE_HZ  # 32 ms per frame
VOICE_BAND_HZ = (300.0, 3400.0)  # telephone band: vowels' first two formants and most consonants
BLOCK_S = 30.0  # REPET-SIM looks for repetitions within blocks this long
MIN_REPEAT_DISTANCE_S = 2.0  # a frame's look-alikes must be this far away (not the same note held)
FOREGROUND_MARGIN = 2.0  # foreground must exceed the background by this factor to pass the soft mask
LOG_COMPRESSION = 1000.0  # log(1 + C * |X| / max): quiet drums and hats weigh in the frame comparison
SMOOTH_S = 0.25  # median smoothing of the cue
LEVEL_FLOOR_DB = 40.0  # foreground quieter than the loud vocal frames by more than this is not singing
MAX_GAP_S = 0.6  # breaths and consonant gaps inside a phrase are bridged
MIN_SPAN_S = 0.5  # shorter blips are not a vocal phrase
DEFAULT_THRESHOLD = 0.12
# Timbre detector (the default): cepstral change of the foreground per frame, see timbre_flux.
TIMBRE_BANDS = 40
TIMBRE_RANGE_HZ = (100.0, 7600.0)
TIMBRE_COEFFICIENTS = 12
TIMBRE_SMOOTH_S = 0.29  # 9 frames: about one syllable
# Hysteresis thresholds on the flux (cepstral distance per frame, log-power units), chosen on
# the development set (benchmarks/lyrics_devset.py: songs 0-5) and checked on songs 6-11.
TIMBRE_FLUX_ON = 5.3
TIMBRE_FLUX_OFF = 4.8
# A held vowel: the foreground owns this share of the voice band and its timbre still moves this much.
HELD_CUE = 0.7
HELD_FLUX = 3.0
FLOOR_DB = 40.0  # mel bands this far below the song's loudest are floored: their noise is not timbre


@dataclass
class VocalActivity:
    """The detector's result: a cue per frame and the spans where it says "voice"."""

    cue: np.ndarray  # (frames,) 0..1, voice-band foreground share
    frame_s: float  # seconds per cue frame
    spans_s: list[tuple[float, float]]
    flux: np.ndarray | None = None  # (frames,) timbre change of the foreground (method "timbre")

    def share_in(self, start_s: float, end_s: float) -> float:
        """Fraction of ``[start_s, end_s)`` that lies inside the vocal spans (0..1)."""
        if end_s <= start_s:
            return 0.0
        covered = sum(max(0.0, min(end_s, b) - max(start_s, a)) for a, b in self.spans_s)
        return covered / (end_s - start_s)


def detect_vocals(
    samples: np.ndarray,
    rate_hz: int = SAMPLE_RATE_HZ,
    threshold: float = DEFAULT_THRESHOLD,
    vocal_stem: np.ndarray | None = None,
    method: Literal["timbre", "repet"] = "timbre",
) -> VocalActivity:
    """Detect singing in mono ``samples`` at ``rate_hz`` (16 kHz expected; others are resampled).

    ``vocal_stem``: a separated vocal track of the same length and rate (Demucs); when given, it
    replaces the REPET foreground. ``method``: ``timbre`` (default) calls a frame voiced where the
    foreground's timbre changes as fast as speech and song change it (:func:`timbre_flux`);
    ``repet`` where the foreground's share of the voice band passes ``threshold`` (the earlier
    default: it also takes a lead instrument for a voice). Returns the per-frame cue and the
    vocal spans in seconds.
    """
    samples = _at_rate(samples, rate_hz)
    if samples.size < N_FFT:
        return VocalActivity(np.zeros(0, np.float32), HOP_S, [])
    mix = np.abs(_stft(samples))
    band = _voice_band()
    mix_band = mix[band]
    if vocal_stem is not None:
        stem = _at_rate(vocal_stem, rate_hz)[: samples.size]
        stem = np.pad(stem, (0, samples.size - stem.size))
        foreground = np.abs(_stft(stem))
    else:
        foreground = repet_foreground(mix, features=np.log1p(mix / max(float(mix.max()), 1e-10) * LOG_COMPRESSION))
    voice = foreground[band]
    voice_energy = (voice**2).sum(axis=0)
    mix_energy = (mix_band**2).sum(axis=0)
    cue = voice_energy / np.maximum(mix_energy, 1e-10)
    cue = _median_smooth(np.clip(cue, 0.0, 1.0), max(1, round(SMOOTH_S / HOP_S)))

    # Level gate: a cue of 1.0 in near-silence (a fade, reverb tails) is not a voice.
    voice_db = 10 * np.log10(voice_energy + 1e-12)
    loud_db = float(np.percentile(voice_db, 99)) if voice_db.size else -120.0
    audible = voice_db > loud_db - LEVEL_FLOOR_DB
    if method == "timbre":
        flux = timbre_flux(foreground**2)
        # Held vowels change timbre slowly; where the foreground owns the voice band they still count.
        voiced = hysteresis(flux, TIMBRE_FLUX_OFF, TIMBRE_FLUX_ON) | ((cue > HELD_CUE) & (flux > HELD_FLUX))
    else:
        flux = None
        voiced = cue > threshold
    active = voiced & audible & (mix_energy > 1e-8)
    spans = frames_to_spans(active, HOP_S, samples.size / SAMPLE_RATE_HZ)
    return VocalActivity(cue.astype(np.float32), HOP_S, spans, None if flux is None else flux.astype(np.float32))


def timbre_flux(power: np.ndarray) -> np.ndarray:
    """How fast the spectral envelope of a power spectrogram ``(bins, frames)`` changes, per frame.

    Cepstral coefficients 1-12 of a 40-band log-mel spectrum (the envelope, without level or
    pitch detail), frame-to-frame Euclidean distance, averaged over ``TIMBRE_SMOOTH_S``. A voice
    moves its formants with every phoneme; an instrument keeps its timbre from note to note, so
    its envelope changes only at onsets. On the development set (benchmarks/bench_lyrics.py)
    this separates voice frames from accompaniment frames far better than the foreground's
    energy share (area under the ROC curve 0.95 against 0.71).
    """
    from scipy.fft import dct
    from scipy.ndimage import uniform_filter1d

    mel_power = _mel_filterbank() @ power
    # The floor follows the song's level, so the flux does not depend on how loud the file is.
    mel = np.log(mel_power + max(float(mel_power.max()), 1e-20) * 10 ** (-FLOOR_DB / 10))
    cepstrum = dct(mel, axis=0, norm="ortho")[1 : TIMBRE_COEFFICIENTS + 1]
    change = np.sqrt((np.diff(cepstrum, axis=1, prepend=cepstrum[:, :1]) ** 2).sum(axis=0))
    return uniform_filter1d(change, max(1, round(TIMBRE_SMOOTH_S / HOP_S)), mode="nearest")


def hysteresis(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Frames in runs above ``low`` that reach ``high`` somewhere: a run starts on clear evidence
    and keeps the softer frames around it (word edges, a held vowel)."""
    from scipy.ndimage import label

    runs, count = label(values > low)
    keep = np.zeros(count + 1, bool)
    keep[np.unique(runs[values > high])] = True
    keep[0] = False
    return keep[runs]


def _mel_filterbank() -> np.ndarray:
    """Triangular mel filters ``(TIMBRE_BANDS, N_FFT // 2 + 1)`` over ``TIMBRE_RANGE_HZ`` (HTK mel scale)."""
    to_mel = lambda hz: 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)  # noqa: E731
    to_hz = lambda mel: 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)  # noqa: E731
    edges = to_hz(np.linspace(to_mel(TIMBRE_RANGE_HZ[0]), to_mel(TIMBRE_RANGE_HZ[1]), TIMBRE_BANDS + 2))
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE_HZ)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def repet_foreground(spectrogram: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """REPET-SIM: the non-repeating part of a magnitude spectrogram ``(bins, frames)``.

    ``features`` ``(dims, frames)``: what frames are compared on (default: the spectrogram).
    The detector compares full-band log spectra, so that the accompaniment (bass, drums, hats
    outside the voice band) decides which frames are look-alikes, not the loud voice itself.
    Works block by block (``BLOCK_S``); a block too short to hold a repetition counts as all
    foreground (e.g. a 3 s song). Returns an array of the same shape as ``spectrogram``.
    """
    features = spectrogram if features is None else features
    frames = spectrogram.shape[1]
    block = max(1, round(BLOCK_S / HOP_S))
    starts = list(range(0, frames, block))
    # A short last block joins the one before: too few frames to find repetitions in.
    if len(starts) > 1 and frames - starts[-1] < block // 2:
        starts.pop()
    bounds = [*starts, frames]
    out = np.empty_like(spectrogram)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        out[:, lo:hi] = _repet_block(spectrogram[:, lo:hi], features[:, lo:hi])
    return out


def _repet_block(block: np.ndarray, features: np.ndarray) -> np.ndarray:
    frames = block.shape[1]
    distance = round(MIN_REPEAT_DISTANCE_S / HOP_S)
    candidates = frames - 2 * distance + 1
    if candidates < 4:
        return block.copy()
    # k nearest frames by cosine similarity, excluding the frame's own neighbourhood; librosa's
    # default k for recurrence matrices.
    k = min(frames - 1, 2 * math.ceil(math.sqrt(candidates)))
    unit = features / np.maximum(np.linalg.norm(features, axis=0, keepdims=True), 1e-10)
    similarity = unit.T @ unit
    index = np.arange(frames)
    similarity[np.abs(index[:, None] - index[None, :]) < distance] = -np.inf
    # k <= candidates, so every frame has k look-alikes outside its neighbourhood.
    neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]  # (frames, k)
    # Median over each frame's look-alikes, per bin: the look-alike frames are copied whole
    # (frames, k, bins) and sorted along k, the middle taken as np.median takes it. Same values
    # as np.median(block[:, neighbours], axis=2), which selected along 58-element rows of a
    # (bins, frames, k) array at several times the cost (2.7 of the lyrics stage's 4.2 s).
    look_alikes = np.ascontiguousarray(block.T)[neighbours]
    look_alikes.sort(axis=1)
    half = k // 2
    middle = look_alikes[:, half] if k % 2 else 0.5 * (look_alikes[:, half - 1] + look_alikes[:, half])
    background = np.minimum(block, middle.T)  # (bins, frames)
    # Soft mask (librosa.util.softmask with power 2): X^2 / (X^2 + (margin * background)^2).
    excess = block - background
    reference = FOREGROUND_MARGIN * background
    mask = excess**2 / np.maximum(excess**2 + reference**2, 1e-20)
    return mask * block


def frames_to_spans(active: np.ndarray, frame_s: float, duration_s: float) -> list[tuple[float, float]]:
    """Boolean frames -> ``(start_s, end_s)`` spans: gaps < ``MAX_GAP_S`` bridged, spans <
    ``MIN_SPAN_S`` dropped, ends clamped to ``duration_s``. A frame covers ``[i, i+1) * frame_s``
    around its centre (frames are centred), so edges are accurate to about one frame."""
    spans: list[list[float]] = []
    padded = np.concatenate([[False], active.astype(bool), [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    for first, end in zip(changes[::2], changes[1::2], strict=True):
        start_s, end_s = first * frame_s, end * frame_s
        if spans and start_s - spans[-1][1] < MAX_GAP_S:
            spans[-1][1] = end_s
        else:
            spans.append([start_s, end_s])
    clamped = [(max(0.0, float(a)), min(duration_s, float(b))) for a, b in spans]
    return [(round(a, 3), round(b, 3)) for a, b in clamped if b - a >= MIN_SPAN_S]


def remove_windows(spans: list[tuple[float, float]], windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``spans`` minus the time inside ``windows`` (e.g. windows Whisper judged free of speech)."""
    result = list(spans)
    for w_start, w_end in windows:
        clipped: list[tuple[float, float]] = []
        for a, b in result:
            if b <= w_start or a >= w_end:
                clipped.append((a, b))
                continue
            if a < w_start:
                clipped.append((a, w_start))
            if b > w_end:
                clipped.append((w_end, b))
        result = [(a, b) for a, b in clipped if b - a >= MIN_SPAN_S / 2]
    return result


# --------------------------------------------------------------------------------------------
# What Whisper hears


def foreground_audio(samples: np.ndarray) -> np.ndarray:
    """The REPET foreground of 16 kHz mono ``samples`` as audio (full band, mixture phase).

    Cheaper and cruder than Demucs: accompaniment that does not repeat stays in, and the mask
    leaves artefacts Whisper sometimes dislikes. Same length as the input.
    """
    from scipy.signal import istft

    if samples.size < N_FFT:
        return samples.copy()
    spectrum = _stft(samples)
    magnitude = np.abs(spectrum)
    foreground = repet_foreground(magnitude, features=np.log1p(magnitude / max(float(magnitude.max()), 1e-10) * LOG_COMPRESSION))
    mask = foreground / np.maximum(magnitude, 1e-10)
    _, audio = istft(mask * spectrum, fs=SAMPLE_RATE_HZ, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)
    audio = np.pad(audio, (0, max(0, samples.size - audio.size)))[: samples.size]
    return audio.astype(np.float32)


def demucs_vocals(wav: Path, model_name: str, device: str = "cpu") -> np.ndarray:
    """Demucs' vocal stem of ``wav`` as 16 kHz mono float32.

    Needs ``pip install demucs`` (no torchaudio needed since 4.1). Named models other than
    ``demucs_unittest`` (an untrained model for tests) are downloaded on first use.
    """
    try:
        from demucs.apply import apply_model
        from demucs.pretrained import get_model
    except ImportError:
        raise MissingDependencyError("demucs", "lyrics", "Vocal separation with Demucs") from None
    import torch

    from music2video.decode import load_audio

    try:
        model = get_model(model_name)
    except Exception as error:  # noqa: BLE001 - demucs raises many kinds; all mean "could not load"
        raise ModelLoadError(f"cannot load the Demucs model {model_name!r} ({' '.join(str(error).split())[:160]})") from None
    model.eval()
    stereo = load_audio(wav, sample_rate_hz=model.samplerate, mono=False)
    if stereo.shape[0] == 1:
        stereo = np.repeat(stereo, 2, axis=0)
    mix = torch.from_numpy(stereo[: model.audio_channels]).float()
    # Demucs expects a normalised mix, as its own separate.py does.
    mean, std = mix.mean(), mix.std().clamp_min(1e-8)
    with torch.inference_mode():
        sources = apply_model(model, ((mix - mean) / std)[None], device=device, split=True, overlap=0.25, progress=False)[0]
    vocals = (sources[model.sources.index("vocals")] * std + mean).mean(dim=0).cpu().numpy()
    model_rate_hz = int(model.samplerate)
    del model, sources
    return _resample(vocals.astype(np.float32), model_rate_hz, SAMPLE_RATE_HZ)


# --------------------------------------------------------------------------------------------
# helpers


def _stft(samples: np.ndarray) -> np.ndarray:
    """Complex STFT ``(bins, frames)``, Hann window, frame k centred on sample ``k * HOP``.

    scipy rather than librosa: librosa's STFT compiles numba code on first use (~10 s cold),
    scipy's does not; the result is the same up to a constant scale, and every use here is a ratio.
    """
    from scipy.signal import stft

    _, _, spectrum = stft(
        samples, fs=SAMPLE_RATE_HZ, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP, boundary="zeros", padded=True
    )
    return spectrum


def _voice_band() -> np.ndarray:
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE_HZ)
    return (freqs >= VOICE_BAND_HZ[0]) & (freqs <= VOICE_BAND_HZ[1])


def _at_rate(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    return samples if rate_hz == SAMPLE_RATE_HZ else _resample(samples, rate_hz, SAMPLE_RATE_HZ)


def _resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    import soxr  # librosa's resampler, called directly: librosa.resample compiles numba code on first use

    if from_hz == to_hz:
        return samples
    return soxr.resample(samples, from_hz, to_hz, quality="HQ").astype(np.float32)


def _median_smooth(values: np.ndarray, width: int) -> np.ndarray:
    from scipy.ndimage import median_filter

    return median_filter(values, size=width | 1, mode="nearest") if width > 1 else values
