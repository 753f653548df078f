"""The offline dsp listener on synthetic songs whose answers are known.

Songs are built in numpy (chord progressions, noise bursts, silence) together with hand-made
``Analysis`` and ``ShotPlan`` objects, so these tests depend on no other stage.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

from music2video.artifacts import Analysis, Descriptions, Section, Shot, ShotPlan  # noqa: E402
from music2video.listen import describe_dsp  # noqa: E402

SR_HZ = 22050
BEAT_S = 0.5  # 120 BPM

# Four-voice chords as MIDI notes (bass first): I-IV-V-I in C major, i-iv-V-i in A minor
# (the V of A minor is E major, with the G# leading tone).
C_MAJOR = [[48, 60, 64, 67], [53, 65, 69, 72], [55, 67, 71, 74], [48, 60, 64, 67]]
A_MINOR = [[45, 57, 60, 64], [50, 62, 65, 69], [52, 64, 68, 71], [45, 57, 60, 64]]


def midi_hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def chord(notes: list[int], duration_s: float, amplitude: float = 0.3) -> np.ndarray:
    """A chord of harmonic tones (three partials each) with short fades."""
    t = np.arange(int(duration_s * SR_HZ)) / SR_HZ
    signal = sum(
        sum(np.sin(2 * np.pi * k * midi_hz(n) * t) / k for k in (1, 2, 3)) for n in notes
    )
    fade = np.minimum(1.0, np.minimum(t / 0.02, (duration_s - t) / 0.05))
    return (amplitude * signal * fade / len(notes)).astype(np.float32)


def progression(chords: list[list[int]], seconds: float) -> np.ndarray:
    """Chords of two beats each, repeated to fill ``seconds``."""
    pieces, total = [], 0.0
    while total < seconds - 1e-9:
        for notes in chords:
            pieces.append(chord(notes, 2 * BEAT_S))
            total += 2 * BEAT_S
    return np.concatenate(pieces)[: int(seconds * SR_HZ)]


def noise_bursts(seconds: float, per_second: float, amplitude: float, seed: int = 0) -> np.ndarray:
    """Short decaying white-noise hits: loud, bright and busy."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SR_HZ), dtype=np.float32)
    hit = (rng.standard_normal(int(0.06 * SR_HZ)) * np.exp(-np.linspace(0, 6, int(0.06 * SR_HZ)))).astype(np.float32)
    step = int(SR_HZ / per_second)
    for start in range(0, len(out) - len(hit), step):
        out[start : start + len(hit)] += amplitude * hit
    return out


