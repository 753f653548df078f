"""Structure stage, judged against songs whose tempo, bars and sections are known."""

from __future__ import annotations

import json
import math

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from music2video.artifacts import Analysis
from music2video.decode import ANALYSIS_RATE_HZ, decode_audio, load_audio
from music2video.demo import LEAD_IN_S, synthesize_demo_song
from music2video.beat_grid import FALLBACK_TEMPO_BPM
from music2video.structure import CURVE_RATE_HZ, analyze_structure

BEAT_WINDOW_S = 0.07  # mir_eval's default F-measure window


def _f_measure(reference_s, estimated_s) -> float:
    return mir_eval.beat.f_measure(np.asarray(reference_s), np.asarray(estimated_s), f_measure_threshold=BEAT_WINDOW_S)


def _assert_well_formed(analysis: Analysis) -> None:
    """What every analysis promises, whatever the audio."""
    duration = analysis.duration_s
    sections = analysis.sections
    assert sections[0].start_s == 0.0 and sections[-1].end_s == duration
    for previous, section in zip(sections, sections[1:]):
        assert section.start_s == previous.end_s and section.start_s > previous.start_s
    assert [s.index for s in sections] == list(range(len(sections)))
    assert all(0.0 <= s.energy <= 1.0 for s in sections)
    # Every section after the first starts on a downbeat.
    assert all(s.start_s in analysis.downbeats_s for s in sections[1:])
    assert set(analysis.downbeats_s) <= set(analysis.beats_s)
    assert analysis.beats_s == sorted(analysis.beats_s) and all(0 <= b < duration for b in analysis.beats_s)
    assert analysis.beats_per_bar in (3, 4) and analysis.tempo_bpm > 0
    samples = math.ceil(duration * CURVE_RATE_HZ)
    assert analysis.curve_rate_hz == CURVE_RATE_HZ
    for curve in (analysis.energy, analysis.brightness, analysis.onset_strength):
        assert len(curve) == samples and all(0.0 <= v <= 1.0 for v in curve)
    Analysis.model_validate_json(analysis.model_dump_json())  # round-trips through JSON


# --------------------------------------------------------------------------------------------
# The demo song


def test_demo_song_tempo_and_beats(demo_song, demo_analysis):
    _, truth = demo_song
    assert demo_analysis.tempo_bpm == pytest.approx(truth.tempo_bpm, rel=0.02)
    assert _f_measure(truth.beats_s, demo_analysis.beats_s) >= 0.9


def test_demo_song_downbeats_come_from_the_music_not_from_the_first_beat(demo_song, demo_analysis):
    _, truth = demo_song
    assert demo_analysis.beats_per_bar == 4
    assert _f_measure(truth.downbeats_s, demo_analysis.downbeats_s) >= 0.9
    # The song opens with a one-beat pickup: counting bars from the first beat would be wrong.
    first_beat = demo_analysis.beats_s[0]
    assert first_beat == pytest.approx(LEAD_IN_S, abs=BEAT_WINDOW_S)
    assert first_beat not in demo_analysis.downbeats_s
    assert demo_analysis.downbeats_s[0] == pytest.approx(truth.downbeats_s[0], abs=BEAT_WINDOW_S)


def test_demo_song_sections_match_the_truth_within_one_bar(demo_song, demo_analysis):
    _, truth = demo_song
    bar_s = truth.beats_per_bar * 60.0 / truth.tempo_bpm
    estimated = demo_analysis.sections
    assert len(estimated) == len(truth.sections)
    for section, (start_s, end_s, _, _) in zip(estimated, truth.sections):
        assert abs(section.start_s - start_s) <= bar_s
        assert abs(section.end_s - end_s) <= bar_s


def test_demo_song_repeated_sections_share_labels_and_distinct_ones_differ(demo_song, demo_analysis):
    _, truth = demo_song
    labels = [s.label for s in demo_analysis.sections]
    true_labels = [label for _, _, label, _ in truth.sections]
    for i in range(len(labels)):
        for j in range(len(labels)):
            assert (labels[i] == labels[j]) == (true_labels[i] == true_labels[j]), (labels, true_labels)
    assert labels[0] == "A"  # letters in order of appearance


def test_demo_song_roles_and_energy(demo_song, demo_analysis):
    _, truth = demo_song
    assert [s.role for s in demo_analysis.sections] == [role for _, _, _, role in truth.sections]
    by_role = {}
    for section in demo_analysis.sections:
        by_role.setdefault(section.role, []).append(section)
    chorus, verse, intro = by_role["chorus"][0], by_role["verse"][0], by_role["intro"][0]
    assert chorus.energy == pytest.approx(1.0, abs=0.01)
    assert chorus.energy > verse.energy > intro.energy

    def mean(curve, section):
        return demo_analysis.curve_mean(curve, section.start_s, section.end_s)

    assert mean(demo_analysis.brightness, chorus) > mean(demo_analysis.brightness, verse)
    assert mean(demo_analysis.energy, chorus) > mean(demo_analysis.energy, verse) > mean(demo_analysis.energy, intro)


