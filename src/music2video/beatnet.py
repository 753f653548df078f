"""BeatNet's beat and downbeat network in numpy: no torch, no madmom, nothing compiled at run time.

BeatNet (Heydari, Cwitkowitz and Duan, ISMIR 2021; https://github.com/mjhydri/BeatNet) is a
small causal CRNN: per 20 ms frame of a log-filtered spectrogram and its positive difference
(madmom's features), a Conv1d(1, 2, 10) over frequency, max-pool 2, a linear layer to 150, a
two-layer LSTM(150) and a linear layer to three classes (beat, downbeat, no beat), softmaxed.
Its offline mode decodes the activations with madmom's bar-pointer DBN (Krebs, Böck and
Widmer 2015/Böck et al. 2016).

Here the network is ported to numpy:

* ``log_filtered_features``: madmom's ``FramedSignal`` (frames centred on ``i * hop``, zero
  padded), Hann-windowed FFT of the frame size, ``LogarithmicFilterbank`` (24 bands per
  octave, 30 Hz - 17 kHz, area-normalised triangles), ``log10(1 + x)`` and the positive
  difference to the frame ``diff_frames`` back, stacked (136 + 136 = 272 values per frame).
  Checked against madmom's processors in ``tests/test_beatnet.py``.
* ``activations``: the mean of the network's forward on those features with each of
  BeatNet's three sets of weights (models 1, 2 and 3, CC BY 4.0, converted by
  ``benchmarks/beatnet/convert_weights.py`` to ``data/beatnet/beatnet_model{1,2,3}.npz``).
  Each model was trained with one data set held out (model 3 never heard the Rock Corpus,
  model 1 never GTZAN, model 2 never Ballroom); their mean is steadier than any one of them,
  as madmom's beat tracker averages its eight networks. Checked against the same network in
  torch.

The default tracker (``tracker = "hybrid"`` in ``beat_grid``) keeps the dsp tracker's onset
envelope and beat candidates and takes ``beat_activation`` as a second family's evidence for
their metrical level and phase.

The opt-in grid ``tracker = "beatnet"`` does not use madmom's bar-pointer DBN that
BeatNet's offline mode decodes with: ``beat_envelope`` adds the activation to the onset
envelope, and the dsp tracker's tempo, metrical-level choice, DP and downbeat model run on
that. Measured on the dev set's design split, the DBN (ported to numpy in
``benchmarks/beatnet/dbn.py``, same output as madmom's) gave beat F 0.816 and downbeat F 0.50;
this combination 0.924 and 0.888 (the dsp tracker 0.925 and 0.920).

The weights are © Mojtaba Heydari et al., licensed CC BY 4.0; see ``data/beatnet/README.md``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

RATE_HZ = 22_050
"""BeatNet's sample rate."""
HOP = int(20 * 0.001 * RATE_HZ)
"""441 samples: 50 frames per second (as BeatNet computes it)."""
FRAME = int(64 * 0.001 * RATE_HZ)
"""1411 samples: the analysis window (as BeatNet computes it)."""
FPS = RATE_HZ / HOP
BANDS_PER_OCTAVE = 24
FMIN_HZ = 30.0
FMAX_HZ = 17_000.0
A4_HZ = 440.0
DIFF_RATIO = 0.5
"""The difference is taken to the frame whose window overlaps this one at half its height."""

MODELS = (1, 2, 3)
"""BeatNet's three trained models, averaged (see the module's docstring and
``data/beatnet/README.md`` for the dev-set figures); each costs about 0.45 s of CPU for a
3-minute song (the shared features 0.36 s)."""


def weights_path(model: int) -> Path:
    """The converted weights of BeatNet's model 1, 2 or 3."""
    return Path(__file__).parent / "data" / "beatnet" / f"beatnet_model{model}.npz"

ATTRIBUTION = "BeatNet by Heydari, Cwitkowitz and Duan (2021), weights CC BY 4.0"
"""Said wherever a grid from tracker ``beatnet`` is shown (the report's tempo line)."""


# ------------------------------------------------------------------------------------------
# Features (madmom's, as BeatNet configures them)


