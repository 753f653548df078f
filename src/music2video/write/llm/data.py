"""Data shaping: the song as the model sees it, and the model's words as the renderer gets them.

The data block is compact JSON (listener text and tags, numeric features, lyrics excerpts);
the final prompt is composed by the program, never by the model, so that characters and places
read word for word the same in every shot and the prompt stays within its budget.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from music2video.artifacts import Analysis, Character, Prop, Section, SegmentDescription, ShotPlan, StyleBible
from music2video.music import Key
from music2video.settings import DEFAULT_MAX_PROMPT_CHARS
from music2video.write.llm.schema import HEX_COLOUR

# Sizes of the data block: what keeps a long song's request within a small model's context
# window. They shape the prompt, not the video, so they are constants rather than settings.
DATA_TEXT_CHARS = 300
"""Longest listener description or lyric excerpt put in the data block, in characters."""

DATA_TAGS_PER_VOCABULARY = 5
"""Best labels per vocabulary (mood, genre, ...) put in the data block."""

MIN_SHOT_PROMPT_CHARS = 60
"""Room, in characters, that the shot's own words keep when the fixed part is long: the setting
is dropped from a prompt before the shot's action is squeezed below this."""

def rounded(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def excerpt(text: str, limit: int = DATA_TEXT_CHARS) -> str:
    text = " ".join(str(text).split())
    return fit_words(text, limit)[0]


def listener_data(segment: SegmentDescription | None) -> dict[str, Any]:
    """What a listener said about a span: text, best tags and numeric features, generically."""
    if segment is None:
        return {}
    data: dict[str, Any] = {}
    if segment.text.strip():
        data["heard"] = excerpt(segment.text)
    tags = {
        vocabulary: [label.label for label in labels[:DATA_TAGS_PER_VOCABULARY]]
        for vocabulary, labels in segment.tags.items()
        if labels
    }
    if tags:
        data["tags"] = tags
    if segment.features:
        data["features"] = {name: rounded(value) for name, value in segment.features.items() if math.isfinite(value)}
    return data


def key_data(segment: SegmentDescription) -> dict[str, str]:
    """``{"key": "A minor"}`` when a listener heard the key (dsp's key_tonic/key_mode_major
    features, or a "key" tag); else nothing. The raw numbers would mean little to a model."""
    if (key := Key.from_features(segment.features)) is not None:
        return {"key": key.name}
    labels = segment.tags.get("key", [])
    return {"key": labels[0].label} if labels and labels[0].label.strip() else {}


@dataclass
class SectionPlan:
    """One section of the song and the planned shots inside it (plan indices)."""

    section: Section
    shot_indices: list[int]
    first_of_label: int | None = None  # index (in the section list) of an earlier section with this label

    @property
    def name(self) -> str:
        return f"section {self.section.index} ({self.section.role})"


def section_plans(analysis: Analysis, plan: ShotPlan) -> list[SectionPlan]:
    """Every section of the analysis, in order, with the plan's shots inside it; a section
    label heard before points back at its first occurrence (the callback)."""
    plans = [SectionPlan(section, []) for section in analysis.sections]
    position_of = {section.index: position for position, section in enumerate(analysis.sections)}
    for i, shot in enumerate(plan.shots):
        if shot.section_index not in position_of:
            raise ValueError(f"shot {shot.id} belongs to section {shot.section_index}, which the analysis lacks")
        plans[position_of[shot.section_index]].shot_indices.append(i)
    first_by_label: dict[str, int] = {}
    for position, section_plan in enumerate(plans):
        label = section_plan.section.label
        if label in first_by_label:
            section_plan.first_of_label = first_by_label[label]
        else:
            first_by_label[label] = position
    return plans

def compose_prompt(style: StyleBible, characters: Sequence[Character | Prop], setting: str, action: str,
                   max_chars: int = DEFAULT_MAX_PROMPT_CHARS) -> tuple[str, bool]:
    """The final text-to-video prompt and whether anything was left out or cut to fit ``max_chars``.

    Reading order: the style bible, each shown character (and key prop) as "Name: description."
    word for word, the section's setting, then the model's words for this shot (``action``). The
    characters are what keeps shots consistent, so they are cut last; when the total is too
    long the setting goes first, then the style words are shortened (keeping at least
    ``MIN_SHOT_PROMPT_CHARS`` of the action), then the action is cut at a word boundary.
    """
    style_words = ", ".join(part.strip() for part in (style.look, style.medium, style.lens, style.era) if part.strip())
    people = " ".join(f"{c.name}: {c.description.strip().rstrip('.')}." for c in characters)
    place = f"{setting.strip().rstrip('.')}." if setting.strip() else ""
    action = action.strip()

    def join(*parts: str) -> str:
        return " ".join(part for part in parts if part)

    full = join(f"{style_words}." if style_words else "", people, place, action)
    if len(full) <= max_chars:
        return full, False
    # 1. Without the setting.
    prompt = join(f"{style_words}." if style_words else "", people, action)
    if len(prompt) <= max_chars:
        return prompt, True
    # 2. Shorter style words, keeping room for (some of) the action.
    keep_action = min(len(action), MIN_SHOT_PROMPT_CHARS)
    room = max_chars - len(join(people, action[:keep_action])) - 3  # two spaces and a full stop
    style_short, _ = fit_words(style_words, max(0, room))
    head = join(f"{style_short}." if style_short else "", people)
    # 3. The action cut to what is left; 4. everything cut if the characters alone overflow.
    action_short, _ = fit_words(action, max(0, max_chars - len(head) - 1))
    prompt = join(head, action_short)
    if len(prompt) > max_chars:
        prompt, _ = fit_words(prompt, max_chars)
    return prompt, True


def fit_words(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` characters at a word boundary, and whether it was cut."""
    text = text.strip()
    if len(text) <= limit:
        return text, False
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > 0 else text[:limit]
    return cut.rstrip(" ,;:-"), True

def valid_palette(colours: Sequence[str]) -> list[str] | None:
    """Lower-case #rrggbb colours, or None when any is not one (or there are none)."""
    cleaned = [colour.strip().lower() for colour in colours]
    if not cleaned or not all(HEX_COLOUR.fullmatch(colour) for colour in cleaned):
        return None
    return cleaned


def chunks(indices: list[int], most: int) -> list[list[int]]:
    """``indices`` in consecutive chunks of at most ``most``, sizes as equal as possible."""
    count = max(1, math.ceil(len(indices) / most))
    size, extra = divmod(len(indices), count)
    parts, start = [], 0
    for k in range(count):
        end = start + size + (1 if k < extra else 0)
        parts.append(indices[start:end])
        start = end
    return [part for part in parts if part]


def listing(items: Sequence[str], shown: int = 8) -> str:
    head = ", ".join(items[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


def data_json(data: dict[str, Any]) -> str:
    """The data block's JSON. The templates put it between lines that read BEGIN SONG DATA and
    END SONG DATA; a JSON string never holds a raw line break, so nothing in a lyric or a
    description can end the block early and pose as an instruction."""
    return json.dumps(data, indent=1, ensure_ascii=False)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24] or "section"


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

