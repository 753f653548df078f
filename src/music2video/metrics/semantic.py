"""Do the pictures show what the storyboard asked for, and does each shot's sound fit its scene?

Three measurements, each optional (they need torch and transformers, and a model):

* **CLIP prompt similarity** per shot: cosine between the CLIP text embedding of the shot's
  prompt and the mean CLIP image embedding of ``CLIP_FRAMES_PER_SHOT`` frames spread over the
  shot (at 1/4, 1/2 and 3/4 of it). -1..1; real videos and fitting prompts give about 0.2-0.35
  with ``openai/clip-vit-base-patch32``. Multiply by 100 for the "CLIPSIM" of T2V papers.
* **Consistency** of shots that share a character (``StoryboardShot.characters``) or a setting
  (``SectionTreatment.setting`` of their section): the mean pairwise cosine of the shots'
  image embeddings inside the group, against the mean cosine between the group's shots and
  every other shot. A recurring character drawn alike gives a positive margin.
* **CLAP scene similarity** per shot: cosine between the CLAP audio embedding of the shot's
  stretch of the song and the CLAP text embedding of its scene description. It reuses the
  clap listener's loading and windowing code (:mod:`music2video.listen.clap`).

Models load from a Hugging Face id or a local folder (``save_pretrained``), safetensors only,
one at a time, and are freed before the next loads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from music2video.artifacts import Storyboard, StoryboardShot
from music2video.optional import require
from music2video.model_source import load_error, model_source

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_CLAP_MODEL = "laion/larger_clap_music"

CLIP_FRAMES_PER_SHOT = 3
"""Frames per shot that CLIP looks at, spread evenly inside the shot."""

CLIP_FRAME_WIDTH_PX = 320
"""Frames are kept at this width for CLIP (its processor resizes to 224 on the short side anyway)."""

CLIP_BATCH = 32
"""Images per CLIP forward pass."""


def shot_frame_indices(
    shots: Sequence[StoryboardShot], fps: float, frame_count: int, per_shot: int = CLIP_FRAMES_PER_SHOT
) -> dict[str, list[int]]:
    """Frame indices spread inside each shot: at (i + 1) / (per_shot + 1) of its frame range.

    The shot's frames are ``round(start_s * fps)`` up to ``round(end_s * fps)`` (exclusive), as
    the assembler cuts them. Indices are clipped to the video; a shot outside the video gets
    none.
    """
    indices: dict[str, list[int]] = {}
    for shot in shots:
        first, end = round(shot.start_s * fps), round(shot.end_s * fps)
        end = min(end, frame_count)
        if end <= first:
            indices[shot.id] = []
            continue
        span = end - first
        picks = {first + min(span - 1, int(span * (i + 1) / (per_shot + 1))) for i in range(per_shot)}
        indices[shot.id] = sorted(picks)
    return indices


# --------------------------------------------------------------------------------------------
# CLIP


def load_clip(model_id: str, device: Any, dtype: Any) -> tuple[Any, Any]:
    """``(CLIPModel, CLIPProcessor)`` from a Hugging Face id or a local folder, in eval mode.

    Raises:
        MissingDependencyError: torch or transformers is missing.
        ModelLoadError: the model cannot be found or read; the message says how to work offline.
    """
    _require_backend("CLIP similarity")
    from transformers import CLIPModel, CLIPProcessor

    source = model_source(model_id, "CLIP", "--clip-model")
    try:
        processor = CLIPProcessor.from_pretrained(source)
        model = CLIPModel.from_pretrained(source, dtype=dtype, use_safetensors=True)
    except (OSError, ValueError, KeyError) as error:
        raise load_error(model_id, "CLIP", "--clip-model", error) from None
    model.to(device)
    model.eval()
    return model, processor


def clip_embeddings(
    model: Any, processor: Any, images: Sequence[np.ndarray], texts: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Unit CLIP embeddings: images ``(len(images), dim)`` and texts ``(len(texts), dim)``, float32.

    Texts longer than the model's context (77 tokens for OpenAI CLIP) are truncated.
    """
    import torch

    parameter = next(model.parameters())
    image_chunks, text_chunks = [], []
    with torch.inference_mode():
        for first in range(0, len(images), CLIP_BATCH):
            batch = [np.asarray(image) for image in images[first : first + CLIP_BATCH]]
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
            output = model.get_image_features(pixel_values=pixels.to(parameter.device, parameter.dtype))
            image_chunks.append(_pooled(output))
        for first in range(0, len(texts), CLIP_BATCH):
            tokens = processor.tokenizer(
                list(texts[first : first + CLIP_BATCH]), padding=True, truncation=True, return_tensors="pt"
            )
            tokens = {name: value.to(parameter.device) for name, value in tokens.items() if name in ("input_ids", "attention_mask")}
            text_chunks.append(_pooled(model.get_text_features(**tokens)))
    dim = int(model.config.projection_dim)
    image_matrix = np.concatenate(image_chunks) if image_chunks else np.zeros((0, dim), np.float32)
    text_matrix = np.concatenate(text_chunks) if text_chunks else np.zeros((0, dim), np.float32)
    return unit_rows(image_matrix), unit_rows(text_matrix)


