"""Image-conditioned rendering: shots started from keyframes, first-and-last frames, colour kept to the scene.

Tiny random-weight Wan VACE, Wan I2V and LTX condition pipelines are built here, saved with
``save_pretrained`` and loaded through the renderer's real code. Random weights cannot copy a
keyframe into the first frame, so the tests check what reaches the pipeline (the keyframe,
fitted to the generation size, as VACE's first frame with a black mask; ``image=`` and
``last_image=``; LTX conditions) and what a user sees in the run folder (exact frame counts, a
changed keyframe re-rendering its shots only, colour drift recorded and removed). The keyframe
PNGs are written by the tests themselves.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")
PIL = pytest.importorskip("PIL.Image")

# The autouse fixtures (one torch thread, free_memory counted instead of run) apply here too.
from test_render_diffusion import (  # noqa: F401
    TINY_SIZE,
    make_analysis,
    make_renderer,
    make_shot,
    make_storyboard,
    memory_frees,
    one_torch_thread,
    render_one,
)
from tiny_video_models import build_tiny_ltx_condition, build_tiny_wan, build_tiny_wan_i2v, build_tiny_wan_vace

from music2video.artifacts import RenderResult, SectionTreatment
from music2video.errors import InputError, Music2VideoError
from music2video.render import colour_sidecar, render_storyboard
from music2video.render.conditioning import ShotImages, scene_starts, shot_images
from music2video.render.diffusion import DiffusersRenderer
from music2video.render.video_models import VIDEO_MODELS, resolve_video_model
from music2video.runfolder import RunFolder
from music2video.videofile import count_frames, read_frames  # noqa: F401

FPS = 24.0


@pytest.fixture(scope="session")
def tiny_vace(tmp_path_factory) -> Path:
    return build_tiny_wan_vace(tmp_path_factory.mktemp("tiny-vace") / "model")


@pytest.fixture(scope="session")
def tiny_i2v(tmp_path_factory) -> Path:
    return build_tiny_wan_i2v(tmp_path_factory.mktemp("tiny-i2v") / "model")


def write_keyframe(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """A keyframe PNG: a colour with a little texture (so it has a spread), ``size`` = (width, height)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb, np.float32) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(pixels).save(path)
    return path


class CallSpy:
    """Wraps a loaded pipeline's __call__ and keeps the keyword arguments of every call."""

    def __init__(self, monkeypatch):
        self.calls: list[dict] = []
        original = DiffusersRenderer._call
        spy = self

        def recording_call(renderer, pipe, *args, **kwargs):
            original_pipe_call = type(pipe).__call__

            def capture(pipe_self, **arguments):
                spy.calls.append({"pipeline": type(pipe_self).__name__, **arguments})
                return original_pipe_call(pipe_self, **arguments)

            monkeypatch.setattr(type(pipe), "__call__", capture)
            try:
                return original(renderer, pipe, *args, **kwargs)
            finally:
                monkeypatch.setattr(type(pipe), "__call__", original_pipe_call)

        monkeypatch.setattr(DiffusersRenderer, "_call", recording_call)


# --------------------------------------------------------------------------------------------
# registry


def test_image_models_in_the_registry(tiny_vace, tiny_i2v, tmp_path):
    vace, i2v = VIDEO_MODELS["wan2.1-vace-1.3b"], VIDEO_MODELS["wan2.1-i2v-14b-480p"]
    ti2v, ltx = VIDEO_MODELS["wan2.2-ti2v-5b"], VIDEO_MODELS["ltx-video-0.9.5"]
    assert (vace.pipeline, vace.image_input, vace.last_frame, vace.text_to_video) == ("WanVACEPipeline", "vace", True, True)
    assert (i2v.pipeline, i2v.text_to_video, i2v.last_frame) == ("WanImageToVideoPipeline", False, False)
    assert VIDEO_MODELS["wan2.1-flf2v-14b"].last_frame
    # Wan 2.2 TI2V encodes the first frame only (expand_timesteps): no last frame.
    assert (ti2v.i2v_pipeline, ti2v.last_frame) == ("WanImageToVideoPipeline", False)
    assert (ltx.pipeline, ltx.image_input, ltx.last_frame) == ("LTXConditionPipeline", "conditions", True)
    assert not VIDEO_MODELS["wan2.1-1.3b"].takes_images and vace.takes_images
    assert all(VIDEO_MODELS[name].vae_float32 for name in ("wan2.1-1.3b", "wan2.1-vace-1.3b", "wan2.2-ti2v-5b"))
    assert resolve_video_model(str(tiny_vace)).name == "wan2.1-vace-1.3b"
    assert resolve_video_model(str(tiny_i2v)).name == "wan2.1-i2v-14b-480p"
    assert resolve_video_model(str(build_tiny_ltx_condition(tmp_path / "ltxc"))).name == "ltx-video-0.9.5"
    from music2video.settings import VideoModelSettings

    assert resolve_video_model(VideoModelSettings().model).name == "wan2.1-vace-1.3b"  # the default


