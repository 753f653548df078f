"""A tiny random-weight CLIP model saved to a folder, so tests run the real CLIP loading code offline.

Same classes as ``openai/clip-vit-base-patch32`` (``CLIPModel``, ``CLIPProcessor`` with a
``CLIPImageProcessor`` and a ``CLIPTokenizer``), shrunk to 32x32 images, two layers of width 32
and 16-dimensional embeddings. The tokenizer is a CLIP-style BPE (``</w>`` word ends,
``<|startoftext|>`` / ``<|endoftext|>``) trained here with the ``tokenizers`` library on a few
sentences. Its numbers mean nothing: tests check mechanics (one score per shot, in range).
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_IMAGE_SIZE_PX = 32
TINY_TEXT_MAX_TOKENS = 77
TINY_VOCAB_SIZE = 300

_CORPUS = [
    "a lighthouse keeper walks along a stormy coast at night, cinematic, 35mm film",
    "neon city street in the rain, a dancer in a red coat, slow push in",
    "an open desert at dawn, warm palette, wide shot, the traveller looks back",
    "abstract shapes pulse to the beat, pastel colours, soft light",
] * 4


def build_tiny_clip_tokenizer():
    """A CLIP tokenizer with a BPE vocabulary of about ``TINY_VOCAB_SIZE`` tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    specials = ["<|startoftext|>", "<|endoftext|>"]
    backend = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    model_json = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    return CLIPTokenizer(vocab=model_json["vocab"], merges=merges, model_max_length=TINY_TEXT_MAX_TOKENS)


def build_tiny_clip(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight ``CLIPModel`` and its ``CLIPProcessor`` into ``folder``; returns it."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = build_tiny_clip_tokenizer()
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": TINY_TEXT_MAX_TOKENS,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    }
    vision_config = {
        "image_size": TINY_IMAGE_SIZE_PX,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
    }
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_IMAGE_SIZE_PX},
        crop_size={"height": TINY_IMAGE_SIZE_PX, "width": TINY_IMAGE_SIZE_PX},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
