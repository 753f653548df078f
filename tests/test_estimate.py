"""Estimates made before a run: render time for --dry-run and disk space, from the settings used."""

from __future__ import annotations

import pytest

from music2video.artifacts import Shot, ShotPlan
from music2video.estimate import (
    describe_render_estimate,
    estimate_disk_bytes,
    estimate_render,
    estimate_render_seconds,
)
from music2video.render.video_models import VIDEO_MODELS
from music2video.settings import load_settings

RTX_4090 = "NVIDIA GeForce RTX 4090"


def plan_of(*durations_s: float) -> ShotPlan:
    shots, start = [], 0.0
    for index, duration in enumerate(durations_s):
        shots.append(Shot(index=index, id=f"shot-{index:03d}", start_s=start, end_s=start + duration, section_index=0, cut="beat"))
        start += duration
    return ShotPlan(duration_s=start, shots=shots)


def test_render_estimate_uses_the_gpu_table():
    wan = VIDEO_MODELS["wan2.1-1.3b"]
    # One 5 s clip at 480p, 50 steps on an RTX 4090: the README's 4 minutes.
    assert estimate_render_seconds(wan, [81], 50, RTX_4090) == pytest.approx(240)
    assert estimate_render_seconds(wan, [120], 50, RTX_4090, output_fps=24.0) == pytest.approx(240)
    h100 = estimate_render_seconds(wan, [81, 81], None, "NVIDIA H100 80GB HBM3")
    assert 0 < h100 < 2 * 240
    assert estimate_render_seconds(wan, [81], 50, "cpu") > 100 * 240
    assert estimate_render_seconds(wan, [81], 50, "Some Future GPU") == pytest.approx(240)
    line = describe_render_estimate(wan, [120, 48], 50, "NVIDIA H100 80GB HBM3", output_fps=24.0)
    assert line.startswith("render: 2 shots with wan2.1-1.3b at 832x480, 50 steps") and "H100" in line


def test_render_estimate_follows_generation_size_steps_and_cache():
    wan = VIDEO_MODELS["wan2.1-1.3b"]
    full = estimate_render_seconds(wan, [81], 50, RTX_4090)
    # 256x144 is 36864 pixels against 832x480's 399360: about 11x less work.
    small = estimate_render_seconds(wan, [81], 50, RTX_4090, size=(256, 144))
    assert small == pytest.approx(full * 256 * 144 / (832 * 480))
    assert estimate_render_seconds(wan, [81], 20, RTX_4090) == pytest.approx(full * 20 / 50)
    assert estimate_render_seconds(wan, [81], 50, RTX_4090, cache="taylorseer") < full / 2


def test_dry_run_estimate_reads_the_settings_the_run_will_use():
    """The issue's case: a run set to generate at 256x144 was estimated at 832x480."""
    plan = plan_of(4.0, 6.0, 2.5)
    common = {"pipeline": "preview", "renderer": "diffusers", "fps": 24.0}
    native = estimate_render(plan, load_settings(None, **common, video={"device": "cpu"}))
    small = estimate_render(
        plan, load_settings(None, **common, video={"device": "cpu", "generation_size": "256x144", "steps": 20, "cache": "taylorseer"})
    )
    assert "at 832x480, 50 steps" in native and "on cpu" in native
    assert "at 256x144, 20 steps, taylorseer cache" in small
    other = estimate_render(plan, load_settings(None, **common, video={"device": "cpu", "model": "ltx-video"}))
    assert "ltx-video" in other


def test_distilled_speed_is_few_steps_in_one_pass_and_the_dry_run_shows_both_speeds():
    wan = VIDEO_MODELS["wan2.1-vace-1.3b"]
    full = estimate_render_seconds(wan, [81], 50, RTX_4090)
    # 6 steps at guidance 1: 6 of 50 steps, one transformer pass of two; no cache gain counted.
    assert estimate_render_seconds(wan, [81], 6, RTX_4090, guidance=1.0) == pytest.approx(full * 6 / 50 / 2)
    assert estimate_render_seconds(wan, [81], 6, RTX_4090, guidance=1.0, cache="taylorseer") == pytest.approx(
        full * 6 / 50 / 2
    )
    plan = plan_of(4.0, 6.0, 2.5)
    common = {"pipeline": "preview", "renderer": "diffusers", "fps": 24.0}
    as_is = estimate_render(plan, load_settings(None, **common, video={"device": "cpu"}))
    fast = estimate_render(plan, load_settings(None, **common, video={"device": "cpu", "speed": "distilled"}))
    assert "50 steps" in as_is and "with --video-speed distilled ≈" in as_is
    assert "6 steps, guidance 1 (no negative pass)" in fast and "with --video-speed full ≈" in fast
    no_lora = estimate_render(plan, load_settings(None, **common, video={"device": "cpu", "model": "ltx-video"}))
    assert "--video-speed" not in no_lora  # LTX has no distillation LoRA in the registry


def test_animatic_estimate_follows_the_output_size():
    plan = plan_of(5.0, 5.0)
    line = estimate_render(plan, load_settings(None, pipeline="preview", width=320, height=180))
    assert line.startswith("render: 2 shots, 240 frames at 320x180; animatic")


