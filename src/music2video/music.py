"""Music facts shared by every stage: pitch classes, keys, and mood on the valence/arousal plane.

This module is the one home of:

- ``PITCH_CLASSES`` and ``key_name``: how a key is written ("A minor", "Eb major").
- ``Key``: the typed key that ``analysis.json`` carries (tonic, mode, confidence), and the one
  decoder of the untyped ``key_tonic`` / ``key_mode_major`` floats that listeners put in a
  description's ``features`` (``Key.from_features``).
- ``estimate_key``: the Krumhansl–Schmuckler key of a mean chroma vector (Temperley's profiles).
- ``Mood``: the typed mood (valence, arousal, quadrant and words) and ``mood_from_cues``, which
  computes it from measured audio cues with weights fitted on labelled orchestral recordings
  and General MIDI renders of many styles (see ``AROUSAL_WEIGHTS``).

It imports nothing heavy: numpy and pydantic only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
"""Pitch-class names, index 0 = C; one spelling each (sharps for C#/F#, flats for the rest)."""

Mode = Literal["major", "minor"]

# Key profiles, tonic first (C major / C minor): Temperley's revision of the Krumhansl–Kessler
# probe-tone profiles (Temperley 1999, "What's key for key? The Krumhansl-Schmuckler
# key-finding algorithm reconsidered"), which weigh the fifth and the leading tone more and
# the other notes less. On the dev set's 31 pieces whose key the score states
# (benchmarks/bench_sections.py) they find 21 keys where Krumhansl & Kessler's (1982) find 10:
# those lean towards the key a fifth above, which every note's third partial feeds.
MAJOR_PROFILE = np.array([5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0])
MINOR_PROFILE = np.array([5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0])

_EPS = 1e-10


def key_name(tonic: int, mode: Mode) -> str:
    """``key_name(9, "minor") == "A minor"``; ``tonic`` is a pitch class (0 = C), taken mod 12."""
    return f"{PITCH_CLASSES[int(tonic) % 12]} {mode}"


# --------------------------------------------------------------------------------------------
# Key


class Key(BaseModel):
    """A song's (or a passage's) key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tonic: int = Field(ge=0, le=11, description="Pitch class of the tonic, 0 = C ... 11 = B.")
    mode: Mode
    confidence: float = Field(
        ge=0.0,
        le=1.0,
        description="Correlation of the chroma with the best key profile (Temperley 1999), clipped "
        "to 0..1: tonal music measures about 0.6-0.9, noise and atonal clusters below 0.3.",
    )

    @property
    def name(self) -> str:
        return key_name(self.tonic, self.mode)

    def features(self) -> dict[str, float]:
        """The key as the untyped floats of a ``SegmentDescription.features``."""
        return {"key_tonic": float(self.tonic), "key_mode_major": 1.0 if self.mode == "major" else 0.0}

    @classmethod
    def from_features(cls, features: dict[str, float]) -> Key | None:
        """The key in a description's ``features`` (``key_tonic``, ``key_mode_major`` and, when
        present, ``key_clarity``); None when no listener put one there."""
        tonic, major = features.get("key_tonic"), features.get("key_mode_major")
        if tonic is None or major is None or not (math.isfinite(tonic) and math.isfinite(major)):
            return None
        clarity = features.get("key_clarity", 0.0)
        return cls(
            tonic=int(round(tonic)) % 12,
            mode="major" if major >= 0.5 else "minor",
            confidence=min(max(clarity if math.isfinite(clarity) else 0.0, 0.0), 1.0),
        )


@dataclass(frozen=True)
class KeyEstimate:
    """Everything the Krumhansl–Schmuckler estimate measured; ``key`` is the typed result."""

    tonic: int  # pitch class, 0 = C
    major: bool
    clarity: float  # Pearson correlation of the best profile, -1..1
    major_strength: float  # 0..1: 1 when the best major profile fits much better than any minor one
    best_major: float  # best correlation among the 12 major keys
    best_minor: float  # best correlation among the 12 minor keys
    ranked: tuple[tuple[str, float], ...]  # best keys first, ("A minor", correlation)

    @property
    def mode(self) -> Mode:
        return "major" if self.major else "minor"

    @property
    def name(self) -> str:
        return key_name(self.tonic, self.mode)

    @property
    def key(self) -> Key:
        return Key(tonic=self.tonic, mode=self.mode, confidence=round(min(max(self.clarity, 0.0), 1.0), 4))

    @classmethod
    def from_key(cls, key: Key) -> KeyEstimate:
        """An estimate that says only what a stored ``Key`` says: the mode is taken as certain
        and the key's confidence stands for the correlations."""
        major = key.mode == "major"
        return cls(
            tonic=key.tonic,
            major=major,
            clarity=key.confidence,
            major_strength=1.0 if major else 0.0,
            best_major=key.confidence if major else 0.0,
            best_minor=0.0 if major else key.confidence,
            ranked=((key.name, key.confidence),),
        )


