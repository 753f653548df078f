"""A tiny random-weight DINOv2 model saved to a folder: the identity metric's real loading code, offline."""

from __future__ import annotations

from pathlib import Path


def build_tiny_dinov2(folder: Path) -> Path:
    """A ``Dinov2Model`` of width 32 and two layers on 32 px images (patch 8), with its image processor."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return Path(folder)
