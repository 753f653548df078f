"""The audio front end in numpy and scipy: spectrograms, mel and chroma filters, onset strength,
onset peaks, tempogram tempo, MFCC and HPSS.

Each function gives what the librosa function of the same name gives for the arguments used
in music2video (librosa 0.11 defaults unless stated), checked in ``tests/test_spectral.py``.
Why not librosa itself: its feature modules compile numba kernels when first imported
(eagerly vectorised ufuncs in ``librosa.util``, ``librosa.core.audio`` and
``librosa.core.pitch``) and on first call (``peak_pick``): about 14 s of a 20 s first analysis
of a 3-minute song on two cores, before any result. Nothing here imports numba or librosa.

Conventions as in librosa: spectrograms are (frequency bins, frames); frame ``t`` is centred on
sample ``t * hop_length`` (the signal is padded with ``n_fft // 2`` zeros at both ends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.sparse

STFT_BLOCK_FRAMES = 1024
"""Frames transformed per block: bounds the float32 temporaries to ~16 MB at n_fft 2048."""
AMIN = 1e-10
"""Smallest power that ``power_to_db`` takes the log of (-100 dB), librosa's default."""
TOP_DB = 80.0
"""``power_to_db`` clips everything more than this far below the loudest value."""


# ------------------------------------------------------------------------------------------
# Time and frequency grids