# --------------------------------------------------------------------------------------------
# which pictures each shot gets


def test_scenes_keyframes_and_last_frames(tmp_path):
    shots = [make_shot(f"shot-{i:03d}", i * 0.5, (i + 1) * 0.5) for i in range(4)]
    shots[1] = shots[1].model_copy(update={"continues": True})
    shots[3] = shots[3].model_copy(update={"section_index": 1, "continues": True})
    board = make_storyboard(shots)
    assert scene_starts(board) == [0, 0, 0, 3]
    # A new place starts a new scene; a shot that names no place stays in the one before.
    placed = [shot.model_copy(update={"places": places}) for shot, places in zip(shots, [["pier"], [], ["roof"], []])]
    assert scene_starts(make_storyboard(placed)) == [0, 0, 2, 3]
    keys = {i: write_keyframe(tmp_path / f"k{i}.png", (100, 50, 50), seed=i) for i in (1, 2, 3)}
    images = shot_images(board, keys, last_frame=True)
    # Shot 0 has no keyframe: text only, but it continues into shot 1, so it ends on keyframe 1;
    # its scene's first keyframe (shot 1's) is its colour reference.
    assert images[0] == ShotImages(first=None, last=keys[1], colour_reference=keys[1])
    # Shot 4 opens a new scene (its own colour reference) but continues shot 3, which ends on it.
    assert images[2] == ShotImages(first=keys[2], last=keys[3], colour_reference=keys[1])
    assert images[3] == ShotImages(first=keys[3], last=None, colour_reference=keys[3])
    assert shot_images(board, keys, last_frame=False)[0].last is None  # a model without last frames
    with pytest.raises(InputError, match="shot index 9"):
        shot_images(board, {9: keys[1]}, last_frame=True)
    with pytest.raises(InputError, match="missing"):
        shot_images(board, {0: tmp_path / "gone.png"}, last_frame=True)


# --------------------------------------------------------------------------------------------
# pictures reach the pipelines


def test_vace_starts_from_the_keyframe_as_its_first_frame(tiny_vace, tmp_path, monkeypatch):
    spy = CallSpy(monkeypatch)
    key = write_keyframe(tmp_path / "key.png", (200, 40, 40), size=(64, 40))
    nxt = write_keyframe(tmp_path / "next.png", (40, 40, 200))
    shot = make_shot(end_s=0.5)
    with make_renderer(tiny_vace, settings={"colour_match": "none"}) as renderer:
        assert renderer.takes_images and renderer.takes_last_frame
        frame_count = round(0.5 * FPS)
        renderer.render_shot(shot, make_storyboard([shot]), make_analysis(0.5), frame_count, tmp_path / "a.mp4", images=ShotImages(first=key, last=nxt))
        renderer.render_shot(shot, make_storyboard([shot]), make_analysis(0.5), frame_count, tmp_path / "t.mp4")
        assert renderer.finish() == {}
    with_picture, text_only = spy.calls
    video, mask = with_picture["video"], with_picture["mask"]
    assert len(video) == len(mask) == with_picture["num_frames"] == 9  # 0.5 s at 16 fps -> 9 frames
    # The keyframe, covered and centre-cropped to the generation size, is frame 0 (mask black: kept),
    # the next shot's keyframe the last frame; the frames between are grey and generated (mask white).
    first = np.asarray(video[0])
    assert first.shape == (TINY_SIZE, TINY_SIZE, 3) and first[..., 0].mean() > 150 > first[..., 2].mean()
    assert np.asarray(video[-1])[..., 2].mean() > 150
    assert np.asarray(mask[0]).max() == 0 and np.asarray(mask[-1]).max() == 0 and np.asarray(mask[4]).min() == 255
    assert np.asarray(video[4]).tolist()[0][0] == [128, 128, 128]
    assert "video" not in text_only and "reference_images" not in text_only
    assert count_frames(tmp_path / "a.mp4") == count_frames(tmp_path / "t.mp4") == frame_count