def estimate_key(chroma_mean: np.ndarray) -> KeyEstimate | None:
    """Krumhansl–Schmuckler key of a mean chroma vector (12 values, C first); None when there
    is no pitch content (all zero or flat)."""
    chroma_mean = np.asarray(chroma_mean, dtype=float)
    if chroma_mean.sum() <= _EPS or np.ptp(chroma_mean) <= _EPS:
        return None
    scores: list[tuple[float, int, bool]] = []
    for tonic in range(12):
        for major, profile in ((True, MAJOR_PROFILE), (False, MINOR_PROFILE)):
            # Rotating the profile right by ``tonic`` puts its tonic weight on that pitch class.
            r = float(np.corrcoef(chroma_mean, np.roll(profile, tonic))[0, 1])
            scores.append((r, tonic, major))
    scores.sort(key=lambda item: (-item[0], item[1], not item[2]))  # ties: lower tonic, major first
    best_r, tonic, major = scores[0]
    best_major = max(r for r, _, m in scores if m)
    best_minor = max(r for r, _, m in scores if not m)
    # Relative keys share their notes, so the two best correlations are often close; the
    # difference, scaled so 0.2 spans the whole range, says how sure the mode is.
    major_strength = float(np.clip(0.5 + 2.5 * (best_major - best_minor), 0.0, 1.0))
    ranked = tuple((key_name(t, "major" if m else "minor"), round(r, 4)) for r, t, m in scores[:3])
    return KeyEstimate(
        tonic=tonic,
        major=major,
        clarity=best_r,
        major_strength=major_strength,
        best_major=best_major,
        best_minor=best_minor,
        ranked=ranked,
    )


# --------------------------------------------------------------------------------------------
# Mood

Quadrant = Literal["happy/excited", "tense/angry", "sad/melancholic", "calm/serene"]

# The four quadrants of Russell's (1980) circumplex, named as the writer and the report use them,
# each with its centre (valence, arousal).
QUADRANTS: tuple[tuple[Quadrant, float, float], ...] = (
    ("happy/excited", 0.5, 0.5),
    ("tense/angry", -0.5, 0.5),
    ("sad/melancholic", -0.5, -0.5),
    ("calm/serene", 0.5, -0.5),
)

# Mood words placed on the circumplex: (word, valence, arousal), both -1..1.
MOOD_WORDS: tuple[tuple[str, float, float], ...] = (
    ("euphoric", 0.75, 0.8),
    ("joyful", 0.8, 0.4),
    ("playful", 0.5, 0.55),
    ("hopeful", 0.5, 0.1),
    ("tender", 0.55, -0.3),
    ("serene", 0.45, -0.7),
    ("dreamy", 0.1, -0.55),
    ("wistful", -0.2, -0.35),
    ("melancholic", -0.5, -0.45),
    ("sad", -0.75, -0.65),
    ("brooding", -0.5, 0.0),
    ("tense", -0.45, 0.5),
    ("angry", -0.75, 0.8),
    ("driving", 0.05, 0.75),
)
MOOD_WIDTH = 0.35  # circumplex distance at which a mood word's score falls to exp(-0.5)


def quadrant(valence: float, arousal: float) -> Quadrant:
    """The circumplex quadrant of a point; zero counts as positive."""
    if arousal >= 0:
        return "happy/excited" if valence >= 0 else "tense/angry"
    return "calm/serene" if valence >= 0 else "sad/melancholic"


