"""The LLM storyboard writer: a language model directs the video, the program keeps the cuts.

``write_llm_storyboard`` asks a chat model, in several short passes, to write the storyboard the
way a music-video director would:

1. **Concept pass**: one concept and title for the whole song, a style bible (look, palette,
   lens, era, medium), up to a few recurring characters, and one treatment per section (motif,
   setting, palette, story beat).
2. **Shot passes**: one request per section (or per chunk of at most ``MAX_SHOTS_PER_REQUEST``
   shots), each carrying the concept, the characters, every section's treatment, short
   summaries of what the sections before it show and, for a returning section, the images of
   its earlier occurrence. Long songs therefore fit a small context window.

What the model writes is only words. The program copies shot ids, times and section indices
from the plan, derives seeds from ``(seed, shot index)``, measures energy as the template does, and
composes every final prompt itself as *style bible + shown characters' descriptions + section
setting + the model's shot prompt*, so a character or a place reads word for word the same in
every shot whatever the model does, and the prompt stays within ``MAX_PROMPT_CHARS``.

Two backends give the same replies:

* **local** (``settings.base_url`` unset): a chat model loaded through transformers from a
  Hugging Face id or a local folder, decoding constrained to the pass's JSON schema with
  llguidance (so even a weak model returns parseable JSON of the right shape);
* **openai** (``settings.base_url`` set): any OpenAI-compatible endpoint, asked for
  ``response_format`` ``json_schema`` (strict); a server that refuses it is asked again with a
  schema without length keywords, then ``json_object``, then plain text.

Faults are expected and handled: malformed or truncated JSON is repaired, and a reply that
still does not validate, or has the wrong number of items, is asked for again with the error fed
back; timeouts, connection errors, HTTP 429 and 5xx are retried with exponential backoff. A part
(the concept, or one section's shots) that fails ``settings.max_retries + 1`` times is written by
the template writer instead, and that is logged at WARNING and recorded in
``Storyboard.warnings``. Shots are never dropped, added or moved.

Lyrics, descriptions and file names reach the model only as JSON inside a delimited data block
that the system prompt declares to be data. The prompt templates live in
``music2video/prompts/storyboard_*.md``; every request and raw response is saved under
``log_dir`` when it is given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from music2video.artifacts import (
    Analysis,
    Character,
    Descriptions,
    Section,
    SectionTreatment,
    SegmentDescription,
    ShotPlan,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.errors import MissingDependencyError, ModelLoadError, Music2VideoError
from music2video.music import Key
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import write_text_atomic
from music2video.settings import LlmSettings
from music2video.torch_device import free_memory, resolve_device, resolve_dtype
from music2video.write.template import (
    NEGATIVE_PROMPT,
    NEGATIVE_PROMPT_CHARACTERS,
    matching_description,
    shot_seed,
    write_template_storyboard,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Constants

MAX_PROMPT_CHARS = 800
"""Longest final text-to-video prompt, in characters (style + characters + setting + shot prompt).
Wan's UMT5 encoder reads 512 tokens; 800 characters of English stay well inside that."""

MIN_SHOT_PROMPT_CHARS = 60
"""Room, in characters, that the shot's own words keep when the fixed part is long: the setting
is dropped from a prompt before the shot's action is squeezed below this."""

MAX_SHOTS_PER_REQUEST = 16
"""Shots asked for in one request; a longer section is written in chunks of about equal size."""

RETRY_BASE_DELAY_S = 1.0
"""First wait after a timeout, connection error, 429 or 5xx, in seconds; doubled on each retry."""

RETRY_MAX_DELAY_S = 30.0
"""Longest wait between two attempts, in seconds (a server's Retry-After is capped to this too)."""

TEMPERATURE = 0.7
"""Sampling temperature for both backends: varied enough to be vivid, low enough to follow the schema."""

TOP_P = 0.9
"""Nucleus sampling mass for the local backend."""

CONTEXT_SECTIONS = 4
"""How many of the previously written sections a shot pass sees in detail (all are listed briefly)."""

ECHO_SCENES = 4
"""Scenes of an earlier section with the same label shown to the pass that writes its return."""

DATA_TEXT_CHARS = 300
"""Longest listener description or lyric excerpt put in the data block, in characters."""

DATA_TAGS_PER_VOCABULARY = 5
"""Best labels per vocabulary (mood, genre, ...) put in the data block."""

SUMMARY_SCENE_CHARS = 100
"""Longest scene excerpt in a section summary, in characters."""


HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
HEX_COLOUR_PATTERN = "^#[0-9a-fA-F]{6}$"

JSON_ALLOWED_ESCAPES = '"\\'
"""Escapes llguidance lets the local model write inside strings: quote and backslash only, so a weak
model cannot fill a scene with control characters or \\u escapes."""

UTF8_MAX_BYTES_PER_CHAR = 4
"""A byte-level BPE token holds at least one byte, so a string of n characters costs at most 4n tokens."""

PROMPTS_PACKAGE = "music2video"
PROMPTS_FOLDER = "prompts"


@dataclass(frozen=True)
class TextLimits:
    """Longest text the model may write in each field, in characters (``maxLength`` in the
    schema), and how many items it may list. The defaults keep a composed prompt within
    ``MAX_PROMPT_CHARS``; tests lower them so a random-weight model finishes quickly."""

    title: int = 60
    concept: int = 400
    look: int = 100
    medium: int = 32
    lens: int = 32
    era: int = 32
    character_name: int = 24
    character_description: int = 120
    max_characters: int = 3
    motif: int = 24
    setting: int = 90
    story: int = 200
    scene: int = 160
    shot_prompt: int = 200
    camera: int = 32
    max_characters_per_shot: int = 2
    min_palette_colours: int = 3
    max_palette_colours: int = 5


DEFAULT_LIMITS = TextLimits()


# --------------------------------------------------------------------------------------------
# What the model writes: one pydantic model per pass. Parsing is lenient about extra keys
# (extra="ignore"), the JSON schema sent to the model is strict: ``_schema_for`` inlines the
# references, sets additionalProperties false and requires every property, and fills in the
# per-request bounds named by the "x-rule" markers (string lengths, list lengths, enums).


def _rule(name: str, description: str) -> Any:
    return Field(description=description, json_schema_extra={"x-rule": name})


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StyleReply(_Reply):
    look: str = _rule("look", "The look in one phrase, e.g. 'grainy handheld melancholy, soft halation'.")
    medium: str = _rule("medium", "e.g. '35 mm film', 'claymation', 'watercolour animation', '3D render'.")
    lens: str = _rule("lens", "e.g. 'wide 24 mm, shallow depth of field'.")
    era: str = _rule("era", "e.g. '1970s', 'near future', 'timeless'.")
    palette: list[str] = _rule("palette", "Main colours as #rrggbb.")


