"""The shared music facts: pitch classes, key names, the typed key and its one decoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from music2video.music import KK_MAJOR, KK_MINOR, PITCH_CLASSES, Key, estimate_key, key_name


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
    profile = KK_MAJOR if mode == "major" else KK_MINOR
    estimate = estimate_key(np.roll(profile, tonic))
    assert estimate is not None
    assert estimate.key == Key(tonic=tonic, mode=mode, confidence=1.0)
    assert estimate.ranked[0][0] == key_name(tonic, mode)
    assert (estimate.major_strength > 0.5) == (mode == "major")


def test_estimate_key_hears_nothing_in_silence_or_flat_chroma():
    assert estimate_key(np.zeros(12)) is None
    assert estimate_key(np.ones(12)) is None