def time_to_frames(times_s: np.ndarray | float, rate_hz: float, hop_length: int) -> np.ndarray:
    """Frame index of each time (``librosa.time_to_frames``: the sample index, floored to a hop)."""
    samples = (np.asanyarray(times_s) * rate_hz).astype(int)
    return np.asanyarray(np.floor(samples // hop_length), dtype=int)


def frames_to_time(frames: np.ndarray | int, rate_hz: float, hop_length: int) -> np.ndarray:
    """Time in seconds of each frame's centre (``librosa.frames_to_time``)."""
    return (np.asanyarray(frames) * hop_length).astype(int) / float(rate_hz)


def fft_frequencies(rate_hz: float, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each of the ``1 + n_fft // 2`` STFT bins."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / rate_hz)


_MEL_LINEAR_HZ = 200.0 / 3  # Slaney's mel scale: linear below 1 kHz at 200/3 Hz per mel ...
_MEL_LOG_FROM_HZ = 1000.0
_MEL_LOG_FROM = _MEL_LOG_FROM_HZ / _MEL_LINEAR_HZ  # ... = 15 mel, and logarithmic above,
_MEL_LOG_STEP = np.log(6.4) / 27.0  # 27 mel per factor 6.4 (Auditory Toolbox, librosa's default)


def hz_to_mel(frequencies_hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel of each frequency (``librosa.hz_to_mel``, ``htk=False``)."""
    f = np.asanyarray(frequencies_hz, dtype=float)
    mels = f / _MEL_LINEAR_HZ
    log_part = f >= _MEL_LOG_FROM_HZ
    return np.where(log_part, _MEL_LOG_FROM + np.log(np.maximum(f, _MEL_LOG_FROM_HZ) / _MEL_LOG_FROM_HZ) / _MEL_LOG_STEP, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(mels, dtype=float)
    return np.where(m >= _MEL_LOG_FROM, _MEL_LOG_FROM_HZ * np.exp(_MEL_LOG_STEP * (m - _MEL_LOG_FROM)), _MEL_LINEAR_HZ * m)


def mel_frequencies(n_mels: int = 128, fmin_hz: float = 0.0, fmax_hz: float = 11025.0) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced on the Slaney mel scale (``librosa.mel_frequencies``)."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels))


def mel_filters(rate_hz: float, n_fft: int, n_mels: int = 128, fmin_hz: float = 0.0, fmax_hz: float | None = None) -> np.ndarray:
    """Triangular Slaney-normalised mel filterbank, (n_mels, 1 + n_fft // 2) float32
    (``librosa.filters.mel`` with its defaults)."""
    fmax_hz = rate_hz / 2 if fmax_hz is None else fmax_hz
    fft_hz = fft_frequencies(rate_hz, n_fft)
    mel_hz = mel_frequencies(n_mels + 2, fmin_hz, fmax_hz)
    widths = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    # Slaney: each triangle scaled to about equal energy per channel.
    weights *= (2.0 / (mel_hz[2 : n_mels + 2] - mel_hz[:n_mels]))[:, None].astype(np.float32)
    return weights


def chroma_filters(rate_hz: float, n_fft: int, n_chroma: int = 12, tuning: float = 0.0) -> np.ndarray:
    """Chroma filterbank, (n_chroma, 1 + n_fft // 2) float32, row 0 = C (``librosa.filters.chroma``
    with its defaults: Gaussian bumps per pitch class, each FFT bin's column L2-normalised, then
    weighted by a Gaussian over octaves centred on octave 5 with a width of 2 octaves)."""
    frequencies_hz = np.linspace(0, rate_hz, n_fft, endpoint=False)[1:]
    a440_hz = 440.0 * 2.0 ** (tuning / n_chroma)
    bins = n_chroma * np.log2(frequencies_hz / (a440_hz / 16))
    # The 0 Hz bin: 1.5 octaves below bin 1 (half a turn of the chroma circle away, broad).
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    bin_widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1]))
    distance = np.subtract.outer(bins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / np.tile(bin_widths, (n_chroma, 1))) ** 2)
    weights = normalize(weights, norm=2.0, axis=0)
    centre_octave, octave_width = 5.0, 2.0
    weights *= np.tile(np.exp(-0.5 * (((bins / n_chroma - centre_octave) / octave_width) ** 2)), (n_chroma, 1))
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)  # start at C, not A
    return np.ascontiguousarray(weights[:, : int(1 + n_fft / 2)], dtype=np.float32)


# ------------------------------------------------------------------------------------------
# Spectrograms


def normalize(values: np.ndarray, norm: float = np.inf, axis: int = 0) -> np.ndarray:
    """``values`` divided by their max (``norm=inf``) or Lp norm along ``axis``; slices whose
    norm is below the dtype's smallest normal number are left as they are (``librosa.util.normalize``)."""
    magnitude = np.abs(values).astype(float)
    if norm == np.inf:
        length = np.max(magnitude, axis=axis, keepdims=True)
    else:
        length = np.sum(magnitude**norm, axis=axis, keepdims=True) ** (1.0 / norm)
    tiny = np.finfo(values.dtype if np.issubdtype(values.dtype, np.floating) else np.float32).tiny
    length[length < tiny] = 1.0
    out = np.empty_like(values)
    out[:] = values / length
    return out


def stft_magnitude(y: np.ndarray, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """|STFT| of ``y`` with a periodic Hann window, frames centred (zero padding), float32,
    shape (1 + n_fft // 2, 1 + len(y) // hop_length): ``np.abs(librosa.stft(y, n_fft=n_fft,
    hop_length=hop_length))``.

    The frames are transformed in blocks of ``STFT_BLOCK_FRAMES``, so the only full-size array
    is the result (F-ordered, as librosa's).
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"stft_magnitude needs a non-empty mono signal, got shape {y.shape}")
    padded = np.pad(y, n_fft // 2)
    n_frames = 1 + (len(padded) - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    out = np.empty((n_frames, 1 + n_fft // 2), dtype=np.float32)
    for start in range(0, n_frames, STFT_BLOCK_FRAMES):
        block = frames[start : start + STFT_BLOCK_FRAMES] * window
        np.abs(scipy.fft.rfft(block, axis=-1), out=out[start : start + len(block)])
    return out.T


def power_to_db(power: np.ndarray, ref: float | Callable[[np.ndarray], float] = 1.0, top_db: float | None = TOP_DB) -> np.ndarray:
    """10 log10(power / ref), floored at ``AMIN`` and at ``top_db`` below the maximum
    (``librosa.power_to_db``); ``ref`` may be a function of the array, e.g. ``np.max``."""
    power = np.asarray(power)
    ref_value = ref(power) if callable(ref) else abs(ref)
    db = 10.0 * np.log10(np.maximum(AMIN, power))
    db -= 10.0 * np.log10(np.maximum(AMIN, ref_value))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def melspectrogram(power: np.ndarray, rate_hz: float, n_mels: int = 128) -> np.ndarray:
    """Mel power spectrogram of a power spectrogram (``librosa.feature.melspectrogram(S=power)``)."""
    n_fft = 2 * (power.shape[0] - 1)
    return mel_filters(rate_hz, n_fft, n_mels) @ power


def chroma_stft(power: np.ndarray, rate_hz: float, tuning: float = 0.0) -> np.ndarray:
    """12-bin chroma of a power spectrogram, each frame scaled to a maximum of 1
    (``librosa.feature.chroma_stft(S=power, tuning=tuning)``)."""
    n_fft = 2 * (power.shape[0] - 1)
    return normalize(chroma_filters(rate_hz, n_fft, tuning=tuning) @ power, norm=np.inf, axis=0)


def mfcc(log_mel: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """MFCCs of a log-mel spectrogram in dB: orthonormal DCT-II over the mel bands
    (``librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc)``)."""
    return scipy.fft.dct(log_mel, axis=-2, type=2, norm="ortho")[:n_mfcc]


def hpss(spectrogram: np.ndarray, kernel_size: int | tuple[int, int] = 31) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive parts of a magnitude spectrogram by median filtering along time
    and frequency and soft (Wiener, power 2) masks: ``librosa.decompose.hpss(S, kernel_size)``."""
    harmonic_size, percussive_size = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    harmonic = scipy.ndimage.median_filter(spectrogram, size=(1, harmonic_size), mode="reflect")
    percussive = scipy.ndimage.median_filter(spectrogram, size=(percussive_size, 1), mode="reflect")
    mask_harmonic = _softmask(harmonic, percussive)
    mask_percussive = _softmask(percussive, harmonic)
    return spectrogram * mask_harmonic, spectrogram * mask_percussive


def _softmask(x: np.ndarray, x_ref: np.ndarray, power: float = 2.0) -> np.ndarray:
    """x^p / (x^p + x_ref^p), 0.5 where both are zero-ish (``librosa.util.softmask``, ``split_zeros=False``)."""
    z = np.maximum(x, x_ref)
    tiny = np.finfo(np.float32 if x.dtype == np.float32 else np.float64).tiny
    bad = z < tiny
    z[bad] = 1
    mask = (x / z) ** power
    ref_mask = (x_ref / z) ** power
    good = np.logical_not(bad)
    mask[good] /= mask[good] + ref_mask[good]
    mask[bad] = 0.5  # silent in both: split evenly (librosa's split_zeros, as hpss uses with margin 1)
    return mask


def rms_from_magnitude(magnitude: np.ndarray, n_fft: int) -> np.ndarray:
    """RMS of each frame from its |STFT| by Parseval, DC and Nyquist counted once
    (``librosa.feature.rms(S=magnitude, frame_length=n_fft)[0]``)."""
    power = np.square(magnitude, dtype=np.float32)
    energy = 2 * power.sum(axis=0) - power[0] - (power[-1] if n_fft % 2 == 0 else 0)
    return np.sqrt(np.maximum(energy, 0) / n_fft**2)


def spectral_centroid(magnitude: np.ndarray, rate_hz: float) -> np.ndarray:
    """Magnitude-weighted mean frequency (Hz) of each frame; 0 for a silent one
    (``librosa.feature.spectral_centroid(S=magnitude)[0]``)."""
    n_fft = 2 * (magnitude.shape[0] - 1)
    totals = magnitude.sum(axis=0)
    totals[totals < np.finfo(magnitude.dtype).tiny] = 1.0
    return (fft_frequencies(rate_hz, n_fft) @ magnitude) / totals


# ------------------------------------------------------------------------------------------
# Constant-Q transform

C1_HZ = 440.0 * 2.0 ** ((24 - 69) / 12)
"""Lowest CQT bin by default, C1 (32.7 Hz), as librosa's."""
CQT_SPARSITY = 0.01
"""Share of each filter's spectral mass (the smallest bins) dropped to make it sparse."""
_HANN_BANDWIDTH = 1.50018310546875  # librosa.filters.WINDOW_BANDWIDTHS["hann"]: only decides early downsampling


def cqt_magnitude(y: np.ndarray, rate_hz: float, hop_length: int = 512, n_bins: int = 84, bins_per_octave: int = 12, fmin_hz: float = C1_HZ) -> np.ndarray:
    """|CQT| of ``y``, (n_bins, frames), lowest bin ``fmin_hz``: ``np.abs(librosa.cqt(y, sr=rate_hz,
    hop_length=hop_length, n_bins=n_bins, bins_per_octave=bins_per_octave))``.

    librosa's multirate algorithm: the top octave's filters are applied in the frequency domain
    to an STFT of the signal, then the signal is halved in rate (soxr, high quality) and the
    same filters, one octave lower, serve the next octave down, and so on.
    """
    import soxr

    y = np.ascontiguousarray(y, dtype=np.float32)
    n_octaves = int(np.ceil(n_bins / bins_per_octave))
    n_filters = min(bins_per_octave, n_bins)
    frequencies_hz = fmin_hz * 2.0 ** (np.arange(n_bins) / bins_per_octave)
    # Relative bandwidth of equally spaced bins: constant, so Q is too.
    octave_step = 2.0 ** (2.0 / bins_per_octave)
    q_factor = (octave_step + 1) / (octave_step - 1)
    lengths = q_factor * rate_hz / frequencies_hz
    cutoff_hz = float(np.max(frequencies_hz * (1 + 0.5 * _HANN_BANDWIDTH / q_factor)))
    if cutoff_hz > rate_hz / 2:
        raise ValueError(f"a {n_bins}-bin CQT from {fmin_hz:.1f} Hz reaches past the Nyquist frequency of {rate_hz} Hz")

    # Early downsampling: as far as the top octave and the hop's factors of two allow.
    twos = (hop_length & -hop_length).bit_length() - 1
    early = min(max(0, int(np.ceil(np.log2(rate_hz / 2 / cutoff_hz)) - 1) - 1), max(0, twos - n_octaves + 1))
    my_y, my_rate, my_hop = y, float(rate_hz), hop_length
    for _ in range(early):
        my_y, my_rate, my_hop = _halve_rate(my_y, soxr), my_rate / 2, my_hop // 2
    responses = []
    for octave in range(n_octaves):
        band = slice(n_bins - n_filters * (octave + 1), n_bins - n_filters * octave)
        basis, n_fft = _cqt_filters_fft(frequencies_hz[band], lengths[band] * my_rate / rate_hz, my_rate)
        basis = scipy.sparse.csr_matrix(basis * np.float32(np.sqrt(rate_hz / my_rate)))  # a few bins per filter
        padded = np.pad(my_y, n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::my_hop]
        response = np.empty((basis.shape[0], len(frames)), dtype=np.complex64)
        for start in range(0, len(frames), STFT_BLOCK_FRAMES):
            spectrum = scipy.fft.rfft(frames[start : start + STFT_BLOCK_FRAMES], axis=-1)  # a rectangular window
            response[:, start : start + len(spectrum)] = basis @ spectrum.T
        responses.append(response)
        if my_hop % 2 == 0:
            my_y, my_rate, my_hop = _halve_rate(my_y, soxr), my_rate / 2, my_hop // 2
    n_frames = min(r.shape[1] for r in responses)
    out = np.empty((n_bins, n_frames), dtype=np.float32)
    end = n_bins
    for response in responses:  # top octave first
        count = min(end, response.shape[0])
        out[end - count : end] = np.abs(response[-count:, :n_frames])
        end -= count
    return out / np.sqrt(lengths)[:, None].astype(np.float32)


def _halve_rate(y: np.ndarray, soxr) -> np.ndarray:
    """``librosa.resample(y, orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)``."""
    halved = soxr.resample(y, 2, 1, quality="soxr_hq")
    size = int(np.ceil(len(y) / 2))
    halved = np.pad(halved, (0, max(0, size - len(halved))))[:size]
    return (halved * np.sqrt(2.0)).astype(np.float32)


def _cqt_filters_fft(frequencies_hz: np.ndarray, lengths: np.ndarray, rate_hz: float) -> tuple[np.ndarray, int]:
    """Spectra (positive frequencies) of one octave's Hann-windowed complex sinusoids, each
    L1-normalised and scaled by length / n_fft, the smallest 1 % of each row's mass zeroed
    (librosa's ``__vqt_filter_fft``: ``filters.wavelet`` then ``util.sparsify_rows``)."""
    n_fft = int(2.0 ** np.ceil(np.log2(lengths.max())))
    basis = np.zeros((len(frequencies_hz), n_fft), dtype=np.complex64)
    for row, (length, frequency_hz) in enumerate(zip(lengths, frequencies_hz)):
        phases = np.arange(-length // 2, length // 2, dtype=float) * 2 * np.pi * frequency_hz / rate_hz
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(len(phases)) / len(phases))
        wavelet = np.exp(1j * phases) * window
        wavelet /= np.sum(np.abs(wavelet))
        left = (n_fft - len(wavelet)) // 2
        basis[row, left : left + len(wavelet)] = wavelet
    basis *= (lengths / n_fft)[:, None]
    spectra = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    magnitudes = np.abs(spectra)
    ordered = np.sort(magnitudes, axis=1)
    cumulative = np.cumsum(ordered / magnitudes.sum(axis=1, keepdims=True), axis=1)
    thresholds = ordered[np.arange(len(ordered)), np.argmin(cumulative < CQT_SPARSITY, axis=1)]
    spectra[magnitudes < thresholds[:, None]] = 0
    return spectra.astype(np.complex64), n_fft


def chroma_cqt(cqt: np.ndarray, bins_per_octave: int = 36, n_chroma: int = 12) -> np.ndarray:
    """12-bin chroma of a (possibly compressed) CQT magnitude whose lowest bin is C, each frame
    scaled to a maximum of 1 (``librosa.feature.chroma_cqt(C=cqt, bins_per_octave=...)``)."""
    merge = bins_per_octave // n_chroma
    folding = np.roll(np.repeat(np.eye(n_chroma), merge, axis=1), -(merge // 2), axis=1)
    folding = np.tile(folding, int(np.ceil(cqt.shape[0] / bins_per_octave)))[:, : cqt.shape[0]].astype(np.float32)
    chroma = folding @ cqt
    chroma[chroma < 0] = 0.0
    return normalize(chroma, norm=np.inf, axis=0)


# ------------------------------------------------------------------------------------------
# Onsets


def onset_strength_multi(
    log_spectrogram: np.ndarray,
    channels: Sequence[int] | None = None,
    center: bool = True,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> np.ndarray:
    """Spectral flux (lag 1, half-wave rectified, mean over bands) of a log spectrogram, one row
    per band range ``channels[i]:channels[i+1]`` (all bands when ``channels`` is None):
    ``librosa.onset.onset_strength_multi(S=log_spectrogram, channels=channels, center=center)``.

    ``center=True`` delays the flux by ``n_fft // (2 hop_length)`` frames as librosa does (for an
    ``S`` that was not centred) and cuts it to the spectrogram's length.
    """
    flux = np.maximum(0.0, log_spectrogram[:, 1:] - log_spectrogram[:, :-1])
    if channels is None:
        rows = flux.mean(axis=0, keepdims=True)
    else:
        rows = np.stack([flux[lo:hi].mean(axis=0) for lo, hi in zip(channels[:-1], channels[1:])])
    pad = 1 + (n_fft // (2 * hop_length) if center else 0)
    envelope = np.pad(rows, [(0, 0), (pad, 0)])
    return envelope[:, : log_spectrogram.shape[1]] if center else envelope


def onset_strength(log_spectrogram: np.ndarray, center: bool = True, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Onset strength envelope, one value per frame (``librosa.onset.onset_strength(S=...)``)."""
    return onset_strength_multi(log_spectrogram, None, center, n_fft, hop_length)[0]


def onset_strength_from_samples(y: np.ndarray, rate_hz: float, hop_length: int = 512, n_fft: int = 2048) -> np.ndarray:
    """``librosa.onset.onset_strength(y=y, sr=rate_hz, hop_length=hop_length)``: the flux of a
    128-band log-mel power spectrogram, centred like librosa's."""
    power = np.square(stft_magnitude(y, n_fft, hop_length))
    return onset_strength(power_to_db(melspectrogram(power, rate_hz)), center=True, n_fft=n_fft, hop_length=hop_length)


def peak_pick(x: np.ndarray, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float, wait: int) -> np.ndarray:
    """Indices of the peaks of ``x`` (``librosa.util.peak_pick``): a sample is a peak when it is
    the maximum of ``x[n - pre_max : n + post_max]``, at least ``delta`` above the mean of
    ``x[n - pre_avg : n + post_avg]`` (windows cut at the ends), and more than ``wait`` samples
    after the previous peak."""
    x = np.asarray(x)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    # Window n of the padded signal is x[n - pre_max : n + post_max] (-inf outside x).
    padded = np.concatenate((np.full(pre_max, -np.inf), x, np.full(post_max - 1, -np.inf)))
    window_max = np.lib.stride_tricks.sliding_window_view(padded, pre_max + post_max).max(axis=1)
    candidates = np.flatnonzero(x == window_max)
    cumulative = np.concatenate(([0.0], np.cumsum(x)))
    lo = np.maximum(0, candidates - pre_avg)
    hi = np.minimum(n, candidates + post_avg)
    averages = (cumulative[hi] - cumulative[lo]) / (hi - lo)
    candidates = candidates[x[candidates] >= averages + delta]
    peaks, next_allowed = [], 0
    for index in candidates:
        if index >= next_allowed:
            peaks.append(index)
            next_allowed = index + wait + 1
    return np.asarray(peaks, dtype=int)


def onset_detect(envelope: np.ndarray, rate_hz: float, hop_length: int = 512) -> np.ndarray:
    """Frames of the onsets in an onset strength envelope, with librosa's default peak picking
    (``librosa.onset.onset_detect(onset_envelope=envelope, units="frames")``)."""
    envelope = np.asarray(envelope)
    if not np.issubdtype(envelope.dtype, np.floating):
        envelope = envelope.astype(np.float32)
    if envelope.size == 0:
        return np.zeros(0, dtype=int)
    envelope = envelope - envelope.min()  # scaled to 0..1, so that delta is relative
    envelope /= envelope.max() + np.finfo(envelope.dtype).tiny
    if not envelope.any() or not np.all(np.isfinite(envelope)):
        return np.zeros(0, dtype=int)

    def frames(seconds: float, extra: int = 0) -> int:
        return int(np.ceil(seconds * rate_hz // hop_length + extra))

    return peak_pick(
        envelope, pre_max=frames(0.03), post_max=frames(0.0, 1), pre_avg=frames(0.10), post_avg=frames(0.10, 1), delta=0.07, wait=frames(0.03)
    )


# ------------------------------------------------------------------------------------------
# Tempo


def tempogram(envelope: np.ndarray, win_length: int = 384) -> np.ndarray:
    """Autocorrelation tempogram (lag × frame) of an onset envelope, windows centred and
    Hann-weighted, each frame scaled to a maximum of 1 (``librosa.feature.tempogram``)."""
    n = envelope.shape[-1]
    padded = np.pad(envelope, win_length // 2, mode="linear_ramp", end_values=0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length)[:n]  # (n, win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    n_pad = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    spectrum = np.fft.rfft(frames * window, n=n_pad, axis=-1)
    autocorrelation = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_pad, axis=-1)[:, :win_length]
    return normalize(autocorrelation.T, norm=np.inf, axis=0)


def tempo(envelope: np.ndarray, rate_hz: float, hop_length: int = 512, start_bpm: float = 120.0, std_bpm: float = 1.0, max_tempo_bpm: float = 320.0) -> float:
    """Global tempo (bpm) of an onset envelope: the mean autocorrelation tempogram (8 s windows)
    weighted by a log-normal prior around ``start_bpm`` (``librosa.feature.tempo(onset_envelope=...)[0]``)."""
    win_length = int(time_to_frames(8.0, rate_hz, hop_length))
    mean_tempogram = tempogram(np.asarray(envelope, dtype=float), win_length).mean(axis=-1)
    bpms = np.full(win_length, np.inf)
    bpms[1:] = 60.0 * rate_hz / (hop_length * np.arange(1.0, win_length))
    with np.errstate(divide="ignore"):
        log_prior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    log_prior[: int(np.argmax(bpms < max_tempo_bpm))] = -np.inf
    return float(bpms[int(np.argmax(np.log1p(1e6 * mean_tempogram) + log_prior))])
