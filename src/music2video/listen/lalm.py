"""The "lalm" listener: a large audio-language model describes the music in words.

``describe_lalm`` plays each section of the song to an audio-language model (Qwen2.5-Omni by
default; the families are in :mod:`music2video.listen.lalm_families`) and asks, in a fixed
seven-line layout, for the mood and how it changes, the instruments, the genre, the voice
(or "instrumental"), the images the music evokes and a narrative idea. It returns a
:class:`~music2video.artifacts.Descriptions` with one description for the whole song, one per
analysis section and one per planned shot, like every listener.

How it works, top to bottom:

1. Pick the model family from the ``family`` setting or from ``model_type`` in the model's
   config.json; warn when the family's licence forbids commercial use.
2. Read the run folder's 48 kHz WAV, downmix it and resample it once to the model's rate
   (16 kHz), and once more to the analysis rate for the signal descriptors of step 4.
3. Load the model once. Cut each section into windows the model can hear whole: a section
   longer than the model's audio limit (30 s for Qwen2-Audio; ``window_s`` may lower it) is
   split into equal windows no longer than the limit.
4. Grounding. Audio-language models are weak at tempo, key and structure, so the facts the
   analysis measured (local tempo, key, energy level, the section's role and repetition label,
   its position in the song) go *into* each prompt, and the dsp listener's numbers for every
   section, shot and window are stored in ``features`` beside the model's words.
5. Ask about all windows in batches (left-padded, greedy decoding). Each answer is parsed
   (:func:`parse_answer`) and judged (:func:`check_answer`): an empty answer, a refusal, a
   rambling one (too long or repetitive), an off-topic one (no musical words, no layout) or a
   copy of the prompt's instructions gets ONE retry with a stricter prompt; if that fails too,
   the window falls back to the dsp description of the same span, logged at WARNING and listed
   in ``Descriptions.warnings``.
6. Free the model (``del`` + garbage collection + CUDA cache) before returning, so the next
   model (the LLM, the video model) finds the GPU empty.
7. Assemble: a section's description is its window's (several windows: their texts in order,
   their tags merged; no window answered: the dsp description of the section); a shot gets its window's words and its own dsp numbers (a shot whose
   window fell back gets its own dsp description). The whole-song description is condensed
   from the sections without another model call: genre, tempo and key, the mood arc from
   section to section, and the instruments, voices and images named most, weighted by how
   long they sound. The writer LLM receives every section's words anyway, so a second
   generation would cost a model call and add a failure mode for little gain.

Tags are :class:`~music2video.artifacts.ScoredLabel` lists (``mood``, ``instruments``,
``genre``, ``voice``, ``imagery``); the model gives no confidences, only an order, so the
first label it names scores 1.0 and each later one 0.1 less.
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from music2video.artifacts import Analysis, Descriptions, ScoredLabel, Section, SegmentDescription, Shot, ShotPlan
from music2video.errors import InputError, MissingDependencyError, ModelLoadError, Music2VideoError
from music2video.model_source import load_error, model_source
from music2video.music import Key
from music2video.listen.lalm_families import (
    DEFAULT_MODEL,
    FAMILIES,
    AudioRequest,
    LalmFamily,
    family_choices,
    family_for_known_model,
    family_for_model_type,
)
from music2video.progress import ProgressCallback, no_progress
from music2video.settings import LalmSettings
from music2video.torch_device import free_memory, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Constants

DEFAULT_BATCH_SIZE = 4  # windows per generate call when the settings do not say
MIN_WINDOW_AUDIO_S = 0.5  # shorter windows (or windows past the end of the audio) are zero-padded to this
REPETITION_PENALTY = 1.05  # first pass: mild, the layout itself repeats words like "Mood"
RETRY_REPETITION_PENALTY = 1.2  # the retry pushes harder against loops

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
RETRY_CONFIDENCE_FACTOR = 0.8  # an answer that needed the stricter prompt is trusted a little less
MIN_ANSWER_CONFIDENCE = 0.3  # a usable free-text answer that filled no layout field
MOOD_ARC_MAX_STEPS = 8  # sections named in the song's mood arc

PROMPTS_PACKAGE = "music2video"
PROMPTS_FOLDER = "prompts"

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
_INSTRUMENTAL_RE = re.compile(r"\b(instrumental|no vocals?|no voice|none|no singing)\b", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# 1. Answers: parse and judge (pure functions)


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
        fields[name] = _cut(text, MAX_FIELD_CHARS)


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
            labels = ["instrumental"] if _INSTRUMENTAL_RE.search(value) else [value.lower().rstrip(".")]
        else:
            labels = _split_labels(value)
        labels = [_cut(label, MAX_LABEL_CHARS) for label in labels][:MAX_TAG_LABELS]
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
        return _cut(parsed.text, MAX_TEXT_CHARS)
    sentences = []
    lead = " ".join(part for part in (f.get("mood", "").rstrip("."), f.get("genre", "").rstrip(".")) if part)
    if f.get("instruments"):
        lead = f"{lead} with {f['instruments'].rstrip('.')}" if lead else f"{f['instruments'].rstrip('.')}"
    if f.get("voice"):
        voice = "instrumental" if _INSTRUMENTAL_RE.search(f["voice"]) else f["voice"].rstrip(".")
        lead = f"{lead}; {voice}" if lead else voice
    if lead:
        sentences.append(_sentence(lead))
    if f.get("mood_change") and not _STEADY_RE.match(f["mood_change"]):
        sentences.append(_sentence(f"Mood change: {f['mood_change']}"))
    if f.get("imagery"):
        sentences.append(_sentence(f"Evokes {f['imagery']}"))
    if f.get("story"):
        sentences.append(_sentence(f"Story idea: {f['story']}"))
    return _cut(" ".join(sentences), MAX_TEXT_CHARS)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


# --------------------------------------------------------------------------------------------
# 2. Windows


@dataclass(frozen=True)
class Window:
    """A stretch of one section that the model hears in one request (seconds from song start).

    ``part`` counts from 1 within its section; ``parts`` is how many windows the section has.
    """

    index: int
    section_position: int  # position of the section in ``analysis.sections``
    part: int
    parts: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def plan_windows(sections: Sequence[Section], limit_s: float) -> list[Window]:
    """Each section as ``ceil(length / limit_s)`` equal, contiguous windows of at most
    ``limit_s`` seconds, so nothing is cut off and no window is much shorter than the others."""
    if limit_s <= 0:
        raise ValueError(f"the window limit must be positive, got {limit_s}")
    windows: list[Window] = []
    for position, section in enumerate(sections):
        length_s = max(section.end_s - section.start_s, 0.0)
        parts = max(1, math.ceil(length_s / limit_s - 1e-9))
        step_s = length_s / parts
        for part in range(parts):
            start_s = section.start_s + part * step_s
            end_s = section.end_s if part == parts - 1 else section.start_s + (part + 1) * step_s
            windows.append(Window(len(windows), position, part + 1, parts, start_s, end_s))
    return windows


def window_for_shot(shot: Shot, windows: Sequence[Window], section_position: int | None) -> Window:
    """The window that overlaps ``shot`` most, preferring the windows of its own section."""
    own = [w for w in windows if w.section_position == section_position]
    candidates = own or list(windows)
    return max(candidates, key=lambda w: (min(w.end_s, shot.end_s) - max(w.start_s, shot.start_s), -w.index))


# --------------------------------------------------------------------------------------------
# 3. Prompts


def load_prompt(name: str) -> string.Template:
    """The template in ``music2video/prompts/<name>``, a file a person can read and edit;
    placeholders are ``${name}``."""
    text = resources.files(PROMPTS_PACKAGE).joinpath(PROMPTS_FOLDER, name).read_text(encoding="utf-8")
    return string.Template(text)


def _clock(seconds: float) -> str:
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
    where += f"), {_clock(window.start_s)}-{_clock(window.end_s)} of a {_clock(analysis.duration_s)} song"
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
    return list(parse_answer(load_prompt("lalm_describe.md").template).fields.values())


def describe_prompt(facts: Sequence[str]) -> str:
    """The first question about a window: ``lalm_describe.md`` with the facts as a list."""
    return load_prompt("lalm_describe.md").substitute(facts="\n".join(f"- {fact}" for fact in facts)).strip()


def retry_prompt(facts: Sequence[str], problem: str) -> str:
    """The stricter second question: ``lalm_retry.md``, saying what was wrong (``problem``)."""
    return load_prompt("lalm_retry.md").substitute(facts_line=" ".join(facts), problem=f"it was {problem}").strip()


# --------------------------------------------------------------------------------------------
# 4. Model


def resolve_family(model: str, family: str | None = "auto") -> LalmFamily:
    """The family that loads ``model``: the one named by ``family``, else (``auto``) the one of
    a well-known id, else the one whose architecture config.json's ``model_type`` names."""
    if family and family != "auto":
        chosen = FAMILIES.get(family)
        if chosen is None:
            raise Music2VideoError(f"lalm family {family!r} is not one of: auto, {family_choices()}")
        known = family_for_known_model(model)
        if known is not None and known is not chosen:
            raise Music2VideoError(
                f"lalm model '{model}' is a {known.title} model but family {family!r} was asked for; "
                f"set --lalm-model to a {chosen.title} model (e.g. {chosen.default_model}) or the family to auto"
            )
        return chosen
    known = family_for_known_model(model)
    if known is not None:
        return known
    model_type = _model_type(model)
    found = family_for_model_type(model_type)
    if found is None:
        raise ModelLoadError(
            f"cannot load the audio-language model '{model}': its model_type '{model_type}' is not a family "
            f"the lalm listener knows ({family_choices()}); point --lalm-model at one of those, "
            f"e.g. {DEFAULT_MODEL}"
        )
    return found


