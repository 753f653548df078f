"""Where a model's weights come from: a Hugging Face id or a local folder, and one clear error.

Every backend that loads weights (CLAP, the audio-language model, Whisper, CLIP, the video
model) resolves its setting here first and turns a failed ``from_pretrained`` into the same
kind of one-line :class:`~music2video.errors.ModelLoadError`: which model, why in a few words,
and how to work offline with a local folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

from music2video.errors import ModelLoadError, Music2VideoError


class RegistryEntry(Protocol):
    hf_id: str


Entry = TypeVar("Entry", bound=RegistryEntry)


def lookup_registry(
    choice: str, registry: Mapping[str, Entry], kind: str, for_folder: Callable[[Path, dict], Entry]
) -> Entry:
    """The entry of a model registry (video or image models) named by ``choice``.

    ``choice`` is a registry name or a known Hugging Face id (any case), or a local diffusers
    folder, which ``for_folder`` maps from its ``model_index.json`` to an entry. Anything else is
    one error listing what is valid.
    """
    choice = choice.strip()
    by_name = {name.lower(): entry for name, entry in registry.items()}
    if choice.lower() in by_name:
        return by_name[choice.lower()]
    for entry in registry.values():
        if choice.lower() == entry.hf_id.lower():
            return entry
    path = Path(choice).expanduser()
    if path.is_dir():
        return for_folder(path, read_model_index(path))
    raise Music2VideoError(
        f"unknown {kind} model {choice!r}; choose one of {', '.join(registry)}, one of their Hugging Face ids "
        f"({', '.join(entry.hf_id for entry in registry.values())}), or a local folder saved with "
        "save_pretrained (its model_index.json picks the rules)"
    )


def read_model_index(path: Path) -> dict:
    """A diffusers pipeline folder's ``model_index.json``, or one error saying what the folder lacks."""
    index_path = path / "model_index.json"
    try:
        return json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Music2VideoError(
            f"{path} has no model_index.json, so it is not a diffusers pipeline folder; download one with "
            "'hf download <id> --local-dir <folder>'"
        ) from None
    except (OSError, ValueError) as error:
        raise Music2VideoError(f"cannot read {index_path}: {error}") from None


def model_source(model_id: str, kind: str, flag: str) -> str:
    """A local folder as a path string, a hub id as given.

    Hub ids are ``name`` or ``org/name``; anything else that looks like a path but is no folder
    fails here with a clear message instead of later as a malformed hub id.
    """
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        return str(folder)
    looks_like_path = model_id.startswith((".", "/", "~", "\\")) or model_id.count("/") > 1 or os.sep in model_id.replace("/", "")
    if looks_like_path:
        raise ModelLoadError(f"cannot load the {kind} model '{model_id}': no such folder; point {flag} at a folder saved with save_pretrained")
    return model_id


def load_error(model_id: str, kind: str, flag: str, error: BaseException) -> ModelLoadError:
    """The one-line error for a ``from_pretrained`` that failed: which model, why, what to do."""
    text = " ".join(str(error).split())
    # transformers and diffusers wrap the hub's error; its causes hold the precise reason.
    causes, cause = [], error.__cause__ or error.__context__
    while cause is not None and len(causes) < 5:
        causes.append(f"{type(cause).__name__} {cause}")
        cause = cause.__cause__ or cause.__context__
    lowered = " ".join([text, *causes]).lower()
    if "couldn't connect" in lowered or "offline" in lowered or "cached files" in lowered:
        why = "not in the local Hugging Face cache, and the hub is unreachable or HF_HUB_OFFLINE is set"
    elif "not found" in lowered or "404" in lowered or "is not a valid model identifier" in lowered:
        why = "no such model on the Hugging Face hub"
    elif "safetensors" in lowered:
        why = "no safetensors weights (pickled .bin weights are not loaded)"
    else:
        why = text[:160] or type(error).__name__
    if Path(model_id).expanduser().is_dir():
        return ModelLoadError(
            f"cannot load the {kind} model in the folder '{model_id}' ({why}); point {flag} at a complete "
            "folder saved with save_pretrained (config, safetensors weights, tokenizer or processor files)"
        )
    return ModelLoadError(
        f"cannot load the {kind} model '{model_id}' ({why}); download it once online "
        f"('hf download {model_id} --local-dir DIR') and pass {flag} DIR (or set it in music2video.toml), "
        "or set HF_HUB_OFFLINE=1 to use only the local cache"
    )
