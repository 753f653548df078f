"""Tiny random-weight text-to-video pipelines, saved to folders, for offline tests.

The renderer loads them through its real code (``from_pretrained`` on the folder, the
registry rules picked by ``model_index.json``). Component sizes follow diffusers' own pipeline
tests (``tests/pipelines/wan/test_wan.py``, ``tests/pipelines/ltx/test_ltx.py``) except the
text encoder and tokenizer, which are built here instead of downloaded:

* tokenizer: a T5 tokenizer over a 50-piece vocabulary. ``T5Tokenizer(vocab=...)`` builds the
  ``tokenizers`` Unigram model with Metaspace pre-tokenizer and decoder, as T5/UMT5 use; ids
  ``<pad>``=0, ``</s>``=1, ``<unk>``=2 as the real tokenizers have them.
* text encoder: UMT5 (Wan) or T5 (LTX) encoder with ``d_model`` 32, matching the
  transformer's ``text_dim`` / ``caption_channels``.

A 9-frame 32x32 clip takes a few hundredths of a second in 2 steps on a CPU.
"""

from __future__ import annotations

from pathlib import Path

TEXT_DIM = 32
_WORDS = (
    "a the of and in on with at light dark night city neon rain dance dancer sky red blue gold "
    "slow fast camera close wide shot street moon sea fire smoke"
).split()

# The T5 / UMT5 text encoder (vocabulary size from the tokenizer) ...
_T5_ENCODER = dict(d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8)
# ... and the Wan 2.1 transformer (diffusers' tests/pipelines/wan/test_wan.py); builders change a few.
_WAN_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=TEXT_DIM,
    freq_dim=256,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)


def tiny_t5_tokenizer():
    """A T5 tokenizer (Unigram + Metaspace) with <pad>=0, </s>=1, <unk>=2, words and letters."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("\u2581" + word, -float(rank + 1)) for rank, word in enumerate(_WORDS)]
    vocab += [(letter, -50.0) for letter in "abcdefghijklmnopqrstuvwxyz,.'-"]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    return tokenizer


def build_tiny_wan(folder: Path, seed: int = 0) -> Path:
    """Save a tiny ``WanPipeline`` (Wan 2.1 layout) to ``folder`` and return it."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    tokenizer = tiny_t5_tokenizer()
    text_encoder = _tiny_umt5(tokenizer, seed)
    vae = _tiny_wan_vae(seed)
    transformer = _seeded(seed, WanTransformer3DModel, **_WAN_TRANSFORMER)
    return _save(WanPipeline, folder, tokenizer, text_encoder, vae, transformer, FlowMatchEulerDiscreteScheduler(shift=7.0))