def test_vace_reference_image_mode(tiny_vace, tmp_path, monkeypatch):
    spy = CallSpy(monkeypatch)
    key = write_keyframe(tmp_path / "key.png", (200, 40, 40))
    with make_renderer(tiny_vace, settings={"image_conditioning": "reference"}) as renderer:
        shot = make_shot(end_s=0.5)
        renderer.render_shot(shot, make_storyboard([shot]), make_analysis(0.5), 12, tmp_path / "r.mp4", images=ShotImages(first=key))
        assert renderer.finish() == {}
    (call,) = spy.calls
    assert len(call["reference_images"]) == 1 and "video" not in call
    assert count_frames(tmp_path / "r.mp4") == 12


def test_long_vace_shot_extends_from_its_last_frame(tiny_vace, tmp_path, monkeypatch):
    """A shot longer than one generation: keyframe first, then segments started from the previous last frame."""
    spy = CallSpy(monkeypatch)
    key = write_keyframe(tmp_path / "key.png", (200, 40, 40))
    renderer = make_renderer(tiny_vace, entry_changes={"max_frames": 9})
    with renderer:
        shot = make_shot(end_s=1.0)
        frame_count = render_one_with(renderer, shot, tmp_path / "long.mp4", ShotImages(first=key))
    assert [call["num_frames"] for call in spy.calls] == [9, 9]  # 17 frames at 16 fps, joined on one frame
    assert all(np.asarray(call["mask"][0]).max() == 0 for call in spy.calls)
    assert count_frames(tmp_path / "long.mp4") == frame_count


def render_one_with(renderer, shot, output: Path, images: ShotImages) -> int:
    frame_count = round(shot.end_s * FPS) - round(shot.start_s * FPS)
    renderer.render_shot(shot, make_storyboard([shot]), make_analysis(shot.end_s), frame_count, output, images=images)
    assert renderer.finish() == {}
    return frame_count


def test_wan_i2v_takes_image_and_needs_a_keyframe(tiny_i2v, tmp_path, monkeypatch):
    spy = CallSpy(monkeypatch)
    key = write_keyframe(tmp_path / "key.png", (30, 160, 30))
    with make_renderer(tiny_i2v) as renderer:
        assert renderer.needs_images and not renderer.takes_last_frame
        render_one_with(renderer, make_shot(end_s=0.5), tmp_path / "i.mp4", ShotImages(first=key, last=key))
    (call,) = spy.calls
    assert call["pipeline"] == "WanImageToVideoPipeline" and call["image"].size == (TINY_SIZE, TINY_SIZE)
    assert "last_image" not in call  # the 480p I2V model was trained on a first frame only
    with make_renderer(tiny_i2v, settings={"dtype": "bfloat16"}) as renderer:
        components = renderer._pipe
        assert (components.vae.dtype, components.image_encoder.dtype, components.transformer.dtype) == (
            torch.float32, torch.float32, torch.bfloat16
        )
        render_one_with(renderer, make_shot(end_s=0.25), tmp_path / "b.mp4", ShotImages(first=key))
    assert count_frames(tmp_path / "i.mp4") == 12


def test_wan_flf2v_takes_first_and_last_frame(tmp_path, monkeypatch):
    spy = CallSpy(monkeypatch)
    folder = build_tiny_wan_i2v(tmp_path / "flf", first_last=True)
    key = write_keyframe(tmp_path / "key.png", (30, 160, 30))
    # A folder of this class resolves to the I2V 480p entry; the FLF2V entry's rule is the last frame.
    renderer = make_renderer(folder, entry_changes={"last_frame": VIDEO_MODELS["wan2.1-flf2v-14b"].last_frame})
    assert renderer.needs_images and renderer.takes_last_frame
    with renderer:
        render_one_with(renderer, make_shot(end_s=0.5), tmp_path / "i.mp4", ShotImages(first=key, last=key))
        with pytest.raises(Music2VideoError, match="no keyframe"):
            renderer.render_shot(make_shot(end_s=0.5), make_storyboard([make_shot()]), make_analysis(1), 12, tmp_path / "x.mp4")
    (call,) = spy.calls
    assert call["pipeline"] == "WanImageToVideoPipeline"
    assert call["image"].size == (TINY_SIZE, TINY_SIZE) and call["last_image"].size == (TINY_SIZE, TINY_SIZE)
    assert count_frames(tmp_path / "i.mp4") == 12


