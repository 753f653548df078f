"""What an audio-language model said: parse its answer, judge it, and turn it into words and tags.

Pure functions on strings; no model. :func:`parse_answer` reads the seven-line layout the
prompt asks for, :func:`check_answer` decides whether an answer can be used (or gets one retry,
see :mod:`music2video.listen.lalm.describe`), and :func:`answer_tags` / :func:`answer_paragraph`
make the tags and the paragraph a description stores.

Tags are :class:`~music2video.artifacts.ScoredLabel` lists (``mood``, ``instruments``,
``genre``, ``voice``, ``imagery``); the model gives no confidences, only an order, so the
first label it names scores 1.0 and each later one 0.1 less.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from music2video.artifacts import ScoredLabel

# Answer checks (see check_answer)
MIN_ANSWER_WORDS = 3  # fewer words than this is an empty answer
MAX_ANSWER_CHARS = 1500  # the seven-line layout needs about 400-800 characters
REPETITION_MIN_WORDS = 24  # below this many words, repetition is not judged
MAX_REPEATED_TRIGRAM_SHARE = 0.5  # more than half of the word trigrams repeated = a loop
MAX_LINE_REPEATS = 3  # the same non-empty line this often = a loop
MIN_FIELDS = 2  # layout lines needed for an answer to count as following the layout
MIN_MUSIC_WORDS = 3  # musical words needed for a free-text answer to count as on topic


# Parsed answers
MAX_FIELD_CHARS = 240  # longer field values are cut at a word boundary
MAX_TEXT_CHARS = 700  # the compact paragraph stored as a description's text
MAX_TAG_LABELS = 6  # labels kept per tag
MAX_LABEL_CHARS = 48
TAG_SCORE_STEP = 0.1  # each later label scores this much less than the one before
MIN_TAG_SCORE = 0.1

# The layout fields, in the order the prompt asks for them, and the names models use for them.
FIELDS = ("mood", "mood_change", "instruments", "genre", "voice", "imagery", "story")
FIELD_ALIASES = {
    "mood": "mood",
    "moods": "mood",
    "mood change": "mood_change",
    "mood changes": "mood_change",
    "mood_change": "mood_change",
    "change": "mood_change",
    "instruments": "instruments",
    "instrument": "instruments",
    "instrumentation": "instruments",
    "genre": "genre",
    "genres": "genre",
    "style": "genre",
    "voice": "voice",
    "vocals": "voice",
    "vocal": "voice",
    "singing": "voice",
    "imagery": "imagery",
    "images": "imagery",
    "image": "imagery",
    "story": "story",
    "narrative": "story",
    "narrative idea": "story",
    "story idea": "story",
}
TAG_FIELDS = ("mood", "instruments", "genre", "voice", "imagery")

# Words that show an answer is about music. Deliberately broad: the check only has to tell a
# description from gibberish, a refusal or an answer about something else.
MUSIC_WORDS = frozenset(
    """
    music musical song songs track melody melodic melodies harmony harmonic chord chords rhythm
    rhythmic beat beats groove tempo bpm bass bassline drum drums drummer percussion percussive
    guitar guitars piano keys keyboard keyboards synth synths synthesizer synthesiser pad pads strings
    string violin violins cello viola orchestra orchestral brass horn horns trumpet trombone sax
    saxophone flute clarinet choir organ harp ukulele banjo mandolin accordion harmonica marimba
    xylophone bell bells vocal vocals voice voices singer singing sings sung rap rapper rapping
    falsetto choral instrumental instruments instrument acoustic electric electronic distorted
    reverb riff riffs solo arpeggio arpeggios loop loops sample samples verse chorus bridge intro
    outro hook drop breakdown crescendo major minor key pop rock jazz blues folk country metal punk
    hip hop rnb soul funk disco house techno trance ambient classical cinematic orchestral lofi
    edm dubstep reggae latin indie dance ballad anthem lullaby soundtrack score mood moody calm
    dreamy melancholic melancholy sad happy joyful uplifting energetic upbeat mellow dark bright
    tense eerie epic aggressive romantic nostalgic hopeful peaceful serene euphoric playful
    driving haunting warm gritty airy lush sparse heavy soft loud quiet gentle intense
    """.split()
)

REFUSAL_RE = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i can'?not|i can'?t|i am unable|i'?m unable|"
    r"unable to (?:listen|hear|process|analy[sz]e)|as an ai\b|as a language model|"
    r"there is no audio|no audio (?:was|is) (?:provided|attached))",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_FIELD_LINE_RE = re.compile(r"^\s*(?:[-*\u2022]\s*)?\**\s*([A-Za-z][A-Za-z _-]{0,24}?)\s*\**\s*[:\uff1a]\s*\**\s*(.*?)\s*$")
_TAG_SPLIT_RE = re.compile(r"\s*(?:[,;/&]|\band\b|\bwith\b)\s*", re.IGNORECASE)
_STEADY_RE = re.compile(r"^\s*(steady|none|no change|constant|stable|unchanged|n/?a)\W*$", re.IGNORECASE)
INSTRUMENTAL_RE = re.compile(r"\b(instrumental|no vocals?|no voice|none|no singing)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAnswer:
    """What a model's answer said: the layout fields it filled (see :data:`FIELDS`) and its
    text with whitespace normalised."""

    fields: dict[str, str]
    text: str


def parse_answer(answer: str) -> ParsedAnswer:
    """Read the seven-line layout ("Mood: ...") out of ``answer``; a JSON object with the same
    keys is accepted too, and so are markdown bullets and bold field names. Unknown lines are
    ignored; a field named twice keeps its first value."""
    fields: dict[str, str] = {}
    for key, value in _json_fields(answer).items():
        _store_field(fields, key, value)
    if not fields:
        for line in answer.splitlines():
            match = _FIELD_LINE_RE.match(line)
            if match:
                _store_field(fields, match.group(1), match.group(2))
    return ParsedAnswer(fields=fields, text=" ".join(answer.split()))


def _json_fields(answer: str) -> dict[str, Any]:
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        data = json.loads(answer[start : end + 1])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _store_field(fields: dict[str, str], key: str, value: Any) -> None:
    name = FIELD_ALIASES.get(" ".join(str(key).lower().replace("_", " ").split()))
    if name is None or name in fields:
        return
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(item) for item in value)
    text = " ".join(str(value).split()).strip(" \"'*`")
    if text:
        fields[name] = shorten(text, MAX_FIELD_CHARS)


@dataclass(frozen=True)
class AnswerCheck:
    """The verdict on one answer: ``problem`` is None when it can be used, else one of
    ``"empty"``, ``"a refusal"``, ``"rambling"``, ``"off-topic"`` or ``"a copy of the
    instructions"``."""

    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_answer(answer: str, instructions: Collection[str] = ()) -> AnswerCheck:
    """Judge whether an answer can describe a stretch of music.

    * empty: fewer than ``MIN_ANSWER_WORDS`` words;
    * a refusal: "I'm sorry", "I cannot", "as an AI", "there is no audio", ...;
    * rambling: longer than ``MAX_ANSWER_CHARS``, or looping (more than
      ``MAX_REPEATED_TRIGRAM_SHARE`` of its word trigrams are repeats, or one line appears
      ``MAX_LINE_REPEATS`` times);
    * off-topic: fewer than ``MIN_FIELDS`` layout lines *and* fewer than ``MIN_MUSIC_WORDS``
      musical words (gibberish, or an answer about something else);
    * a copy of the instructions: ``MIN_FIELDS`` or more field values equal to the prompt's own
      explanations of the fields (``instructions``, e.g. "two to four words for the mood").
    """
    words = _WORD_RE.findall(answer.lower())
    if REFUSAL_RE.search(answer):
        return AnswerCheck("a refusal")
    if len(words) < MIN_ANSWER_WORDS:
        return AnswerCheck("empty")
    if len(answer.strip()) > MAX_ANSWER_CHARS or _is_looping(words, answer):
        return AnswerCheck("rambling")
    fields = parse_answer(answer).fields
    music_words = sum(1 for word in words if word in MUSIC_WORDS)
    if len(fields) < MIN_FIELDS and music_words < MIN_MUSIC_WORDS:
        return AnswerCheck("off-topic")
    copied = {" ".join(text.lower().split()) for text in instructions}
    if sum(" ".join(value.lower().split()) in copied for value in fields.values()) >= MIN_FIELDS:
        return AnswerCheck("a copy of the instructions")
    return AnswerCheck(None)