def _model_type(model: str) -> str:
    source = model_source(model, "audio-language", "--lalm-model")
    try:
        if Path(source).is_dir():
            config_path = Path(source) / "config.json"
            if not config_path.is_file():
                raise OSError(f"{config_path} does not exist")
            config = json.loads(config_path.read_text(encoding="utf-8"))
        else:
            from transformers import PretrainedConfig

            config, _ = PretrainedConfig.get_config_dict(source)
    except (OSError, ValueError) as error:
        raise load_error(model, "audio-language", "--lalm-model", error) from None
    return str(config.get("model_type", ""))


def load_lalm(model: str, family: LalmFamily, device: Any, dtype: Any, device_map: Any = None) -> tuple[Any, Any]:
    """``(model, processor)`` of ``family`` from a Hugging Face id or local folder, in eval mode.

    Without ``device_map`` the model is moved to ``device``; with one (e.g. ``"auto"``,
    accelerate's placement with CPU offload of what does not fit) accelerate places it.
    Raises :class:`ModelLoadError` with the id and how to point at a local folder."""
    _require_backend()
    source = model_source(model, "audio-language", "--lalm-model")
    try:
        loaded, processor = family.load(source, dtype=dtype, device_map=device_map)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise load_error(model, "audio-language", "--lalm-model", error) from None
    if device_map is None:
        loaded.to(device)
    loaded.eval()
    return loaded, processor


