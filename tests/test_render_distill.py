"""video.speed = "distilled": a step-distillation LoRA fused into the tiny Wan and Wan VACE
transformers, and its few steps at guidance 1 reaching the pipeline."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

import numpy as np
from test_render_diffusion import make_renderer, make_shot, one_torch_thread, render_one  # noqa: F401
from tiny_video_models import build_tiny_ltx, build_tiny_wan, build_tiny_wan_vace, save_tiny_wan_lora

from music2video.errors import Music2VideoError
from music2video.render.video_models import VIDEO_MODELS
from music2video.videofile import read_frames


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distill")
    return {
        "wan": build_tiny_wan(folder / "wan"),
        "vace": build_tiny_wan_vace(folder / "vace"),
        "wan_lora": save_tiny_wan_lora(folder / "wan-lora.safetensors", num_layers=2),
        "vace_lora": save_tiny_wan_lora(folder / "vace-lora.safetensors", num_layers=3),
    }


def render_recording(folder, output, monkeypatch, **settings) -> tuple[np.ndarray, dict]:
    """Render one short shot; return its frames and the sampling arguments the pipeline received."""
    import diffusers

    seen: dict = {}
    for name in ("WanPipeline", "WanVACEPipeline"):
        pipeline_class = getattr(diffusers, name)
        original = pipeline_class.__call__

        def recording(self, *args, _original=original, **kwargs):
            seen.update(steps=kwargs["num_inference_steps"], guidance=kwargs["guidance_scale"])
            seen["transformer"] = self.transformer
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(pipeline_class, "__call__", recording)
    renderer = make_renderer(folder, settings={"steps": None, **settings})
    with renderer:
        render_one(renderer, make_shot(end_s=0.25), 24.0, output)
    return read_frames(output).astype(np.int16), seen


@pytest.mark.parametrize("model", ["wan", "vace"])
def test_distilled_speed_fuses_the_lora_and_samples_in_few_steps(tiny_models, tmp_path, monkeypatch, model):
    folder, lora = tiny_models[model], tiny_models[f"{model}_lora"]
    fast, seen = render_recording(folder, tmp_path / "fast.mp4", monkeypatch, speed="distilled", distill_lora=str(lora))
    registry = VIDEO_MODELS["wan2.1-1.3b" if model == "wan" else "wan2.1-vace-1.3b"].distill_lora
    assert (seen["steps"], seen["guidance"]) == (registry.steps, 1.0)  # the LoRA's steps, no negative pass
    # Fused and unloaded: plain weights, no adapter layers left in the transformer.
    assert not any("lora" in name for name, _ in seen["transformer"].named_parameters())
    # The same sampling without the LoRA gives other pictures: the LoRA reached the weights.
    plain, seen = render_recording(folder, tmp_path / "plain.mp4", monkeypatch, steps=registry.steps, guidance=1.0)
    assert (seen["steps"], seen["guidance"]) == (registry.steps, 1.0)
    assert np.abs(fast - plain).mean() > 1.0


def test_steps_and_guidance_set_by_hand_win_over_the_loras(tiny_models):
    renderer = make_renderer(tiny_models["wan"], settings={"speed": "distilled", "steps": 4, "guidance": 1.5})
    assert (renderer.steps, renderer.guidance) == (4, 1.5)
    full = make_renderer(tiny_models["wan"], settings={"steps": 4, "guidance": 1.5})
    assert renderer.settings_fingerprint() != full.settings_fingerprint()  # the LoRA changes the pixels
    assert "distill_lora" not in full.settings_fingerprint()  # clips made at full speed keep their hashes


def test_a_model_without_a_distillation_lora_says_which_have_one(tmp_path):
    with pytest.raises(Music2VideoError, match="wan2.1-vace-1.3b"):
        make_renderer(build_tiny_ltx(tmp_path / "ltx"), settings={"speed": "distilled"})


def test_a_lora_that_does_not_fit_is_one_line(tiny_models, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    renderer = make_renderer(tiny_models["wan"], settings={"speed": "distilled", "distill_lora": str(broken)})
    with pytest.raises(Music2VideoError, match="step-distillation LoRA") as error:
        renderer.__enter__()
    assert "\n" not in str(error.value)


@pytest.mark.slow  # about 10 s on 2 cores: the tiny VACE pipeline, three timed calls
def test_the_gpu_benchmark_projects_the_distilled_video(monkeypatch, tmp_path):
    import json

    from test_render_keyframes import run_bench

    report = tmp_path / "bench.json"
    assert run_bench(monkeypatch, "--tiny", "--parts", "video", "--distilled", "--json", str(report)) == 0
    video = json.loads(report.read_text())["results"]["video"]
    assert video["distilled_steps"] == VIDEO_MODELS["wan2.1-vace-1.3b"].distill_lora.steps
    assert video["distilled_s_per_step"] > 0 and video["distilled_projected_s"] > 0  # timings: benchmarks only


def test_without_peft_the_distilled_speed_names_the_extra(tiny_models, monkeypatch):
    import sys

    from music2video.errors import MissingDependencyError

    renderer = make_renderer(tiny_models["wan"], settings={"speed": "distilled", "distill_lora": str(tiny_models["wan_lora"])})
    monkeypatch.setitem(sys.modules, "peft", None)  # makes 'import peft' fail
    with pytest.raises(MissingDependencyError, match=r"music2video\[video\]"):
        renderer.__enter__()