def _is_looping(words: list[str], answer: str) -> bool:
    if len(words) >= REPETITION_MIN_WORDS:
        trigrams = list(zip(words, words[1:], words[2:]))
        repeated_share = 1.0 - len(set(trigrams)) / len(trigrams)
        if repeated_share > MAX_REPEATED_TRIGRAM_SHARE:
            return True
    lines = [" ".join(line.lower().split()) for line in answer.splitlines()]
    counts: dict[str, int] = {}
    for line in lines:
        if line:
            counts[line] = counts.get(line, 0) + 1
    return any(count >= MAX_LINE_REPEATS for count in counts.values())


def answer_tags(parsed: ParsedAnswer) -> dict[str, list[ScoredLabel]]:
    """Tags from the list-like fields, scored by the order the model named them in."""
    tags: dict[str, list[ScoredLabel]] = {}
    for name in TAG_FIELDS:
        value = parsed.fields.get(name)
        if not value:
            continue
        if name == "voice":
            labels = ["instrumental"] if INSTRUMENTAL_RE.search(value) else [value.lower().rstrip(".")]
        else:
            labels = _split_labels(value)
        labels = [shorten(label, MAX_LABEL_CHARS) for label in labels][:MAX_TAG_LABELS]
        if labels:
            tags[name] = [
                ScoredLabel(label=label, score=round(max(1.0 - rank * TAG_SCORE_STEP, MIN_TAG_SCORE), 2))
                for rank, label in enumerate(labels)
            ]
    return tags