def _require_backend() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingDependencyError("torch", "lalm", "The lalm listener") from None
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError("transformers", "lalm", "The lalm listener") from None


def ask_model(
    family: LalmFamily,
    model: Any,
    processor: Any,
    requests: Sequence[AudioRequest],
    *,
    max_new_tokens: int,
    batch_size: int,
    repetition_penalty: float,
    on_batch: Callable[[int], None] = lambda count: None,
) -> list[str]:
    """The model's answer to each request, generated greedily in batches of ``batch_size``."""
    import torch

    tokenizer = getattr(processor, "tokenizer", processor)
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for start in range(0, len(requests), batch_size):
        batch = requests[start : start + batch_size]
        inputs = _on_model(family.build_inputs(processor, batch), model)
        with torch.inference_mode():
            sequences = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                repetition_penalty=repetition_penalty,
                pad_token_id=pad_token_id,
                **family.generation_kwargs(),
            )
        answers.extend(family.decode(processor, sequences, inputs["input_ids"].shape[1]))
        on_batch(len(batch))
    return answers


def _on_model(inputs: Any, model: Any) -> dict[str, Any]:
    """Tensors moved to the model's device; floating-point ones (audio features) in its dtype."""
    moved = {}
    for name, value in dict(inputs).items():
        if hasattr(value, "to"):
            value = value.to(model.device)
            if value.is_floating_point():
                value = value.to(model.dtype)
        moved[name] = value
    return moved


# --------------------------------------------------------------------------------------------
# 5. Public entry point


@dataclass
class WindowResult:
    """The description of one window and where it came from."""

    window: Window
    description: SegmentDescription
    from_model: bool
    problems: list[str] = field(default_factory=list)