def test_demo_song_analysis_is_well_formed_and_small(demo_analysis):
    _assert_well_formed(demo_analysis)
    assert demo_analysis.warnings == []
    assert len(demo_analysis.model_dump_json()) < 100_000


def test_beats_follow_a_drifting_tempo(tmp_path):
    path = tmp_path / "drift.wav"
    truth = synthesize_demo_song(path, duration_s=40.0, tempo_bpm=116.0, tempo_end_bpm=128.0, seed=5)
    analysis = analyze_structure(load_audio(path, ANALYSIS_RATE_HZ), ANALYSIS_RATE_HZ)
    assert _f_measure(truth.beats_s, analysis.beats_s) >= 0.9
    assert _f_measure(truth.downbeats_s, analysis.downbeats_s) >= 0.9
    _assert_well_formed(analysis)
    # Sections of four bars are still found, within a bar, and their repeats recognised.
    bar_s = 4 * 60.0 / truth.tempo_bpm
    assert len(analysis.sections) == len(truth.sections)
    for section, (start_s, _, _, _) in zip(analysis.sections, truth.sections):
        assert abs(section.start_s - start_s) <= bar_s
    assert [s.label for s in analysis.sections] == [label for _, _, label, _ in truth.sections]


def _waltz(duration_s: float, tempo_bpm: float, rate_hz: int = ANALYSIS_RATE_HZ, pickup_beats: int = 2):
    """A 3/4 song starting with a two-beat pickup: bass note and chord on 1, lighter chords on
    2 and 3, the harmony changing every bar. Returns (samples, beats_s, downbeats_s)."""
    beat_s = 60.0 / tempo_bpm
    samples = np.zeros(int(duration_s * rate_hz))
    beats_s = 0.25 + beat_s * np.arange(int((duration_s - 1.0) / beat_s))
    roots_hz = [110.0, 146.8, 164.8, 110.0, 130.8, 146.8, 164.8, 123.5]

    def put(time_s, signal):
        start = int(time_s * rate_hz)
        end = min(len(samples), start + len(signal))
        samples[start:end] += signal[: end - start]

    for k, time_s in enumerate(beats_s):
        bar, position = divmod(k - pickup_beats, 3)
        root_hz = roots_hz[bar % len(roots_hz)]
        if position == 0:
            t = np.arange(int(0.3 * rate_hz)) / rate_hz
            put(time_s, np.sin(2 * np.pi * (50 + 80 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.1))
            t = np.arange(int(3 * beat_s * rate_hz)) / rate_hz
            put(time_s, 0.3 * sum(np.sin(2 * np.pi * root_hz * m * t) / m for m in (1, 2, 3, 4)) * np.exp(-t / 0.8))
        else:
            t = np.arange(int(0.9 * beat_s * rate_hz)) / rate_hz
            chord = sum(np.sin(2 * np.pi * 2 * root_hz * ratio * t) for ratio in (1, 1.26, 1.5))
            put(time_s, 0.15 * chord * np.exp(-t / 0.2))
    samples = (0.5 * samples / np.abs(samples).max()).astype(np.float32)
    return samples, beats_s, beats_s[pickup_beats::3]


def test_three_four_time_is_recognised(tmp_path):
    samples, beats_s, downbeats_s = _waltz(40.0, 150.0)
    analysis = analyze_structure(samples, ANALYSIS_RATE_HZ)
    assert analysis.beats_per_bar == 3
    assert _f_measure(beats_s, analysis.beats_s) >= 0.9
    assert _f_measure(downbeats_s, analysis.downbeats_s) >= 0.9
    _assert_well_formed(analysis)


# --------------------------------------------------------------------------------------------
# Audio without music


def test_silence_falls_back_to_a_steady_grid_with_a_warning(tmp_path):
    source = tmp_path / "silence.wav"
    sf.write(source, np.zeros((5 * 44100, 2), np.float32), 44100)
    wav = tmp_path / "audio.wav"
    assert decode_audio(source, wav).is_silent

    analysis = analyze_structure(load_audio(wav, ANALYSIS_RATE_HZ), ANALYSIS_RATE_HZ)

    assert analysis.tempo_bpm == FALLBACK_TEMPO_BPM and analysis.beats_per_bar == 4
    assert analysis.beats_s == pytest.approx(list(np.arange(0, 5.0, 0.5)))
    assert analysis.downbeats_s == [0.0, 2.0, 4.0]
    assert len(analysis.sections) == 1 and analysis.sections[0].label == "A"
    assert any("no steady beat" in w for w in analysis.warnings)
    _assert_well_formed(analysis)
    assert max(analysis.energy) == 0.0


def test_noise_without_a_pulse_falls_back_to_a_grid(tmp_path):
    noise = (0.1 * np.random.default_rng(0).standard_normal(20 * ANALYSIS_RATE_HZ)).astype(np.float32)
    analysis = analyze_structure(noise, ANALYSIS_RATE_HZ)
    assert any("no steady beat" in w for w in analysis.warnings)
    assert len(analysis.sections) == 1  # steady noise has no structure either
    _assert_well_formed(analysis)


@pytest.mark.parametrize("duration_s", [1.0, 2.0, 4.0])
def test_short_audio_is_analysed(demo_song, duration_s):
    path, _ = demo_song
    samples = load_audio(path, ANALYSIS_RATE_HZ)
    excerpt = samples[int(9.0 * ANALYSIS_RATE_HZ) : int((9.0 + duration_s) * ANALYSIS_RATE_HZ)]
    analysis = analyze_structure(excerpt, ANALYSIS_RATE_HZ)
    assert analysis.duration_s == pytest.approx(duration_s)
    assert len(analysis.sections) == 1
    _assert_well_formed(analysis)


def test_progress_is_reported_to_the_end(demo_song):
    path, _ = demo_song
    calls = []
    samples = load_audio(path, ANALYSIS_RATE_HZ)[: 10 * ANALYSIS_RATE_HZ]
    analyze_structure(samples, ANALYSIS_RATE_HZ, progress=lambda done, total, message="": calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1]
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


# --------------------------------------------------------------------------------------------
# A long song


@pytest.mark.slow
def test_twenty_minute_song_decodes_and_analyses(demo_song, tmp_path):
    path, truth = demo_song
    song, rate = sf.read(path, dtype="float32")
    repeats = math.ceil(20 * 60 / truth.duration_s)
    long_path = tmp_path / "twenty minutes.wav"
    with sf.SoundFile(long_path, "w", samplerate=rate, channels=song.shape[1], subtype="PCM_16") as handle:
        for _ in range(repeats):
            handle.write(song)
    expected_s = repeats * len(song) / rate

    # How fast is benchmarks/bench_preview.py's job (--duration 1200): a test asserts no time.
    info = decode_audio(long_path, tmp_path / "audio.wav")
    analysis = analyze_structure(load_audio(tmp_path / "audio.wav", ANALYSIS_RATE_HZ), ANALYSIS_RATE_HZ)

    assert abs(info.duration_s - expected_s) < 0.05 and info.warnings == []
    _assert_well_formed(analysis)
    assert analysis.tempo_bpm == pytest.approx(truth.tempo_bpm, rel=0.02)
    assert len(analysis.sections) > repeats  # the repeated song's sections are found throughout
    assert len(json.dumps(analysis.model_dump(mode="json"))) < 1_000_000



def test_roles_of_a_pop_form():
    from music2video.structure import _guess_roles

    labels = ["A", "B", "C", "B", "C", "D", "C", "E"]
    energies = [0.3, 0.6, 1.0, 0.6, 1.0, 0.7, 1.0, 0.3]
    assert _guess_roles(labels, energies) == ["intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"]


def test_a_song_with_no_exact_repeats_is_not_all_bridges():
    """Varied riffs that never repeat exactly (a metal song) get at most one bridge."""
    from music2video.structure import _guess_roles

    labels = ["A", "B", "C", "D", "E", "F", "G"]
    energies = [0.5, 0.8, 1.0, 0.7, 0.98, 0.9, 0.4]
    roles = _guess_roles(labels, energies)
    assert roles.count("bridge") <= 1
    assert roles[0] == "intro" and roles[-1] == "outro"
    assert roles.count("chorus") >= 2  # the loudest parts, not one chorus among bridges


def test_long_edge_sections_are_not_intro_and_outro():
    """A song of two halves (verse, then a louder chorus) is not an intro and an outro."""
    from music2video.structure import _guess_roles

    assert _guess_roles(["A", "B"], [0.6, 1.0], [27.0, 16.0]) == ["verse", "chorus"]
    assert _guess_roles(["A", "B", "C"], [0.3, 1.0, 0.3], [5.0, 40.0, 5.0]) == ["intro", "chorus", "outro"]


def test_a_bridge_sits_between_choruses():
    from music2video.structure import _guess_roles

    # The last part is new and quieter, but nothing follows it: not a bridge.
    roles = _guess_roles(["A", "B", "A", "B", "C"], [0.6, 1.0, 0.6, 1.0, 0.5], [20.0, 20.0, 20.0, 20.0, 30.0])
    assert "bridge" not in roles and roles[-1] == "verse"
