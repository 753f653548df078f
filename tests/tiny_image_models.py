"""Tiny random-weight text-to-image and image-editing pipelines, saved to folders, for offline tests.

The keyframes stage loads them through its real code (``from_pretrained`` on the folder, the
image-model registry's rules picked by ``model_index.json``). Component sizes follow diffusers'
own tests (``tests/pipelines/qwenimage/test_qwenimage.py`` and ``test_qwenimage_edit_plus.py``),
except the tokenizer and processor, which those tests download and which are built here:

* tokenizer: a byte-level BPE (``tokenizers``) with a few merges and Qwen's special tokens
  (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ``<|vision_start|>``, ``<|image_pad|>``,
  ``<|vision_end|>``, ``<|video_pad|>``), wrapped as ``Qwen2Tokenizer``. Byte-level pieces keep
  the pipelines' system prompt longer than the tokens they drop from its front (34 and 64).
* text encoder: ``Qwen2_5_VLForConditionalGeneration`` of hidden size 16 whose vision token ids
  are the tiny tokenizer's.
* processor (edit): ``Qwen2VLProcessor`` over a ``Qwen2VLImageProcessor`` and that tokenizer.

A 32x32 image in 2 steps takes well under a second on a CPU for Qwen-Image; the edit pipeline
also encodes each reference image at about one megapixel through the tiny VAE (its size is
fixed inside diffusers), a second or two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>",
]  # fmt: skip
TINY_VOCAB_SIZE = 320  # the 256 byte pieces, the special tokens and a few merges
HIDDEN = 16

_CORPUS = ["a dancer in a red coat on a neon street at night, wide establishing view, character sheet"] * 8


def tiny_qwen_tokenizer():
    """A ``Qwen2Tokenizer`` (byte-level BPE) with Qwen's chat and vision special tokens."""
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
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = Qwen2Tokenizer(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    return tokenizer


def _text_encoder(tokenizer, seed: int):
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": HIDDEN,
            "intermediate_size": HIDDEN,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "vocab_size": len(tokenizer),
        },
        vision_config={"depth": 2, "hidden_size": HIDDEN, "intermediate_size": HIDDEN, "num_heads": 2, "out_hidden_size": HIDDEN},
        hidden_size=HIDDEN,
        vocab_size=len(tokenizer),
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_token_id=ids["<|image_pad|>"],
    )
    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(config)


def _transformer_vae_scheduler(seed: int):
    import torch
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel

    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    torch.manual_seed(seed)
    z_dim = 4
    vae = AutoencoderKLQwenImage(
        base_dim=z_dim * 6,
        z_dim=z_dim,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
    )
    return transformer, vae, FlowMatchEulerDiscreteScheduler()


def build_tiny_qwen_image(folder: Path, seed: int = 0) -> Path:
    """Save a tiny ``QwenImagePipeline`` (text-to-image) to ``folder`` and return it."""
    from diffusers import QwenImagePipeline

    tokenizer = tiny_qwen_tokenizer()
    transformer, vae, scheduler = _transformer_vae_scheduler(seed)
    pipe = QwenImagePipeline(
        scheduler=scheduler, vae=vae, text_encoder=_text_encoder(tokenizer, seed), tokenizer=tokenizer, transformer=transformer
    )
    pipe.save_pretrained(folder)
    return Path(folder)


def build_tiny_qwen_image_edit_plus(folder: Path, seed: int = 0) -> Path:
    """Save a tiny ``QwenImageEditPlusPipeline`` (1-3 reference images) to ``folder`` and return it."""
    from diffusers import QwenImageEditPlusPipeline
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor

    tokenizer = tiny_qwen_tokenizer()
    transformer, vae, scheduler = _transformer_vae_scheduler(seed)
    # Built inside small_edit_pipeline() (the processor without torchvision). The real processor's patching (14-pixel patches merged 2x2); a small pixel budget keeps
    # the vision tokens few.
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer)
    pipe = QwenImageEditPlusPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=_text_encoder(tokenizer, seed),
        tokenizer=tokenizer,
        processor=processor,
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return Path(folder)


@contextlib.contextmanager
def small_edit_pipeline() -> Iterator[None]:
    """Two changes that let the tiny edit pipeline run on a CPU test machine, undone on exit.

    * Qwen2VLProcessor without its video half: transformers builds the video processor only
      with torchvision, whose PyPI build does not import beside a CPU-only torch, and the edit
      pipeline never passes a video. The processor is built, saved and loaded with its image
      processor and tokenizer only.
    * Reference images encoded at 64x64 instead of diffusers' fixed one megapixel
      (``VAE_IMAGE_SIZE``): at a megapixel one tiny keyframe with three references took 7
      minutes on one CPU thread (16k image tokens of attention); at 64x64 it takes 0.7 s.
    """
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus
    from transformers import Qwen2VLProcessor

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(Qwen2VLProcessor, "get_attributes", classmethod(lambda cls: ["image_processor", "tokenizer"]))
        patch.setattr(edit_plus, "VAE_IMAGE_SIZE", 64 * 64)
        yield
    finally:
        patch.undo()
