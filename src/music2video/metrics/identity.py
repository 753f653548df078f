"""Do recurring characters look the same from shot to shot, and does each clip start as its keyframe?

Two measurements with one image-embedding model (CLIP's image tower or DINOv2, by Hugging Face
id or local folder; DINOv2's self-supervised features follow appearance more closely than
CLIP's, which follow captions):

* **Identity consistency** per character (``StoryboardShot.characters``): the mean cosine between
  the embeddings of the shots that show the character (every pair), against the mean cosine
  between those shots and the shots that do not show it. A character drawn alike in every shot
  gives a high ``within`` and a positive ``margin`` (within - between). A shot's embedding is the
  mean of its frames' unit embeddings (the frames ``semantic.shot_frame_indices`` picks).
* **Keyframe fidelity** per shot that has a keyframe: the cosine between the embedding of the
  shot's first frame in the video and that of its keyframe (1: the clip opens on its picture),
  and the CIE76 Delta E between their mean Lab colours (model-free).

The model loads once, embeds every picture, and is freed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from music2video.artifacts import Storyboard
from music2video.metrics.semantic import group_cosines, unit_rows
from music2video.model_source import load_error, model_source
from music2video.optional import require

DEFAULT_IDENTITY_MODEL = "facebook/dinov2-small"
"""22M parameters, Apache-2.0: light beside the video models of a run that has keyframes."""

IMAGE_BATCH = 16
"""Pictures per forward pass."""


@dataclass
class ImageEncoder:
    model: Any
    processor: Any
    kind: str
    """``clip`` (``get_image_features``) or ``dinov2`` (the pooled CLS token)."""


def load_image_encoder(model_id: str, device: Any, dtype: Any) -> ImageEncoder:
    """A CLIP or DINOv2 model and its image processor, from a Hugging Face id or a local folder.

    Raises:
        MissingDependencyError: torch or transformers is missing.
        ModelLoadError: the model cannot be found or read, or is neither CLIP nor DINOv2.
    """
    require("torch", "transformers", extra="clap", purpose="Identity consistency")
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, CLIPModel

    source = model_source(model_id, "identity", "--identity-model")
    try:
        kind = AutoConfig.from_pretrained(source).model_type
        processor = AutoImageProcessor.from_pretrained(source)
        if kind == "clip":
            model = CLIPModel.from_pretrained(source, dtype=dtype, use_safetensors=True)
        elif kind == "dinov2":
            model = AutoModel.from_pretrained(source, dtype=dtype, use_safetensors=True)
        else:
            raise ValueError(f"{model_id} is a {kind!r} model; identity consistency takes a CLIP or DINOv2 model")
    except (OSError, ValueError, KeyError) as error:
        raise load_error(model_id, "identity", "--identity-model", error) from None
    model.to(device)
    model.eval()
    return ImageEncoder(model, processor, kind)


def embed_images(encoder: ImageEncoder, images: Sequence[np.ndarray]) -> np.ndarray:
    """Unit embeddings ``(len(images), dim)`` of RGB uint8 pictures, float32."""
    import torch

    parameter = next(encoder.model.parameters())
    chunks = []
    with torch.inference_mode():
        for first in range(0, len(images), IMAGE_BATCH):
            batch = [np.asarray(image) for image in images[first : first + IMAGE_BATCH]]
            pixels = encoder.processor(images=batch, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(parameter.device, parameter.dtype)
            if encoder.kind == "clip":
                output = encoder.model.get_image_features(pixel_values=pixels)
                tensor = getattr(output, "pooler_output", output)
            else:
                tensor = encoder.model(pixel_values=pixels).pooler_output
            chunks.append(tensor.float().cpu().numpy())
    if not chunks:
        return np.zeros((0, 1), np.float32)
    return unit_rows(np.concatenate(chunks))


@dataclass
class CharacterIdentity:
    name: str
    shot_ids: list[str]
    within: float
    between: float | None


def character_identity(storyboard: Storyboard, shot_embeddings: Mapping[str, np.ndarray]) -> list[CharacterIdentity]:
    """Identity consistency of every character shown in two or more embedded shots (module docstring)."""
    members: dict[str, list[str]] = {}
    for shot in storyboard.shots:
        if shot.id in shot_embeddings:
            for name in dict.fromkeys(shot.characters):
                members.setdefault(name, []).append(shot.id)
    results = []
    for name, shot_ids in members.items():
        if len(shot_ids) < 2:
            continue
        results.append(CharacterIdentity(name, shot_ids, *group_cosines(shot_embeddings, shot_ids)))
    return results


def read_picture(path: Path, width: int | None = None) -> np.ndarray:
    """An RGB uint8 picture from a file, scaled to ``width`` pixels wide (aspect kept) when given."""
    import PIL.Image

    with PIL.Image.open(path) as picture:
        picture = picture.convert("RGB")
        if width is not None and picture.width != width:
            height = max(1, round(picture.height * width / picture.width))
            picture = picture.resize((width, height), PIL.Image.Resampling.BILINEAR)
        return np.asarray(picture)
