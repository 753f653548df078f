"""Tiny random-weight audio-language models of every family the lalm listener supports, saved
to folders so the tests run the real loading code offline.

Each model keeps its family's real audio front end (a Whisper feature extractor at 16 kHz with
128 mel bins and 30 s chunks, encoder ``max_source_positions`` 1500) and the real token
plumbing (a Qwen2 byte-level BPE tokenizer with the family's special tokens and a ChatML chat
template), and shrinks every width and depth: a 2-layer language model of width 32 generates
in milliseconds. Its answers are gibberish, which is what the listener's retry-and-fallback
path needs to be exercised.

The folders have the layout of the published checkpoints: Qwen2.5-Omni is saved as the full
``Qwen2_5OmniForConditionalGeneration`` (``model_type`` ``qwen2_5_omni``, talker disabled), so
the listener's thinker-only loading is tested the way it meets the real model.

Build each once per test session (``build_tiny_lalm(family, folder)``) and point
``LalmSettings.model`` at the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_VOCAB_SIZE = 320
TINY_TEXT_WIDTH = 32
TINY_AUDIO_WIDTH = 16
SAMPLE_RATE_HZ = 16_000
MEL_BINS = 128
CHUNK_S = 30  # Whisper's window; Qwen2-Audio's encoder insists on 3000 frames (30 s at 10 ms)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_bos|>",
    "<|AUDIO|>",
    "<|audio_eos|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<sound>",
    "<|sound_bos|>",
    "<|sound_eos|>",
]

# The tokenizer learns its merges from neutral text, not from music words, so that a random
# model is very unlikely to string together an answer the listener would accept by chance.
_TOKENIZER_CORPUS = [
    "The quick brown fox jumps over the lazy dog while the river runs past the old mill.",
    "A system prompt and a user turn are followed by the assistant, one line at a time.",
    "Numbers like 1, 2, 3 and 120 appear with colons: sections, parts and positions.",
] * 4

# ChatML as the Qwen checkpoints write it; audio parts become the family's audio placeholder.
_QWEN2_AUDIO_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' %}{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_QWEN_OMNI_TEMPLATE = _QWEN2_AUDIO_TEMPLATE.replace("Audio {{ audio_count.value }}: ", "").replace(
    "<|audio_eos|>\n", "<|audio_eos|>"
)
_FLAMINGO_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' %}<sound>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_tokenizer(**named_tokens: str):
    """A byte-level BPE ``Qwen2Tokenizer`` with :data:`SPECIAL_TOKENS` (ids 0..12);
    ``named_tokens`` become attributes such as ``tokenizer.audio_token``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_TOKENIZER_CORPUS, trainer=trainer)
    model_json = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    extra: list[str] | dict[str, str] = dict(named_tokens) if named_tokens else SPECIAL_TOKENS[1:]
    tokenizer = Qwen2Tokenizer(vocab=model_json["vocab"], merges=merges, extra_special_tokens=extra)
    tokenizer.add_special_tokens({"extra_special_tokens": SPECIAL_TOKENS[1:]}, replace_extra_special_tokens=False)
    ids = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
    assert ids == list(range(len(SPECIAL_TOKENS))), f"tiny tokenizer special ids are {ids}"
    return tokenizer


def _feature_extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=MEL_BINS, sampling_rate=SAMPLE_RATE_HZ, chunk_length=CHUNK_S)


def _text_config(tokenizer, **extra) -> dict:
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=TINY_TEXT_WIDTH,
        intermediate_size=2 * TINY_TEXT_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        **extra,
    )


def _whisper_encoder_config(**extra) -> dict:
    return dict(num_mel_bins=MEL_BINS, max_source_positions=1500, **extra)


