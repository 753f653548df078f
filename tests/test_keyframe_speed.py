"""The keyframes stage's speed options with a tiny random-weight Qwen-Image-Edit pipeline.

* ``keyframes.speed = "lightning-8"``: a few-step LoRA in lightx2v's file format (the keys of
  Qwen-Image-Edit-2509-Lightning: ``diffusion_model.<module>.lora_down/lora_up/alpha``), built
  here for the tiny transformer and saved where the registry's entry points (a folder standing
  in for the Hugging Face repo), is fused into the transformer; the pipeline then runs 8 steps
  with one transformer pass each (no negative prompt) on the scheduler the LoRA was distilled
  with.
* ``keyframes.reference_pixels``: the size each reference is encoded at, which diffusers keeps
  in a module constant; set for the call only.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("peft")
torch = pytest.importorskip("torch")
PIL_Image = pytest.importorskip("PIL.Image")

from tiny_image_models import build_tiny_qwen_image_edit_plus, small_edit_pipeline

from music2video.errors import ModelLoadError
from music2video.keyframes.generator import ImageGenerator, image_fingerprint
from music2video.keyframes.image_models import IMAGE_MODELS, ImageModel, resolve_image_model, sampling_for
from music2video.settings import KeyframeSettings

SIZE = (48, 32)
LORA_RANK = 4
# The test patch encodes references at 64x64 (tiny_image_models.small_edit_pipeline).
PATCHED_REFERENCE_PIXELS = 64 * 64


@pytest.fixture(autouse=True)
def small_edits(one_torch_thread):
    with small_edit_pipeline():
        yield


@pytest.fixture(autouse=True)
def memory_frees(monkeypatch):
    import music2video.torch_device

    monkeypatch.setattr(music2video.torch_device, "free_memory", lambda: None)


@pytest.fixture(scope="module")
def edit_model(tmp_path_factory) -> Path:
    with small_edit_pipeline():  # the processor is built without its video half
        return build_tiny_qwen_image_edit_plus(tmp_path_factory.mktemp("tiny-edit") / "qwen-edit")


def save_lightning_lora(model: Path, repo: Path, weight_name: str, scale: float, seed: int = 3) -> dict[str, torch.Tensor]:
    """A rank-4 LoRA on every attention projection of the tiny transformer, in lightx2v's key format,
    saved as ``repo/weight_name``; returns its state dict."""
    from diffusers import QwenImageTransformer2DModel
    from safetensors.torch import save_file

    transformer = QwenImageTransformer2DModel.from_pretrained(model, subfolder="transformer")
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, module in transformer.named_modules():
        if isinstance(module, torch.nn.Linear) and ".attn." in name:
            state[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(LORA_RANK, module.in_features, generator=generator)
            state[f"diffusion_model.{name}.lora_up.weight"] = scale * torch.randn(module.out_features, LORA_RANK, generator=generator)
            state[f"diffusion_model.{name}.alpha"] = torch.tensor(float(LORA_RANK))
    (repo / weight_name).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, repo / weight_name)
    return state


def with_local_lora(entry: ImageModel, repo: Path) -> ImageModel:
    """The registry entry with its speed LoRAs read from ``repo`` instead of the Hugging Face repo."""
    loras = {speed: dataclasses.replace(lora, repo=str(repo)) for speed, lora in entry.speed_loras.items()}
    return dataclasses.replace(entry, speed_loras=MappingProxyType(loras))


def settings(**changes) -> KeyframeSettings:
    return KeyframeSettings(device="cpu", **changes)


class Calls:
    """What each pipeline call was given, and how many times the transformer ran in it."""

    def __init__(self, generator: ImageGenerator):
        self.arguments: list[dict] = []
        self.transformer_passes = 0
        self.reference_sizes: list[tuple[int, int]] = []
        pipe = generator._pipe
        self.scheduler_config = pipe.scheduler.config
        pipe.transformer.register_forward_hook(lambda *_: setattr(self, "transformer_passes", self.transformer_passes + 1))
        original_call, original_latents = pipe.__call__, pipe.prepare_latents

        def call(**arguments):
            self.arguments.append(arguments)
            return original_call(**arguments)

        def prepare_latents(images, *rest, **keywords):
            self.reference_sizes += [tuple(image.shape[-2:]) for image in images]
            return original_latents(images, *rest, **keywords)

        generator._pipe = _Callable(pipe, call)
        pipe.prepare_latents = prepare_latents


class _Callable:
    """The pipeline, with its call replaced (instances cannot override __call__)."""

    def __init__(self, pipe, call):
        self._pipe, self._call = pipe, call

    def __call__(self, **arguments):
        return self._call(**arguments)

    def __getattr__(self, name):
        return getattr(self._pipe, name)


def references() -> list:
    rng = np.random.default_rng(0)
    return [PIL_Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)) for _ in range(2)]


def draw(entry: ImageModel, keyframe_settings: KeyframeSettings) -> tuple[np.ndarray, Calls, ImageGenerator]:
    with ImageGenerator(entry, keyframe_settings) as generator:
        calls = Calls(generator)
        image = generator.generate("a dancer on a neon street", "blurry", seed=7, size=SIZE, images=references())
        return np.asarray(image, dtype=np.int16), calls, generator


# --------------------------------------------------------------------------------------------


def test_lightning_fuses_the_lora_and_runs_eight_steps_without_guidance(edit_model, tmp_path):
    entry = resolve_image_model(str(edit_model), "edit")
    lora = entry.speed_loras["lightning-8"]
    repo = tmp_path / "lightning"
    save_lightning_lora(edit_model, repo, lora.weight_name, scale=1.0)
    zero_repo = tmp_path / "zero"
    save_lightning_lora(edit_model, zero_repo, lora.weight_name, scale=0.0)

    full, full_calls, _ = draw(entry, settings())
    fast, fast_calls, _ = draw(with_local_lora(entry, repo), settings(speed="lightning-8"))
    no_op, _, _ = draw(with_local_lora(entry, zero_repo), settings(speed="lightning-8"))

    # Full: the model's 40 steps with true CFG (a negative prompt, two transformer passes a step).
    (called,) = full_calls.arguments
    assert (called["num_inference_steps"], called["true_cfg_scale"], called["negative_prompt"]) == (40, 4.0, "blurry")
    assert full_calls.transformer_passes == 80
    # Lightning: 8 steps, guidance 1, no negative prompt: one pass a step.
    (called,) = fast_calls.arguments
    assert (called["num_inference_steps"], called["true_cfg_scale"]) == (8, 1.0) and "negative_prompt" not in called
    assert fast_calls.transformer_passes == 8
    # On the scheduler it was distilled with: a fixed shift of 3, no stretched last step.
    config = fast_calls.scheduler_config
    assert math.isclose(config.base_shift, math.log(3)) and math.isclose(config.max_shift, math.log(3))
    assert config.shift_terminal is None
    # The LoRA is in the weights: the same schedule with an all-zero LoRA draws another image.
    assert np.abs(fast - no_op).mean() > 1.0
    assert np.abs(fast - full).mean() > 1.0


def test_the_fused_weights_are_the_base_plus_the_lora(edit_model, tmp_path):
    """Fused, then unloaded: plain Linear layers whose weights moved by alpha/rank x up @ down."""
    from diffusers import QwenImageTransformer2DModel

    entry = resolve_image_model(str(edit_model), "edit")
    lora = entry.speed_loras["lightning-4"]
    state = save_lightning_lora(edit_model, tmp_path / "lightning", lora.weight_name, scale=0.1)
    base = QwenImageTransformer2DModel.from_pretrained(edit_model, subfolder="transformer")
    with ImageGenerator(with_local_lora(entry, tmp_path / "lightning"), settings(speed="lightning-4")) as generator:
        assert generator.steps == 4 and generator.guidance == 1.0
        fused = generator._pipe.transformer
        assert not generator._pipe.get_list_adapters()  # unloaded after fusing: no LoRA layers left
        for name in ("transformer_blocks.0.attn.to_q", "transformer_blocks.1.attn.add_v_proj"):
            layer = fused.get_submodule(name)
            assert type(layer) is torch.nn.Linear
            delta = state[f"diffusion_model.{name}.lora_up.weight"] @ state[f"diffusion_model.{name}.lora_down.weight"]
            expected = base.get_submodule(name).weight + delta  # alpha = rank: scale 1
            assert torch.allclose(layer.weight, expected, atol=1e-5)


def test_a_lora_that_cannot_load_is_one_clear_error_and_frees_the_model(edit_model, tmp_path):
    entry = with_local_lora(resolve_image_model(str(edit_model), "edit"), tmp_path)  # a folder without the file
    generator = ImageGenerator(entry, settings(speed="lightning-8"))
    with pytest.raises(ModelLoadError, match=r"cannot load the lightning-8 LoRA .*keyframes.speed = \"full\""):
        with generator:
            pass
    assert generator._pipe is None


def test_references_are_encoded_at_the_pixels_asked_for_then_the_constant_is_restored(edit_model):
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

    entry = resolve_image_model(str(edit_model), "edit")
    _, default_calls, _ = draw(entry, settings(steps=2))
    _, small_calls, _ = draw(entry, settings(steps=2, reference_pixels=32 * 32))
    # 56x40 references, aspect kept, sides rounded to 32: 64x64 under the test patch, 32x32 asked.
    assert default_calls.reference_sizes == [(64, 64), (64, 64)]
    assert small_calls.reference_sizes == [(32, 32), (32, 32)]
    assert edit_plus.VAE_IMAGE_SIZE == PATCHED_REFERENCE_PIXELS


def test_sampling_and_fingerprints_follow_the_speed():
    edit, schnell = IMAGE_MODELS["qwen-image-edit-2509"], IMAGE_MODELS["flux.1-schnell"]
    full_sampling = sampling_for(edit, "full", None, None)
    assert (full_sampling.steps, full_sampling.guidance, full_sampling.lora) == (40, 4.0, None)
    fast = sampling_for(edit, "lightning-8", None, None)
    assert (fast.steps, fast.guidance) == (8, 1.0)
    assert fast.lora.repo == "lightx2v/Qwen-Image-Lightning" and fast.lora.licence == "Apache-2.0"
    assert fast.lora.weight_name == "Qwen-Image-Edit-2509/Qwen-Image-Edit-2509-Lightning-8steps-V1.0-bf16.safetensors"
    assert IMAGE_MODELS["qwen-image"].speed_loras["lightning-4"].weight_name == "Qwen-Image-Lightning-4steps-V2.0-bf16.safetensors"
    assert sampling_for(edit, "lightning-4", 6, None).steps == 6  # your steps win
    assert sampling_for(schnell, "lightning-8", None, None).steps == 4  # distilled already: its own
    # Full-speed fingerprints are what they were before the speed options (earlier images keep
    # their hashes); a speed or a reference size changes them.
    full = image_fingerprint(edit, KeyframeSettings())
    assert set(full) == {"model", "source", "steps", "guidance", "dtype", "version"}
    assert image_fingerprint(edit, KeyframeSettings(speed="lightning-8")) != full
    assert image_fingerprint(edit, KeyframeSettings(reference_pixels=512 * 512)) != full
    assert image_fingerprint(IMAGE_MODELS["qwen-image"], KeyframeSettings(reference_pixels=512 * 512)) == image_fingerprint(
        IMAGE_MODELS["qwen-image"], KeyframeSettings()
    )  # a text-to-image model has no references