def test_picture_only_model_refuses_a_storyboard_without_keyframes(tiny_i2v, tmp_path):
    shots = [make_shot(f"shot-{i:03d}", i * 0.5, (i + 1) * 0.5) for i in range(2)]
    with pytest.raises(InputError, match="no keyframe.*wan2.1-vace-1.3b"):
        render_storyboard(make_renderer(tiny_i2v), make_storyboard(shots), make_analysis(1), RunFolder(tmp_path / "run"), FPS, 32, 32)


def test_ltx_condition_puts_pictures_at_the_first_and_last_frame(tmp_path, monkeypatch):
    spy = CallSpy(monkeypatch)
    folder = build_tiny_ltx_condition(tmp_path / "ltxc")
    key = write_keyframe(tmp_path / "key.png", (30, 160, 30))
    with make_renderer(folder) as renderer:
        frames = render_one_with(renderer, make_shot(end_s=0.5), tmp_path / "l.mp4", ShotImages(first=key, last=key))
    (call,) = spy.calls
    assert [c.frame_index for c in call["conditions"]] == [0, call["num_frames"] - 1]
    assert count_frames(tmp_path / "l.mp4") == frames


def test_vae_runs_in_float32_beside_a_bfloat16_transformer(tiny_vace, tmp_path):
    with make_renderer(tiny_vace, settings={"dtype": "bfloat16"}) as renderer:
        assert renderer._pipe.vae.dtype == torch.float32 and renderer._pipe.transformer.dtype == torch.bfloat16
        render_one(renderer, make_shot(end_s=0.25), FPS, tmp_path / "f.mp4")
    with make_renderer(tiny_vace, settings={"dtype": "bfloat16", "vae_float32": False}) as renderer:
        assert renderer._pipe.vae.dtype == torch.bfloat16
    assert count_frames(tmp_path / "f.mp4") == 6


# --------------------------------------------------------------------------------------------
# the render driver: hashes, reuse, text-only renderers


def three_shots_two_scenes():
    shots = [make_shot(f"shot-{i + 1:03d}", i * 0.25, (i + 1) * 0.25, seed=i) for i in range(3)]
    shots[2] = shots[2].model_copy(update={"section_index": 1})
    board = make_storyboard(shots)
    board.sections.append(SectionTreatment(section_index=1, label="B", role="chorus", palette=["#300000"], motif="fire"))
    return board