@dataclass
class ClipShotScores:
    """Per shot (in storyboard order): the unit image embedding (None without frames) and prompt cosine."""

    embeddings: dict[str, np.ndarray]
    similarities: dict[str, float | None]


def clip_shot_scores(
    model_id: str,
    shots: Sequence[StoryboardShot],
    frames: dict[int, np.ndarray],
    indices_by_shot: dict[str, list[int]],
    device: str = "auto",
    dtype: str = "auto",
) -> ClipShotScores:
    """CLIP prompt similarity of every shot (module docstring); loads the model, then frees it.

    Args:
        model_id: Hugging Face id or local folder of a CLIP model.
        shots: storyboard shots.
        frames: frame index -> RGB uint8 picture (from ``scan_video(keep_frames=...)``).
        indices_by_shot: which frames belong to which shot (``shot_frame_indices``).
        device, dtype: as in ``ModelSettings``.
    """
    from music2video.torch_device import free_memory, resolve_device, resolve_dtype

    _require_backend("CLIP similarity")
    torch_device = resolve_device(device)
    model, processor = load_clip(model_id, torch_device, resolve_dtype(dtype, torch_device))
    try:
        order = [(shot.id, k) for shot in shots for k in indices_by_shot.get(shot.id, []) if k in frames]
        image_embeddings, text_embeddings = clip_embeddings(
            model, processor, [frames[k] for _, k in order], [shot.prompt for shot in shots]
        )
    finally:
        del model
        free_memory()
    embeddings: dict[str, np.ndarray] = {}
    similarities: dict[str, float | None] = {}
    for row, shot in enumerate(shots):
        rows = [i for i, (shot_id, _) in enumerate(order) if shot_id == shot.id]
        if not rows:
            similarities[shot.id] = None
            continue
        mean = mean_unit(image_embeddings[rows])
        embeddings[shot.id] = mean
        similarities[shot.id] = float(np.clip(mean @ text_embeddings[row], -1.0, 1.0))
    return ClipShotScores(embeddings, similarities)


@dataclass
class GroupConsistency:
    kind: str
    """``character`` or ``setting``."""
    name: str
    shot_ids: list[str]
    within: float
    """Mean pairwise cosine of the group's shot embeddings."""
    between: float | None
    """Mean cosine between the group's shots and every shot outside it (None: no other shot)."""


def consistency_groups(storyboard: Storyboard, embeddings: dict[str, np.ndarray]) -> list[GroupConsistency]:
    """Consistency of every character and setting that appears in two or more embedded shots."""
    groups: dict[tuple[str, str], list[str]] = {}
    settings = {section.section_index: section.setting.strip() for section in storyboard.sections}
    for shot in storyboard.shots:
        if shot.id not in embeddings:
            continue
        for name in shot.characters:
            groups.setdefault(("character", name), []).append(shot.id)
        setting = settings.get(shot.section_index, "")
        if setting:
            groups.setdefault(("setting", setting), []).append(shot.id)
    results = []
    for (kind, name), members in groups.items():
        if len(members) < 2:
            continue
        results.append(GroupConsistency(kind, name, members, *group_cosines(embeddings, members)))
    return results