def describe_lalm(
    audio_wav: Path,
    analysis: Analysis,
    plan: ShotPlan,
    settings: LalmSettings,
    progress: ProgressCallback = no_progress,
    *,
    family: str | None = None,
    window_s: float | None = None,
    batch_size: int | None = None,
    device_map: str | dict | None = None,
) -> Descriptions:
    """Describe the song, each section and each shot with an audio-language model.

    Args:
        audio_wav: the run folder's canonical WAV (48 kHz; any rate and channel count works).
        analysis: tempo, beats and sections; the sections are what the model hears.
        plan: the shots to describe; each gets its section's (window's) words.
        settings: ``model`` (Hugging Face id or local folder), ``device``, ``dtype``,
            ``max_new_tokens``; also read when present: ``family``, ``window_s``,
            ``batch_size``, ``device_map``.
        progress: called as ``progress(done, total, message)``.
        family: ``auto`` (from the model's config) or a name in
            :data:`~music2video.listen.lalm_families.FAMILIES`; overrides ``settings.family``.
        window_s: longest audio per request in seconds, capped at the model's own limit;
            overrides ``settings.window_s``.
        batch_size: windows per generate call; overrides ``settings.batch_size``.
        device_map: passed to ``from_pretrained`` (``"auto"``: accelerate places the layers
            and offloads what does not fit to the CPU); overrides ``settings.device_map``.

    Returns:
        ``Descriptions(listener="lalm", model=settings.model)`` with ``sections`` aligned to
        ``analysis.sections`` and ``shots`` aligned to ``plan.shots`` (times copied). ``features``
        hold the dsp listener's numbers for the same span plus ``lalm_answered`` (share of the
        span's windows the model described, 0..1) and, when the model said, ``lalm_vocals``
        (1 sung, 0 instrumental).

    Raises:
        ModelLoadError: the model cannot be loaded (the message says how to use a local folder).
        MissingDependencyError: torch or transformers is not installed.
        InputError: the WAV cannot be read, or the analysis has no sections.
    """
    from music2video.decode import ANALYSIS_RATE_HZ, load_audio
    from music2video.listen.dsp import describe_dsp

    # 1. Check inputs, pick the family
    family_name = family if family is not None else settings.family
    window_cap_s = window_s if window_s is not None else settings.window_s
    batch = batch_size if batch_size is not None else settings.batch_size
    device_map = device_map if device_map is not None else settings.device_map
    if window_cap_s is not None and window_cap_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_cap_s}")
    if batch < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch}")
    if not analysis.sections:
        raise InputError("the analysis has no sections, so the lalm listener has nothing to play to the model")
    _require_backend()
    chosen = resolve_family(settings.model, family_name)
    warnings: list[str] = []
    if not chosen.commercial_use:
        message = (
            f"lalm: the {chosen.title} weights ({settings.model}) are under the {chosen.licence}: "
            f"fine for research, not for commercial use; {DEFAULT_MODEL} (Apache-2.0) is the default for that"
        )
        log.warning(message)
        warnings.append(message)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)

    # 2. Read the audio: once at the model's rate, once at the dsp listener's
    try:
        samples = load_audio(audio_wav, chosen.sample_rate_hz)
        dsp_samples = load_audio(audio_wav, ANALYSIS_RATE_HZ)
    except (OSError, RuntimeError) as error:  # soundfile's LibsndfileError is a RuntimeError
        raise InputError(f"cannot read the audio file {audio_wav} ({error})") from None

    model = processor = None
    try:
        # 3. Load the model once; windows follow from its audio limit
        progress(0, 1, f"lalm: loading {settings.model}")
        model, processor = load_lalm(settings.model, chosen, device, dtype, device_map)
        limit_s = chosen.window_limit_s(processor)
        if window_cap_s is not None:
            limit_s = min(limit_s, window_cap_s)
        windows = plan_windows(analysis.sections, limit_s)
        total = 2 + len(windows)
        done = 1
        progress(done, total, "lalm: signal descriptors")

        # 4. Grounding: dsp descriptions of the sections, the shots and the windows in one pass
        dsp = _dsp_descriptions(describe_dsp, dsp_samples, ANALYSIS_RATE_HZ, analysis, plan, windows)
        warnings.extend(dsp.warnings)
        done += 1
        progress(done, total, f"lalm: listening to {len(windows)} window(s)")

        # 5. Ask, judge, retry once, fall back to dsp
        results = _describe_windows(
            chosen,
            model,
            processor,
            windows,
            samples,
            analysis,
            dsp.windows,
            max_new_tokens=settings.max_new_tokens,
            batch_size=batch,
            progress=lambda count, message: progress(min(done + count, total), total, message),
        )
    finally:
        # 6. Free the model before the next one loads (the only references are these two)
        del model, processor
        free_memory()

    for result in results:
        if result.problems:
            warnings.append(_fallback_warning(result, analysis))
    progress(total, total, "lalm: done")

    # 7. Assemble sections, shots and the song
    sections = [
        _section_description(section, [r for r in results if r.window.section_position == position], dsp.sections[position])
        for position, section in enumerate(analysis.sections)
    ]
    shots = [_shot_description(shot, analysis, results, dsp.shots[i]) for i, shot in enumerate(plan.shots)]
    song = _song_description(analysis, sections, dsp.song, sum(r.from_model for r in results) / len(results))
    return Descriptions(listener="lalm", model=settings.model, song=song, sections=sections, shots=shots, warnings=warnings)


