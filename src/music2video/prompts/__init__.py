"""The prompt templates, and the one way to read them.

The ``*.md`` files beside this module are prompts a person can read and edit; placeholders are
``${name}`` (a literal dollar sign is ``$$``). Every model-facing prompt in music2video is read
here, so an edit to a file reaches every caller, and :func:`prompt_files_hash` lets a stage's
key follow the edits.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from music2video.errors import Music2VideoError
from music2video.runfolder import stable_hash

PROMPTS_FOLDER = Path(__file__).parent


def load_prompt(name: str) -> str:
    """The text of ``music2video/prompts/<name>``."""
    return (PROMPTS_FOLDER / name).read_text(encoding="utf-8")


def fill_prompt(name: str, **values: Any) -> str:
    """``load_prompt(name)`` with its ``${placeholders}`` filled; a missing one is an error that names it."""
    try:
        return string.Template(load_prompt(name)).substitute({k: str(v) for k, v in values.items()})
    except KeyError as error:
        raise Music2VideoError(
            f"prompt template {name} uses the placeholder ${{{error.args[0]}}}, which is not known; "
            f"known placeholders: {', '.join(sorted(values))}"
        ) from None
    except ValueError as error:  # a stray "$" in an edited template
        raise Music2VideoError(f"prompt template {name} is not a valid template ({error}); write a literal $ as $$") from None


def prompt_files_hash(pattern: str) -> str:
    """A hash of the names and texts of the templates matching ``pattern`` (e.g. ``"lalm_*"``):
    part of a stage's key, so editing a prompt refreshes what it produced."""
    files = sorted(PROMPTS_FOLDER.glob(pattern))
    return stable_hash(*[(path.name, path.read_text(encoding="utf-8")) for path in files])
