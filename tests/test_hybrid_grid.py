"""The default ``hybrid`` beat tracker: the onset tracker's candidates, with a beat activation
from another family (BeatNet's network) as evidence of their metrical level and phase."""

from __future__ import annotations

import numpy as np
import pytest

from music2video.beat_grid import _detrend, _phase_shift, track_beats
from music2video.settings import GridSettings
from music2video.structure import analyze_structure

FRAME_RATE_HZ = 22_050 / 512
DURATION_S = 30.0
N_FRAMES = int(DURATION_S * FRAME_RATE_HZ)
BEATS_S = 0.5 + np.arange(0.0, DURATION_S - 1.0, 0.6)  # 100 bpm
OFF_BEATS_S = BEATS_S + 0.3


def _pulses(times_s: np.ndarray, width_frames: float = 1.0) -> np.ndarray:
    frames = np.arange(N_FRAMES)
    return np.exp(-0.5 * ((frames[:, None] - times_s[None, :] * FRAME_RATE_HZ) / width_frames) ** 2).sum(axis=1)


ACTIVATION = 0.8 * _pulses(BEATS_S, 1.5)
"""A beat activation as the network gives it: peaked on the beats it hears, low between."""


def test_the_activation_decides_the_level_that_the_onsets_leave_open():
    # Even eighth notes: every onset alike, so the onsets say 200 bpm as readily as 100.
    onsets = _pulses(BEATS_S) + _pulses(OFF_BEATS_S)
    onsets_only = track_beats(onsets, FRAME_RATE_HZ, onsets)
    with_activation = track_beats(onsets, FRAME_RATE_HZ, onsets, beat_activation=ACTIVATION)
    assert onsets_only is not None and with_activation is not None
    assert onsets_only[1] == pytest.approx(200.0, rel=0.02)  # the onsets' own choice: double time
    assert with_activation[1] == pytest.approx(100.0, rel=0.02)
    beats_s = with_activation[0] / FRAME_RATE_HZ
    assert np.median(np.min(np.abs(beats_s[:, None] - BEATS_S[None, :]), axis=1)) < 0.03


def test_a_backbeat_between_the_heard_beats_makes_the_two_feel_twice_as_fast():
    # A 200 bpm charleston: bass on 1 and 3, a hi-hat louder than them on 2 and 4. The network
    # fires on 1 and 3 alone (ACTIVATION), as BeatNet does on such two-feels.
    bass, hi_hat = _pulses(BEATS_S), 1.5 * _pulses(OFF_BEATS_S)
    onsets = bass + hi_hat
    without_bands = track_beats(onsets, FRAME_RATE_HZ, bass, beat_activation=ACTIVATION)
    two_feel = track_beats(onsets, FRAME_RATE_HZ, bass, beat_activation=ACTIVATION, high_envelope=hi_hat)
    assert without_bands is not None and two_feel is not None
    assert without_bands[1] == pytest.approx(100.0, rel=0.02)
    assert two_feel[1] == pytest.approx(200.0, rel=0.02)
    # A 100 bpm rock groove keeps its level: the eighth-note hi-hat plays on the beats too, as
    # loud, so the points between them carry less of it than the beats do.
    hi_hats = _pulses(BEATS_S) + 0.7 * _pulses(OFF_BEATS_S)
    rock = track_beats(bass + hi_hats, FRAME_RATE_HZ, bass, beat_activation=ACTIVATION, high_envelope=hi_hats)
    assert rock is not None and rock[1] == pytest.approx(100.0, rel=0.02)


def test_the_activation_decides_the_phase_that_the_onsets_leave_open():
    # Onsets alike on the beats and off them (no bass to tell): the activation says which are beats.
    onsets, _ = _detrend(_pulses(BEATS_S) + _pulses(OFF_BEATS_S), FRAME_RATE_HZ)
    low = np.zeros(N_FRAMES)
    tracked_off_beat = np.round(OFF_BEATS_S * FRAME_RATE_HZ).astype(np.int64)
    assert np.array_equal(_phase_shift(tracked_off_beat, onsets, low), tracked_off_beat)
    shifted_s = _phase_shift(tracked_off_beat, onsets, low, ACTIVATION) / FRAME_RATE_HZ
    assert np.max(np.abs(shifted_s - BEATS_S[1 : len(shifted_s) + 1])) < 0.03