@dataclass
class _DspSpans:
    song: SegmentDescription
    sections: list[SegmentDescription]
    shots: list[SegmentDescription]
    windows: list[SegmentDescription]
    warnings: list[str]


def _dsp_descriptions(
    describe_dsp: Callable[..., Descriptions],
    samples: np.ndarray,
    rate_hz: int,
    analysis: Analysis,
    plan: ShotPlan,
    windows: Sequence[Window],
) -> _DspSpans:
    """The dsp listener's descriptions of the song, sections, shots and windows. The windows
    ride along as extra shots of one plan, so the song's features are computed once."""
    window_shots = [
        Shot(
            index=len(plan.shots) + w.index,
            id=f"lalm-window-{w.index:03d}",
            start_s=w.start_s,
            end_s=w.end_s,
            section_index=w.section_position,
            cut="grid",
        )
        for w in windows
    ]
    extended = ShotPlan(duration_s=plan.duration_s, shots=[*plan.shots, *window_shots])
    described = describe_dsp(samples, rate_hz, analysis, extended)
    count = len(plan.shots)
    return _DspSpans(
        described.song, described.sections, described.shots[:count], described.shots[count:], list(described.warnings)
    )


def _describe_windows(
    family: LalmFamily,
    model: Any,
    processor: Any,
    windows: Sequence[Window],
    samples: np.ndarray,
    analysis: Analysis,
    dsp_windows: Sequence[SegmentDescription],
    *,
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int, str], None],
) -> list[WindowResult]:
    """Ask about every window; retry the unusable answers once with the stricter prompt; fall
    back to the dsp description where the retry fails too. ``progress(windows_asked, message)``
    follows the first pass; the retries are announced with a message."""
    system = load_prompt("lalm_system.md").template.strip()
    facts = [window_facts(w, analysis, dsp_windows[w.index]) for w in windows]
    audio = [_window_audio(samples, family.sample_rate_hz, w) for w in windows]
    asked = 0

    def tick(count: int) -> None:
        nonlocal asked
        asked += count
        progress(asked, f"lalm: listened to {asked} of {len(windows)} window(s)")

    first = ask_model(
        family,
        model,
        processor,
        [AudioRequest(system, describe_prompt(facts[w.index]), audio[w.index]) for w in windows],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        repetition_penalty=REPETITION_PENALTY,
        on_batch=tick,
    )
    instructions = layout_instructions()
    checks = [check_answer(answer, instructions) for answer in first]
    results: dict[int, WindowResult] = {}
    retry: list[Window] = []
    for window, answer, check in zip(windows, first, checks):
        if check.ok:
            results[window.index] = _model_result(window, answer, dsp_windows[window.index], retried=False)
        else:
            log.info("lalm: window %d answer was %s; retrying with the stricter prompt", window.index, check.problem)
            retry.append(window)

    if retry:
        progress(asked, f"lalm: asking again about {len(retry)} window(s) with the stricter prompt")
        second = ask_model(
            family,
            model,
            processor,
            [AudioRequest(system, retry_prompt(facts[w.index], checks[w.index].problem or ""), audio[w.index]) for w in retry],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            repetition_penalty=RETRY_REPETITION_PENALTY,
        )
        for window, answer in zip(retry, second):
            check = check_answer(answer, instructions)
            if check.ok:
                results[window.index] = _model_result(window, answer, dsp_windows[window.index], retried=True)
            else:
                fallback = dsp_windows[window.index].model_copy(deep=True)
                fallback.features["lalm_answered"] = 0.0
                results[window.index] = WindowResult(
                    window, fallback, from_model=False, problems=[checks[window.index].problem or "", check.problem or ""]
                )
    return [results[w.index] for w in windows]


def _window_audio(samples: np.ndarray, rate_hz: int, window: Window) -> np.ndarray:
    """The window's samples, zero-padded to ``MIN_WINDOW_AUDIO_S`` when shorter."""
    start = min(max(int(round(window.start_s * rate_hz)), 0), len(samples))
    end = min(max(int(round(window.end_s * rate_hz)), start), len(samples))
    clip = samples[start:end]
    minimum = int(MIN_WINDOW_AUDIO_S * rate_hz)
    if len(clip) < minimum:
        clip = np.pad(clip, (0, minimum - len(clip)))
    return np.ascontiguousarray(clip, dtype=np.float32)