def _split_labels(value: str) -> list[str]:
    seen: list[str] = []
    for piece in _TAG_SPLIT_RE.split(value):
        label = piece.strip(" .!\"'()[]").lower()
        if label and label not in seen:
            seen.append(label)
    return seen


def answer_paragraph(parsed: ParsedAnswer) -> str:
    """The compact paragraph stored as the description's text, e.g. 'Dreamy, wistful synth-pop
    with warm pads, soft drums; breathy female vocal. Mood change: builds to a bright chorus.
    Evokes neon rain, an empty train. Story idea: ...'. Free-text answers are kept as written."""
    f = parsed.fields
    if len(f) < MIN_FIELDS:
        return shorten(parsed.text, MAX_TEXT_CHARS)
    sentences = []
    lead = " ".join(part for part in (f.get("mood", "").rstrip("."), f.get("genre", "").rstrip(".")) if part)
    if f.get("instruments"):
        lead = f"{lead} with {f['instruments'].rstrip('.')}" if lead else f"{f['instruments'].rstrip('.')}"
    if f.get("voice"):
        voice = "instrumental" if INSTRUMENTAL_RE.search(f["voice"]) else f["voice"].rstrip(".")
        lead = f"{lead}; {voice}" if lead else voice
    if lead:
        sentences.append(_sentence(lead))
    if f.get("mood_change") and not _STEADY_RE.match(f["mood_change"]):
        sentences.append(_sentence(f"Mood change: {f['mood_change']}"))
    if f.get("imagery"):
        sentences.append(_sentence(f"Evokes {f['imagery']}"))
    if f.get("story"):
        sentences.append(_sentence(f"Story idea: {f['story']}"))
    return shorten(" ".join(sentences), MAX_TEXT_CHARS)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"