def test_hybrid_is_the_default_and_dsp_stays_the_onsets_alone(tmp_path):
    from music2video.report import RunArtifacts, _key_figures

    assert GridSettings().tracker == "hybrid"
    rate = 22_050
    t = np.arange(int(0.1 * rate)) / rate
    click = (np.sin(2 * np.pi * 80 * t) * np.exp(-t / 0.03)).astype(np.float32)
    samples = np.zeros(int(DURATION_S * rate), np.float32)
    for k, time_s in enumerate(BEATS_S):
        start = int(time_s * rate)
        samples[start : start + len(click)] += click * (1.0 if k % 4 == 0 else 0.6)
    default = analyze_structure(samples, rate)
    onsets_only = analyze_structure(samples, rate, grid=GridSettings(tracker="dsp"))
    assert default.grid_source == "tracker:hybrid" and onsets_only.grid_source == "tracker:dsp"
    assert default.tempo_bpm == pytest.approx(100.0, rel=0.04)
    figures = _key_figures(RunArtifacts(root=tmp_path, analysis=default))
    tempo_note = next(note for name, _, note in figures if name == "tempo")
    assert "tracker:hybrid" in tempo_note and "BeatNet" in tempo_note and "CC BY 4.0" in tempo_note


def test_the_activation_outweighs_off_beat_chords_in_the_phase():
    # Ska: the off-beat chord is the loudest onset, in the low frequencies too (the bass moves
    # with it); the kick on the beat is softer. The network hears the beat where people tap.
    onsets, _ = _detrend(0.45 * _pulses(BEATS_S) + _pulses(OFF_BEATS_S), FRAME_RATE_HZ)
    low, _ = _detrend(0.5 * _pulses(BEATS_S) + 0.8 * _pulses(OFF_BEATS_S), FRAME_RATE_HZ)
    tracked_off_beat = np.round(OFF_BEATS_S * FRAME_RATE_HZ).astype(np.int64)
    assert np.array_equal(_phase_shift(tracked_off_beat, onsets, low), tracked_off_beat)  # onsets alone
    shifted_s = _phase_shift(tracked_off_beat, onsets, low, ACTIVATION) / FRAME_RATE_HZ
    assert np.max(np.min(np.abs(shifted_s[:, None] - BEATS_S[None, :]), axis=1)) < 0.03


def test_a_half_tempo_sequence_on_the_syncopated_eighths_moves_a_quarter_beat():
    # A charleston tracked at half tempo (one beat in two) on the eighth notes between the beats:
    # a third, a half or two thirds of its beat still miss the beats; a quarter lands on them.
    slow_off_beats_s = OFF_BEATS_S[::2]
    onsets, _ = _detrend(_pulses(BEATS_S) + _pulses(OFF_BEATS_S), FRAME_RATE_HZ)
    low = np.zeros(N_FRAMES)
    tracked = np.round(slow_off_beats_s * FRAME_RATE_HZ).astype(np.int64)
    shifted_s = _phase_shift(tracked, onsets, low, ACTIVATION) / FRAME_RATE_HZ
    distance = np.min(np.abs(shifted_s[:, None] - BEATS_S[None, :]), axis=1)
    assert np.max(distance) < 0.03


def test_loud_off_beats_the_network_hears_as_no_beat_do_not_count_for_a_faster_level():
    # House: an open hi-hat and the bass on every off-beat, as loud as the kick on the beat.
    from music2video.beat_grid import _Candidate, _score_level

    onsets, _ = _detrend(_pulses(BEATS_S) + _pulses(OFF_BEATS_S), FRAME_RATE_HZ)
    beats = np.round(BEATS_S * FRAME_RATE_HZ).astype(np.int64)
    onsets_only, with_activation = _Candidate(0.6 * FRAME_RATE_HZ, beats), _Candidate(0.6 * FRAME_RATE_HZ, beats)
    _score_level(onsets_only, onsets, FRAME_RATE_HZ)
    _score_level(with_activation, onsets, FRAME_RATE_HZ, ACTIVATION)
    assert onsets_only.subdivision > 0.5  # the onsets alone: the off-beats look like beats
    assert with_activation.subdivision < 0.1