def test_disk_estimate_grows_with_duration_and_size():
    small_run, small_video = estimate_disk_bytes(60.0, 640, 360, 24.0)
    large_run, large_video = estimate_disk_bytes(60.0, 1920, 1080, 24.0)
    assert large_video == pytest.approx(small_video * 9, rel=1e-6)
    assert large_run > small_run > small_video > 0
    longer_run, _ = estimate_disk_bytes(120.0, 640, 360, 24.0)
    assert longer_run > small_run


def test_keyframe_estimate_is_its_own_line():
    from music2video.estimate import estimate_keyframes

    plan = plan_of(*[3.0] * 10)
    assert estimate_keyframes(plan, load_settings(pipeline="preview"), ["A"]).startswith("keyframes: none (the animatic")
    clap = load_settings(pipeline="clap", width=832, height=480, keyframes={"enabled": "on"})
    line = estimate_keyframes(plan, clap, ["A", "B", "A"])
    # The LLM writer's three characters and one place per distinct section; one keyframe per shot.
    assert "about 5 references with qwen-image at 1024x1024" in line
    assert "10 keyframes with qwen-image-edit-2509 at 832x480" in line
    assert "before the video model loads" in line


def test_image_estimate_follows_steps_references_and_gpu():
    from music2video.estimate import image_seconds
    from music2video.keyframes.image_models import IMAGE_MODELS

    edit = IMAGE_MODELS["qwen-image-edit-2509"]
    one = image_seconds(edit, 832 * 480, 1, 40, "NVIDIA H100 80GB HBM3")
    assert image_seconds(edit, 832 * 480, 1, 20, "NVIDIA H100 80GB HBM3") == pytest.approx(one / 2)
    assert image_seconds(edit, 832 * 480, 2, 40, "NVIDIA H100 80GB HBM3") > one  # each reference adds its tokens
    assert image_seconds(edit, 832 * 480, 1, 40, RTX_4090) == pytest.approx(3 * one)
    schnell = IMAGE_MODELS["flux.1-schnell"]
    assert image_seconds(schnell, 1024 * 1024, 0, None, "NVIDIA H100 80GB HBM3") < 5  # 4 steps


def test_keyframe_speed_options_cut_the_estimate(monkeypatch):
    import music2video.estimate as estimate
    from music2video.keyframes.image_models import IMAGE_MODELS

    h100 = "NVIDIA H100 80GB HBM3"
    edit = IMAGE_MODELS["qwen-image-edit-2509"]
    full = estimate.image_seconds(edit, 832 * 480, 2, 40, h100)
    # Lightning: 8 steps of one pass against 40 steps of two (true CFG): a tenth.
    assert estimate.image_seconds(edit, 832 * 480, 2, 8, h100, guidance=1.0) == pytest.approx(full / 10)
    # References encoded at a quarter megapixel: fewer tokens per pass.
    smaller = estimate.image_seconds(edit, 832 * 480, 2, 40, h100, reference_pixels=512 * 512)
    assert smaller == pytest.approx(full * (1560 + 2 * 1024) / (1560 + 2 * 4096))

    monkeypatch.setattr(estimate, "device_name", lambda device: h100)
    plan = plan_of(*[3.0] * 60)
    line = estimate.estimate_keyframes(plan, load_settings(pipeline="clap", width=832, height=480), ["A"])
    assert "(40 steps, two passes a step)" in line and "--keyframe-speed lightning-8 ≈" in line
    fast = load_settings(pipeline="clap", width=832, height=480, keyframes={"speed": "lightning-8", "reference_pixels": 512 * 512})
    line = estimate.estimate_keyframes(plan, fast, ["A"])
    assert "(8 steps, one pass a step, Qwen-Image-Edit-2509-Lightning-8steps-V1.0-bf16.safetensors, references encoded at 262144 px)" in line
    assert "--keyframe-speed" not in line
    # The 3-minute projection: the options in order of speed, full far over the 15-minute budget.
    rows = {name: references + keyframes for name, references, keyframes in estimate.keyframe_projection(h100)}
    assert rows["full (defaults)"] > 15 * 60 > rows["lightning-8"] > rows["lightning-4"] > rows["lightning-4, references encoded at 512x512"]


def test_render_estimate_shares_the_time_among_ray_workers():
    plan = plan_of(60.0, 60.0, 60.0, 60.0)
    local = estimate_render(plan, load_settings(None, pipeline="preview", width=640, height=360))
    on_ray = estimate_render(plan, load_settings(None, pipeline="preview", width=640, height=360, executor="ray", ray={"workers": 2}))
    more_than_shots = estimate_render(plan, load_settings(None, pipeline="preview", width=640, height=360, executor="ray", ray={"workers": 9}))
    unset = estimate_render(plan, load_settings(None, pipeline="preview", width=640, height=360, executor="ray"))

    def seconds(line: str) -> float:
        return float(line.split("≈ ")[1].split(" s")[0])

    assert seconds(on_ray) == pytest.approx(seconds(local) / 2, abs=1) and "with 2 Ray workers" in on_ray
    assert "with 4 Ray workers" in more_than_shots  # at most one worker per shot
    assert seconds(unset) == seconds(local) and "--ray-workers not set" in unset
    common = {"pipeline": "preview", "renderer": "diffusers", "fps": 24.0, "video": {"device": "cpu"}}
    one = estimate_render(plan, load_settings(None, **common))
    two = estimate_render(plan, load_settings(None, **common, executor="ray", ray={"workers": 2}))
    assert "with 2 Ray workers" in two and one.split("≈ ")[1] != two.split("≈ ")[1]
