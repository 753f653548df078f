"""A tiny random-weight chat model saved to a folder, so tests run the real local LLM code offline.

A ``Qwen2ForCausalLM`` with hidden size 32 and 2 layers, and a byte-level BPE tokenizer trained
here with the ``tokenizers`` library on a few lines of storyboard JSON, carrying Qwen's chat
special tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``) and a Qwen-style chat
template. Its text is gibberish: it exercises the loading, chat templating and constrained
decoding path, not the writing.

Build it once per test session with :func:`build_tiny_llm` and point ``LlmSettings.model`` at
the folder.
"""

from __future__ import annotations

from pathlib import Path

TINY_VOCAB_SIZE = 1000  # merges learnt from the writer's own prompts: ~3 characters a token, short contexts
TINY_HIDDEN_SIZE = 32
TINY_LAYERS = 2
TINY_MAX_POSITIONS = 32_768  # prompts with the data block and schema run to a few thousand tokens

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Qwen2.5's template, reduced to what the writer uses: system, user and assistant turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Text the tokenizer learns its merges from: the JSON keys and words the storyboard uses.
_TOKENIZER_CORPUS = [
    '{"title":"Night Drive","concept":"A lone driver crosses a neon city","style":{"look":"grainy film"}}',
    '{"medium":"35 mm film","lens":"wide 24 mm","era":"1980s","palette":["#1a2b3c","#ffcc00","#aa0033"]}',
    '{"characters":[{"name":"Mara","description":"a woman in a red coat with short black hair"}]}',
    '{"sections":[{"motif":"rain","setting":"a wet street at night","story":"she waits for the train"}]}',
    '{"shots":[{"scene":"Mara runs through the rain","prompt":"close up, slow push in","camera":"static"}]}',
    "The song has a verse, a chorus, a bridge and an outro; energy, tempo, lyrics, section, label, role.",
] * 4


def _prompt_corpus() -> list[str]:
    """The text of music2video's prompt templates, so that the prompts the writer sends tokenize
    into few tokens and the tiny model's context (and the test) stays short."""
    from importlib import resources

    folder = resources.files("music2video") / "prompts"
    return [item.read_text(encoding="utf-8") for item in folder.iterdir() if item.name.endswith(".md")]


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer with Qwen's chat special tokens, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_TOKENIZER_CORPUS + _prompt_corpus() * 2, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=TINY_MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_llm(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight Qwen2 chat model and its tokenizer into ``folder``; returns it."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=TINY_HIDDEN_SIZE,
        intermediate_size=2 * TINY_HIDDEN_SIZE,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=TINY_MAX_POSITIONS,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