def _model_result(window: Window, answer: str, dsp: SegmentDescription, *, retried: bool) -> WindowResult:
    parsed = parse_answer(answer)
    features = dict(dsp.features)
    features["lalm_answered"] = 1.0
    voice = parsed.fields.get("voice")
    if voice:
        features["lalm_vocals"] = 0.0 if _INSTRUMENTAL_RE.search(voice) else 1.0
    filled = sum(1 for name in FIELDS if name in parsed.fields) / len(FIELDS)
    confidence = max(filled, MIN_ANSWER_CONFIDENCE) * (RETRY_CONFIDENCE_FACTOR if retried else 1.0)
    description = SegmentDescription(
        start_s=window.start_s,
        end_s=window.end_s,
        text=answer_paragraph(parsed),
        features=features,
        tags=answer_tags(parsed),
        confidence=round(confidence, 3),
    )
    return WindowResult(window, description, from_model=True)


def _fallback_warning(result: WindowResult, analysis: Analysis) -> str:
    window = result.window
    section = analysis.sections[window.section_position]
    where = f"section {section.index}"
    if window.parts > 1:
        where += f" (part {window.part} of {window.parts}, {_clock(window.start_s)}-{_clock(window.end_s)})"
    first, second = result.problems
    said = f"was {first} twice" if first == second else f"was {first}, then {second}"
    message = f"{where}: the audio-language model's answer {said}; DSP description used"
    log.warning("lalm: %s", message)
    return message


# --------------------------------------------------------------------------------------------
# 6. Sections, shots, song


def _merge_tags(parts: Sequence[tuple[dict[str, list[ScoredLabel]], float]]) -> dict[str, list[ScoredLabel]]:
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


def _section_description(section: Section, results: Sequence[WindowResult], dsp: SegmentDescription) -> SegmentDescription:
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
        text=_cut(text, 2 * MAX_TEXT_CHARS),
        features=features,
        tags=_merge_tags([(r.description.tags, r.window.duration_s) for r in results if r.from_model]),
        confidence=round(sum(confidences) / max(len(confidences), 1), 3),
    )


def _shot_description(
    shot: Shot, analysis: Analysis, results: Sequence[WindowResult], dsp: SegmentDescription
) -> SegmentDescription:
    """The words of the window the shot sits in, with the shot's own dsp numbers; a shot whose
    window fell back keeps its own (more precise) dsp description."""
    window = window_for_shot(shot, [r.window for r in results], _section_position(shot, analysis))
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


def _section_position(shot: Shot, analysis: Analysis) -> int | None:
    """Position in ``analysis.sections`` of the shot's section: by index, else by overlap."""
    for position, section in enumerate(analysis.sections):
        if section.index == shot.section_index:
            return position
    overlaps = [min(s.end_s, shot.end_s) - max(s.start_s, shot.start_s) for s in analysis.sections]
    return int(np.argmax(overlaps)) if overlaps else None


def _song_description(
    analysis: Analysis, sections: Sequence[SegmentDescription], dsp: SegmentDescription, answered_share: float
) -> SegmentDescription:
    """The whole song, condensed from the sections (see the module docstring, step 7); the dsp
    description of the song when the model described no window at all."""
    if answered_share == 0.0:
        fallback = dsp.model_copy(deep=True)
        fallback.features["lalm_answered"] = 0.0
        return fallback
    # Only the words the model chose: a fallback section's dsp tags (energy, texture, ...) are
    # another vocabulary, and the dsp numbers are in ``features`` already.
    described = [s for s in sections if s.features.get("lalm_answered", 0.0) > 0.0]
    tags = _merge_tags([({k: v for k, v in s.tags.items() if k in TAG_FIELDS}, s.end_s - s.start_s) for s in described])
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
        text=_cut(" ".join(parts), MAX_TEXT_CHARS),
        features=features,
        tags=tags,
        confidence=round(confidence, 3),
    )


__all__ = [
    "AnswerCheck",
    "ParsedAnswer",
    "Window",
    "answer_paragraph",
    "answer_tags",
    "check_answer",
    "describe_lalm",
    "load_lalm",
    "parse_answer",
    "plan_windows",
    "resolve_family",
    "window_facts",
]