class CharacterReply(_Reply):
    name: str = _rule("character_name", "Short name used to refer to the character.")
    description: str = _rule(
        "character_description", "Fixed appearance in one sentence; pasted word for word into every shot."
    )


class TreatmentReply(_Reply):
    motif: str = _rule("motif", "A word or two naming the section's visual idea; same label, same motif.")
    setting: str = _rule("setting", "The place in one sentence; pasted word for word into every shot of the section.")
    palette: list[str] = _rule("palette", "Colours of the section as #rrggbb.")
    story: str = _rule("story", "What happens in this section.")


class ConceptReply(_Reply):
    title: str = _rule("title", "Title of the video.")
    concept: str = _rule("concept", "The one idea or story of the whole video.")
    style: StyleReply
    characters: list[CharacterReply] = _rule("characters", "Recurring characters; may be empty.")
    sections: list[TreatmentReply] = _rule("sections", "One treatment per section, in order.")


class ShotReply(_Reply):
    scene: str = _rule("scene", "What the viewer sees, for people.")
    prompt: str = _rule("shot_prompt", "Text-to-video prompt for this shot; characters by name only.")
    camera: str = _rule("camera", "One camera movement.")
    characters: list[str] = _rule("shot_characters", "Names of the characters visible in the shot.")


class ShotsReply(_Reply):
    shots: list[ShotReply] = _rule("shots", "One entry per shot, in order.")


R = TypeVar("R", bound=_Reply)


def _string_rule(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


def _palette_rule(limits: TextLimits) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": limits.min_palette_colours,
        "maxItems": limits.max_palette_colours,
        "items": {"type": "string", "pattern": HEX_COLOUR_PATTERN, "minLength": 7, "maxLength": 7},
    }


def concept_schema(limits: TextLimits, section_count: int) -> dict[str, Any]:
    """JSON schema of the concept pass: exactly ``section_count`` treatments."""
    rules = {
        name: _string_rule(getattr(limits, name))
        for name in ("title", "concept", "look", "medium", "lens", "era", "character_name",
                     "character_description", "motif", "setting", "story")
    }
    rules["palette"] = _palette_rule(limits)
    rules["characters"] = {"type": "array", "minItems": 0, "maxItems": limits.max_characters}
    rules["sections"] = {"type": "array", "minItems": section_count, "maxItems": section_count}
    return _schema_for(ConceptReply, rules)


def shots_schema(limits: TextLimits, shot_count: int, character_names: Sequence[str]) -> dict[str, Any]:
    """JSON schema of a shot pass: exactly ``shot_count`` shots; characters only from ``character_names``."""
    names = list(dict.fromkeys(character_names))
    if names:
        shown = {
            "type": "array",
            "minItems": 0,
            "maxItems": min(limits.max_characters_per_shot, len(names)),
            "items": {"type": "string", "enum": names},
        }
    else:  # nobody to show: the only valid list is the empty one
        shown = {"type": "array", "minItems": 0, "maxItems": 0, "items": _string_rule(1)}
    rules = {name: _string_rule(getattr(limits, name)) for name in ("scene", "shot_prompt", "camera")}
    rules["shot_characters"] = shown
    rules["shots"] = {"type": "array", "minItems": shot_count, "maxItems": shot_count}
    return _schema_for(ShotsReply, rules)