def group_cosines(embeddings: Mapping[str, np.ndarray], members: list[str]) -> tuple[float, float | None]:
    """``(within, between)`` for two or more ``members`` of ``embeddings`` (unit vectors by shot id):
    their mean pairwise cosine, and their mean cosine to every other shot (None: no other shot)."""
    inside = np.stack([embeddings[m] for m in members])
    pairs = (inside @ inside.T)[np.triu_indices(len(members), k=1)]
    others = [shot_id for shot_id in embeddings if shot_id not in members]
    between = float((inside @ np.stack([embeddings[o] for o in others]).T).mean()) if others else None
    return float(pairs.mean()), between


# --------------------------------------------------------------------------------------------
# CLAP


def clap_shot_scores(
    model_id: str,
    audio_wav: Path,
    shots: Sequence[StoryboardShot],
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 8,
) -> dict[str, float | None]:
    """CLAP cosine between each shot's audio and its ``scene`` text (None for an empty shot).

    A shot longer than the model's window is split into equal windows (as the clap listener
    does); its audio embedding is their length-weighted mean.
    """
    _require_backend("CLAP similarity")
    from music2video.listen import clap
    from music2video.torch_device import free_memory, resolve_device, resolve_dtype

    torch_device = resolve_device(device)
    model, processor = clap.load_clap(model_id, torch_device, resolve_dtype(dtype, torch_device))
    try:
        extractor = processor.feature_extractor
        rate = int(extractor.sampling_rate)
        audio, _, _ = clap.read_mono(audio_wav, rate)
        limit = int(extractor.nb_max_samples)
        windows: list[tuple[int, int]] = []
        owners: list[int] = []
        for index, shot in enumerate(shots):
            start, end = clap.span_to_samples(shot.start_s, shot.end_s, rate, len(audio))
            for window in clap.split_windows(start, end, limit):
                windows.append(window)
                owners.append(index)
        audio_embeddings = clap.embed_windows(model, extractor, audio, windows, batch_size)
        text_embeddings = _clap_text(model, processor.tokenizer, [shot.scene or shot.prompt for shot in shots])
    finally:
        del model
        free_memory()
    scores: dict[str, float | None] = {}
    owners_arr = np.asarray(owners)
    lengths = np.asarray([end - start for start, end in windows], np.float64)
    for index, shot in enumerate(shots):
        rows = np.nonzero(owners_arr == index)[0]
        if len(rows) == 0:
            scores[shot.id] = None
            continue
        embedding = clap.weighted_embedding(audio_embeddings[rows], lengths[rows])
        scores[shot.id] = float(np.clip(embedding @ text_embeddings[index], -1.0, 1.0))
    return scores


def _clap_text(model: Any, tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    import torch

    device = next(model.parameters()).device
    chunks = []
    with torch.inference_mode():
        for first in range(0, len(texts), CLIP_BATCH):
            tokens = tokenizer(list(texts[first : first + CLIP_BATCH]), padding=True, truncation=True, return_tensors="pt")
            tokens = {name: value.to(device) for name, value in tokens.items() if name in ("input_ids", "attention_mask")}
            chunks.append(_pooled(model.get_text_features(**tokens)))
    return unit_rows(np.concatenate(chunks)) if chunks else np.zeros((0, 1), np.float32)


# --------------------------------------------------------------------------------------------
# helpers


def _pooled(output: Any) -> np.ndarray:
    """transformers 5 returns a model output whose ``pooler_output`` is the projected embedding;
    earlier versions returned the tensor itself."""
    tensor = getattr(output, "pooler_output", output)
    return tensor.float().cpu().numpy()


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix``'s rows scaled to length 1 (a zero row stays zero), float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def mean_unit(rows: np.ndarray) -> np.ndarray:
    """The mean of unit rows, made unit again."""
    return unit_rows(rows.mean(axis=0, keepdims=True))[0]


def _require_backend(purpose: str) -> None:
    require("torch", "transformers", extra="clap", purpose=purpose)


