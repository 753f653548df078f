"""The video models the diffusers renderer knows, and how to resolve a user's choice.

Each model is one :class:`VideoModel` entry in :data:`VIDEO_MODELS`: which diffusers pipeline
class loads it, which frame counts and sizes it accepts, its native frame rate, its longest
single generation, sensible sampling defaults, and whether (and how) it can start a shot from a
picture: a shot's keyframe, or the last frame of the generation before it. Adding a model means
adding one entry.

How a model takes a picture (``image_input``), checked against diffusers 0.42's signatures:

* ``image``: ``image=`` the first frame, and ``last_image=`` the last one where the entry says
  ``last_frame`` (``WanImageToVideoPipeline``, ``LTXImageToVideoPipeline``). Wan 2.2 TI2V
  (``expand_timesteps``) encodes only the first frame: diffusers ignores ``last_image`` there.
* ``vace``: Wan VACE's ``video=`` and ``mask=`` lists: the keyframe as frame 0 (mask black: keep),
  grey frames to generate (mask white), and optionally the last keyframe as the final frame;
  or the keyframe as one of ``reference_images`` (identity and look, not the exact first frame).
* ``conditions``: ``LTXConditionPipeline``'s ``conditions=`` list of ``LTXVideoCondition``
  (an image at ``frame_index`` 0, and one at the last frame).

:func:`resolve_video_model` accepts a registry name (``wan2.1-1.3b``), a known Hugging Face id
(``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``) or a local folder saved with ``save_pretrained``; the
folder's ``model_index.json`` (its ``_class_name``) picks the entry whose rules apply.

Sizes are ``(width, height)`` in pixels; frame rates in frames per second.

This module imports nothing heavy: the CLI's ``--dry-run`` uses it without torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from music2video.errors import Music2VideoError
from music2video.model_source import lookup_registry

# The negative prompt that Wan's authors ship with their examples (English translation of the
# Chinese original): it steers away from the artefacts the model is known for.
WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, "
    "static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, "
    "extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, "
    "fused fingers, still picture, messy background, three legs, many people in the background, "
    "walking backwards"
)
LTX_NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"

ImageInput = Literal["image", "vace", "conditions"]


@dataclass(frozen=True)
class DistillLora:
    """A published step-distillation LoRA for a model: ``video.speed = "distilled"`` fuses it and
    samples with its few steps at guidance 1 (no negative-prompt pass)."""

    source: str = field(metadata={"doc": "Hugging Face id (or id/file.safetensors), or a local .safetensors file."})
    steps: int = field(metadata={"doc": "Denoising steps it is used with."})
    guidance: float = 1.0
    licence: str = ""
    notes: str = ""


# CausVid (Yin et al., "From Slow Bidirectional to Fast Autoregressive Video Diffusion Models"):
# Wan 2.1 T2V 1.3B distilled by DMD to a few steps without guidance; weights MIT on
# tianweiy/CausVid. Kijai extracted its difference from Wan 2.1 1.3B as a LoRA for ComfyUI;
# AlekseyCalvin converted it to the musubi-tuner format (its model card: load_lora_weights on
# Wan2.1-T2V-1.3B, "for Wan2.1 1.3B family models"). diffusers' Wan LoRA converter names CausVid
# LoRAs explicitly (loaders/lora_conversion_utils.py). Used at 4-8 steps, CFG 1 in the
# community's workflows; 6 here. The scheduler's flow shift is left as the model ships it (no
# source documents another for this LoRA); not yet run with the real weights. No published 1.3B lightx2v LoRA exists
# (lightx2v ships full distilled 1.3B weights, lightx2v/Wan2.1-T2V-1.3B-Distill-Models).
CAUSVID_1_3B = DistillLora(
    source="AlekseyCalvin/Wan1.3B_CausVid_LoRA_MisubiDiffusers_Conversion",
    steps=6,
    guidance=1.0,
    licence="CausVid weights MIT (tianweiy/CausVid); read the LoRA's model card before commercial use",
    notes="CausVid (DMD) LoRA for Wan 2.1 1.3B; the VACE 1.3B model shares its 30 base blocks.",
)


@dataclass(frozen=True)
class VideoModel:
    """One text-to-video model and the rules its pipeline imposes.

    Frame counts: a generation has ``frame_step * k + 1`` frames (the VAE compresses time by
    ``frame_step`` and keeps the first frame on its own), at least ``min_frames`` and at most
    ``max_frames``. A shot that needs more frames is made of several generations.
    """

    name: str = field(metadata={"doc": "Short registry name, e.g. 'wan2.1-1.3b'."})
    hf_id: str = field(metadata={"doc": "Hugging Face id, or the local folder it was resolved from."})
    pipeline: str = field(metadata={"doc": "diffusers text-to-video pipeline class name."})
    native_fps: float = field(metadata={"doc": "Frame rate the model was trained at, frames per second."})
    frame_step: int = field(metadata={"doc": "Frame counts are frame_step * k + 1."})
    max_frames: int = field(metadata={"doc": "Most frames in one generation (itself frame_step * k + 1)."})
    buckets: tuple[tuple[int, int], ...] = field(metadata={"doc": "Generation sizes (width, height), best first."})
    size_multiple: int = field(metadata={"doc": "Width and height must be multiples of this (VAE stride x patch)."})
    default_steps: int
    default_guidance: float
    min_frames: int = 1
    negative_prompt: str = ""
    i2v_pipeline: str | None = field(
        default=None,
        metadata={
            "doc": "Image-to-video pipeline class: starts a shot from its keyframe and extends a long shot from "
            "its last frame; None: the model makes video from text only."
        },
    )
    image_input: ImageInput = field(
        default="image", metadata={"doc": "How i2v_pipeline takes a picture (module docstring)."}
    )
    last_frame: bool = field(
        default=False,
        metadata={"doc": "i2v_pipeline can also be given the last frame (first-and-last-frame conditioning)."},
    )
    text_to_video: bool = field(
        default=True, metadata={"doc": "False: every shot needs a start picture (an image-to-video-only model)."}
    )
    vae_float32: bool = field(
        default=False,
        metadata={
            "doc": "The pipeline casts latents to the VAE's dtype before decoding, so the VAE can run in float32 "
            "while the transformer runs in bfloat16 (the diffusers guidance for Wan)."
        },
    )
    i2v_id: str | None = field(
        default=None,
        metadata={"doc": "Weights of the image-to-video pipeline; None: share the loaded text-to-video modules."},
    )
    frame_rate_argument: str | None = field(
        default=None, metadata={"doc": "Name of the pipeline argument that takes the frame rate (LTX: frame_rate)."}
    )
    extra_call_arguments: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    index_config: Mapping[str, object] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={"doc": "model_index.json values that tell this entry apart from others of the same class."},
    )
    distill_lora: DistillLora | None = field(
        default=None, metadata={"doc": "Step-distillation LoRA for video.speed = 'distilled'; None: the model has none."}
    )
    licence: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if (self.max_frames - 1) % self.frame_step:
            raise ValueError(f"{self.name}: max_frames {self.max_frames} is not {self.frame_step}k+1")
        if self.min_frames > self.max_frames:
            raise ValueError(f"{self.name}: min_frames {self.min_frames} > max_frames {self.max_frames}")
        for width, height in self.buckets:
            if width % self.size_multiple or height % self.size_multiple:
                raise ValueError(f"{self.name}: bucket {width}x{height} is not a multiple of {self.size_multiple}")
        if not self.buckets:
            raise ValueError(f"{self.name}: no resolution buckets")
        if not self.text_to_video and self.i2v_pipeline is None:
            raise ValueError(f"{self.name}: a model without text-to-video needs an i2v_pipeline")

    @property
    def takes_images(self) -> bool:
        """The model can start a shot from a picture (its keyframe)."""
        return self.i2v_pipeline is not None

    # -- frame counts ------------------------------------------------------------------------

    def round_frames(self, frames: int) -> int:
        """The smallest valid frame count >= ``frames`` (and >= ``min_frames``), capped at ``max_frames``.

        Wan (step 4): 10 -> 13; LTX (step 8): 10 -> 17; CogVideoX-2B: anything -> 49.
        """
        wanted = max(frames, self.min_frames, 1)
        steps = math.ceil((wanted - 1) / self.frame_step)
        return min(steps * self.frame_step + 1, self.max_frames)

    def is_valid_frame_count(self, frames: int) -> bool:
        return self.min_frames <= frames <= self.max_frames and (frames - 1) % self.frame_step == 0

    @property
    def max_seconds(self) -> float:
        """Longest clip of one generation at the native frame rate, seconds."""
        return (self.max_frames - 1) / self.native_fps

    # -- sizes -------------------------------------------------------------------------------

    def pick_bucket(self, width: int, height: int) -> tuple[int, int]:
        """The generation size whose aspect ratio is closest to ``width`` x ``height`` (log ratio).

        Ties go to the earlier bucket. The renderer then scales and centre-crops to the output.
        """
        wanted = math.log(width / height)
        return min(self.buckets, key=lambda bucket: abs(math.log(bucket[0] / bucket[1]) - wanted))


def _wan_2_1(**fields: Any) -> VideoModel:
    """A Wan 2.1 model (1.3B or 14B): what they share, with ``fields`` set or changed on top."""
    shared: dict[str, Any] = dict(
        native_fps=16.0,
        frame_step=4,
        max_frames=81,  # 5 s at 16 fps, what the models were trained on
        buckets=((832, 480), (480, 832)),  # 480p, as the 1.3B models and the 14B 480P one were trained
        size_multiple=16,  # VAE stride 8 x patch 2
        default_steps=50,
        default_guidance=5.0,
        negative_prompt=WAN_NEGATIVE_PROMPT,
        vae_float32=True,
        licence="Apache-2.0",
    )
    return VideoModel(**{**shared, **fields})


VIDEO_MODELS: dict[str, VideoModel] = {
    model.name: model
    for model in (
        _wan_2_1(
            name="wan2.1-1.3b",
            hf_id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            pipeline="WanPipeline",
            distill_lora=CAUSVID_1_3B,
            notes=(
                "Text only, about 8 GB of GPU memory at 832x480. It cannot start from a keyframe (Wan 2.1 VACE "
                "1.3B can), so a shot longer than 81 frames is made of several text-to-video generations with "
                "seeds seed, seed+1, ... that crossfade over a few frames."
            ),
        ),
        _wan_2_1(
            name="wan2.1-vace-1.3b",
            hf_id="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
            pipeline="WanVACEPipeline",
            # The same pipeline makes text-only shots (no video: every frame generated), starts a
            # shot from its keyframe and extends a long shot from its last frame.
            i2v_pipeline="WanVACEPipeline",
            image_input="vace",
            last_frame=True,
            distill_lora=CAUSVID_1_3B,
            notes=(
                "The light default: Wan 2.1 1.3B with VACE context blocks, about 10 GB of GPU memory at 832x480. "
                "A shot starts from its keyframe (or takes it as a reference image, video.image_conditioning), "
                "may end on the next shot's keyframe, and long shots extend from their last frame."
            ),
        ),
        _wan_2_1(
            name="wan2.1-i2v-14b-480p",
            hf_id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            pipeline="WanImageToVideoPipeline",
            i2v_pipeline="WanImageToVideoPipeline",
            text_to_video=False,
            notes=(
                "Image-to-video only: every shot needs a keyframe. 14B parameters plus a CLIP image encoder: "
                "about 40 GB in bfloat16; on a 24 GB GPU use video.offload = 'model'. Trained on the first "
                "frame only (its 720p first-and-last-frame sibling is wan2.1-flf2v-14b)."
            ),
        ),
        _wan_2_1(
            name="wan2.1-flf2v-14b",
            hf_id="Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
            pipeline="WanImageToVideoPipeline",
            buckets=((1280, 720), (720, 1280)),
            i2v_pipeline="WanImageToVideoPipeline",
            last_frame=True,
            text_to_video=False,
            notes="Image-to-video from a first and a last frame (last_image), 720p; every shot needs a keyframe.",
        ),
        VideoModel(
            name="wan2.2-ti2v-5b",
            hf_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            pipeline="WanPipeline",
            native_fps=24.0,
            frame_step=4,
            max_frames=121,  # 5 s at 24 fps
            buckets=((1280, 704), (704, 1280)),
            size_multiple=32,  # Wan 2.2 VAE stride 16 x patch 2
            default_steps=50,
            default_guidance=5.0,
            negative_prompt=WAN_NEGATIVE_PROMPT,
            # The same weights do image-to-video: WanImageToVideoPipeline with expand_timesteps. It
            # encodes the first frame only (diffusers ignores last_image with expand_timesteps).
            i2v_pipeline="WanImageToVideoPipeline",
            index_config=MappingProxyType({"expand_timesteps": True}),
            vae_float32=True,
            licence="Apache-2.0",
            notes=(
                "Text- and image-to-video in one 5B model at 720p: a shot starts from its keyframe, long shots "
                "extend from their last frame."
            ),
        ),
        VideoModel(
            name="ltx-video",
            hf_id="Lightricks/LTX-Video",
            pipeline="LTXPipeline",
            native_fps=24.0,
            frame_step=8,
            max_frames=161,  # the pipeline's default; the model accepts up to 257
            buckets=((768, 512), (512, 768), (512, 512)),
            size_multiple=32,
            default_steps=50,
            default_guidance=3.0,
            negative_prompt=LTX_NEGATIVE_PROMPT,
            i2v_pipeline="LTXImageToVideoPipeline",
            frame_rate_argument="frame_rate",
            licence=(
                "LTX-Video licence: OpenRAIL-M for the first 2B checkpoints, the LTXV Open Weights licence "
                "for later ones; read the model card before commercial use"
            ),
            notes=(
                "Fast (about real time on an H100); a shot starts from its keyframe (LTXImageToVideoPipeline), "
                "long shots extend from their last frame."
            ),
        ),
        VideoModel(
            name="ltx-video-0.9.5",
            hf_id="Lightricks/LTX-Video-0.9.5",
            pipeline="LTXConditionPipeline",
            native_fps=24.0,
            frame_step=8,
            max_frames=161,
            buckets=((768, 512), (512, 768), (512, 512)),
            size_multiple=32,
            default_steps=40,  # diffusers' LTXConditionPipeline example
            default_guidance=3.0,
            negative_prompt=LTX_NEGATIVE_PROMPT,
            i2v_pipeline="LTXConditionPipeline",
            image_input="conditions",
            last_frame=True,
            frame_rate_argument="frame_rate",
            licence="LTX-Video 0.9.5 licence (OpenRAIL-M); read the model card before commercial use",
            notes=(
                "LTXConditionPipeline: text only, or pictures at chosen frames: the keyframe at frame 0 and the "
                "next shot's keyframe at the last frame."
            ),
        ),
        VideoModel(
            name="cogvideox-2b",
            hf_id="THUDM/CogVideoX-2b",
            pipeline="CogVideoXPipeline",
            native_fps=8.0,
            frame_step=4,
            min_frames=49,  # trained on 49 frames only: always make 49 and trim
            max_frames=49,
            buckets=((720, 480),),  # the only size the model supports
            size_multiple=16,
            default_steps=50,
            default_guidance=6.0,
            extra_call_arguments=MappingProxyType({"use_dynamic_cfg": True}),
            licence="Apache-2.0 (CogVideoX-5B has its own CogVideoX licence)",
            notes=(
                "6 s at 8 fps, 720x480 only. Its image-to-video sibling is the 5B model, so long shots "
                "crossfade between generations. CogVideoX 1.5 (not listed) uses 16 fps and 8k+1 frames."
            ),
        ),
    )
}


def resolve_video_model(name_or_id_or_path: str) -> VideoModel:
    """The registry entry for a name, a known Hugging Face id or a local diffusers folder.

    For a folder, the returned entry is a copy whose ``hf_id`` is the folder's path, so the
    renderer loads from disk. Raises :class:`Music2VideoError` listing the valid names when the
    choice matches nothing.
    """
    return lookup_registry(name_or_id_or_path, VIDEO_MODELS, "video", _model_for_folder)


def _model_for_folder(path: Path, index: dict) -> VideoModel:
    class_name = index.get("_class_name")
    candidates = [model for model in VIDEO_MODELS.values() if model.pipeline == class_name]
    # Prefer the entry whose distinguishing config values the folder has (Wan 2.2 TI2V's
    # expand_timesteps); an entry without such values is the family's fallback.
    matching = [
        model for model in candidates if all(index.get(key) == value for key, value in model.index_config.items())
    ]
    if not matching:
        known = sorted({model.pipeline for model in VIDEO_MODELS.values()})
        raise Music2VideoError(
            f"{path} holds a {class_name!r} pipeline, which the renderer has no rules for; "
            f"supported pipeline classes: {', '.join(known)}"
        )
    best = max(matching, key=lambda model: len(model.index_config))
    return dataclasses.replace(best, hf_id=str(path))