@functools.lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    """(FRAME // 2 FFT bins, bands) triangular log-frequency filterbank, as madmom builds it."""
    n_bins = FRAME >> 1
    bin_hz = np.fft.fftfreq(n_bins * 2, 1.0 / RATE_HZ)[:n_bins]  # madmom's fft_frequencies
    left = np.floor(np.log2(FMIN_HZ / A4_HZ) * BANDS_PER_OCTAVE)
    right = np.ceil(np.log2(FMAX_HZ / A4_HZ) * BANDS_PER_OCTAVE)
    centres = A4_HZ * 2.0 ** (np.arange(left, right) / BANDS_PER_OCTAVE)
    centres = centres[np.searchsorted(centres, FMIN_HZ) :]
    centres = centres[: np.searchsorted(centres, FMAX_HZ, "right")]
    index = np.clip(bin_hz.searchsorted(centres), 1, n_bins - 1)
    index -= centres - bin_hz[index - 1] < bin_hz[index] - centres  # nearest bin
    bins = np.unique(index)
    bank = np.zeros((n_bins, len(bins) - 2))
    for band, (start, centre, stop) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        if stop - start < 2:
            centre, stop = start, start + 1
        shape = np.concatenate(
            [np.linspace(0, 1, centre - start, endpoint=False), np.linspace(1, 0, stop - centre, endpoint=False)]
        )
        shape /= shape.sum()
        bank[start:stop, band] = shape[: max(0, min(stop, n_bins) - start)]
    return bank.astype(np.float32)


def _diff_frames() -> int:
    window = np.hanning(FRAME)
    first = int(np.argmax(window > DIFF_RATIO * window.max()))
    return int(max(1, round((len(window) / 2 - first) / HOP)))


FEATURE_BLOCK_FRAMES = 2048
"""Frames transformed per block: bounds the temporaries to ~25 MB."""


def log_filtered_features(samples: np.ndarray) -> np.ndarray:
    """(frames, 272) float32 features of mono ``samples`` at ``RATE_HZ``: log filtered spectrogram
    and its positive difference, one frame per ``HOP`` samples centred on ``i * HOP``."""
    y = np.asarray(samples, dtype=np.float32)
    n_frames = int(np.ceil(len(y) / HOP))
    half = FRAME // 2
    padded = np.concatenate([np.zeros(half, np.float32), y, np.zeros(FRAME + HOP, np.float32)])
    window = np.hanning(FRAME).astype(np.float32)
    bank = _filterbank()
    spec = np.empty((n_frames, bank.shape[1]), np.float32)
    for first in range(0, n_frames, FEATURE_BLOCK_FRAMES):
        count = min(FEATURE_BLOCK_FRAMES, n_frames - first)
        block = padded[first * HOP : (first + count - 1) * HOP + FRAME]
        frames = np.lib.stride_tricks.sliding_window_view(block, FRAME)[::HOP]
        magnitude = np.abs(np.fft.rfft(frames * window, n=FRAME, axis=1)[:, : FRAME >> 1]).astype(np.float32)
        spec[first : first + count] = np.log10(1.0 + magnitude @ bank)
    lag = _diff_frames()
    diff = np.zeros_like(spec)
    diff[lag:] = np.maximum(spec[lag:] - spec[:-lag], 0.0)
    return np.hstack([spec, diff])


# ------------------------------------------------------------------------------------------
# The network


@functools.lru_cache(maxsize=len(MODELS))
def _weights(model: int) -> dict[str, np.ndarray]:
    with np.load(weights_path(model)) as stored:
        return {name: stored[name].astype(np.float32) for name in stored.files}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _lstm_layer(inputs: np.ndarray, w: dict[str, np.ndarray], layer: int) -> np.ndarray:
    """One unidirectional LSTM layer (torch's gate order i, f, g, o), zero initial state."""
    w_hh = np.ascontiguousarray(w[f"lstm_weight_hh_l{layer}"].T)
    gates_in = inputs @ w[f"lstm_weight_ih_l{layer}"].T + (w[f"lstm_bias_ih_l{layer}"] + w[f"lstm_bias_hh_l{layer}"])
    size = w_hh.shape[0]
    h = np.zeros(size, np.float32)
    c = np.zeros(size, np.float32)
    out = np.empty((len(inputs), size), np.float32)
    for t in range(len(inputs)):
        g = gates_in[t] + h @ w_hh
        s = _sigmoid(g[: 2 * size])
        c = s[size:] * c + s[:size] * np.tanh(g[2 * size : 3 * size])
        h = _sigmoid(g[3 * size :]) * np.tanh(c)
        out[t] = h
    return out


