"""Key and mood in analysis.json, measured by the structure stage on real-ish signals."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

from test_listen_dsp import A_MINOR, C_MAJOR, SR_HZ, noise_bursts, progression  # noqa: E402

from music2video.artifacts import Analysis  # noqa: E402
from music2video.music import Key  # noqa: E402
from music2video.structure import analyze_structure  # noqa: E402

SECONDS = 16.0


@pytest.fixture(scope="module")
def c_major():
    return analyze_structure(progression(C_MAJOR, SECONDS), SR_HZ)


@pytest.fixture(scope="module")
def a_minor():
    return analyze_structure(progression(A_MINOR, SECONDS), SR_HZ)


def test_key_and_mood_are_in_analysis_json(c_major, a_minor):
    assert c_major.musical_key.name == "C major" and a_minor.musical_key.name == "A minor"
    assert c_major.musical_key.confidence > 0.5
    loaded = Analysis.model_validate_json(c_major.model_dump_json())
    assert loaded.musical_key == c_major.musical_key and loaded.mood == c_major.mood
    assert loaded.schema_version == 2 and isinstance(loaded.key, str)  # ``key`` stays the artifact hash


def test_major_reads_happier_than_minor(c_major, a_minor):
    assert c_major.mood.valence > a_minor.mood.valence


def test_louder_reads_more_aroused():
    chords = progression(C_MAJOR, SECONDS)
    quiet = analyze_structure(0.1 * chords, SR_HZ).mood
    loud = analyze_structure(chords, SR_HZ).mood
    assert loud.arousal > quiet.arousal


def test_denser_faster_hits_read_more_aroused():
    chords = 0.5 * progression(C_MAJOR, SECONDS)
    sparse = analyze_structure(chords + noise_bursts(SECONDS, per_second=2.0, amplitude=0.3), SR_HZ).mood
    dense = analyze_structure(chords + noise_bursts(SECONDS, per_second=8.0, amplitude=0.3), SR_HZ).mood
    assert dense.cues["onset_density_hz"] > sparse.cues["onset_density_hz"]
    assert dense.arousal > sparse.arousal


def test_silence_has_no_key():
    analysis = analyze_structure(np.zeros(int(8 * SR_HZ), dtype=np.float32), SR_HZ)
    assert analysis.musical_key is None
    # Silence has no cue to measure: the mood is the prior's, finite and in range.
    assert analysis.mood is not None and analysis.mood.cues == {}
    assert -1.0 <= analysis.mood.arousal <= 1.0 and -1.0 <= analysis.mood.valence <= 1.0


def test_version_1_analysis_still_loads(c_major):
    old = c_major.model_dump(exclude={"musical_key", "mood"})
    old["schema_version"] = 1
    loaded = Analysis.model_validate(old)
    assert loaded.musical_key is None and loaded.mood is None and Key.from_features({}) is None
