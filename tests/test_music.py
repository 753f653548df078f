"""The shared music facts: pitch classes, key names, the typed key and its one decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from music2video.music import MAJOR_PROFILE, MINOR_PROFILE, PITCH_CLASSES, Key, estimate_key, key_name


def test_pitch_classes_and_key_names():
    assert len(PITCH_CLASSES) == 12 and len(set(PITCH_CLASSES)) == 12
    assert PITCH_CLASSES[0] == "C" and PITCH_CLASSES[9] == "A"
    assert key_name(9, "minor") == "A minor"
    assert key_name(15, "major") == "Eb major"  # pitch classes wrap at the octave


def test_key_round_trips_through_description_features():
    key = Key(tonic=9, mode="minor", confidence=0.8)
    assert key.name == "A minor"
    features = {**key.features(), "key_clarity": 0.8}
    assert features["key_tonic"] == 9.0 and features["key_mode_major"] == 0.0
    assert Key.from_features(features) == key


def test_key_from_features_tolerates_what_listeners_write():
    assert Key.from_features({"energy": 0.5}) is None
    assert Key.from_features({"key_tonic": math.nan, "key_mode_major": 1.0}) is None
    # Rounded floats, a tonic past B, a fractional mode and no clarity still decode.
    key = Key.from_features({"key_tonic": 12.2, "key_mode_major": 0.7})
    assert key == Key(tonic=0, mode="major", confidence=0.0)


def test_key_rejects_out_of_range_values():
    with pytest.raises(ValidationError):
        Key(tonic=12, mode="major", confidence=0.5)
    with pytest.raises(ValidationError):
        Key(tonic=0, mode="dorian", confidence=0.5)
    with pytest.raises(ValidationError):
        Key(tonic=0, mode="major", confidence=1.5)


@pytest.mark.parametrize("tonic", [0, 2, 9, 11])
@pytest.mark.parametrize("mode", ["major", "minor"])
def test_estimate_key_finds_each_profiles_key(tonic, mode):
    profile = MAJOR_PROFILE if mode == "major" else MINOR_PROFILE
    estimate = estimate_key(np.roll(profile, tonic))
    assert estimate is not None
    assert estimate.key == Key(tonic=tonic, mode=mode, confidence=1.0)
    assert estimate.ranked[0][0] == key_name(tonic, mode)
    assert (estimate.major_strength > 0.5) == (mode == "major")


def test_estimate_key_hears_nothing_in_silence_or_flat_chroma():
    assert estimate_key(np.zeros(12)) is None
    assert estimate_key(np.ones(12)) is None


# --------------------------------------------------------------------------------------------
# Mood

from music2video.music import MOOD_CUES, Mood, mood_from_cues, quadrant  # noqa: E402

AVERAGE_CUES = {
    "loudness_dbfs": -26.0, "tempo_bpm": 120.0, "onset_density_hz": 2.0, "spectral_flux": 0.93,
    "major_strength": 0.5, "key_clarity": 0.7, "brightness": 0.35, "spectral_flatness_db": -34.0,
}  # fmt: skip


def test_mood_is_typed_and_in_range():
    mood = mood_from_cues(AVERAGE_CUES)
    assert isinstance(mood, Mood)
    assert -1.0 <= mood.valence <= 1.0 and -1.0 <= mood.arousal <= 1.0
    assert mood.quadrant == quadrant(mood.valence, mood.arousal)
    assert len(mood.words) == 3 and set(mood.cues) == set(MOOD_CUES)
    assert Mood.model_validate_json(mood.model_dump_json()) == mood


@pytest.mark.parametrize(
    ("cue", "low", "high"),
    [("loudness_dbfs", -40.0, -15.0), ("tempo_bpm", 70.0, 170.0), ("onset_density_hz", 1.0, 6.0)],
)
def test_arousal_rises_with_its_cues(cue, low, high):
    quiet = mood_from_cues({**AVERAGE_CUES, cue: low})
    loud = mood_from_cues({**AVERAGE_CUES, cue: high})
    assert loud.arousal > quiet.arousal


def test_spectral_flux_never_lowers_arousal():
    assert mood_from_cues({**AVERAGE_CUES, "spectral_flux": 2.0}).arousal >= mood_from_cues({**AVERAGE_CUES, "spectral_flux": 0.7}).arousal


# Cues as the structure stage measures them on the dev set's General MIDI renders (bench_mood.py):
# a 6/8 ballad's arpeggios have more spectral flux than a metal groove, which is what made every
# render read excited while flux was scaled on orchestral recordings alone.
SLOW_BALLAD_CUES = {
    "loudness_dbfs": -25.0, "tempo_bpm": 66.0, "onset_density_hz": 2.0, "spectral_flux": 1.9,
    "major_strength": 1.0, "key_clarity": 0.85, "brightness": 0.4, "spectral_flatness_db": -33.0,
}  # fmt: skip
FAST_LOUD_CUES = {
    "loudness_dbfs": -19.0, "tempo_bpm": 170.0, "onset_density_hz": 5.5, "spectral_flux": 1.1,
    "major_strength": 0.6, "key_clarity": 0.75, "brightness": 0.55, "spectral_flatness_db": -22.0,
}  # fmt: skip


def test_a_slow_ballad_reads_calm_and_a_fast_loud_song_excited():
    ballad, fast = mood_from_cues(SLOW_BALLAD_CUES), mood_from_cues(FAST_LOUD_CUES)
    assert ballad.arousal < 0 < fast.arousal
    assert ballad.quadrant in {"calm/serene", "sad/melancholic"}


@pytest.mark.parametrize(
    "cues",
    [
        {"loudness_dbfs": -120.0, "onset_density_hz": 0.0, "spectral_flux": 0.0, "brightness": 0.0, "spectral_flatness_db": -100.0},
        {"loudness_dbfs": 0.0, "tempo_bpm": 400.0, "onset_density_hz": 1e4, "spectral_flux": 1e3, "spectral_flatness_db": 0.0},
    ],
)
def test_cues_of_silence_or_noise_stay_in_range(cues):
    mood = mood_from_cues(cues)
    assert -1.0 <= mood.valence <= 1.0 and -1.0 <= mood.arousal <= 1.0
    assert Mood.model_validate_json(mood.model_dump_json()) == mood


@pytest.mark.parametrize(
    ("cue", "worse", "better"),
    [("major_strength", 0.0, 1.0), ("key_clarity", 0.3, 0.9), ("brightness", 0.1, 0.6), ("spectral_flatness_db", -15.0, -45.0)],
)
def test_valence_rises_with_mode_clarity_brightness_and_falls_with_roughness(cue, worse, better):
    assert mood_from_cues({**AVERAGE_CUES, cue: better}).valence > mood_from_cues({**AVERAGE_CUES, cue: worse}).valence


def test_no_cue_weighs_against_the_literature():
    from music2video import music

    assert all(weight > 0 for weight in music.AROUSAL_WEIGHTS.values())
    assert all((weight < 0) == (cue == "spectral_flatness_db") for cue, weight in music.VALENCE_WEIGHTS.items())


def test_missing_cues_count_as_average():
    partial = {k: v for k, v in AVERAGE_CUES.items() if k not in ("tempo_bpm", "major_strength", "key_clarity")}
    assert -1.0 <= mood_from_cues(partial).valence <= 1.0
    assert mood_from_cues({}).quadrant in {"happy/excited", "tense/angry", "sad/melancholic", "calm/serene"}
