"""What the model is asked: the measured facts about a window, put into the prompt templates.

The templates are ``music2video/prompts/lalm_*.md`` (read by :mod:`music2video.prompts`, so a
person can edit them; the listen stage's key follows their text).
"""

from __future__ import annotations

from collections.abc import Sequence

from music2video.artifacts import Analysis, SegmentDescription
from music2video.listen.lalm.answers import parse_answer
from music2video.listen.lalm.windows import Window
from music2video.music import Key
from music2video.prompts import fill_prompt, load_prompt

SYSTEM_PROMPT = "lalm_system.md"
DESCRIBE_PROMPT = "lalm_describe.md"
RETRY_PROMPT = "lalm_retry.md"


def system_prompt() -> str:
    """The system turn of every request: ``lalm_system.md``."""
    return load_prompt(SYSTEM_PROMPT).strip()


def clock(seconds: float) -> str:
    """``m:ss`` of a time in seconds, as the prompts and warnings show it."""
    seconds = max(seconds, 0.0)
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def window_facts(window: Window, analysis: Analysis, dsp: SegmentDescription) -> list[str]:
    """The measured facts a prompt carries about ``window``, one per line.

    ``dsp`` is the dsp listener's description of the same span (local tempo, key, energy and
    brightness words)."""
    sections = analysis.sections
    section = sections[window.section_position]
    same = [str(i + 1) for i, s in enumerate(sections) if s.label == section.label and i != window.section_position]
    where = f"section {window.section_position + 1} of {len(sections)} ({section.role}; repetition label {section.label}"
    if same:
        where += f"; the same music is heard in section{'s' if len(same) > 1 else ''} {', '.join(same)}"
    where += f"), {clock(window.start_s)}-{clock(window.end_s)} of a {clock(analysis.duration_s)} song"
    if window.parts > 1:
        where += f"; this clip is part {window.part} of {window.parts} of the section"
    features = dsp.features
    tempo_bpm = features.get("tempo_bpm", analysis.tempo_bpm)
    facts = [f"Position: {where}.", f"Tempo: about {tempo_bpm:.0f} BPM, {analysis.beats_per_bar} beats per bar."]
    if (key := Key.from_features(features)) is not None:
        facts.append(f"Key: probably {key.name}.")
    energy_words = [t.label for t in dsp.tags.get("energy", [])[:1]]
    brightness_words = [t.label for t in dsp.tags.get("brightness", [])[:1]]
    energy = features.get("energy", section.energy)
    loudness = f"Energy: {energy_words[0] if energy_words else 'moderate'} ({energy:.2f} on a 0-1 scale, 1 = the loudest part of the song)"
    if brightness_words:
        loudness += f"; timbre {brightness_words[0]}"
    facts.append(loudness + ".")
    return facts


def layout_instructions() -> list[str]:
    """The describe prompt's explanations of the layout fields ("two to four words for the
    mood of this clip", ...): a model that copies them back has not answered."""
    return list(parse_answer(load_prompt(DESCRIBE_PROMPT)).fields.values())


def describe_prompt(facts: Sequence[str]) -> str:
    """The first question about a window: ``lalm_describe.md`` with the facts as a list."""
    return fill_prompt(DESCRIBE_PROMPT, facts="\n".join(f"- {fact}" for fact in facts)).strip()


def retry_prompt(facts: Sequence[str], problem: str) -> str:
    """The stricter second question: ``lalm_retry.md``, saying what was wrong (``problem``)."""
    return fill_prompt(RETRY_PROMPT, facts_line=" ".join(facts), problem=f"it was {problem}").strip()