def sustained_tone(seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * SR_HZ)) / SR_HZ
    return (amplitude * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


def make_song(parts: list[tuple[str, np.ndarray]], shot_s: float = 4.0) -> tuple[np.ndarray, Analysis, ShotPlan]:
    """Samples, an Analysis with one section per part, and shots of ``shot_s`` seconds."""
    samples = np.concatenate([audio for _, audio in parts])
    duration = len(samples) / SR_HZ
    sections, shots, start = [], [], 0.0
    for index, (label, audio) in enumerate(parts):
        end = start + len(audio) / SR_HZ
        sections.append(Section(index=index, start_s=start, end_s=end, label=label, role="verse", energy=0.5))
        cut = start
        while cut < end - 1e-6:
            shot_end = min(cut + shot_s, end)
            shots.append(
                Shot(
                    index=len(shots),
                    id=f"shot-{len(shots):03d}",
                    start_s=cut,
                    end_s=shot_end,
                    section_index=index,
                    cut="start" if not shots else ("section" if cut == start else "beat"),
                )
            )
            cut = shot_end
        start = end
    beats = [float(b) for b in np.arange(0.0, duration, BEAT_S)]
    analysis = Analysis(
        duration_s=duration,
        tempo_bpm=60.0 / BEAT_S,
        beats_per_bar=4,
        beats_s=beats,
        downbeats_s=beats[::4],
        sections=sections,
        curve_rate_hz=10.0,
        energy=[],
        brightness=[],
        onset_strength=[],
    )
    return samples, analysis, ShotPlan(duration_s=duration, shots=shots)


def assert_well_formed(result: Descriptions, analysis: Analysis, plan: ShotPlan) -> None:
    assert result.listener == "dsp" and result.model is None
    assert len(result.sections) == len(analysis.sections)
    assert len(result.shots) == len(plan.shots)
    for described, shot in zip(result.shots, plan.shots):
        assert (described.start_s, described.end_s) == (shot.start_s, shot.end_s)
    for described in [result.song, *result.sections, *result.shots]:
        assert described.text
        assert all(math.isfinite(value) for value in described.features.values())
        assert -1.0 <= described.features["valence"] <= 1.0
        assert -1.0 <= described.features["arousal"] <= 1.0
        assert 0.0 <= described.features["energy"] <= 1.0
        assert 0.0 <= described.features["brightness"] <= 1.0
        assert described.confidence is not None and 0.0 <= described.confidence <= 1.0
        for vocabulary in ("energy", "brightness", "texture", "mood"):
            labels = described.tags[vocabulary]
            assert labels and [l.score for l in labels] == sorted((l.score for l in labels), reverse=True)
    # The artifact survives a JSON round trip unchanged.
    assert Descriptions.model_validate_json(result.model_dump_json()) == result


@pytest.fixture(scope="module")
def keys_song():
    samples, analysis, plan = make_song([("A", progression(C_MAJOR, 12.0)), ("B", progression(A_MINOR, 12.0))])
    return samples, analysis, plan, describe_dsp(samples, SR_HZ, analysis, plan)


def test_key_estimate_finds_tonic_and_mode(keys_song):
    samples, analysis, plan, result = keys_song
    assert_well_formed(result, analysis, plan)
    c_major, a_minor = result.sections
    assert c_major.features["key_tonic"] == 0 and c_major.features["key_mode_major"] == 1.0
    assert a_minor.features["key_tonic"] == 9 and a_minor.features["key_mode_major"] == 0.0
    assert c_major.tags["key"][0].label == "C major" and a_minor.tags["mode"][0].label == "minor"
    assert "C major" in c_major.text and "A minor" in a_minor.text
    assert c_major.features["key_inherited"] == 0.0
    # Mode is the strongest valence cue: the major part reads happier than the minor one.
    assert c_major.features["valence"] > a_minor.features["valence"]


def test_short_shots_take_their_sections_key(keys_song):
    _, _, plan, result = keys_song
    for shot, described in zip(plan.shots, result.shots):
        assert described.features["key_inherited"] == 1.0  # 4 s shots are below KEY_MIN_SPAN_S
        assert described.features["key_tonic"] == (0 if shot.section_index == 0 else 9)
        assert "section key" in described.text
        assert described.features["tempo_bpm"] == pytest.approx(120.0, abs=0.5)


def test_loud_busy_part_reads_more_aroused_than_quiet_sustained_part():
    samples, analysis, plan = make_song(
        [("A", noise_bursts(8.0, per_second=6.0, amplitude=0.8)), ("B", sustained_tone(8.0, amplitude=0.05))]
    )
    calls = []
    result = describe_dsp(samples, SR_HZ, analysis, plan, progress=lambda d, t, m="": calls.append((d, t)))
    assert_well_formed(result, analysis, plan)
    loud, quiet = (section.features for section in result.sections)
    assert loud["energy"] > quiet["energy"]
    assert loud["loudness_db"] > quiet["loudness_db"] + 10
    assert loud["onset_density_hz"] > quiet["onset_density_hz"] + 3
    assert loud["arousal"] > quiet["arousal"]
    assert loud["brightness"] > quiet["brightness"]
    assert loud["harmonic_ratio"] < quiet["harmonic_ratio"]
    assert result.sections[0].tags["texture"][0].label == "busy"
    assert result.sections[1].tags["texture"][0].label == "sparse"
    assert result.sections[1].tags["energy"][0].label == "calm"
    assert calls[-1][0] == calls[-1][1]  # progress ends at done == total


def test_silence_and_tiny_shots_do_not_crash():
    samples, analysis, plan = make_song([("A", np.zeros(5 * SR_HZ, dtype=np.float32))], shot_s=0.3)
    result = describe_dsp(samples, SR_HZ, analysis, plan)
    assert_well_formed(result, analysis, plan)
    assert "key_tonic" not in result.song.features  # no key is heard in silence
    assert result.song.features["energy"] == 0.0
    assert "silent" in result.song.text.lower()


def test_very_short_input_and_stereo_are_handled():
    stereo = np.stack([chord(C_MAJOR[0], 0.4), chord(C_MAJOR[0], 0.4)])
    samples, analysis, plan = make_song([("A", stereo[0])], shot_s=0.1)
    for layout in (stereo, stereo.T):  # librosa's (channels, n) and soundfile's (n, channels)
        result = describe_dsp(layout, SR_HZ, analysis, plan)
        assert_well_formed(result, analysis, plan)
        assert "downmixed 2 channels" in " ".join(result.warnings)


def test_bad_inputs_are_named():
    samples, analysis, plan = make_song([("A", sustained_tone(1.0, 0.1))])
    with pytest.raises(ValueError, match="sample_rate_hz"):
        describe_dsp(samples, 0, analysis, plan)
    with pytest.raises(ValueError, match="shape"):
        describe_dsp(samples.reshape(1, 1, -1), SR_HZ, analysis, plan)
