"""The model: which family loads it, loading it once, and asking it about a batch of windows."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from music2video.errors import ModelLoadError, Music2VideoError
from music2video.listen.lalm.families import (
    DEFAULT_MODEL,
    FAMILIES,
    AudioRequest,
    LalmFamily,
    family_choices,
    family_for_known_model,
    family_for_model_type,
)
from music2video.model_source import load_error, model_source
from music2video.optional import require


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
    require_backend()
    source = model_source(model, "audio-language", "--lalm-model")
    try:
        loaded, processor = family.load(source, dtype=dtype, device_map=device_map)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise load_error(model, "audio-language", "--lalm-model", error) from None
    if device_map is None:
        loaded.to(device)
    loaded.eval()
    return loaded, processor

def require_backend() -> None:
    """torch and transformers, or one line naming the ``lalm`` extra."""
    require("torch", "transformers", extra="lalm", purpose="The lalm listener")


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

