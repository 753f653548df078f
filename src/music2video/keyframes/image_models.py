"""The image models the keyframes stage knows, and how to resolve a user's choice.

Two tasks: ``text-to-image`` makes references (a character sheet, a place's establishing view)
and the keyframes of shots that show no one; ``edit`` composes a shot's keyframe from its
prompt and 1 to ``max_references`` reference images. Each model is one :class:`ImageModel`
entry in :data:`IMAGE_MODELS`, as the video models are in
:mod:`music2video.render.video_models`; adding a model means adding one entry.

:func:`resolve_image_model` accepts a registry name (``qwen-image``), a known Hugging Face id
(``Qwen/Qwen-Image``) or a local folder saved with ``save_pretrained``, whose
``model_index.json`` (``_class_name``) picks the entry whose rules apply.

Sizes are ``(width, height)`` in pixels. This module imports nothing heavy: ``--dry-run`` uses it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from music2video.errors import Music2VideoError
from music2video.model_source import lookup_registry

log = logging.getLogger(__name__)

Task = Literal["text-to-image", "edit"]
Speed = Literal["full", "lightning-8", "lightning-4"]


@dataclass(frozen=True)
class SpeedLora:
    """A few-step distilled LoRA that a speed setting fuses into a model's transformer."""

    repo: str = field(metadata={"doc": "Hugging Face id (or local folder) that holds the weights."})
    weight_name: str = field(metadata={"doc": "File inside it (subfolder/file.safetensors), as load_lora_weights takes it."})
    steps: int = field(metadata={"doc": "The step count it was distilled for."})
    guidance: float = field(default=1.0, metadata={"doc": "1: no classifier-free guidance, one transformer pass per step."})
    scheduler: Mapping[str, object] = field(
        default_factory=lambda: MappingProxyType({}), metadata={"doc": "Scheduler config values it was distilled with."}
    )
    licence: str = ""


# lightx2v's Qwen-Image-Lightning (github.com/ModelTC/Qwen-Image-Lightning, Apache-2.0) was
# distilled with a fixed timestep shift of 3: its diffusers example sets these on
# FlowMatchEulerDiscreteScheduler (the Qwen models' own config shifts by image size, 0.5 to 0.9,
# and stretches the last step with shift_terminal).
LIGHTNING_SCHEDULER = MappingProxyType({
    "base_image_seq_len": 256, "base_shift": math.log(3), "max_image_seq_len": 8192, "max_shift": math.log(3),
    "shift": 1.0, "shift_terminal": None, "time_shift_type": "exponential", "use_dynamic_shifting": True,
})  # fmt: skip
LIGHTNING_REPO = "lightx2v/Qwen-Image-Lightning"


def _lightning(file_for_steps: str) -> Mapping[str, SpeedLora]:
    """The 8- and 4-step entries of one model (``file_for_steps`` has a ``{steps}`` field)."""
    return MappingProxyType({
        f"lightning-{steps}": SpeedLora(
            repo=LIGHTNING_REPO, weight_name=file_for_steps.format(steps=steps), steps=steps, guidance=1.0,
            scheduler=LIGHTNING_SCHEDULER, licence="Apache-2.0",
        )
        for steps in (8, 4)
    })  # fmt: skip


@dataclass(frozen=True)
class ImageModel:
    """One image model and the rules its diffusers pipeline imposes."""

    name: str = field(metadata={"doc": "Short registry name, e.g. 'qwen-image'."})
    hf_id: str = field(metadata={"doc": "Hugging Face id, or the local folder it was resolved from."})
    pipeline: str = field(metadata={"doc": "diffusers pipeline class name."})
    task: Task
    default_steps: int
    default_guidance: float
    guidance_argument: str = field(
        metadata={"doc": "Pipeline argument that takes the guidance: true_cfg_scale (Qwen) or guidance_scale (FLUX)."}
    )
    max_references: int = field(default=0, metadata={"doc": "Most reference images one call takes (edit models)."})
    size_multiple: int = field(default=16, metadata={"doc": "Width and height must be multiples of this (VAE stride x patch)."})
    negative_prompt: bool = field(default=True, metadata={"doc": "Whether the pipeline takes a negative prompt."})
    max_sequence_length: int | None = field(default=None, metadata={"doc": "Prompt tokens the text encoder reads (None: the pipeline's default)."})
    extra_call_arguments: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    needs: tuple[str, ...] = field(default=(), metadata={"doc": "Python packages its processor needs beyond the video extra."})
    speed_loras: Mapping[str, SpeedLora] = field(
        default_factory=lambda: MappingProxyType({}), metadata={"doc": "keyframes.speed -> its distilled LoRA."}
    )
    reference_pixels_constant: str | None = field(
        default=None,
        metadata={"doc": "module:NAME of the diffusers constant that fixes the pixels each reference is encoded at (edit models)."},
    )
    commercial_use: bool = True
    licence: str = ""
    notes: str = ""


# Qwen-Image-Edit-2509's processor (Qwen2.5-VL) includes a video processor, which transformers
# builds only with torchvision installed, whether or not a video is ever passed.
_QWEN_EDIT_NEEDS = ("torchvision",)