def circumplex_scores(
    valence: float, arousal: float, points: tuple[tuple[str, float, float], ...] = MOOD_WORDS
) -> list[tuple[str, float]]:
    """Every point's word scored by closeness (a Gaussian of width ``MOOD_WIDTH``), best first."""
    scored = []
    for word, v, a in points:
        distance_sq = (valence - v) ** 2 + (arousal - a) ** 2
        scored.append((word, math.exp(-distance_sq / (2 * MOOD_WIDTH**2))))
    scored.sort(key=lambda item: -item[1])
    return scored


MoodCue = Literal[
    "loudness_dbfs",
    "tempo_bpm",
    "onset_density_hz",
    "spectral_flux",
    "brightness",
    "major_strength",
    "key_clarity",
    "spectral_flatness_db",
]
MOOD_CUES: tuple[MoodCue, ...] = (
    "loudness_dbfs",  # RMS level of the audible frames, dBFS
    "tempo_bpm",  # beats per minute of the tracked beat
    "onset_density_hz",  # detected note onsets per second
    "spectral_flux",  # mean onset strength: rise of the log-mel spectrum per frame, dB (librosa)
    "brightness",  # loudness-weighted spectral centroid, 0 at 500 Hz .. 1 at 6 kHz (log scale)
    "major_strength",  # 0..1 from the key estimate: 1 = clearly major, 0 = clearly minor
    "key_clarity",  # correlation of the chroma with the best key profile, -1..1 (tonal clarity)
    "spectral_flatness_db",  # mean spectral flatness of the audible frames, dB: noisy, rough, distorted sound is flatter
)
"""The audio cues a mood is computed from, in the units ``mood_from_cues`` expects."""

BRIGHTNESS_LOW_HZ = 500.0  # spectral centroid that maps to brightness 0 (log scale)
BRIGHTNESS_HIGH_HZ = 6000.0  # spectral centroid that maps to brightness 1


def brightness_from_centroid(centroid_hz: float) -> float:
    """0 at ``BRIGHTNESS_LOW_HZ``, 1 at ``BRIGHTNESS_HIGH_HZ``, logarithmic between, clipped."""
    if not centroid_hz > BRIGHTNESS_LOW_HZ:
        return 0.0
    return float(min(math.log(centroid_hz / BRIGHTNESS_LOW_HZ) / math.log(BRIGHTNESS_HIGH_HZ / BRIGHTNESS_LOW_HZ), 1.0))


def spectral_flatness_db(power: np.ndarray) -> np.ndarray:
    """Per frame (column of a power spectrogram), geometric over arithmetic mean of the power,
    in dB: 0 for white noise, about -30 to -50 dB for clean tonal music; distortion, noise and
    dense clusters raise it."""
    geometric = np.exp(np.mean(np.log(power + 1e-10), axis=0))
    return 10 * np.log10(geometric / (power.mean(axis=0) + 1e-10) + 1e-10)