def test_an_edited_keyframe_rerenders_the_shots_it_conditions(tiny_vace, tmp_path, monkeypatch):
    board = three_shots_two_scenes()
    run = RunFolder(tmp_path / "run")
    keys = {i: write_keyframe(run.path(f"keyframes/{i}.png"), (60 + 60 * i, 80, 90), seed=i) for i in range(3)}
    rendered: list[str] = []
    original = DiffusersRenderer.render_shot

    def counting(self, shot, *args, **kwargs):
        rendered.append(shot.id)
        return original(self, shot, *args, **kwargs)

    monkeypatch.setattr(DiffusersRenderer, "render_shot", counting)
    first = render_storyboard(make_renderer(tiny_vace), board, make_analysis(0.75), run, FPS, 32, 32, keyframes=keys)
    assert rendered == ["shot-001", "shot-002", "shot-003"] and not first.failed_shots
    assert [clip.keyframe for clip in first.clips] == ["keyframes/0.png", "keyframes/1.png", "keyframes/2.png"]
    # Shot 2's keyframe is its own only: editing it re-renders shot 2 alone.
    rendered.clear()
    write_keyframe(keys[1], (10, 200, 10), seed=9)
    second = render_storyboard(make_renderer(tiny_vace), board, make_analysis(0.75), run, FPS, 32, 32, keyframes=keys)
    assert rendered == ["shot-002"]
    assert [c.shot_hash for c in second.clips][::2] == [c.shot_hash for c in first.clips][::2]
    # Shot 1's keyframe is also its scene's colour reference: shots 1 and 2 re-render, not shot 3.
    rendered.clear()
    write_keyframe(keys[0], (200, 200, 10), seed=8)
    render_storyboard(make_renderer(tiny_vace), board, make_analysis(0.75), run, FPS, 32, 32, keyframes=keys)
    assert rendered == ["shot-001", "shot-002"]
    # Nothing changed: nothing renders, and the colour record comes back from beside the clips.
    rendered.clear()
    again = render_storyboard(make_renderer(tiny_vace), board, make_analysis(0.75), run, FPS, 32, 32, keyframes=keys)
    assert rendered == [] and all(clip.colour is not None for clip in again.clips)
    assert again.clips[2].colour.reference == "keyframes/2.png" and again.clips[1].colour.reference == "keyframes/0.png"
    # The tiny model draws grey noise: far from the coloured keyframes before matching (44-93 Delta E),
    # much closer after (14-19: its noise is wider than a keyframe's spread, and the gamut clips it).
    assert all(clip.colour.drift_after < clip.colour.drift_before / 2 for clip in again.clips)
    # The report shows the drift per scene, before and after.
    from music2video.report import colour_drift_by_scene, write_report

    scenes = colour_drift_by_scene(again)
    assert [(first, last, count) for first, last, count, *_ in scenes] == [("shot-001", "shot-002", 2), ("shot-003", "shot-003", 1)]
    assert scenes[0][3] == pytest.approx(np.mean([c.colour.drift_before for c in again.clips[:2]]))
    run.save("clips.json", again)
    page = write_report(run.root).read_text()
    assert "Colour drift per scene" in page and f"<td>{scenes[1][3]:.1f}</td><td>{scenes[1][4]:.1f}</td>" in page


def test_text_only_renderer_ignores_keyframes_and_says_so(tiny_vace, tmp_path, caplog):
    board = three_shots_two_scenes()
    wan = build_tiny_wan(tmp_path / "wan")
    run = RunFolder(tmp_path / "run")
    keys = {0: write_keyframe(tmp_path / "k.png", (10, 10, 10))}
    plain = render_storyboard(make_renderer(wan), board, make_analysis(0.75), run, FPS, 32, 32)
    with caplog.at_level(logging.INFO, logger="music2video.render"):
        with_keys = render_storyboard(make_renderer(wan), board, make_analysis(0.75), run, FPS, 32, 32, keyframes=keys)
    assert "renders from text only" in caplog.text and caplog.text.count("renders from text only") == 1
    assert [c.shot_hash for c in plain.clips] == [c.shot_hash for c in with_keys.clips]
    assert all(c.keyframe is None and c.colour is None for c in with_keys.clips)


# --------------------------------------------------------------------------------------------
# benchmarks/gpu/bench_keyframes_video.py


BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "bench_keyframes_video.py"


def run_bench(monkeypatch, *arguments: str) -> int:
    import runpy
    import sys

    bench = runpy.run_path(str(BENCH), run_name="bench_keyframes_video")
    monkeypatch.setattr(sys, "argv", [str(BENCH), *arguments])
    return bench["main"]()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_bench_without_gpu_says_so_and_exits_0(monkeypatch, capsys):
    assert run_bench(monkeypatch) == 0
    assert "No CUDA GPU is present" in capsys.readouterr().out