def build_tiny_ltx(folder: Path, seed: int = 0) -> Path:
    """Save a tiny ``LTXPipeline`` to ``folder`` and return it (its VAE compresses 4x in space and time)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    tokenizer = tiny_t5_tokenizer()
    text_encoder = _seeded(seed, T5EncoderModel, T5Config(vocab_size=len(tokenizer), **_T5_ENCODER))
    transformer = _seeded(
        seed,
        LTXVideoTransformer3DModel,
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=TEXT_DIM,
    )
    # Every decoder_* argument is set: their defaults are the full-size decoder.
    vae = _seeded(
        seed,
        AutoencoderKLLTXVideo,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    return _save(LTXPipeline, folder, tokenizer, text_encoder, vae, transformer, FlowMatchEulerDiscreteScheduler())


def build_tiny_wan22_ti2v(folder: Path, seed: int = 0) -> Path:
    """Save a tiny Wan 2.2 TI2V-style ``WanPipeline`` (expand_timesteps, 48-channel VAE) to ``folder``.

    Shapes from diffusers' ``tests/pipelines/wan/test_wan_22_image_to_video.py``; the same
    components run ``WanImageToVideoPipeline`` for image-to-video.
    """
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    tokenizer = tiny_t5_tokenizer()
    text_encoder = _tiny_umt5(tokenizer, seed)
    vae = _seeded(
        seed,
        AutoencoderKLWan,
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    transformer = _seeded(seed, WanTransformer3DModel, **{**_WAN_TRANSFORMER, "in_channels": 48, "out_channels": 48})
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    return _save(WanPipeline, folder, tokenizer, text_encoder, vae, transformer, scheduler, expand_timesteps=True)


def _seeded(seed: int, model_class, *args, **kwargs):
    """``model_class(*args, **kwargs)`` with its random weights drawn after seeding torch with ``seed``."""
    import torch

    torch.manual_seed(seed)
    return model_class(*args, **kwargs)


def _save(pipeline_class, folder: Path, tokenizer, text_encoder, vae, transformer, scheduler, **others) -> Path:
    """Save a ``pipeline_class`` of these components (and ``others``) to ``folder`` and return it."""
    pipeline_class(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler, **others
    ).save_pretrained(folder)
    return Path(folder)


def _tiny_umt5(tokenizer, seed: int):
    from transformers import UMT5Config, UMT5EncoderModel

    return _seeded(seed, UMT5EncoderModel, UMT5Config(vocab_size=len(tokenizer), **_T5_ENCODER))


def _tiny_wan_vae(seed: int):
    from diffusers import AutoencoderKLWan

    return _seeded(
        seed,
        AutoencoderKLWan,
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def build_tiny_wan_vace(folder: Path, seed: int = 0) -> Path:
    """Save a tiny ``WanVACEPipeline`` (Wan 2.1 VACE layout) to ``folder`` and return it.

    Transformer shapes from diffusers' ``tests/pipelines/wan/test_wan_vace.py``: 3 blocks, VACE
    context blocks beside blocks 0 and 2, 96 VACE input channels (16 latent x 2 + 64 mask).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel

    tokenizer = tiny_t5_tokenizer()
    text_encoder = _tiny_umt5(tokenizer, seed)
    vae = _tiny_wan_vae(seed)
    transformer = _seeded(
        seed, WanVACETransformer3DModel, **{**_WAN_TRANSFORMER, "num_layers": 3, "vace_layers": [0, 2], "vace_in_channels": 96}
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    return _save(WanVACEPipeline, folder, tokenizer, text_encoder, vae, transformer, scheduler)


def build_tiny_wan_i2v(folder: Path, seed: int = 0, first_last: bool = False) -> Path:
    """Save a tiny ``WanImageToVideoPipeline`` (Wan 2.1 I2V layout: CLIP image encoder, 36 input channels).

    Shapes from diffusers' ``tests/pipelines/wan/test_wan_image_to_video.py``. ``first_last``: the
    FLF2V layout, whose image embedding takes two pictures' CLIP tokens side by side
    (``pos_embed_seq_len`` = 2 x 1025 tokens of a 32 px, patch-1 CLIP).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    tokenizer = tiny_t5_tokenizer()
    text_encoder = _tiny_umt5(tokenizer, seed)
    vae = _tiny_wan_vae(seed)
    transformer = _seeded(
        seed,
        WanTransformer3DModel,
        **{
            **_WAN_TRANSFORMER,
            "in_channels": 36,  # 16 noise + 16 encoded condition video + 4 mask
            "image_dim": 4,
            "pos_embed_seq_len": 2 * (32 * 32 + 1) if first_last else None,
        },
    )
    image_encoder = _seeded(
        seed,
        CLIPVisionModel,
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=1,
        ),
    )
    return _save(
        WanImageToVideoPipeline,
        folder,
        tokenizer,
        text_encoder,
        vae,
        transformer,
        FlowMatchEulerDiscreteScheduler(shift=7.0),
        image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(crop_size=32, size=32),
    )


def build_tiny_ltx_condition(folder: Path, seed: int = 0) -> Path:
    """Save a tiny ``LTXConditionPipeline`` (the tiny LTX components under the condition pipeline)."""
    from diffusers import LTXConditionPipeline, LTXPipeline

    build_tiny_ltx(folder, seed)
    pipe = LTXPipeline.from_pretrained(folder)
    LTXConditionPipeline(**pipe.components).save_pretrained(folder)
    return Path(folder)


def save_tiny_wan_lora(path: Path, num_layers: int, dim: int = 24, rank: int = 4, seed: int = 0) -> Path:
    """Save a random LoRA for a tiny Wan transformer (``dim`` = heads x head size) in the original
    Wan key layout that published Wan LoRAs use (CausVid, lightx2v: ``diffusion_model.blocks.N.
    self_attn.q.lora_down.weight`` with an ``alpha``); diffusers converts it on loading."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for block in range(num_layers):
        for attention in ("self_attn", "cross_attn"):
            for projection in ("q", "k", "v", "o"):
                key = f"diffusion_model.blocks.{block}.{attention}.{projection}"
                tensors[f"{key}.lora_down.weight"] = torch.randn(rank, dim, generator=generator) * 0.5
                tensors[f"{key}.lora_up.weight"] = torch.randn(dim, rank, generator=generator) * 0.5
                tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(path))
    return Path(path)
