"""Turning the model's raw text into a validated reply: JSON repair, then the pass's pydantic model."""

from __future__ import annotations

import json

from pydantic import ValidationError

from music2video.write.llm.faults import ReplyError
from music2video.write.llm.schema import R


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
    """The reply in ``raw`` and whether it had to be repaired; ``ReplyError`` when unusable."""
    text = raw.strip()
    repaired = False
    try:
        data = json.loads(text)
    except ValueError:
        fixed = repair_json(text)
        try:
            data = json.loads(fixed)
        except ValueError as error:
            raise ReplyError(
                "invalid JSON", f"it was not valid JSON ({error}); write only the JSON object"
            ) from None
        repaired = True
    if not isinstance(data, dict):
        raise ReplyError("invalid JSON", "it was not a JSON object")
    try:
        return reply_type.model_validate(data), repaired
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'answer'}: {item['msg']}" for item in error.errors()[:6]
        )
        raise ReplyError("reply did not match the schema", f"it did not match the schema ({problems})") from None