def build_tiny_qwen2_audio(folder: Path, *, seed: int = 0) -> Path:
    """``Qwen2AudioForConditionalGeneration`` + ``Qwen2AudioProcessor`` in ``folder``."""
    import torch
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    tokenizer = build_tiny_tokenizer()
    config = Qwen2AudioConfig(
        audio_config=dict(
            model_type="qwen2_audio_encoder",
            d_model=TINY_AUDIO_WIDTH,
            encoder_layers=1,
            encoder_attention_heads=2,
            encoder_ffn_dim=2 * TINY_AUDIO_WIDTH,
            **_whisper_encoder_config(),
        ),
        text_config=dict(model_type="qwen2", **_text_config(tokenizer)),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(seed)
    Qwen2AudioForConditionalGeneration(config).save_pretrained(folder)
    Qwen2AudioProcessor(
        feature_extractor=_feature_extractor(), tokenizer=tokenizer, chat_template=_QWEN2_AUDIO_TEMPLATE
    ).save_pretrained(folder)
    return folder


def build_tiny_qwen2_5_omni(folder: Path, *, seed: int = 0) -> Path:
    """A full ``Qwen2_5OmniForConditionalGeneration`` (talker disabled) with its tokenizer and
    Whisper feature extractor in ``folder``, laid out like ``Qwen/Qwen2.5-Omni-7B``."""
    import torch
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    tokenizer = build_tiny_tokenizer(
        audio_token="<|AUDIO|>",
        audio_bos_token="<|audio_bos|>",
        audio_eos_token="<|audio_eos|>",
        image_token="<|IMAGE|>",
        video_token="<|VIDEO|>",
        vision_bos_token="<|vision_bos|>",
        vision_eos_token="<|vision_eos|>",
    )
    tokenizer.chat_template = _QWEN_OMNI_TEMPLATE
    ids = tokenizer.convert_tokens_to_ids
    head_dim = TINY_TEXT_WIDTH // 2
    thinker = dict(
        audio_config=dict(
            d_model=TINY_AUDIO_WIDTH,
            encoder_layers=1,
            encoder_attention_heads=2,
            encoder_ffn_dim=2 * TINY_AUDIO_WIDTH,
            n_window=100,
            output_dim=TINY_TEXT_WIDTH,
            **_whisper_encoder_config(),
        ),
        vision_config=dict(
            depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=TINY_TEXT_WIDTH, fullatt_block_indexes=[0]
        ),
        text_config=_text_config(
            tokenizer,
            # M-RoPE splits each head's rotary half (head_dim / 2) into time, height and width.
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        ),
        audio_token_index=ids("<|AUDIO|>"),
        image_token_index=ids("<|IMAGE|>"),
        video_token_index=ids("<|VIDEO|>"),
        audio_start_token_id=ids("<|audio_bos|>"),
        audio_end_token_id=ids("<|audio_eos|>"),
        vision_start_token_id=ids("<|vision_bos|>"),
        vision_end_token_id=ids("<|vision_eos|>"),
        user_token_id=ids("<|im_start|>"),
    )
    assert sum([2, 3, 3]) == head_dim // 2
    config = Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)
    torch.manual_seed(seed)
    Qwen2_5OmniForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _feature_extractor().save_pretrained(folder)
    return folder


def _build_tiny_flamingo(folder: Path, *, music: bool, seed: int) -> Path:
    import torch
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
        MusicFlamingoConfig,
        MusicFlamingoForConditionalGeneration,
        MusicFlamingoProcessor,
    )

    tokenizer = build_tiny_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    common = dict(
        audio_config=dict(
            model_type="audioflamingo3_encoder",
            hidden_size=TINY_AUDIO_WIDTH,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=2 * TINY_AUDIO_WIDTH,
            **_whisper_encoder_config(),
        ),
        text_config=dict(model_type="qwen2", **_text_config(tokenizer)),
        audio_token_id=ids("<sound>"),
    )
    torch.manual_seed(seed)
    if music:
        config = MusicFlamingoConfig(**common, audio_bos_token_id=ids("<|sound_bos|>"), audio_eos_token_id=ids("<|sound_eos|>"))
        MusicFlamingoForConditionalGeneration(config).save_pretrained(folder)
        MusicFlamingoProcessor(_feature_extractor(), tokenizer, chat_template=_FLAMINGO_TEMPLATE).save_pretrained(folder)
    else:
        AudioFlamingo3ForConditionalGeneration(AudioFlamingo3Config(**common)).save_pretrained(folder)
        AudioFlamingo3Processor(_feature_extractor(), tokenizer, chat_template=_FLAMINGO_TEMPLATE).save_pretrained(folder)
    return folder


def build_tiny_audio_flamingo3(folder: Path, *, seed: int = 0) -> Path:
    """``AudioFlamingo3ForConditionalGeneration`` + ``AudioFlamingo3Processor`` in ``folder``."""
    return _build_tiny_flamingo(folder, music=False, seed=seed)


def build_tiny_music_flamingo(folder: Path, *, seed: int = 0) -> Path:
    """``MusicFlamingoForConditionalGeneration`` + ``MusicFlamingoProcessor`` in ``folder``."""
    return _build_tiny_flamingo(folder, music=True, seed=seed)


BUILDERS = {
    "qwen2_5_omni": build_tiny_qwen2_5_omni,
    "qwen2_audio": build_tiny_qwen2_audio,
    "audio_flamingo3": build_tiny_audio_flamingo3,
    "music_flamingo": build_tiny_music_flamingo,
}


def build_tiny_lalm(family: str, folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny model of ``family`` (a key of :data:`BUILDERS`) into ``folder``."""
    return BUILDERS[family](folder, seed=seed)
