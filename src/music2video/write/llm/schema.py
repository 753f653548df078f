"""What the model is asked to write: one pydantic model per pass, and its hardened JSON schema.

Parsing is lenient about extra keys (``extra="ignore"``); the schema sent to the model is strict:
``_schema_for`` inlines the references, sets ``additionalProperties`` false and requires every
property, and fills in the per-request bounds named by the ``x-rule`` markers (string lengths,
list lengths, enums). A random or weak model would otherwise loop inside an unbounded value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
HEX_COLOUR_PATTERN = "^#[0-9a-fA-F]{6}$"

UTF8_MAX_BYTES_PER_CHAR = 4
"""A byte-level BPE token holds at least one byte, so a string of n characters costs at most 4n tokens."""


@dataclass(frozen=True)
class TextLimits:
    """Longest text the model may write in each field, in characters (``maxLength`` in the
    schema), and how many items it may list. The defaults keep a composed prompt within the
    default prompt budget (``write.max_prompt_chars``, 800 characters); tests lower them so that
    a random-weight model finishes quickly. Not settings: they are the shape of the answer the
    prompt templates describe, sized together, and a user's lever is the prompt budget."""

    title: int = 60
    concept: int = 400
    look: int = 100
    medium: int = 32
    lens: int = 32
    era: int = 32
    character_name: int = 24
    character_description: int = 120
    max_characters: int = 3
    place_name: int = 24
    place_description: int = 120
    max_places: int = 4
    prop_name: int = 24
    prop_description: int = 100
    max_props: int = 2
    motif: int = 24
    setting: int = 90
    story: int = 200
    scene: int = 160
    shot_prompt: int = 200
    camera: int = 32
    max_characters_per_shot: int = 2
    max_places_per_shot: int = 1
    max_props_per_shot: int = 1
    min_palette_colours: int = 3
    max_palette_colours: int = 5


DEFAULT_LIMITS = TextLimits()


def _rule(name: str, description: str) -> Any:
    return Field(description=description, json_schema_extra={"x-rule": name})


def _optional_list(name: str, description: str) -> Any:
    """A list the schema asks for but a reply may leave out (replies written before it existed parse)."""
    return Field(default_factory=list, description=description, json_schema_extra={"x-rule": name})


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


class PlaceReply(_Reply):
    name: str = _rule("place_name", "Short name used to refer to the place.")
    description: str = _rule(
        "place_description", "The place's fixed look in one sentence; pasted word for word into every shot there."
    )


class PropReply(_Reply):
    name: str = _rule("prop_name", "Short name used to refer to the object.")
    description: str = _rule("prop_description", "The object's fixed look in one sentence.")


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
    places: list[PlaceReply] = _optional_list("places", "The set list: places where shots happen; may be empty.")
    props: list[PropReply] = _optional_list("props", "Key objects that recur across shots; may be empty.")
    sections: list[TreatmentReply] = _rule("sections", "One treatment per section, in order.")


class ShotReply(_Reply):
    scene: str = _rule("scene", "What the viewer sees, for people.")
    prompt: str = _rule("shot_prompt", "Text-to-video prompt for this shot; characters by name only.")
    camera: str = _rule("camera", "One camera movement.")
    characters: list[str] = _rule("shot_characters", "Names of the characters visible in the shot.")
    places: list[str] = _optional_list("shot_places", "The name of the place the shot happens in, if it is one of the set list's.")
    props: list[str] = _optional_list("shot_props", "Names of the key props visible in the shot.")


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
                     "character_description", "motif", "setting", "story", "place_name", "place_description",
                     "prop_name", "prop_description")
    }
    rules["palette"] = _palette_rule(limits)
    rules["characters"] = {"type": "array", "minItems": 0, "maxItems": limits.max_characters}
    rules["places"] = {"type": "array", "minItems": 0, "maxItems": limits.max_places}
    rules["props"] = {"type": "array", "minItems": 0, "maxItems": limits.max_props}
    rules["sections"] = {"type": "array", "minItems": section_count, "maxItems": section_count}
    return _schema_for(ConceptReply, rules)


def _names_rule(names: Sequence[str], most: int) -> dict[str, Any]:
    """A list of at most ``most`` names, each one of ``names``; only the empty list when there are none."""
    names = list(dict.fromkeys(names))
    if not names or most < 1:
        return {"type": "array", "minItems": 0, "maxItems": 0, "items": _string_rule(1)}
    return {"type": "array", "minItems": 0, "maxItems": min(most, len(names)), "items": {"type": "string", "enum": names}}


def shots_schema(
    limits: TextLimits,
    shot_count: int,
    character_names: Sequence[str],
    place_names: Sequence[str] = (),
    prop_names: Sequence[str] = (),
) -> dict[str, Any]:
    """JSON schema of a shot pass: exactly ``shot_count`` shots; characters, places and props
    only from the names the concept gave them."""
    rules = {name: _string_rule(getattr(limits, name)) for name in ("scene", "shot_prompt", "camera")}
    rules["shot_characters"] = _names_rule(character_names, limits.max_characters_per_shot)
    rules["shot_places"] = _names_rule(place_names, limits.max_places_per_shot)
    rules["shot_props"] = _names_rule(prop_names, limits.max_props_per_shot)
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