def test_an_activation_that_hears_no_beat_leaves_the_level_to_the_onsets():
    # Where the network hears nothing (synthetic clicks, sound effects) its silence between the
    # beats is no evidence against a faster level: the even eighths below are 200 bpm beats.
    eighths_s = np.sort(np.concatenate([BEATS_S, OFF_BEATS_S]))
    onsets = _pulses(eighths_s)
    onsets_only = track_beats(onsets, FRAME_RATE_HZ, onsets)
    deaf = track_beats(onsets, FRAME_RATE_HZ, onsets, beat_activation=np.zeros(N_FRAMES))
    assert onsets_only is not None and deaf is not None
    assert deaf[1] == pytest.approx(onsets_only[1], rel=0.02)


def test_a_level_whose_every_other_beat_the_network_hears_less_is_too_fast():
    # A pop ballad: the network hears 0.9 on the beats and 0.4 on the eighth notes between
    # them; the double-tempo sequence (beats and eighths) looked more uniform on average.
    from music2video.beat_grid import _activation_contrast

    activation = 0.9 * _pulses(BEATS_S) + 0.4 * _pulses(OFF_BEATS_S)
    beats = np.round(BEATS_S * FRAME_RATE_HZ).astype(np.int64)
    double = np.sort(np.concatenate([beats, np.round(OFF_BEATS_S * FRAME_RATE_HZ).astype(np.int64)]))
    assert _activation_contrast(beats, activation) > _activation_contrast(double, activation) + 0.05


def _chords_every_bar() -> np.ndarray:
    chroma = np.full((12, N_FRAMES), 0.1)
    bar_of_frame = np.searchsorted(BEATS_S[::4] * FRAME_RATE_HZ, np.arange(N_FRAMES), side="right")
    for pitch_class in range(12):
        chroma[pitch_class, bar_of_frame % 12 == pitch_class] = 1.0
    return chroma


@pytest.mark.parametrize(
    "harmony",
    [None, "one chord", "a chord a bar"],
)
def test_the_network_leads_a_sequence_where_the_onsets_change_phase_halfway(harmony):
    # A ska verse (the off-beat chord and bass loudest) into a rock chorus (kick and snare on the
    # beat): the onsets' sequence sits on the off-beats in the verse and on the beats in the
    # chorus, and no one shift of it puts both halves on the beat. The network hears the beat
    # throughout, and the sequence it leads along the same tempo path wins, also where the
    # harmony cannot choose between the two (one chord: their bar clarity is a tie).
    chroma = {None: None, "one chord": np.ones((12, N_FRAMES)), "a chord a bar": _chords_every_bar()}[harmony]
    verse = BEATS_S < DURATION_S / 2
    onsets = 0.45 * _pulses(BEATS_S[verse]) + _pulses(OFF_BEATS_S[verse])
    onsets += _pulses(BEATS_S[~verse]) + 0.3 * _pulses(OFF_BEATS_S[~verse])
    low = 0.5 * _pulses(BEATS_S[verse]) + 0.8 * _pulses(OFF_BEATS_S[verse]) + _pulses(BEATS_S[~verse])
    tracked = track_beats(onsets, FRAME_RATE_HZ, low, chroma, beat_activation=ACTIVATION)
    assert tracked is not None
    beats_s = tracked[0] / FRAME_RATE_HZ
    assert tracked[1] == pytest.approx(100.0, rel=0.02)
    off_the_beat = np.min(np.abs(beats_s[:, None] - BEATS_S[None, :]), axis=1) > 0.05
    assert np.mean(off_the_beat) < 0.05, f"{np.sum(off_the_beat)} of {len(beats_s)} beats off the beat"