@pytest.mark.slow  # about 20 s on 2 cores: three tiny models, two steps each
def test_bench_tiny_runs_every_part(monkeypatch, capsys, tmp_path):
    import json

    report = tmp_path / "bench.json"
    assert run_bench(monkeypatch, "--tiny", "--json", str(report)) == 0
    written = json.loads(report.read_text())
    results, projection = written["results"], written["projection"]
    assert results["keyframe"]["model"] == "qwen-image-edit-2509" and "error" not in results["keyframe"]
    assert results["reference"]["model"] == "qwen-image" and results["reference"]["default_steps"] == 50
    video = results["video"]
    assert video["model"] == "wan2.1-vace-1.3b" and video["s_per_video_s"] > 0 and video["outside_s"] > 0
    assert "error" not in results["reference"] and "per second of video" in capsys.readouterr().out
    # 180 s in 2.5 s shots: 72 keyframes, 72 clips of 41 frames (2.5 s at 16 fps, 4k+1).
    assert (projection["shots"], projection["frames_per_shot"]) == (72, 41)
    assert projection["keyframes_s"] == pytest.approx(72 * results["keyframe"]["projected_s"])
    # On the CPU the renderer's writer does all of the work outside the model; the share counts what stays on the critical path.
    assert video["writer_s"] == video["outside_s"] and video["handoff_s"] == 0.0
    assert projection["fast_total_s"] == pytest.approx(projection["fast_diffusion_s"] + projection["fast_critical_outside_s"])
    assert projection["fast_outside_share"] == pytest.approx(projection["fast_critical_outside_s"] / projection["fast_total_s"])


# What the H100 measured (kv.json of `--keyframe-speed lightning-8 --distilled --taylorseer`), trimmed to what the projection reads.
H100_RESULTS = {
    "reference": {"s_per_step": 0.1954, "projected_s": 1.6821, "default_steps": 8, "model": "qwen-image", "what": "1024x1024", "peak_gib": 42.5},
    "keyframe": {"s_per_step": 0.4944, "projected_s": 4.0120, "default_steps": 8, "model": "qwen-image-edit-2509", "what": "832x480", "peak_gib": 40.4},
    "video": {
        "s_per_step": 2.0682, "projected_s": 107.086, "default_steps": 50, "model": "wan2.1-vace-1.3b", "what": "832x480", "peak_gib": 13.8,
        "clip_s": 5.0, "s_per_video_s": 21.417, "taylorseer_speedup": 1.495, "distilled_steps": 6, "distilled_projected_s": 9.9431,
        "colour_match_s": 1.7552, "outside_s": 3.9496,
    },
}  # fmt: skip


@pytest.mark.parametrize(
    ("device_path", "in_line", "overlapped"),
    [
        # That run's CPU path, all in the writer: 2.0 s a shot hides behind 5.0 s of diffusion; the last clip's waits.
        ({}, "17.8 % of 13.3 min", "2.0 s on the critical path, 0.30 % of 11.0 min"),
        # A writer slower than the diffusion (12 s a clip: 6 s a shot) leaves 1.03 s a shot exposed (71 shots), plus 0.05 s of hand-off a shot and the last 6 s.
        ({"handoff_s": 0.1, "writer_s": 12.0}, "17.8 % of 13.3 min", "82.6 s on the critical path, 11.17 % of 12.3 min"),
    ],
)
def test_bench_projection_counts_what_the_user_waits_for(monkeypatch, capsys, tmp_path, device_path, in_line, overlapped):
    """--from-json: the share of the work outside the models is taken against the total with the speed
    options on, written in line and with the background writer (hand-off + the write the next shot does not hide)."""
    import json

    results = {**H100_RESULTS, "video": {**H100_RESULTS["video"], **device_path}}
    saved = tmp_path / "kv.json"
    saved.write_text(json.dumps({"device": "NVIDIA H100 80GB HBM3", "args": {"keyframe_speed": "lightning-8", "frames": "81"}, "results": results}))
    assert run_bench(monkeypatch, "--from-json", str(saved)) == 0
    out = capsys.readouterr().out
    assert "with the speed options on (keyframes lightning-8, video distilled): diffusion 10.9 min" in out
    assert f"clips written in line: outside the models 2.4 min, {in_line}" in out
    assert overlapped in out


@pytest.mark.slow  # about 10 s on 2 cores: two tiny image models
def test_bench_times_the_keyframe_speed_options(monkeypatch, tmp_path):
    import json

    report = tmp_path / "bench.json"
    arguments = ["--tiny", "--parts", "reference,keyframe", "--keyframe-speed", "lightning-4", "--json", str(report)]
    assert run_bench(monkeypatch, *arguments) == 0
    results = json.loads(report.read_text())["results"]
    # Projected to the LoRAs' 4 steps, timed at guidance 1 (one transformer pass a step).
    for part in ("reference", "keyframe"):
        assert results[part]["default_steps"] == 4 and "lightning-4 (4 steps, guidance 1)" in results[part]["what"]
