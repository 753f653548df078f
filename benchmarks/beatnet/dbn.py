"""BeatNet as its authors decode it offline: the CRNN activations of ``music2video.beatnet``
through madmom's bar-pointer DBN (``DBNDownBeatTrackingProcessor``), ported to numpy.

Measurement only (``bench_beats.py --trackers beatnet-dbn``): on the dev set's design split it
scores below the tracker we ship (the activations plus the onset envelope through our DP,
metrical-level choice and downbeat model; see ``music2video.beatnet``), so the package does
not carry it. Ported from madmom 0.17 (BSD licence, © Sebastian Böck and the madmom
contributors): madmom.features.downbeats.DBNDownBeatTrackingProcessor and the BarStateSpace,
BarTransitionModel and RNNDownBeatTrackingObservationModel of madmom.features.beats_hmm, with
madmom's defaults; the sparse transitions are done as array shifts instead of madmom's
compiled Viterbi. Same beats and bar positions as madmom on the pieces tried
(tests/test_beatnet.py compares them when madmom is installed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FPS = 50.0
"""BeatNet's frame rate."""

MIN_BPM = 55.0
MAX_BPM = 215.0
NUM_TEMPI = 60
"""Tempo states, log-spaced beat intervals between MAX_BPM and MIN_BPM (madmom's defaults)."""
TRANSITION_LAMBDA = 100.0
"""Tempo changes from one beat to the next cost exp(-lambda * |ratio - 1|)."""
OBSERVATION_LAMBDA = 16
"""The first 1/16 of each beat interval is the beat (downbeat in the bar's first beat)."""
THRESHOLD = 0.05
"""Frames before the first and after the last activation above this are left out of the decode."""


@dataclass
class BarTrack:
    """Beats (s), their position in the bar (1 = downbeat) and the decoded beats per bar."""

    beats_s: np.ndarray
    positions: np.ndarray
    beats_per_bar: int
    log_probability: float


def _intervals(fps: float) -> np.ndarray:
    """Beat intervals in frames of the tempo states (madmom's BeatStateSpace)."""
    low, high = 60.0 * fps / MAX_BPM, 60.0 * fps / MIN_BPM
    intervals = np.arange(np.round(low), np.round(high) + 1)
    if NUM_TEMPI < len(intervals):
        count, intervals = NUM_TEMPI, np.array([])
        while len(intervals) < NUM_TEMPI:
            intervals = np.unique(np.round(np.logspace(np.log2(low), np.log2(high), count, base=2)))
            count += 1
    return intervals.astype(int)


def _viterbi_bar(log_obs: np.ndarray, beats_per_bar: int, fps: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Best state path of the bar-pointer HMM for ``beats_per_bar``.

    States: for each beat of the bar, for each tempo k, positions 0..interval_k - 1. Inside a
    beat the pointer moves one position per frame; from the last position of a beat it moves
    to the first of the next beat, changing tempo from j to k with ``exp(-lambda |k/j - 1|)``
    (rows normalised). ``log_obs`` is (frames, 3): no beat, beat, downbeat.

    Returns (position in the bar of each frame as beat index + fraction, observation class of
    each frame's state, log probability of the path).
    """
    intervals = _intervals(fps)
    n_tempi = len(intervals)
    per_beat = int(intervals.sum())
    n_states = beats_per_bar * per_beat
    first_in_beat = np.concatenate([[0], np.cumsum(intervals[:-1])])
    first = (np.arange(beats_per_bar)[:, None] * per_beat + first_in_beat[None, :]).ravel()  # (B*K,)
    last = first + np.tile(intervals, beats_per_bar) - 1
    previous_last = np.roll(last.reshape(beats_per_bar, n_tempi), 1, axis=0)  # beat b comes from beat b-1
    ratio = intervals[None, :] / intervals[:, None].astype(float)  # [from j, to k]
    transition = np.exp(-TRANSITION_LAMBDA * np.abs(ratio - 1.0))
    transition[transition <= np.spacing(1)] = 0.0
    transition /= transition.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_transition = np.log(transition)
    # position of every state within the bar, and its observation class
    fraction = np.concatenate([np.arange(i) / i for i in intervals])
    position = (np.arange(beats_per_bar)[:, None] + fraction[None, :]).ravel()
    border = 1.0 / OBSERVATION_LAMBDA
    pointer = np.zeros(n_states, dtype=np.intp)
    pointer[position % 1 < border] = 1
    pointer[position < border] = 2

    n_frames = len(log_obs)
    back = np.empty((n_frames, beats_per_bar * n_tempi), dtype=np.uint8)  # best previous tempo per first state
    score = np.full(n_states, -np.log(n_states))
    new = np.empty(n_states)
    for t in range(n_frames):
        # entering a beat: from the previous beat's last positions, at any tempo j
        candidates = score[previous_last][:, :, None] + log_transition[None, :, :]  # (B, j, k)
        best = candidates.argmax(axis=1)  # (B, k)
        new[1:] = score[:-1]
        new[first] = np.take_along_axis(candidates, best[:, None, :], axis=1)[:, 0, :].ravel()
        back[t] = best.ravel()
        new += log_obs[t][pointer]
        score, new = new, score
    state = int(np.argmax(score))
    log_probability = float(score[state])
    path = np.empty(n_frames, dtype=np.intp)
    first_slot = np.full(n_states, -1, dtype=np.intp)
    first_slot[first] = np.arange(len(first))
    previous_last_flat = previous_last  # (B, K)
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        slot = first_slot[state]
        if slot < 0:
            state -= 1
        else:
            state = int(previous_last_flat[slot // n_tempi, back[t, slot]])
    return position[path], pointer[path], log_probability


def decode_bars(acts: np.ndarray, meters: tuple[int, ...] = (3, 4), fps: float = FPS) -> BarTrack | None:
    """Beats and bar positions from (frames, 2) beat/downbeat activations, as madmom's
    ``DBNDownBeatTrackingProcessor(beats_per_bar=meters, fps=fps)`` decodes them: the meter
    whose best path is most probable; each beat at the activation peak inside the path's beat
    region. None when nothing is above ``THRESHOLD``."""
    acts = np.asarray(acts, dtype=np.float64)
    active = np.nonzero((acts >= THRESHOLD).any(axis=1))[0]
    if len(active) == 0:
        return None
    start = int(active.min())
    acts = acts[start : int(active.max()) + 1]
    with np.errstate(divide="ignore"):
        log_obs = np.log(
            np.column_stack([(1.0 - acts.sum(axis=1)) / (OBSERVATION_LAMBDA - 1), acts[:, 0], acts[:, 1]])
        )
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    for meter in meters:
        position, pointer, log_probability = _viterbi_bar(log_obs, meter, fps)
        if best is None or log_probability > best[0]:
            best = (log_probability, meter, position, pointer)
    assert best is not None
    log_probability, meter, position, pointer = best
    in_beat = (pointer >= 1).astype(np.int8)
    edges = np.nonzero(np.diff(in_beat))[0] + 1
    if in_beat[0]:
        edges = np.r_[0, edges]
    if in_beat[-1]:
        edges = np.r_[edges, len(in_beat)]
    if len(edges) == 0:
        return None
    frames = np.array([left + int(np.argmax(acts[left:right]) // 2) for left, right in edges.reshape(-1, 2)], dtype=int)
    return BarTrack(
        beats_s=(frames + start) / fps,
        positions=position[frames].astype(int) + 1,
        beats_per_bar=meter,
        log_probability=log_probability,
    )