def _schema_for(model: type[BaseModel], rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The model's JSON schema, inlined and hardened with ``rules`` (see module comment above)."""
    raw = model.model_json_schema()
    definitions = raw.pop("$defs", {})

    def harden(node: Any) -> Any:
        if isinstance(node, list):
            return [harden(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = dict(definitions[node["$ref"].rsplit("/", 1)[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **extra}
        # "title" annotations are noise in a prompt; a property *named* title stays.
        node = {
            key: ({name: harden(sub) for name, sub in value.items()} if key == "properties" else harden(value))
            for key, value in node.items()
            if key != "title"
        }
        rule = node.pop("x-rule", None)
        if rule is not None:
            node.update(rules[rule])
        if node.get("type") == "object":
            node["additionalProperties"] = False
            node["required"] = list(node.get("properties", {}))
        return node

    schema = harden(raw)
    check_hardened(schema)
    return schema


def check_hardened(schema: Any, where: str = "$") -> None:
    """Raise ``ValueError`` unless every string has a maxLength (or enum/pattern of fixed size),
    every array a maxItems, every object additionalProperties false and all properties
    required, and no integer is unbounded: what keeps a weak model from looping in a value."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            check_hardened(item, f"{where}[{i}]")
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema and "enum" not in schema:
        raise ValueError(f"{where}: string without maxLength")
    if kind == "array" and "maxItems" not in schema:
        raise ValueError(f"{where}: array without maxItems")
    if kind in ("integer", "number") and not {"minimum", "maximum"} <= schema.keys():
        raise ValueError(f"{where}: {kind} without minimum and maximum")
    if kind == "object":
        if schema.get("additionalProperties") is not False:
            raise ValueError(f"{where}: object allows additional properties")
        if sorted(schema.get("required", [])) != sorted(schema.get("properties", {})):
            raise ValueError(f"{where}: object does not require all its properties")
    for key, value in schema.items():
        check_hardened(value, f"{where}.{key}")


def max_json_bytes(schema: dict[str, Any]) -> int:
    """Upper bound of the UTF-8 size, in bytes, of a compact JSON document valid under ``schema``
    (as hardened above): with byte-level tokens, also a bound on the tokens it takes."""
    if "enum" in schema:
        return max(len(json.dumps(value, ensure_ascii=False).encode()) for value in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        # Each character is at most 4 UTF-8 bytes, or 2 as an allowed escape; plus quotes.
        return 2 + UTF8_MAX_BYTES_PER_CHAR * int(schema["maxLength"])
    if kind == "array":
        count = int(schema["maxItems"])
        return 2 + count * (max_json_bytes(schema["items"]) + 1)
    if kind == "object":
        size = 2
        for key, value in schema["properties"].items():
            size += len(json.dumps(key).encode()) + 1 + max_json_bytes(value) + 1
        return size
    if kind in ("integer", "number"):
        return 32
    if kind == "boolean":
        return 5
    return 4  # null


def portable_schema(schema: Any) -> Any:
    """The schema without string length and pattern keywords, which some strict servers
    (api.openai.com among them) refuse; the program trims over-long text itself."""
    if isinstance(schema, list):
        return [portable_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: portable_schema(v) for k, v in schema.items() if k not in ("minLength", "maxLength", "pattern")}


# --------------------------------------------------------------------------------------------
# Prompt templates


def load_prompt(name: str) -> str:
    """The text of ``music2video/prompts/<name>``, a file a person can read and edit."""
    return (resources.files(PROMPTS_PACKAGE) / PROMPTS_FOLDER / name).read_text(encoding="utf-8")


def fill_prompt(name: str, **values: Any) -> str:
    """``load_prompt(name)`` with its ``${placeholders}`` filled; a missing one is an error that names it."""
    try:
        return string.Template(load_prompt(name)).substitute({k: str(v) for k, v in values.items()})
    except KeyError as error:
        raise Music2VideoError(f"prompt template {name} uses the placeholder ${{{error.args[0]}}}, which is not known; "
                               f"known placeholders: {', '.join(sorted(values))}") from None
    except ValueError as error:  # a stray "$" in an edited template
        raise Music2VideoError(
            f"prompt template {name} is not a valid template ({error}); write a literal $ as $$"
        ) from None


# --------------------------------------------------------------------------------------------
# Faults


class _TransientError(Exception):
    """Worth retrying after a pause: timeout, connection error, HTTP 429 or 5xx."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _RequestRejected(Exception):
    """The server refused this request as it stands (HTTP 400 in every response mode); asking
    the same again would not help."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _ReplyError(Exception):
    """The reply arrived but cannot be used; ``reason`` is short (for warnings), ``feedback``
    tells the model what to fix."""

    def __init__(self, reason: str, feedback: str):
        super().__init__(reason)
        self.reason = reason
        self.feedback = feedback


class _PartFailed(Exception):
    """A part (the concept, or one section's shots) failed every attempt; the template writes it."""

    def __init__(self, attempts: int, reason: str):
        super().__init__(f"LLM failed {attempts} {'time' if attempts == 1 else 'times'} ({reason})")
        self.attempts = attempts
        self.reason = reason


# --------------------------------------------------------------------------------------------
# JSON repair


def repair_json(text: str) -> str:
    """Best-effort fix of the ways a model's JSON usually breaks, returning text for ``json.loads``.

    Handles prose or code fences around the object (keeps the first top-level ``{...}``),
    trailing commas, and truncation (closes an open string, drops a dangling comma, gives a
    dangling key a null value, closes open brackets). Anything else is left for validation to
    reject and the retry to fix.
    """
    start = text.find("{")
    if start < 0:
        return text.strip()
    out: list[str] = []
    closers: list[str] = []
    in_string = escaped = False
    for char in text[start:]:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
            out.append(char)
        elif char in "{[":
            closers.append("}" if char == "{" else "]")
            out.append(char)
        elif char in "}]":
            _drop_trailing_comma(out)
            if closers:
                closers.pop()
            out.append(char)
            if not closers:
                return "".join(out)
        else:
            out.append(char)
    # Truncated: finish what was open.
    if in_string:
        if escaped:
            out.pop()
        out.append('"')
    _drop_trailing_comma(out)
    body = "".join(out).rstrip()
    if body.endswith(":"):
        body += "null"
    elif closers and closers[-1] == "}" and _ends_with_dangling_key(body):
        body += ":null"
    return body + "".join(reversed(closers))


def _drop_trailing_comma(out: list[str]) -> None:
    i = len(out) - 1
    while i >= 0 and out[i].isspace():
        i -= 1
    if i >= 0 and out[i] == ",":
        del out[i:]


def _ends_with_dangling_key(body: str) -> bool:
    """True when ``body`` ends with a string that stands where an object key goes."""
    if not body.endswith('"'):
        return False
    i = len(body) - 2
    while i >= 0:
        if body[i] == '"' and body[i - 1] != "\\":
            break
        i -= 1
    before = body[:i].rstrip()
    return before.endswith("{") or before.endswith(",")


def parse_reply(raw: str, reply_type: type[R]) -> tuple[R, bool]:
    """The reply in ``raw`` and whether it had to be repaired; ``_ReplyError`` when unusable."""
    text = raw.strip()
    repaired = False
    try:
        data = json.loads(text)
    except ValueError:
        fixed = repair_json(text)
        try:
            data = json.loads(fixed)
        except ValueError as error:
            raise _ReplyError(
                "invalid JSON", f"it was not valid JSON ({error}); write only the JSON object"
            ) from None
        repaired = True
    if not isinstance(data, dict):
        raise _ReplyError("invalid JSON", "it was not a JSON object")
    try:
        return reply_type.model_validate(data), repaired
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'answer'}: {item['msg']}" for item in error.errors()[:6]
        )
        raise _ReplyError("reply did not match the schema", f"it did not match the schema ({problems})") from None


# --------------------------------------------------------------------------------------------
# Request log


class _RequestLog:
    """Writes each request as ``NNN-<part>.request.json`` and its raw answer as
    ``NNN-<part>.response.txt`` (or ``.error.txt``) under ``folder``; does nothing without one."""

    PATTERN = re.compile(r"^\d{3}-.*\.(request\.json|response\.txt|error\.txt)$")

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.count = 0
        if folder is not None and folder.is_dir():
            # One run's conversation per folder: logs of an earlier run would interleave.
            for old in folder.iterdir():
                if self.PATTERN.match(old.name):
                    old.unlink()

    def request(self, part: str, payload: dict[str, Any]) -> str:
        self.count += 1
        stem = f"{self.count:03d}-{part}"
        if self.folder is not None:
            write_text_atomic(self.folder / f"{stem}.request.json",
                              json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return stem

    def response(self, stem: str, text: str) -> None:
        if self.folder is not None:
            write_text_atomic(self.folder / f"{stem}.response.txt", text)

    def error(self, stem: str, text: str) -> None:
        if self.folder is not None:
            write_text_atomic(self.folder / f"{stem}.error.txt", text + "\n")


# --------------------------------------------------------------------------------------------
# Backends. Each takes chat messages and a JSON schema and returns the model's raw text.


class _OpenAIBackend:
    """Any OpenAI-compatible chat completions endpoint (vLLM, llama.cpp, Ollama, hosted APIs)."""

    # Ways to ask for JSON, strongest first. A server that answers 400 to one is asked the next
    # way; the weaker way is kept for later requests only once it has worked.
    MODES = ("json_schema", "json_schema_portable", "json_object", "text")

    def __init__(self, settings: LlmSettings, request_log: _RequestLog):
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai", "llm", "the llm writer with base_url") from None
        self.openai = openai
        self.settings = settings
        self.log = request_log
        self.mode = 0
        self.notes: list[str] = []
        api_key = settings.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        # The client's own retries are off: _Director counts attempts and waits between them.
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=api_key, timeout=settings.timeout_s,
                                    max_retries=0)

    def describe(self) -> str:
        return f"llm:{self.settings.model}@{_without_credentials(self.settings.base_url or '')}"

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any], part: str, seed: int) -> str:
        openai = self.openai
        first_error: str | None = None
        for mode in range(self.mode, len(self.MODES)):
            kwargs: dict[str, Any] = {
                "model": self.settings.model,
                "messages": messages,
                "temperature": TEMPERATURE,
                "seed": seed,
            }
            response_format = self._response_format(self.MODES[mode], part, schema)
            if response_format is not None:
                kwargs["response_format"] = response_format
            base_url = _without_credentials(self.settings.base_url or "")
            stem = self.log.request(part, {"backend": "openai", "base_url": base_url, "mode": self.MODES[mode], **kwargs})
            try:
                response = self.client.chat.completions.create(**kwargs)
            except openai.BadRequestError as error:
                self.log.error(stem, f"HTTP 400: {_error_message(error)}")
                first_error = first_error or _error_message(error)
                continue  # perhaps the response format: try the next, weaker one
            except openai.APITimeoutError:
                self.log.error(stem, f"timeout after {self.settings.timeout_s} s")
                raise _TransientError("timeout") from None
            except openai.APIConnectionError as error:
                self.log.error(stem, f"connection error: {error}")
                raise _TransientError("connection error") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as error:
                self.log.error(stem, f"HTTP {error.status_code}: {_error_message(error)}")
                raise Music2VideoError(
                    f"the LLM server at {_without_credentials(self.settings.base_url or '')} refused model "
                    f"{self.settings.model!r} (HTTP {error.status_code}: {_error_message(error)}); check llm.model, "
                    "llm.api_key (or OPENAI_API_KEY) and llm.base_url"
                ) from None
            except openai.APIStatusError as error:
                self.log.error(stem, f"HTTP {error.status_code}: {_error_message(error)}")
                if error.status_code == 429 or error.status_code >= 500:
                    raise _TransientError(f"HTTP {error.status_code}", _retry_after_s(error)) from None
                raise _RequestRejected(f"HTTP {error.status_code}: {_error_message(error)}") from None
            choice = response.choices[0] if response.choices else None
            content = (choice.message.content if choice is not None else None) or ""
            self.log.response(stem, content)
            if mode != self.mode:
                note = (f"the LLM server refused response_format {self.MODES[self.mode]} ({first_error}); "
                        f"used {self.MODES[mode]} instead")
                log.warning(note)
                self.notes.append(note)
                self.mode = mode
            return content
        raise _RequestRejected(f"HTTP 400: {first_error}")

    @staticmethod
    def _response_format(mode: str, part: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", part)[:64]
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        if mode == "json_schema_portable":
            portable = portable_schema(schema)
            return {"type": "json_schema", "json_schema": {"name": name, "schema": portable, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def close(self) -> None:
        self.client.close()


def _error_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return " ".join(str(message).split())[:300]
    return " ".join(str(error).split())[:300]


def _retry_after_s(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _without_credentials(url: str) -> str:
    """``url`` without a user:password part, for logs and the storyboard."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class _GrammarMask:
    """A transformers logits processor that lets only the tokens the JSON grammar allows through.

    ``generate`` calls it once per new token with the whole sequence so far; from the second
    call on, the last token of ``input_ids`` is the one just chosen, which the matcher consumes
    before it computes the next mask. Batch size 1.
    """

    def __init__(self, matcher: Any, eos_token_id: int):
        self.matcher = matcher
        self.eos_token_id = eos_token_id
        self.prompt_length: int | None = None
        self.error: str | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np
        import torch

        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        elif not self.matcher.consume_token(int(input_ids[0, -1])):
            self.error = self.matcher.get_error()
        vocab = int(scores.shape[-1])
        allowed = torch.zeros(vocab, dtype=torch.bool)
        if self.matcher.is_error() or self.matcher.is_stopped():
            # Nothing more may follow: end the generation (a broken result is caught by validation).
            allowed[self.eos_token_id] = True
        else:
            bits = np.unpackbits(np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
            n = min(vocab, bits.shape[0])
            allowed[:n] = torch.from_numpy(bits[:n].astype(bool))
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))


class _LocalBackend:
    """A chat model run through transformers, loaded once for all passes and freed by ``close``."""

    def __init__(self, settings: LlmSettings, request_log: _RequestLog):
        try:
            import llguidance
            import llguidance.hf
            import torch
            import transformers
        except ImportError as error:
            raise MissingDependencyError(error.name or "transformers", "llm", "the local llm writer") from None
        self.torch = torch
        self.transformers = transformers
        self.llguidance = llguidance
        self.settings = settings
        self.log = request_log
        self.notes: list[str] = []
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(settings.model)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(settings.model, dtype=self.dtype)
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"could not load the LLM {settings.model!r} ({_first_line(error)}); give a Hugging Face id or a "
                "local folder with a chat model as llm.model, or an OpenAI-compatible server as llm.base_url "
                "(offline: set HF_HUB_OFFLINE=1 to use the local cache only)"
            ) from None
        self.model.to(self.device).eval()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(f"the LLM {settings.model!r} has no chat template; choose an instruct/chat model")
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ModelLoadError(f"the LLM {settings.model!r} has no end-of-sequence token")
        self.eos_token_id = int(eos)
        try:
            self.ll_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer)
        except ValueError as error:
            raise ModelLoadError(f"constrained decoding needs a fast tokenizer; {settings.model!r}: {error}") from None

    def describe(self) -> str:
        return f"llm:{self.settings.model}"

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any], part: str, seed: int) -> str:
        torch = self.torch
        llguidance = self.llguidance
        prompt = self._chat_text(messages)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, overrides={"whitespace_flexible": False, "json_allowed_escapes": JSON_ALLOWED_ESCAPES}
        )
        matcher = llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise RuntimeError(f"llguidance rejected the {part} schema: {matcher.get_error()}")
        # Every token is at least one byte, so this many tokens always finish a valid document.
        max_new_tokens = max_json_bytes(schema) + 8
        stem = self.log.request(part, {"backend": "transformers", "model": self.settings.model, "messages": messages,
                                       "prompt_text": prompt, "schema": schema, "max_new_tokens": max_new_tokens,
                                       "temperature": TEMPERATURE, "top_p": TOP_P, "seed": seed})
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        mask = _GrammarMask(matcher, self.eos_token_id)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_id
        # Seed a private copy of the RNG so generation is reproducible and the caller's RNG untouched.
        cuda_devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():
            torch.manual_seed(seed)
            output = self.model.generate(
                **inputs,
                logits_processor=self.transformers.LogitsProcessorList([mask]),
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=TEMPERATURE,
                top_p=TOP_P,
                eos_token_id=self.eos_token_id,
                pad_token_id=pad,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1]:].tolist()
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        self.log.response(stem, text)
        if mask.error:
            log.debug("%s: grammar error during generation: %s", part, mask.error)
        return text

    def _chat_text(self, messages: list[dict[str, str]]) -> str:
        """The prompt text in the model's chat format; a template that refuses a system turn
        (Gemma's, for one) gets the system prompt at the top of the first user turn instead."""
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError:
            merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]},
                      *messages[2:]]
            return self.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)

    def close(self) -> None:
        del self.model
        free_memory()


# --------------------------------------------------------------------------------------------
# The data the model sees


def _round(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def _excerpt(text: str, limit: int = DATA_TEXT_CHARS) -> str:
    text = " ".join(str(text).split())
    return fit_words(text, limit)[0]


def _listener_data(segment: SegmentDescription | None) -> dict[str, Any]:
    """What a listener said about a span: text, best tags and numeric features, generically."""
    if segment is None:
        return {}
    data: dict[str, Any] = {}
    if segment.text.strip():
        data["heard"] = _excerpt(segment.text)
    tags = {
        vocabulary: [label.label for label in labels[:DATA_TAGS_PER_VOCABULARY]]
        for vocabulary, labels in segment.tags.items()
        if labels
    }
    if tags:
        data["tags"] = tags
    if segment.features:
        data["features"] = {name: _round(value) for name, value in segment.features.items() if math.isfinite(value)}
    return data


def _key_data(segment: SegmentDescription) -> dict[str, str]:
    """``{"key": "A minor"}`` when a listener heard the key (dsp's key_tonic/key_mode_major
    features, or a "key" tag); else nothing. The raw numbers would mean little to a model."""
    if (key := Key.from_features(segment.features)) is not None:
        return {"key": key.name}
    labels = segment.tags.get("key", [])
    return {"key": labels[0].label} if labels and labels[0].label.strip() else {}


@dataclass
class _SectionPlan:
    """One section of the song and the planned shots inside it (plan indices)."""

    section: Section
    shot_indices: list[int]
    first_of_label: int | None = None  # index (in the section list) of an earlier section with this label

    @property
    def name(self) -> str:
        return f"section {self.section.index} ({self.section.role})"


def _section_plans(analysis: Analysis, plan: ShotPlan) -> list[_SectionPlan]:
    """Every section of the analysis, in order, with the plan's shots inside it; a section
    label heard before points back at its first occurrence (the callback)."""
    plans = [_SectionPlan(section, []) for section in analysis.sections]
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


@dataclass
class _Concept:
    title: str
    concept: str
    style: StyleBible
    characters: list[Character]
    treatments: list[SectionTreatment]
    stories: list[str]


@dataclass
class _Director:
    """Holds one run's inputs, backend and warnings, and writes the passes in order."""

    analysis: Analysis
    plan: ShotPlan
    descriptions: Descriptions
    settings: LlmSettings
    style: str
    seed: int
    lyrics_by_shot: dict[str, str]
    limits: TextLimits
    backend: Any
    template: Storyboard
    warnings: list[str] = field(default_factory=list)
    text_cuts: list[str] = field(default_factory=list)  # fields cut to their limit, e.g. "shot-004 scene"
    prompt_cuts: list[str] = field(default_factory=list)  # shot ids whose composed prompt was shortened
    unknown_names: list[str] = field(default_factory=list)  # "shot-003 'Bob'": names the concept lacks
    used_template: bool = False  # some part fell back to the template writer
    requests: int = 0

    # 1. Inputs, as the model sees them --------------------------------------------------------

    def shot_description(self, index: int) -> SegmentDescription | None:
        shot = self.plan.shots[index]
        return matching_description(self.descriptions.shots, index, shot.start_s, shot.end_s)

    def section_description(self, position: int, section: Section) -> SegmentDescription | None:
        """The listener's description of the section at ``position`` in the analysis."""
        return matching_description(self.descriptions.sections, position, section.start_s, section.end_s)

    def shot_energy(self, index: int) -> float:
        """0..1, as the template writer measures it (listener's energy, else the analysis curve),
        so that both writers drive the renderer's motion the same way."""
        return float(self.template.shots[index].energy)

    def messages(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": load_prompt("storyboard_system.md")}, {"role": "user", "content": user}]

    def brief(self) -> str:
        return self.style.strip() or "(none: choose freely, led by the music)"

    # 2. Asking, with retries ------------------------------------------------------------------

    def ask(self, part: str, messages: list[dict[str, str]], schema: dict[str, Any], reply_type: type[R],
            check: Callable[[R], None], expectation: str) -> tuple[R, bool]:
        """The validated reply to ``messages`` and whether it was repaired; ``_PartFailed`` after
        ``max_retries + 1`` attempts. ``check`` raises ``_ReplyError`` for a reply of the wrong size."""
        attempts = self.settings.max_retries + 1
        conversation = list(messages)
        reason = "no attempt"
        for attempt in range(1, attempts + 1):
            self.requests += 1
            name = part if attempt == 1 else f"{part}-try{attempt}"
            try:
                raw = self.backend.complete(conversation, schema, name, _request_seed(self.seed, self.requests))
            except _TransientError as error:
                reason = error.reason
                log.warning("%s: attempt %d of %d failed (%s)", part, attempt, attempts, reason)
                if attempt < attempts:
                    time.sleep(_backoff_s(attempt, error.retry_after_s))
                continue
            except _RequestRejected as error:
                log.warning("%s: the server refused the request (%s)", part, error.reason)
                raise _PartFailed(attempt, error.reason) from None
            try:
                reply, repaired = parse_reply(raw, reply_type)
                check(reply)
                return reply, repaired
            except _ReplyError as error:
                reason = error.reason
                log.warning("%s: attempt %d of %d gave an unusable reply (%s)", part, attempt, attempts, error.feedback)
                # Ask again with the reason appended to the same user turn: the broken answer
                # itself is left out (it would only fill a small context window), and one user
                # turn suits chat templates that insist on alternating roles.
                retry = fill_prompt("storyboard_retry.md", error=error.feedback, expectation=expectation)
                conversation = [*messages[:-1], {"role": "user", "content": f"{messages[-1]['content']}\n\n{retry}"}]
        raise _PartFailed(attempts, reason)

    # 3. Pass 1: concept -------------------------------------------------------------------------

    def write_concept(self, sections: list[_SectionPlan]) -> _Concept:
        limits = self.limits
        data = {
            "song": {
                "duration_s": _round(self.analysis.duration_s),
                "tempo_bpm": _round(self.analysis.tempo_bpm, 1),
                "beats_per_bar": self.analysis.beats_per_bar,
                "shots": len(self.plan.shots),
                "listener": self.descriptions.listener,
                **_key_data(self.descriptions.song),
                **_listener_data(self.descriptions.song),
            },
            "sections": [self._section_summary_data(position, sp) for position, sp in enumerate(sections)],
        }
        schema = concept_schema(limits, len(sections))
        user = fill_prompt(
            "storyboard_concept.md",
            brief=self.brief(),
            min_colours=limits.min_palette_colours,
            max_colours=limits.max_palette_colours,
            max_characters=limits.max_characters,
            section_count=len(sections),
            data=_data_json(data),
            schema=json.dumps(schema, ensure_ascii=False),
        )

        def check(reply: ConceptReply) -> None:
            if len(reply.sections) != len(sections):
                raise _ReplyError(
                    f"{len(reply.sections)} section treatments instead of {len(sections)}",
                    f"it had {len(reply.sections)} section treatments; the song has exactly {len(sections)} sections",
                )

        try:
            reply, repaired = self.ask("concept", self.messages(user), schema, ConceptReply, check,
                                       f"It must hold exactly {len(sections)} items in \"sections\".")
        except _PartFailed as failure:
            self.warn(f"concept: {failure}; template concept, style, characters and section treatments used")
            self.used_template = True
            return self._template_concept(sections)
        if repaired:
            self.warn("concept: the LLM's JSON was malformed and was repaired")
        return self._concept_from_reply(reply, sections)

    def _section_summary_data(self, position: int, sp: _SectionPlan) -> dict[str, Any]:
        section = sp.section
        lyrics = " / ".join(
            line for i in sp.shot_indices if (line := self.lyrics_by_shot.get(self.plan.shots[i].id, "").strip())
        )
        data: dict[str, Any] = {
            "section": position + 1,
            "label": section.label,
            "role": section.role,
            "start_s": _round(section.start_s),
            "end_s": _round(section.end_s),
            "energy": _round(section.energy),
            "shots": len(sp.shot_indices),
        }
        if sp.first_of_label is not None:
            data["returns_from_section"] = sp.first_of_label + 1
        data.update(_listener_data(self.section_description(position, section)))
        if lyrics:
            data["lyrics"] = _excerpt(lyrics)
        return data

    def _concept_from_reply(self, reply: ConceptReply, sections: list[_SectionPlan]) -> _Concept:
        limits = self.limits
        template_style = self.template.style
        style_palette = _valid_palette(reply.style.palette)
        if style_palette is None:
            self.warn(f"style: the LLM's palette {reply.style.palette} is not #rrggbb colours; "
                      "the template palette is used")
            style_palette = list(template_style.palette)
        style = StyleBible(
            look=self.fit("style look", reply.style.look, limits.look),
            palette=style_palette,
            lens=self.fit("style lens", reply.style.lens, limits.lens),
            era=self.fit("style era", reply.style.era, limits.era),
            medium=self.fit("style medium", reply.style.medium, limits.medium),
        )
        characters: list[Character] = []
        for item in reply.characters[: limits.max_characters]:
            name = self.fit("character name", item.name, limits.character_name)
            if not name or any(c.name == name for c in characters):
                continue  # an empty or repeated name could not be told apart in shot replies
            characters.append(Character(name=name, description=self.fit(
                f"character {name}", item.description, limits.character_description)))
        template_sections = {t.section_index: t for t in self.template.sections}
        treatments: list[SectionTreatment] = []
        stories: list[str] = []
        motif_by_label: dict[str, str] = {}
        for sp, item in zip(sections, reply.sections, strict=True):
            section = sp.section
            palette = _valid_palette(item.palette)
            if palette is None:
                fallback = template_sections.get(section.index)
                self.warn(f"{sp.name}: the LLM's palette {item.palette} is not #rrggbb colours; "
                          "the template palette is used")
                palette = list(fallback.palette) if fallback else list(style.palette)
            motif = self.fit(f"{sp.name} motif", item.motif, limits.motif)
            # A repeated label repeats its motif (the artifact's contract), whatever the model wrote.
            motif = motif_by_label.setdefault(section.label, motif)
            treatments.append(SectionTreatment(
                section_index=section.index, label=section.label, role=section.role, palette=palette, motif=motif,
                setting=self.fit(f"{sp.name} setting", item.setting, limits.setting),
            ))
            stories.append(self.fit(f"{sp.name} story", item.story, limits.story))
        return _Concept(
            title=self.fit("title", reply.title, limits.title) or self.template.title,
            concept=self.fit("concept", reply.concept, limits.concept),
            style=style,
            characters=characters,
            treatments=treatments,
            stories=stories,
        )

    def _template_concept(self, sections: list[_SectionPlan]) -> _Concept:
        by_index = {t.section_index: t for t in self.template.sections}
        treatments = []
        for sp in sections:
            t = by_index.get(sp.section.index)
            if t is None:  # the template writer covers every section; this only guards the contract
                t = SectionTreatment(section_index=sp.section.index, label=sp.section.label, role=sp.section.role,
                                     palette=list(self.template.style.palette), motif="", setting="")
            treatments.append(t)
        return _Concept(
            title=self.template.title,
            concept=self.template.concept,
            style=self.template.style,
            characters=list(self.template.characters),
            treatments=treatments,
            stories=["" for _ in sections],
        )

    # 4. Passes 2..n: shots ----------------------------------------------------------------------

    def write_shots(self, sections: list[_SectionPlan], concept: _Concept,
                    progress: ProgressCallback, done: int, total: int) -> list[StoryboardShot]:
        written: dict[int, StoryboardShot] = {}
        chunks = [(position, chunk) for position, sp in enumerate(sections) for chunk in _chunks(sp.shot_indices)]
        for number, (position, chunk) in enumerate(chunks, start=1):
            sp = sections[position]
            part_name = sp.name if len(chunk) == len(sp.shot_indices) else (
                f"{sp.name}, {self.plan.shots[chunk[0]].id} to {self.plan.shots[chunk[-1]].id}")
            log_part = f"section-{sp.section.index:02d}-{_slug(sp.section.role)}"
            if len(chunk) != len(sp.shot_indices):
                log_part += f"-{self.plan.shots[chunk[0]].id}"
            progress(done, total, f"writing the shots of {part_name}")
            try:
                replies, repaired = self._ask_shots(sections, position, chunk, concept, written, log_part,
                                                    number + 1, len(chunks) + 1)
            except _PartFailed as failure:
                self.warn(f"{part_name}: {failure}; template scenes used")
                self.used_template = True
                for i in chunk:
                    written[i] = self._template_shot(i, concept)
            else:
                if repaired:
                    self.warn(f"{part_name}: the LLM's JSON was malformed and was repaired")
                for i, reply in zip(chunk, replies, strict=True):
                    written[i] = self._shot_from_reply(i, reply, concept, concept.treatments[position])
            done += 1
            progress(done, total, f"wrote the shots of {part_name}")
        return [written[i] for i in range(len(self.plan.shots))]

    def _ask_shots(self, sections: list[_SectionPlan], position: int, chunk: list[int], concept: _Concept,
                   written: dict[int, StoryboardShot], log_part: str, pass_number: int,
                   pass_count: int) -> tuple[list[ShotReply], bool]:
        sp = sections[position]
        limits = self.limits
        names = [c.name for c in concept.characters]
        schema = shots_schema(limits, len(chunk), names)
        data = {
            "concept": {"title": concept.title, "concept": concept.concept},
            "style": concept.style.model_dump(),
            "characters": [c.model_dump() for c in concept.characters],
            "sections": [
                {"section": p + 1, "label": other.section.label, "role": other.section.role,
                 "energy": _round(other.section.energy), "motif": concept.treatments[p].motif,
                 "story": concept.stories[p]}
                for p, other in enumerate(sections)
            ],
            "sections_before": [
                self._written_summary(p, sections[p], concept, written)
                for p in range(max(0, position - CONTEXT_SECTIONS), position)
            ],
            "this_section": {
                **self._section_summary_data(position, sp),
                "motif": concept.treatments[position].motif,
                "setting": concept.treatments[position].setting,
                "story": concept.stories[position],
                "palette": concept.treatments[position].palette,
            },
            "shots": [self._shot_data(number, i) for number, i in enumerate(chunk, start=1)],
        }
        # Shots of this section written by an earlier chunk continue the same scene.
        earlier_in_section = [written[i].scene for i in sp.shot_indices if i in written]
        if earlier_in_section:
            data["this_section"]["shots_already_written"] = [
                _excerpt(s, SUMMARY_SCENE_CHARS) for s in earlier_in_section[-ECHO_SCENES:]]
        if sp.first_of_label is not None:
            data["echo"] = self._written_summary(sp.first_of_label, sections[sp.first_of_label], concept, written,
                                                 scenes=ECHO_SCENES)
        user = fill_prompt(
            "storyboard_shots.md",
            brief=self.brief(),
            pass_number=pass_number,
            pass_count=pass_count,
            section_number=position + 1,
            section_role=sp.section.role,
            shot_count=len(chunk),
            max_characters_per_shot=limits.max_characters_per_shot,
            data=_data_json(data),
            schema=json.dumps(schema, ensure_ascii=False),
        )

        def check(reply: ShotsReply) -> None:
            if len(reply.shots) != len(chunk):
                raise _ReplyError(
                    f"{len(reply.shots)} shots instead of {len(chunk)}",
                    f"it had {len(reply.shots)} shots; this part has exactly {len(chunk)} shots",
                )

        reply, repaired = self.ask(log_part, self.messages(user), schema, ShotsReply, check,
                                   f"It must hold exactly {len(chunk)} items in \"shots\".")
        return reply.shots, repaired

    def _shot_data(self, number: int, index: int) -> dict[str, Any]:
        shot = self.plan.shots[index]
        data: dict[str, Any] = {
            "shot": number,
            "start_s": _round(shot.start_s),
            "duration_s": _round(shot.duration_s),
            "cut_on": shot.cut,
            "energy": _round(self.shot_energy(index)),
        }
        data.update(_listener_data(self.shot_description(index)))
        lyrics = self.lyrics_by_shot.get(shot.id, "").strip()
        if lyrics:
            data["lyrics"] = _excerpt(lyrics)
        return data

    def _written_summary(self, position: int, sp: _SectionPlan, concept: _Concept,
                         written: dict[int, StoryboardShot], scenes: int = 2) -> dict[str, Any]:
        """What a written section shows, compact: its motif, setting and first few scenes."""
        return {
            "section": position + 1,
            "label": sp.section.label,
            "role": sp.section.role,
            "motif": concept.treatments[position].motif,
            "setting": concept.treatments[position].setting,
            "scenes": [_excerpt(written[i].scene, SUMMARY_SCENE_CHARS)
                       for i in sp.shot_indices[:scenes] if i in written],
        }

    # 5. Composing the final shots ----------------------------------------------------------------

    def _shot_from_reply(self, index: int, reply: ShotReply, concept: _Concept,
                         treatment: SectionTreatment) -> StoryboardShot:
        limits = self.limits
        shot = self.plan.shots[index]
        known = {c.name: c for c in concept.characters}
        shown = [name for name in dict.fromkeys(reply.characters) if name in known][: limits.max_characters_per_shot]
        self.unknown_names += [f"{shot.id} {name!r}" for name in reply.characters if name not in known]
        action = self.fit(f"{shot.id} prompt", reply.prompt, limits.shot_prompt)
        prompt, trimmed = compose_prompt(concept.style, [known[n] for n in shown], treatment.setting, action)
        if trimmed:
            self.prompt_cuts.append(shot.id)
        return StoryboardShot(
            id=shot.id,
            start_s=shot.start_s,
            end_s=shot.end_s,
            section_index=shot.section_index,
            scene=self.fit(f"{shot.id} scene", reply.scene, limits.scene),
            prompt=prompt,
            negative_prompt=NEGATIVE_PROMPT + (NEGATIVE_PROMPT_CHARACTERS if shown else ""),
            seed=shot_seed(self.seed, shot.index),
            palette=list(treatment.palette),
            motif=treatment.motif,
            camera=self.fit(f"{shot.id} camera", reply.camera, limits.camera) or "static",
            energy=self.shot_energy(index),
            characters=shown,
            lyrics=self.lyrics_by_shot.get(shot.id, ""),
        )

    def _template_shot(self, index: int, concept: _Concept) -> StoryboardShot:
        """The template writer's entry for this shot as it stands (scene, prompt, motif, palette);
        ids, times, seed and lyrics set by the program, characters kept only if the concept has them."""
        shot = self.plan.shots[index]
        entry = self.template.shots[index]
        known = {c.name for c in concept.characters}
        return entry.model_copy(update={
            "characters": [name for name in entry.characters if name in known],
            "id": shot.id,
            "start_s": shot.start_s,
            "end_s": shot.end_s,
            "section_index": shot.section_index,
            "seed": shot_seed(self.seed, shot.index),
            "lyrics": self.lyrics_by_shot.get(shot.id, ""),
        })

    def fit(self, what: str, text: str, limit: int) -> str:
        """``text`` on one line within ``limit`` characters, cut at a word boundary (and noted)."""
        fitted, trimmed = fit_words(" ".join(text.split()), limit)
        if trimmed:
            self.text_cuts.append(what)
        return fitted

    def cut_warnings(self) -> list[str]:
        """One line each for the texts and prompts that had to be cut, and for character names
        that the concept lacks (left out of the shots), however many there were."""
        lines = []
        if self.unknown_names:
            lines.append(f"{len(self.unknown_names)} characters named in shots are not in the concept and were "
                         f"left out: {_listing(self.unknown_names)}")
        if self.text_cuts:
            lines.append(f"{len(self.text_cuts)} LLM texts were longer than their limits and were cut at a word "
                         f"boundary: {_listing(self.text_cuts)}")
        if self.prompt_cuts:
            lines.append(f"{len(self.prompt_cuts)} prompts were shortened to fit {MAX_PROMPT_CHARS} characters "
                         f"(setting left out or words cut): {_listing(self.prompt_cuts)}")
        return lines

    def warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)


# --------------------------------------------------------------------------------------------
# Helpers


def compose_prompt(style: StyleBible, characters: Sequence[Character], setting: str, action: str,
                   max_chars: int = MAX_PROMPT_CHARS) -> tuple[str, bool]:
    """The final text-to-video prompt and whether anything was left out or cut to fit ``max_chars``.

    Reading order: the style bible, each shown character as "Name: description." word for
    word, the section's setting, then the model's words for this shot (``action``). The
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


def _request_seed(seed: int, request: int) -> int:
    digest = hashlib.sha256(f"music2video-llm:{seed}:{request}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _backoff_s(attempt: int, retry_after_s: float | None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, or the server's Retry-After."""
    delay = RETRY_BASE_DELAY_S * 2 ** (attempt - 1)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, RETRY_MAX_DELAY_S)


def _valid_palette(colours: Sequence[str]) -> list[str] | None:
    """Lower-case #rrggbb colours, or None when any is not one (or there are none)."""
    cleaned = [colour.strip().lower() for colour in colours]
    if not cleaned or not all(HEX_COLOUR.fullmatch(colour) for colour in cleaned):
        return None
    return cleaned


def _chunks(indices: list[int]) -> list[list[int]]:
    """``indices`` in consecutive chunks of at most MAX_SHOTS_PER_REQUEST, sizes as equal as possible."""
    count = max(1, math.ceil(len(indices) / MAX_SHOTS_PER_REQUEST))
    size, extra = divmod(len(indices), count)
    chunks, start = [], 0
    for k in range(count):
        end = start + size + (1 if k < extra else 0)
        chunks.append(indices[start:end])
        start = end
    return [chunk for chunk in chunks if chunk]


def _listing(items: Sequence[str], shown: int = 8) -> str:
    head = ", ".join(items[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _data_json(data: dict[str, Any]) -> str:
    """The data block's JSON. The templates put it between lines that read BEGIN SONG DATA and
    END SONG DATA; a JSON string never holds a raw line break, so nothing in a lyric or a
    description can end the block early and pose as an instruction."""
    return json.dumps(data, indent=1, ensure_ascii=False)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24] or "section"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _open_backend(settings: LlmSettings, request_log: _RequestLog) -> Any:
    if settings.base_url:
        return _OpenAIBackend(settings, request_log)
    return _LocalBackend(settings, request_log)


# --------------------------------------------------------------------------------------------
# The public function


def write_llm_storyboard(
    analysis: Analysis,
    plan: ShotPlan,
    descriptions: Descriptions,
    settings: LlmSettings,
    style: str = "",
    seed: int = 0,
    lyrics_by_shot: dict[str, str] | None = None,
    log_dir: Path | None = None,
    progress: ProgressCallback = no_progress,
    *,
    limits: TextLimits | None = None,
) -> Storyboard:
    """Write the storyboard with a language model; one entry per planned shot, cuts untouched.

    Inputs: the song's ``analysis`` (times in seconds), the shot ``plan``, the listener's
    ``descriptions``, the LLM ``settings`` (``base_url`` set: an OpenAI-compatible server;
    unset: ``model`` loaded locally through transformers), the user's ``style`` instruction
    (the director's brief), the run ``seed`` (shot seeds derive from it and the shot index),
    the lyrics sung during each shot keyed by shot id, a folder for the request/response logs,
    and a progress callback (units: passes). ``limits`` overrides the field lengths
    (``DEFAULT_LIMITS``).

    Returns a ``Storyboard`` whose ``writer`` is ``llm:<model>`` (``llm:<model>@<base_url>`` for
    a server) and whose ``warnings`` list every part the template writer had to write, every
    repair and every cut.
    """
    # 1. Check inputs
    if not plan.shots:
        raise ValueError("the shot plan has no shots; nothing to write")
    lyrics = {key: str(value) for key, value in (lyrics_by_shot or {}).items()}
    limits = limits or DEFAULT_LIMITS

    # 2. The template storyboard: cheap, deterministic, and the stand-in for any part that fails.
    template = write_template_storyboard(analysis, plan, descriptions, style=style, seed=seed)
    if len(template.shots) != len(plan.shots):
        raise RuntimeError(f"the template writer wrote {len(template.shots)} shots for {len(plan.shots)} planned")

    sections = _section_plans(analysis, plan)
    total = 1 + sum(len(_chunks(sp.shot_indices)) for sp in sections)

    request_log = _RequestLog(Path(log_dir) if log_dir is not None else None)
    backend = _open_backend(settings, request_log)
    director = _Director(analysis, plan, descriptions, settings, style, seed, lyrics, limits, backend, template)
    try:
        # 3. Pass 1: the concept
        progress(0, total, "writing the concept")
        concept = director.write_concept(sections)
        progress(1, total, "wrote the concept")
        # 4. Passes 2..n: the shots, section by section
        shots = director.write_shots(sections, concept, progress, 1, total)
    finally:
        # 5. Free the model before the next stage loads its own.
        backend.close()
    warnings = list(director.warnings) + director.cut_warnings() + list(backend.notes)
    if director.used_template:  # the template's own caveats apply to the parts it wrote
        warnings += [w for w in template.warnings if w not in warnings]
    return Storyboard(
        writer=backend.describe(),
        title=concept.title,
        concept=concept.concept,
        style=concept.style,
        characters=concept.characters,
        sections=concept.treatments,
        shots=shots,
        warnings=warnings,
    )


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_PROMPT_CHARS",
    "MAX_SHOTS_PER_REQUEST",
    "RETRY_BASE_DELAY_S",
    "TextLimits",
    "check_hardened",
    "compose_prompt",
    "concept_schema",
    "fit_words",
    "parse_reply",
    "repair_json",
    "shot_seed",
    "shots_schema",
    "write_llm_storyboard",
]