def network(features: np.ndarray, model: int) -> np.ndarray:
    """(frames, 3) softmax of BeatNet's CRNN (weights of ``model``) over (beat, downbeat, no
    beat) for (frames, 272) features."""
    w = _weights(model)
    kernel = w["conv1_weight"][:, 0, :]  # (2 channels, 10 taps)
    windows = np.lib.stride_tricks.sliding_window_view(features, kernel.shape[1], axis=1)  # (T, 263, 10)
    conv = np.maximum(np.einsum("tpk,ck->tcp", windows, kernel) + w["conv1_bias"][None, :, None], 0.0)
    pooled_len = conv.shape[2] // 2
    pooled = conv[:, :, : 2 * pooled_len].reshape(len(features), 2, pooled_len, 2).max(axis=3)
    x = pooled.reshape(len(features), -1) @ w["linear0_weight"].T + w["linear0_bias"]
    for layer in range(2):
        x = _lstm_layer(x.astype(np.float32), w, layer)
    logits = x @ w["linear_weight"].T + w["linear_bias"]
    logits -= logits.max(axis=1, keepdims=True)
    odds = np.exp(logits)
    return odds / odds.sum(axis=1, keepdims=True)


def activations(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """(frames at ``FPS``, 2) beat and downbeat activations of mono ``samples``: the mean over
    ``MODELS``."""
    y = np.asarray(samples, dtype=np.float32)
    if rate_hz != RATE_HZ:
        import soxr

        y = soxr.resample(y, rate_hz, RATE_HZ)
    features = log_filtered_features(y)
    return np.mean([network(features, model)[:, :2] for model in MODELS], axis=0)


# ------------------------------------------------------------------------------------------
# What the beat grid tracks

ONSET_WEIGHT = 3.0
"""Weight of the onset-strength envelope beside BeatNet's beat activation, each over its own
standard deviation, in the envelope the DP tracker follows. Chosen on the dev set's design
split (benchmarks/bench_beats.py, model 3): beat F / downbeat F with weight 1: 0.910 / 0.847,
2: 0.929 / 0.883, 3: 0.932 / 0.888, 4: 0.926 / 0.874, 6: 0.914 / 0.871 (the dsp tracker alone
0.914 / 0.904; model 1 with the activation alone 0.854), measured before the tracker's
harmonic choice among same-level tempo paths (de8a7a4); with it, weight 3 gives 0.924 / 0.888
and dsp 0.925 / 0.920 (all with model 3 alone, before the three models were averaged). The
activation knows where a beat is in syncopated grooves; the onsets
place it to the frame and keep the metrical-level evidence (uniform beats, weaker points
between them) that the activation, peaked only at the beats it believes in, lacks."""


def activations_at(samples: np.ndarray, rate_hz: int, times_s: np.ndarray) -> np.ndarray:
    """(len(times_s), 2) BeatNet's beat and downbeat activations at ``times_s``."""
    acts = activations(samples, rate_hz)
    frame_times_s = np.arange(len(acts)) / FPS
    return np.stack([np.interp(times_s, frame_times_s, acts[:, k]) for k in range(2)], axis=1)


def beat_activation(samples: np.ndarray, rate_hz: int, times_s: np.ndarray) -> np.ndarray:
    """BeatNet's beat + downbeat activation (the probability of a beat, 0..1) at ``times_s``."""
    return activations_at(samples, rate_hz, times_s).sum(axis=1)


def beat_envelope(samples: np.ndarray, rate_hz: int, times_s: np.ndarray, onset_envelope: np.ndarray) -> np.ndarray:
    """BeatNet's beat + downbeat activation at ``times_s`` plus ``ONSET_WEIGHT`` times the
    onset envelope sampled at the same times (each over its standard deviation)."""
    activation = beat_activation(samples, rate_hz, times_s)
    onset = np.asarray(onset_envelope, dtype=np.float64)
    return activation / (activation.std() + 1e-9) + ONSET_WEIGHT * onset / (onset.std() + 1e-9)
