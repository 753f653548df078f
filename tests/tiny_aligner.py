"""A tiny random-weight wav2vec2 CTC aligner (character vocabulary like facebook/wav2vec2-base-960h),
saved with ``save_pretrained`` so the real loading code (AutoProcessor + AutoModelForCTC) runs."""

from __future__ import annotations

import json
from pathlib import Path

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"


def build_tiny_aligner(folder: Path) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocabulary.update({ch: 5 + k for k, ch in enumerate(LETTERS)})
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|", pad_token="<pad>")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True)
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(vocabulary), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        pad_token_id=0, do_stable_layer_norm=False, feat_extract_norm="group",
    )  # fmt: skip
    model = Wav2Vec2ForCTC(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
