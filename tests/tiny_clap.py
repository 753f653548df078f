"""A tiny random-weight CLAP model saved to a folder, so tests run the real loading code offline.

The model keeps CLAP's real audio geometry (48 kHz, 10 s windows, 64 mel bins, ``spec_size``
256, the real ``ClapFeatureExtractor``) and shrinks only widths and depths, so the feature
extractor output of a real window flows through it in a fraction of a second. The tokenizer
is a byte-level BPE trained here with the ``tokenizers`` library on a few sentences and
wrapped in transformers' RoBERTa tokenizer, with RoBERTa's ids ``<s>``=0, ``<pad>``=1,
``</s>``=2 (the CLAP text tower is a RoBERTa).

Build it once per test session with :func:`build_tiny_clap` and point ``ClapSettings.model``
at the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_SAMPLE_RATE_HZ = 48_000
TINY_MEL_BINS = 64
TINY_SPEC_SIZE = 256
TINY_TEXT_MAX_TOKENS = 60  # RoBERTa positions start at pad_id + 1, so the model needs 2 more.
TINY_VOCAB_SIZE = 400
LOG_MEL_MEAN_DB = -50.0  # typical level of CLAP's log-mel input (silence is -100 dB)
LOG_MEL_STD_DB = 20.0

# Text the tiny tokenizer learns its merges from: the words our prompts use, nothing more.
_TOKENIZER_CORPUS = [
    "This is a piece of music. This music evokes wonder, tenderness, nostalgia and sadness.",
    "The genre of this music is rock, pop, jazz, electronic, classical, ambient or folk.",
    "This music features piano, acoustic guitar, synthesizer pads, strings, drums and vocals.",
    "The music feels slow and calm, driving, energetic, explosive and building.",
    "The soundtrack to a scene of rain on a window, a neon city at night, an open desert.",
    "This music has a warm, bright, dark, lush, sparse, gritty, airy sound.",
] * 4


def build_tiny_tokenizer(corpus: list[str] | None = None, vocab_size: int = TINY_VOCAB_SIZE):
    """A byte-level BPE RoBERTa tokenizer with ids <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4.

    ``corpus`` (default: a few sentences of prompt words) and ``vocab_size`` set how finely it
    splits text; a larger vocabulary trained on the prompts themselves splits them into about
    as many tokens as RoBERTa's real 50k vocabulary would (the benchmark uses that).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus or _TOKENIZER_CORPUS, trainer=trainer)

    # transformers 5 builds its RoBERTa tokenizer (pre-tokenizer, <s> ... </s> post-processor)
    # from a vocab and a merges list, so hand it the trained ones.
    model_json = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tokenizer = RobertaTokenizerFast(vocab=model_json["vocab"], merges=merges, model_max_length=TINY_TEXT_MAX_TOKENS)
    ids = tokenizer.convert_tokens_to_ids(specials[:3])
    assert ids == [0, 1, 2], f"tiny tokenizer special ids are {ids}, RoBERTa needs [0, 1, 2]"
    return tokenizer


def build_tiny_clap(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight ``ClapModel`` and its ``ClapProcessor`` into ``folder``.

    Returns ``folder``. About 17k parameters; loading it and embedding one 10 s window take a
    few tens of milliseconds on a CPU.
    """
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, ClapTextConfig

    tokenizer = build_tiny_tokenizer()
    patch_width = 8
    depths = [1, 1]
    audio_config = ClapAudioConfig(
        spec_size=TINY_SPEC_SIZE,
        num_mel_bins=TINY_MEL_BINS,
        window_size=8,
        patch_embeds_hidden_size=patch_width,
        # The encoder's last stage has patch_width * 2**(stages-1) channels; hidden_size must match.
        hidden_size=patch_width * 2 ** (len(depths) - 1),
        depths=depths,
        num_attention_heads=[2, 2],
        enable_fusion=False,
        projection_dim=16,
    )
    text_config = ClapTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=TINY_TEXT_MAX_TOKENS + 2,
        projection_dim=16,
    )
    config = ClapConfig(text_config=text_config.to_dict(), audio_config=audio_config.to_dict(), projection_dim=16)
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    # The audio encoder starts with a BatchNorm over mel bins. Freshly initialised it assumes
    # inputs of mean 0 and variance 1, but log-mels sit around -50 dB: every patch would then
    # be dominated by the same offset and (after LayerNorm) every clip would embed alike.
    # Typical log-mel statistics, as a trained model has, keep silence and music apart.
    with torch.no_grad():
        model.audio_model.audio_encoder.batch_norm.running_mean.fill_(LOG_MEL_MEAN_DB)
        model.audio_model.audio_encoder.batch_norm.running_var.fill_(LOG_MEL_STD_DB**2)

    # The same values as laion/larger_clap_music's preprocessor_config.json.
    feature_extractor = ClapFeatureExtractor(
        feature_size=TINY_MEL_BINS,
        sampling_rate=TINY_SAMPLE_RATE_HZ,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14_000,
        truncation="rand_trunc",
        padding="repeatpad",
    )
    processor = ClapProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
