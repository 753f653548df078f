"""The diffusers renderer and the video model registry, with tiny pipelines loaded from folders.

Every render goes through the real loading code (``from_pretrained`` on a folder written by
``save_pretrained``) and the real ClipWriter; generation is 32x32 in 2 steps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from tiny_video_models import build_tiny_ltx, build_tiny_wan, build_tiny_wan22_ti2v

from music2video.artifacts import Analysis, Section, SectionTreatment, Storyboard, StoryboardShot, StyleBible
from music2video.errors import MissingDependencyError, ModelLoadError, Music2VideoError
from music2video.render import render_storyboard
from music2video.render.diffusion import (
    DiffusersRenderer,
    cover_and_crop,
    join_segments,
    native_frames_needed,
    plan_generation,
    retime_plan,
)
from music2video.render.video_models import VIDEO_MODELS, VideoModel, resolve_video_model
from music2video.runfolder import RunFolder
from music2video.settings import VideoModelSettings
from music2video.videofile import count_frames, read_frames

TINY_SIZE = 32  # pixels, both sides
TINY_STEPS = 2


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run several times faster on one thread: thread start-up dominates their work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def memory_frees(monkeypatch) -> list[int]:
    """Count free_memory calls instead of running them: its gc.collect costs ~0.7 s per call here."""
    import music2video.torch_device

    calls: list[int] = []
    monkeypatch.setattr(music2video.torch_device, "free_memory", lambda: calls.append(1))
    return calls


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory) -> Path:
    return build_tiny_wan(tmp_path_factory.mktemp("tiny-wan") / "model")


@pytest.fixture(scope="session")
def tiny_ltx(tmp_path_factory) -> Path:
    return build_tiny_ltx(tmp_path_factory.mktemp("tiny-ltx") / "model")


def tiny_entry(folder: Path, **changes) -> VideoModel:
    """The registry entry the folder resolves to, shrunk to one 32x32 bucket."""
    entry = resolve_video_model(str(folder))
    return dataclasses.replace(entry, buckets=((TINY_SIZE, TINY_SIZE),), **changes)


def make_renderer(folder: Path, fps: float = 24.0, width: int = TINY_SIZE, height: int = TINY_SIZE, **options):
    entry_changes = options.pop("entry_changes", {})
    settings = VideoModelSettings(
        **{"model": str(folder), "steps": TINY_STEPS, "device": "cpu", **options.pop("settings", {})}
    )
    return DiffusersRenderer(settings, width, height, fps, video_model=tiny_entry(folder, **entry_changes), **options)


def make_shot(
    shot_id: str = "shot-001",
    start_s: float = 0.0,
    end_s: float = 1.0,
    seed: int = 7,
    prompt: str = "a neon city at night",
) -> StoryboardShot:
    return StoryboardShot(
        id=shot_id,
        start_s=start_s,
        end_s=end_s,
        section_index=0,
        scene="a city",
        prompt=prompt,
        seed=seed,
        palette=["#102030"],
        motif="neon",
    )


def make_storyboard(shots: list[StoryboardShot]) -> Storyboard:
    return Storyboard(
        writer="test",
        title="t",
        concept="c",
        style=StyleBible(look="neon noir", palette=["#102030"]),
        sections=[SectionTreatment(section_index=0, label="A", role="verse", palette=["#102030"], motif="neon")],
        shots=shots,
    )


def make_analysis(duration_s: float) -> Analysis:
    return Analysis(
        duration_s=duration_s,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=[0.0],
        downbeats_s=[0.0],
        sections=[Section(index=0, start_s=0.0, end_s=duration_s, label="A", role="verse", energy=0.5)],
        curve_rate_hz=10.0,
        energy=[0.5],
        brightness=[0.5],
        onset_strength=[0.5],
    )


def render_one(renderer: DiffusersRenderer, shot: StoryboardShot, fps: float, output: Path) -> int:
    """Render ``shot`` inside an entered renderer; return the frame count asked for."""
    frame_count = round(shot.end_s * fps) - round(shot.start_s * fps)
    renderer.render_shot(shot, make_storyboard([shot]), make_analysis(shot.end_s), frame_count, output)
    assert renderer.finish() == {}  # the clip is written in the background; wait for it
    return frame_count


# --------------------------------------------------------------------------------------------
# registry


def test_frame_rule_rounding_follows_each_model():
    wan, ltx, cog = VIDEO_MODELS["wan2.1-1.3b"], VIDEO_MODELS["ltx-video"], VIDEO_MODELS["cogvideox-2b"]
    assert [wan.round_frames(n) for n in (1, 2, 5, 6, 33, 80, 81, 200)] == [1, 5, 5, 9, 33, 81, 81, 81]
    assert [ltx.round_frames(n) for n in (2, 9, 10, 121, 122, 400)] == [9, 9, 17, 121, 129, 161]
    assert [cog.round_frames(n) for n in (1, 10, 49, 60)] == [49, 49, 49, 49]
    for model in VIDEO_MODELS.values():
        for n in range(1, model.max_frames + 1):
            rounded = model.round_frames(n)
            assert model.is_valid_frame_count(rounded) and rounded >= min(n, model.max_frames)


def test_every_entry_is_consistent():
    for name, model in VIDEO_MODELS.items():
        assert model.name == name
        assert model.is_valid_frame_count(model.max_frames)
        assert model.licence and model.default_steps > 0 and model.native_fps > 0


def test_bucket_nearest_the_aspect_ratio():
    wan, ltx = VIDEO_MODELS["wan2.1-1.3b"], VIDEO_MODELS["ltx-video"]
    assert wan.pick_bucket(640, 360) == (832, 480)
    assert wan.pick_bucket(1080, 1920) == (480, 832)
    assert ltx.pick_bucket(1000, 1000) == (512, 512)
    assert ltx.pick_bucket(1920, 1080) == (768, 512)


def test_resolve_by_name_id_and_folder(tiny_wan, tiny_ltx, tmp_path):
    assert resolve_video_model("WAN2.1-1.3B").name == "wan2.1-1.3b"
    assert resolve_video_model("lightricks/ltx-video").name == "ltx-video"
    wan = resolve_video_model(str(tiny_wan))
    assert (wan.name, wan.hf_id, wan.frame_step) == ("wan2.1-1.3b", str(tiny_wan), 4)
    assert resolve_video_model(str(tiny_ltx)).name == "ltx-video"
    # Wan 2.2 TI2V is a WanPipeline too; its expand_timesteps tells it apart.
    ti2v = tmp_path / "ti2v"
    ti2v.mkdir()
    (ti2v / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "expand_timesteps": True}))
    assert resolve_video_model(str(ti2v)).name == "wan2.2-ti2v-5b"


def test_unknown_model_lists_the_valid_names(tmp_path):
    with pytest.raises(Music2VideoError) as error:
        resolve_video_model("sora-9000")
    for name in VIDEO_MODELS:
        assert name in str(error.value)
    with pytest.raises(Music2VideoError, match="model_index.json"):
        resolve_video_model(str(tmp_path))
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(Music2VideoError, match="WanPipeline"):
        resolve_video_model(str(tmp_path))


# --------------------------------------------------------------------------------------------
# planning, retiming, resizing (no model)


def test_native_frames_and_segment_plans():
    wan = VIDEO_MODELS["wan2.1-1.3b"]
    assert native_frames_needed(120, 24.0, 16.0) == 81  # 5 s at 16 fps, both ends
    assert native_frames_needed(12, 24.0, 16.0) == 9
    single = plan_generation(wan, 33, can_extend_with_i2v=False)
    assert (single.segments, single.method) == ((33,), "single")
    long = plan_generation(wan, 150, can_extend_with_i2v=False)
    assert long.method == "crossfade" and long.segments[0] == 81 and long.total_frames >= 150
    assert all(wan.is_valid_frame_count(n) for n in long.segments)
    extended = plan_generation(wan, 150, can_extend_with_i2v=True)
    assert extended.method == "i2v" and extended.overlap == 1 and extended.total_frames >= 150


def test_retime_maps_output_times_to_source_frames():
    assert [a for a, _, _ in retime_plan(6, 24.0, 16.0, 5)] == [0, 1, 1, 2, 3, 3]
    blend = retime_plan(4, 24.0, 16.0, 4, mode="blend")
    assert blend[1][:2] == (0, 1) and blend[1][2] == pytest.approx(2 / 3)
    # Past the last source frame the last frame holds.
    assert retime_plan(3, 1.0, 10.0, 5)[-1] == (4, 4, 0.0)


def test_crossfade_join_and_cover_crop():
    a, b = np.zeros((5, 4, 4, 3), np.float32), np.ones((5, 4, 4, 3), np.float32)
    joined = join_segments([a, b], overlap=2)
    assert len(joined) == 8
    assert joined[:, 0, 0, 0].tolist() == pytest.approx([0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1])
    frames = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    out = cover_and_crop(frames, 48, 20)
    assert out.shape == (3, 20, 48, 3) and out.dtype == np.uint8
    # Already wide enough (no scaling): the centre rows, quantised, out-of-range values clipped.
    frames = np.random.default_rng(1).uniform(-0.1, 1.1, (20, 32, 40, 3)).astype(np.float32)
    out = cover_and_crop(frames, 40, 30)
    assert np.array_equal(out, (np.clip(frames[:, 1:31], 0, 1) * 255).round().astype(np.uint8))


# --------------------------------------------------------------------------------------------
# rendering with the tiny models


@pytest.mark.parametrize("fps", [24.0, 25.0])
def test_clips_have_exactly_the_requested_frames(tiny_wan, tmp_path, fps):
    with make_renderer(tiny_wan, fps=fps) as renderer:
        for duration in (0.5, 1.3, 2.0):
            shot = make_shot(start_s=0.0, end_s=duration)
            output = tmp_path / f"{duration}.mp4"
            frame_count = render_one(renderer, shot, fps, output)
            assert count_frames(output) == frame_count == round(duration * fps)


def test_output_size_equals_requested_size(tiny_wan, tmp_path):
    with make_renderer(tiny_wan, fps=24.0, width=48, height=20) as renderer:
        render_one(renderer, make_shot(end_s=0.5), 24.0, tmp_path / "wide.mp4")
    frames = read_frames(tmp_path / "wide.mp4")
    assert frames.shape == (12, 20, 48, 3)


def test_same_seed_same_frames_other_seed_other_frames(tiny_wan, tmp_path):
    with make_renderer(tiny_wan) as renderer:
        render_one(renderer, make_shot(seed=3), 24.0, tmp_path / "a.mp4")
        render_one(renderer, make_shot(seed=3), 24.0, tmp_path / "b.mp4")
        render_one(renderer, make_shot(seed=4), 24.0, tmp_path / "c.mp4")
    a, b, c = (read_frames(tmp_path / f"{name}.mp4") for name in "abc")
    # Bit-exact. Once, in a full fresh-clone run, two renders of the same seed differed by a few
    # levels in their last frames: x264's AVX-512 code, encoding one clip while the next shot
    # was generated, which ClipWriter now leaves out (the frames torch made were the same).
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(np.int16) - c).mean() > 0.3  # a seed change moves the frames


def test_long_shot_crossfades_generations_without_looping(tiny_wan, tmp_path, caplog):
    fps = 24.0
    # One generation holds at most 9 frames (0.5 s at 16 fps): a 2 s shot needs several.
    with make_renderer(tiny_wan, fps=fps, entry_changes={"max_frames": 9}) as renderer:
        calls = []
        original = type(renderer._pipe).__call__

        def counting_call(pipe, *args, **kwargs):
            calls.append((kwargs["num_frames"], kwargs["generator"].initial_seed()))
            return original(pipe, *args, **kwargs)

        type(renderer._pipe).__call__ = counting_call
        try:
            with caplog.at_level(logging.INFO):
                frame_count = render_one(renderer, make_shot(end_s=2.0, seed=10), fps, tmp_path / "long.mp4")
        finally:
            type(renderer._pipe).__call__ = original
    assert count_frames(tmp_path / "long.mp4") == frame_count == 48
    assert len(calls) > 1 and all(frames <= 9 for frames, _ in calls)
    assert [seed for _, seed in calls] == list(range(10, 10 + len(calls)))  # a new seed per segment: no loop
    assert "crossfaded generations" in caplog.text


def test_long_shot_extends_with_image_to_video(tiny_ltx, tmp_path):
    fps = 25.0
    with make_renderer(tiny_ltx, fps=fps, entry_changes={"max_frames": 9}) as renderer:
        frame_count = render_one(renderer, make_shot(end_s=1.0), fps, tmp_path / "ltx.mp4")
        assert renderer._i2v is not None and type(renderer._i2v).__name__ == "LTXImageToVideoPipeline"
    assert count_frames(tmp_path / "ltx.mp4") == frame_count == 25


def test_wan22_ti2v_extends_with_its_own_weights(tmp_path_factory, tmp_path):
    folder = build_tiny_wan22_ti2v(tmp_path_factory.mktemp("tiny-ti2v") / "model")
    assert resolve_video_model(str(folder)).name == "wan2.2-ti2v-5b"
    fps = 24.0
    with make_renderer(folder, fps=fps, entry_changes={"max_frames": 9}) as renderer:
        frame_count = render_one(renderer, make_shot(end_s=0.75), fps, tmp_path / "ti2v.mp4")
        i2v = renderer._i2v
        assert type(i2v).__name__ == "WanImageToVideoPipeline" and i2v.config.expand_timesteps
        assert i2v.transformer is renderer._pipe.transformer  # shared, not a second copy
    assert count_frames(tmp_path / "ti2v.mp4") == frame_count == 18


def test_ltx_single_generation(tiny_ltx, tmp_path):
    with make_renderer(tiny_ltx, fps=24.0) as renderer:
        frame_count = render_one(renderer, make_shot(end_s=1.3), 24.0, tmp_path / "ltx.mp4")
    assert count_frames(tmp_path / "ltx.mp4") == frame_count == 31


@pytest.mark.parametrize("cache", ["first-block", "taylorseer", "pab"])
def test_step_caches_run(tiny_wan, tmp_path, cache):
    with make_renderer(tiny_wan, settings={"steps": 4, "cache": cache}) as renderer:
        frame_count = render_one(renderer, make_shot(end_s=0.5), 24.0, tmp_path / "cached.mp4")
    assert count_frames(tmp_path / "cached.mp4") == frame_count


def test_out_of_memory_retries_with_more_offload(tiny_wan, tmp_path, monkeypatch, memory_frees):
    from diffusers import WanPipeline

    original = WanPipeline.__call__
    calls = []

    def out_of_memory_once(pipe, *args, **kwargs):
        calls.append(kwargs["num_frames"])
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(pipe, *args, **kwargs)

    monkeypatch.setattr(WanPipeline, "__call__", out_of_memory_once)
    with make_renderer(tiny_wan) as renderer:
        frame_count = render_one(renderer, make_shot(end_s=0.5), 24.0, tmp_path / "retried.mp4")
        assert renderer.offload == "model"
        assert len(memory_frees) == 1  # freed before the retry
    assert len(calls) == 2
    assert count_frames(tmp_path / "retried.mp4") == frame_count


def test_out_of_memory_every_time_fails_only_that_shot(tiny_wan, tmp_path, monkeypatch):
    from diffusers import WanPipeline

    original = WanPipeline.__call__
    attempts = []

    def out_of_memory_for_huge_shots(pipe, *args, **kwargs):
        if "huge" in kwargs["prompt"]:
            attempts.append(kwargs["num_frames"])
            raise RuntimeError("CUDA error: out of memory")
        return original(pipe, *args, **kwargs)

    monkeypatch.setattr(WanPipeline, "__call__", out_of_memory_for_huge_shots)
    fps = 24.0
    shots = [
        make_shot("shot-001", 0.0, 0.5),
        make_shot("shot-002", 0.5, 1.0, prompt="a huge city"),
        make_shot("shot-003", 1.0, 1.5),
    ]
    run = RunFolder(tmp_path / "run")
    renderer = make_renderer(tiny_wan, fps=fps)
    result = render_storyboard(renderer, make_storyboard(shots), make_analysis(1.5), run, fps, TINY_SIZE, TINY_SIZE)
    assert list(result.failed_shots) == ["shot-002"]
    assert "out of GPU memory even with sequential offload at 32x32" in result.failed_shots["shot-002"]
    assert len(attempts) == 3  # none, model, sequential
    for clip in result.clips:
        assert count_frames(run.root / clip.path) == clip.frames == 12
    assert result.clips[1].path.endswith("shot-002-failed.mp4")
    assert result.renderer == "diffusers" and result.model == str(tiny_wan)


def test_render_storyboard_reuses_clips(tiny_wan, tmp_path, monkeypatch):
    fps = 24.0
    shots = [make_shot("shot-001", 0.0, 0.5), make_shot("shot-002", 0.5, 1.25)]
    run = RunFolder(tmp_path / "run")
    first = render_storyboard(
        make_renderer(tiny_wan), make_storyboard(shots), make_analysis(1.25), run, fps, TINY_SIZE, TINY_SIZE
    )
    assert [clip.frames for clip in first.clips] == [12, 18] and not first.failed_shots

    # A second run finds every clip and never loads the model.
    def no_loading(self):
        raise AssertionError("the model was loaded although every clip exists")

    monkeypatch.setattr(DiffusersRenderer, "__enter__", no_loading)
    second = render_storyboard(
        make_renderer(tiny_wan), make_storyboard(shots), make_analysis(1.25), run, fps, TINY_SIZE, TINY_SIZE
    )
    assert [clip.path for clip in second.clips] == [clip.path for clip in first.clips]


def test_fingerprint_tracks_pixels_not_memory_options(tiny_wan):
    base = make_renderer(tiny_wan).settings_fingerprint()
    assert make_renderer(tiny_wan, settings={"offload": "sequential"}).settings_fingerprint() == base
    assert make_renderer(tiny_wan, settings={"steps": 3}).settings_fingerprint() != base
    assert make_renderer(tiny_wan, settings={"cache": "first-block"}).settings_fingerprint() != base


# --------------------------------------------------------------------------------------------
# errors


def test_missing_diffusers_names_the_extra(tiny_wan, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes 'import diffusers' fail
    with pytest.raises(MissingDependencyError, match=r"music2video\[video\]"):
        make_renderer(tiny_wan).__enter__()


def test_broken_folder_is_a_one_line_load_error(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "WanPipeline", "vae": ["diffusers", "AutoencoderKLWan"]})
    )
    renderer = DiffusersRenderer(VideoModelSettings(model=str(folder), device="cpu"), 32, 32, 24.0)
    with pytest.raises(ModelLoadError) as error:
        renderer.__enter__()
    message = str(error.value)
    assert str(folder) in message and "\n" not in message


def test_bad_options_fail_early(tiny_wan):
    with pytest.raises(ValueError, match="first-block"):  # the settings model checks the options, once
        make_renderer(tiny_wan, settings={"cache": "warp-drive"})
    with pytest.raises(Music2VideoError, match="wan2.1-1.3b"):
        DiffusersRenderer(VideoModelSettings(model="no-such-model"), 32, 32, 24.0)


# --------------------------------------------------------------------------------------------
# the GPU benchmark script, on a CPU (run in this process: diffusers is already imported)

BENCH_WAN = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "bench_wan.py"


def run_bench_wan(monkeypatch, *arguments: str) -> int:
    bench = runpy.run_path(str(BENCH_WAN), run_name="bench_wan")
    monkeypatch.setattr(sys, "argv", [str(BENCH_WAN), *arguments])
    return bench["main"]()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_bench_wan_without_gpu_says_so_and_exits_0(monkeypatch, capsys):
    assert run_bench_wan(monkeypatch) == 0
    assert "No CUDA GPU" in capsys.readouterr().out


def test_bench_wan_tiny_runs(monkeypatch, capsys, tmp_path):
    report = tmp_path / "bench.json"
    assert (
        run_bench_wan(
            monkeypatch, "--tiny", "--steps", "2", "--variants", "baseline,first-block", "--json", str(report)
        )
        == 0
    )
    results = {r["variant"]: r for r in json.loads(report.read_text())["results"]}
    assert results["baseline"]["attn_passes"] == "4/4" and results["baseline"]["overhead_s"] > 0
    assert "error" not in results["first-block"]
    assert "outside the model" in capsys.readouterr().out


def test_clips_are_written_while_the_next_shot_generates(tiny_wan, tmp_path, monkeypatch):
    """Encoding overlaps generation; a clip that fails to write fails that shot alone."""
    import threading

    from music2video.render import diffusion

    writer_threads: set[str] = set()
    original_write = DiffusersRenderer._write_clip

    def write_or_fail(self, frames, frame_count, output, reference=None):
        writer_threads.add(threading.current_thread().name)
        if "shot-002" in output.name:
            raise OSError("disk full")
        original_write(self, frames, frame_count, output, reference)

    monkeypatch.setattr(DiffusersRenderer, "_write_clip", write_or_fail)
    shots = [make_shot(start_s=i * 0.5, end_s=(i + 1) * 0.5).model_copy(update={"id": f"shot-{i + 1:03d}"}) for i in range(3)]
    storyboard = make_storyboard(shots)
    run = RunFolder(tmp_path / "run")
    result = render_storyboard(make_renderer(tiny_wan), storyboard, make_analysis(1.5), run, 24.0, 32, 32)
    assert writer_threads and all(name.startswith("clip-writer") for name in writer_threads)
    assert set(result.failed_shots) == {"shot-002"} and "disk full" in result.failed_shots["shot-002"]
    assert [count_frames(run.root / clip.path) for clip in result.clips] == [12, 12, 12]
    assert diffusion.MAX_PENDING_WRITES == 1


def test_a_failing_torch_compile_falls_back_to_eager(tiny_wan, tmp_path, monkeypatch, caplog):
    """No triton, an unsupported op: the shot renders uncompiled instead of failing."""
    import torch._dynamo.exc

    from music2video.render import diffusion

    calls = {"n": 0}
    original = DiffusersRenderer._generate_shot

    def compile_fails_once(self, shot, plan, images=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch._dynamo.exc.TorchRuntimeError("Cannot find a working triton installation")
        return original(self, shot, plan, images)

    monkeypatch.setattr(DiffusersRenderer, "_generate_shot", compile_fails_once)
    with caplog.at_level(logging.WARNING, logger="music2video.render.diffusion"):
        with make_renderer(tiny_wan, settings={"compile": True}) as renderer:
            assert renderer._compiled
            render_one(renderer, make_shot(end_s=0.5), 24.0, tmp_path / "eager.mp4")
            assert not renderer._compiled
            assert not any(getattr(m, "_compiled_call_impl", None) for m in renderer._pipe.transformer.modules())
    assert count_frames(tmp_path / "eager.mp4") == 12
    assert "torch.compile failed" in caplog.text
    assert diffusion.is_compile_error(RuntimeError("boom")) is False