class Mood(BaseModel):
    """Where a song (or a passage) sits on Russell's valence/arousal circumplex."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    valence: float = Field(
        ge=-1.0,
        le=1.0,
        description="-1 (negative: sad, tense, angry) .. 1 (positive: happy, serene); 2 P(positive) - 1 "
        "under the fitted model, so 0 means undecided.",
    )
    arousal: float = Field(
        ge=-1.0,
        le=1.0,
        description="-1 (calm, sleepy) .. 1 (excited, agitated); 2 P(high arousal) - 1 under the fitted model.",
    )
    quadrant: Quadrant
    words: list[str] = Field(description="The nearest mood words on the circumplex, best first.")
    cues: dict[str, float] = Field(default_factory=dict, description="The measured cues (see MOOD_CUES), for the report.")


# Cue weights, fitted by logistic regression (one model per axis, balanced classes) on the two
# labelled sets of benchmarks/bench_mood.py: 24 orchestral game soundtracks whose documented use
# names their mood (battles, victories, laments, sanctuaries) and 56 General MIDI renders of the
# dev set labelled from the style their score names (ballads, hymns and chorales calm; metal,
# fast dances and swing excited), where the style says. Each cue is standardised by
# ``CUE_CENTRES`` (median) and ``CUE_SCALES`` (interquartile range / 1.349) over both sets: the
# mean and standard deviation of the orchestral set alone gave spectral flux a scale of 0.11 dB,
# and the renders' flux, 8.9 such scales away, read every ballad as excited.
# The fit is constrained to the signs the music-emotion literature reports (Gabrielsson &
# Lindström 2010; Eerola, Lartillot & Toiviainen 2009): arousal rises with loudness, tempo, onset
# density and spectral flux; valence rises with major mode, tonal clarity and brightness and
# falls with spectral flatness (roughness, distortion). A cue whose free fit came out with the
# opposite sign gets weight 0: spectral flux, whose sustained, arpeggiated ballads measure more
# of it than dance grooves do, so faster and denser playing now raises arousal through tempo and
# onset density instead.
# Leave-one-out over both sets (2026-11-28): orchestral 26 of 40 axes (valence 14/20, arousal
# 12/20; the orchestral-only model before: 27), dev-set arousal 32 of 39 (calm pieces 8 of 10;
# before: 30, calm 1 of 10), dev-set valence 15 of 16. "Major mode / tempo >= 110 BPM" gets 26
# and 35 of 39: tempo alone is hard to beat on renders whose tempo the tracker gets right, but
# not on the orchestral set (11/20 arousal). Refit with ``python benchmarks/bench_mood.py --fit``
# and paste its output here.
CUE_CENTRES: dict[MoodCue, float] = {
    "loudness_dbfs": -24.58, "tempo_bpm": 123.0, "onset_density_hz": 3.009, "spectral_flux": 1.125,
    "major_strength": 0.593, "key_clarity": 0.7592, "brightness": 0.459, "spectral_flatness_db": -29.42,
}  # fmt: skip
CUE_SCALES: dict[MoodCue, float] = {
    "loudness_dbfs": 1.929, "tempo_bpm": 42.96, "onset_density_hz": 1.777, "spectral_flux": 0.4061,
    "major_strength": 0.5403, "key_clarity": 0.1271, "brightness": 0.1115, "spectral_flatness_db": 5.571,
}  # fmt: skip
AROUSAL_WEIGHTS: dict[MoodCue, float] = {"loudness_dbfs": 0.344, "tempo_bpm": 1.165, "onset_density_hz": 0.828}
AROUSAL_BIAS = 0.357
VALENCE_WEIGHTS: dict[MoodCue, float] = {
    "major_strength": 1.312, "key_clarity": 0.124, "brightness": 0.952, "spectral_flatness_db": -0.999,
}  # fmt: skip
VALENCE_BIAS = 0.219


def mood_logits(cues: dict[str, float]) -> tuple[float, float]:
    """Log-odds of positive valence and of high arousal; a missing cue counts as average."""
    z = {name: (cues[name] - CUE_CENTRES[name]) / CUE_SCALES[name] for name in MOOD_CUES if name in cues}
    valence = VALENCE_BIAS + sum(weight * z.get(name, 0.0) for name, weight in VALENCE_WEIGHTS.items())
    arousal = AROUSAL_BIAS + sum(weight * z.get(name, 0.0) for name, weight in AROUSAL_WEIGHTS.items())
    return valence, arousal


def mood_from_cues(cues: dict[str, float], words: int = 3) -> Mood:
    """The mood of measured cues (names and units in ``MOOD_CUES``).

    Each axis is ``2 sigmoid(logit) - 1 = tanh(logit / 2)`` of a logistic model fitted on
    labelled recordings (see ``AROUSAL_WEIGHTS``): its sign is the predicted side of the axis
    and its size how sure the model is.
    """
    valence_logit, arousal_logit = mood_logits(cues)
    valence = round(math.tanh(valence_logit / 2.0), 4)
    arousal = round(math.tanh(arousal_logit / 2.0), 4)
    return Mood(
        valence=valence,
        arousal=arousal,
        quadrant=quadrant(valence, arousal),
        words=[word for word, _ in circumplex_scores(valence, arousal)[:words]],
        cues={name: round(float(value), 4) for name, value in cues.items()},
    )
