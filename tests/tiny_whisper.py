"""A tiny random-weight Whisper saved to a folder, so tests run the real transcription code offline.

It keeps Whisper's real input geometry (16 kHz, 30 s windows, 128 mel bins as in
``openai/whisper-large-v3-turbo``, 3000 mel frames -> 1500 encoder positions, the real
``WhisperFeatureExtractor``) and the real token layout, and shrinks only widths and depths:

* a byte-level BPE trained here with the ``tokenizers`` library on a few lyric-like sentences,
  wrapped in transformers' ``WhisperTokenizer``;
* the special tokens in Whisper's order, because the tokenizer and ``generate`` compute ids from
  it: ``<|endoftext|>``, ``<|startoftranscript|>``, the 100 language tokens (a language's id is
  ``<|startoftranscript|>`` + 1 + its index), ``<|translate|>``, ``<|transcribe|>``,
  ``<|startoflm|>``, ``<|startofprev|>``, ``<|nospeech|>``, ``<|notimestamps|>`` (no-speech is
  the id just before it, which ``generate`` relies on), then the 1501 timestamps ``<|0.00|>`` ...
  ``<|30.00|>``;
* a generation config with the ids, languages, tasks and ``alignment_heads`` (cross-attention
  heads for word timestamps) that a real checkpoint carries.

Its text is gibberish; it exercises the code path, not the content. Build it once per test
session with :func:`build_tiny_whisper` and point ``LyricsSettings.model`` at the folder.
"""

from __future__ import annotations

from pathlib import Path

TINY_MEL_BINS = 128
TINY_D_MODEL = 32
TINY_VOCAB_SIZE = 300  # byte-level BPE entries before the special tokens
TIMESTAMP_COUNT = 1501  # <|0.00|> ... <|30.00|> in steps of 0.02 s

_TOKENIZER_CORPUS = [
    "I walk the line tonight, under city lights, hold on, hold on.",
    "We were young and the river ran, singing in the rain, oh oh oh.",
    "Take my hand, the summer sun, dancing till the morning comes.",
    "la la la, na na na, hey hey, yeah yeah, love, heart, fire, baby.",
] * 4


def build_tiny_tokenizer():
    """A ``WhisperTokenizer`` with a tiny BPE and Whisper's special tokens in Whisper's order."""
    import json

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import WhisperTokenizer
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator(_TOKENIZER_CORPUS, trainer=trainer)
    model_json = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tokenizer = WhisperTokenizer(vocab=model_json["vocab"], merges=merges)

    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in LANGUAGES],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in specials]}
    )
    # Timestamps follow <|notimestamps|> and are not "special" (as in the real tokenizer.json),
    # so decode(skip_special_tokens=True) keeps them unless asked otherwise.
    tokenizer.add_tokens([AddedToken(f"<|{k * 0.02:.2f}|>", normalized=False) for k in range(TIMESTAMP_COUNT)])
    ids = tokenizer.convert_tokens_to_ids(specials)
    assert ids == list(range(ids[0], ids[0] + len(specials))), "special tokens must have consecutive ids"
    return tokenizer


def build_tiny_whisper(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight ``WhisperForConditionalGeneration`` and its ``WhisperProcessor``.

    Returns ``folder``. About 150k parameters; one 30 s window decodes in well under a second
    on a CPU.
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    tokenizer = build_tiny_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    no_timestamps = ids("<|notimestamps|>")

    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=TINY_MEL_BINS,
        d_model=TINY_D_MODEL,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,  # 3000 mel frames after the stride-2 convolution: Whisper insists
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()

    space = tokenizer.convert_tokens_to_ids("Ġ")
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=ids("<|startofprev|>"),
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        max_initial_timestamp_index=50,
        begin_suppress_tokens=[space, eot] if isinstance(space, int) and space != tokenizer.unk_token_id else [eot],
        suppress_tokens=[],
        alignment_heads=[[0, 0], [1, 1]],
        max_length=448,
    )

    feature_extractor = WhisperFeatureExtractor(
        feature_size=TINY_MEL_BINS, sampling_rate=16_000, hop_length=160, chunk_length=30, n_fft=400
    )
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
