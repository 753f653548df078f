"""Sections, shots and the whole song, assembled from the windows' descriptions.

A section's description is its window's (several windows: their texts in order, their tags
merged; no window answered: the dsp description of the section); a shot gets its window's
words and its own dsp numbers (a shot whose window fell back gets its own dsp description).
The whole-song description is condensed from the sections without another model call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from music2video.artifacts import Analysis, ScoredLabel, Section, SegmentDescription, Shot
from music2video.listen.lalm.answers import MAX_TAG_LABELS, MAX_TEXT_CHARS, TAG_FIELDS, shorten
from music2video.listen.lalm.windows import WindowResult, window_for_shot
from music2video.music import Key

MOOD_ARC_MAX_STEPS = 8  # sections named in the song's mood arc


def merge_tags(parts: Sequence[tuple[dict[str, list[ScoredLabel]], float]]) -> dict[str, list[ScoredLabel]]:
    """Tags of several spans in one list per tag: each label's score is its duration-weighted
    score summed over the spans, scaled so the best label scores 1; ties keep first mention."""
    totals: dict[str, dict[str, float]] = {}
    for tags, weight in parts:
        for name, labels in tags.items():
            bucket = totals.setdefault(name, {})
            for label in labels:
                bucket[label.label] = bucket.get(label.label, 0.0) + label.score * max(weight, 1e-6)
    merged: dict[str, list[ScoredLabel]] = {}
    for name, bucket in totals.items():
        best = max(bucket.values())
        ranked = sorted(bucket.items(), key=lambda item: -item[1])[:MAX_TAG_LABELS]  # stable: first mention wins ties
        merged[name] = [ScoredLabel(label=label, score=round(score / best, 3)) for label, score in ranked]
    return merged


def section_description(section: Section, results: Sequence[WindowResult], dsp: SegmentDescription) -> SegmentDescription:
    """One window: its words. Several: their texts in order and their tags merged. The numbers
    are the dsp listener's for the whole section; a section the model described nowhere keeps
    the dsp description of the whole section."""
    if not any(r.from_model for r in results):
        fallback = dsp.model_copy(deep=True)
        fallback.features["lalm_answered"] = 0.0
        return fallback
    if len(results) == 1:
        text = results[0].description.text
    else:
        text = " ".join(f"Part {r.window.part}/{r.window.parts}: {r.description.text}" for r in results)
    features = dict(dsp.features)
    features["lalm_answered"] = round(sum(r.from_model for r in results) / max(len(results), 1), 3)
    vocals = [r.description.features["lalm_vocals"] for r in results if "lalm_vocals" in r.description.features]
    if vocals:
        features["lalm_vocals"] = max(vocals)
    confidences = [r.description.confidence or 0.0 for r in results]
    return SegmentDescription(
        start_s=section.start_s,
        end_s=section.end_s,
        text=shorten(text, 2 * MAX_TEXT_CHARS),
        features=features,
        tags=merge_tags([(r.description.tags, r.window.duration_s) for r in results if r.from_model]),
        confidence=round(sum(confidences) / max(len(confidences), 1), 3),
    )


def shot_description(
    shot: Shot, analysis: Analysis, results: Sequence[WindowResult], dsp: SegmentDescription
) -> SegmentDescription:
    """The words of the window the shot sits in, with the shot's own dsp numbers; a shot whose
    window fell back keeps its own (more precise) dsp description."""
    window = window_for_shot(shot, [r.window for r in results], section_position(shot, analysis))
    result = results[window.index]
    if not result.from_model:
        fallback = dsp.model_copy(deep=True)
        fallback.features["lalm_answered"] = 0.0
        return fallback
    features = dict(dsp.features)
    features["lalm_answered"] = 1.0
    if "lalm_vocals" in result.description.features:
        features["lalm_vocals"] = result.description.features["lalm_vocals"]
    return SegmentDescription(
        start_s=shot.start_s,
        end_s=shot.end_s,
        text=result.description.text,
        features=features,
        tags={name: list(labels) for name, labels in result.description.tags.items()},
        confidence=result.description.confidence,
    )


def section_position(shot: Shot, analysis: Analysis) -> int | None:
    """Position in ``analysis.sections`` of the shot's section: by index, else by overlap."""
    for position, section in enumerate(analysis.sections):
        if section.index == shot.section_index:
            return position
    overlaps = [min(s.end_s, shot.end_s) - max(s.start_s, shot.start_s) for s in analysis.sections]
    return int(np.argmax(overlaps)) if overlaps else None


def song_description(
    analysis: Analysis, sections: Sequence[SegmentDescription], dsp: SegmentDescription, answered_share: float
) -> SegmentDescription:
    """The whole song, condensed from the sections without another model call: genre, tempo
    and key, the mood arc from section to section, and the instruments, voices and images named
    most, weighted by how long they sound (the writer receives every section's words anyway).
    The dsp description of the song when the model described no window at all."""
    if answered_share == 0.0:
        fallback = dsp.model_copy(deep=True)
        fallback.features["lalm_answered"] = 0.0
        return fallback
    # Only the words the model chose: a fallback section's dsp tags (energy, texture, ...) are
    # another vocabulary, and the dsp numbers are in ``features`` already.
    described = [s for s in sections if s.features.get("lalm_answered", 0.0) > 0.0]
    tags = merge_tags([({k: v for k, v in s.tags.items() if k in TAG_FIELDS}, s.end_s - s.start_s) for s in described])
    parts = []
    genre = tags.get("genre", [])
    lead = f"{genre[0].label.capitalize()} song" if genre else "Song"
    lead += f" at about {analysis.tempo_bpm:.0f} BPM"
    if (key := Key.from_features(dsp.features)) is not None:
        lead += f" in {key.name}"
    parts.append(lead + ".")
    arc: list[str] = []
    for section, description in zip(analysis.sections, sections):
        mood = description.tags.get("mood") or []
        step = f"{mood[0].label} ({section.role})" if mood else None
        if step and (not arc or arc[-1].split(" (")[0] != mood[0].label):
            arc.append(step)
    if len(arc) > 1:
        parts.append("Mood arc: " + " → ".join(arc[:MOOD_ARC_MAX_STEPS]) + ".")
    elif arc:
        parts.append(f"Mood: {arc[0].split(' (')[0]} throughout.")
    for name, title in (("instruments", "Instruments"), ("voice", "Voice"), ("imagery", "Imagery")):
        if tags.get(name):
            parts.append(f"{title}: {', '.join(label.label for label in tags[name][:4])}.")
    features = dict(dsp.features)
    features["lalm_answered"] = round(answered_share, 3)
    durations = [max(s.end_s - s.start_s, 0.0) for s in sections]
    confidence = sum((s.confidence or 0.0) * d for s, d in zip(sections, durations)) / max(sum(durations), 1e-9)
    return SegmentDescription(
        start_s=0.0,
        end_s=analysis.duration_s,
        text=shorten(" ".join(parts), MAX_TEXT_CHARS),
        features=features,
        tags=tags,
        confidence=round(confidence, 3),
    )