IMAGE_MODELS: dict[str, ImageModel] = {
    model.name: model
    for model in (
        ImageModel(
            name="qwen-image",
            hf_id="Qwen/Qwen-Image",
            pipeline="QwenImagePipeline",
            task="text-to-image",
            default_steps=50,
            default_guidance=4.0,
            guidance_argument="true_cfg_scale",
            speed_loras=_lightning("Qwen-Image-Lightning-{steps}steps-V2.0-bf16.safetensors"),
            licence="Apache-2.0",
            notes="20B MMDiT with a Qwen2.5-VL 7B text encoder: about 57 GB in bf16; offload below 80 GB.",
        ),
        ImageModel(
            name="qwen-image-edit-2509",
            hf_id="Qwen/Qwen-Image-Edit-2509",
            pipeline="QwenImageEditPlusPipeline",
            task="edit",
            default_steps=40,
            default_guidance=4.0,
            guidance_argument="true_cfg_scale",
            max_references=3,
            needs=_QWEN_EDIT_NEEDS,
            speed_loras=_lightning("Qwen-Image-Edit-2509/Qwen-Image-Edit-2509-Lightning-{steps}steps-V1.0-bf16.safetensors"),
            # diffusers 0.42 encodes every reference at this many pixels (1024 x 1024), whatever
            # its size, and offers no argument for it.
            reference_pixels_constant="diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus:VAE_IMAGE_SIZE",
            licence="Apache-2.0",
            notes="Composes a new image from 1-3 reference images (people, places, objects) and a prompt.",
        ),
        ImageModel(
            name="flux.1-schnell",
            hf_id="black-forest-labs/FLUX.1-schnell",
            pipeline="FluxPipeline",
            task="text-to-image",
            default_steps=4,
            default_guidance=0.0,
            guidance_argument="guidance_scale",
            negative_prompt=False,
            max_sequence_length=256,
            licence="Apache-2.0",
            notes="12B, timestep-distilled: 4 steps, no guidance; a fast choice for references.",
        ),
        ImageModel(
            name="flux.1-kontext-dev",
            hf_id="black-forest-labs/FLUX.1-Kontext-dev",
            pipeline="FluxKontextPipeline",
            task="edit",
            default_steps=28,
            default_guidance=2.5,
            guidance_argument="guidance_scale",
            max_references=1,
            negative_prompt=False,
            commercial_use=False,
            licence="FLUX.1 [dev] Non-Commercial License",
            notes="Edits from one reference image; its licence forbids commercial use of the outputs' model.",
        ),
    )
}

_TASK_WORDS = {"text-to-image": "a text-to-image model", "edit": "an image-editing model"}


def resolve_image_model(name_or_id_or_path: str, task: Task) -> ImageModel:
    """The registry entry for a name, a known Hugging Face id or a local diffusers folder.

    ``task`` is what the caller needs it for; an entry of another task is refused with a
    message saying which setting wants which kind of model. For a folder, the returned entry
    is a copy whose ``hf_id`` is the folder's path, so it loads from disk.
    """
    choice = name_or_id_or_path.strip()
    entry = _lookup(choice)
    if entry.task != task:
        setting = "keyframes.reference_model" if task == "text-to-image" else "keyframes.keyframe_model"
        fitting = ", ".join(model.name for model in IMAGE_MODELS.values() if model.task == task)
        raise Music2VideoError(
            f"{choice!r} is {_TASK_WORDS[entry.task]} ({entry.pipeline}); {setting} needs {_TASK_WORDS[task]}: {fitting}"
        )
    return entry


@dataclass(frozen=True)
class Sampling:
    """How one model samples under the settings: steps, guidance and the speed LoRA, if any."""

    steps: int
    guidance: float
    lora: SpeedLora | None = None


def sampling_for(entry: ImageModel, speed: str, steps: int | None, guidance: float | None) -> Sampling:
    """Steps and guidance for ``entry`` under ``keyframes.speed`` (``steps`` and ``guidance``:
    the settings' own, which win when given). A model without a LoRA for that speed samples as
    at ``full`` (FLUX.1-schnell is distilled already)."""
    lora = entry.speed_loras.get(speed)
    default_steps, default_guidance = (lora.steps, lora.guidance) if lora else (entry.default_steps, entry.default_guidance)
    return Sampling(steps or default_steps, guidance if guidance is not None else default_guidance, lora)


def warn_about_licence(entry: ImageModel) -> str | None:
    """A warning for a model whose licence forbids commercial use (logged here, returned for the artifact)."""
    if entry.commercial_use:
        return None
    message = f"{entry.name} is under the {entry.licence}: not for commercial use"
    log.warning(message)
    return message


def _lookup(choice: str) -> ImageModel:
    return lookup_registry(choice, IMAGE_MODELS, "image", _model_for_folder)


def _model_for_folder(path: Path, index: dict) -> ImageModel:
    class_name = index.get("_class_name")
    for model in IMAGE_MODELS.values():
        if model.pipeline == class_name:
            return dataclasses.replace(model, hf_id=str(path))
    known = sorted({model.pipeline for model in IMAGE_MODELS.values()})
    raise Music2VideoError(
        f"{path} holds a {class_name!r} pipeline, which the keyframes stage has no rules for; "
        f"supported pipeline classes: {', '.join(known)}"
    )
