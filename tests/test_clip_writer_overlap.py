"""Clips are colour-matched, retimed, scaled and encoded beside the next shot's generation.

The diffusers renderer with a tiny Wan (and Wan VACE) loaded through its real code; where a test
needs a slow model or a slow writer, the generation or the write is replaced by a fake that waits
on the other (a barrier), so overlap is shown by what happened in which order, not by a clock.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

# The autouse fixtures (one torch thread, free_memory counted instead of run) apply here too.
from test_render_diffusion import (  # noqa: F401
    TINY_SIZE,
    make_analysis,
    make_renderer,
    make_shot,
    make_storyboard,
    memory_frees,
    one_torch_thread,
    tiny_wan,
)
from test_render_keyframes import tiny_vace, write_keyframe  # noqa: F401

from music2video.errors import Music2VideoError
from music2video.render import CLIPS_FOLDER, colour_sidecar, render_storyboard
from music2video.render.conditioning import ShotImages
from music2video.render.diffusion import DiffusersRenderer
from music2video.runfolder import RunFolder
from music2video.videofile import count_frames, read_frames

FPS = 24.0
SHOT_S = 0.5  # 12 frames at 24 fps; 9 generated at 16
WAIT_S = 30.0  # a barrier that is not met in this long means the two sides never ran together


def three_shots():
    shots = [
        make_shot(start_s=i * SHOT_S, end_s=(i + 1) * SHOT_S, seed=7 + i).model_copy(update={"id": f"shot-{i + 1:03d}"})
        for i in range(3)
    ]
    return make_storyboard(shots)


def render(folder: Path, run: RunFolder, **options):
    return render_storyboard(make_renderer(folder, **options), three_shots(), make_analysis(3 * SHOT_S), run, FPS, TINY_SIZE, TINY_SIZE)


def test_a_clip_is_written_while_the_next_shot_generates(tiny_wan, tmp_path, monkeypatch):
    """The writer of shot N and the generation of shot N+1 meet at a barrier: each waits there until the
    other has started, so neither can finish unless both run at once. Written one after the other,
    the first barrier would break and the shots would fail."""
    events: list[str] = []
    lock = threading.Lock()
    meet = {f"shot-{i:03d}": threading.Barrier(2, timeout=WAIT_S) for i in (1, 2)}  # writer of N, generation of N+1

    def note(event: str) -> None:
        with lock:
            events.append(event)

    def slow_generation(self, shot, plan, images):
        note(f"generate {shot.id}")
        before = f"shot-{int(shot.id[-3:]) - 1:03d}"
        if before in meet:
            meet[before].wait()  # the clip before is being written now
        note(f"generated {shot.id}")
        return np.full((plan.total_frames, TINY_SIZE, TINY_SIZE, 3), 0.5, np.float32)

    original_write = DiffusersRenderer._write_clip

    def slow_write(self, frames, frame_count, output, reference=None):
        shot_id = output.name[:8]
        note(f"write {shot_id}")
        if shot_id in meet:
            meet[shot_id].wait()  # the next shot is generating now
        original_write(self, frames, frame_count, output, reference)
        note(f"written {shot_id}")

    monkeypatch.setattr(DiffusersRenderer, "_generate_with_memory_fallback", slow_generation)
    monkeypatch.setattr(DiffusersRenderer, "_write_clip", slow_write)
    run = RunFolder(tmp_path / "run")
    result = render(tiny_wan, run)
    assert result.failed_shots == {}
    assert [count_frames(run.root / clip.path) for clip in result.clips] == [12, 12, 12]
    order = events.index
    for n in (1, 2):
        this, after = f"shot-{n:03d}", f"shot-{n + 1:03d}"
        # Shot N+1 starts generating before clip N is written, and clip N is written before clip N+1
        # is handed over (one clip in line at most).
        assert order(f"generate {after}") < order(f"written {this}") < order(f"write {after}"), events
    assert all(not meeting.broken for meeting in meet.values())


def test_a_clip_that_fails_to_write_fails_its_shot_alone_in_one_line(tiny_wan, tmp_path, monkeypatch):
    """The reason is the one line a failure inside render_shot gives (the same with the writer off);
    the clips before and after are kept and the failed shot gets a placeholder of its length."""
    original_write = DiffusersRenderer._write_clip

    def failing_write(self, frames, frame_count, output, reference=None):
        if output.name.startswith("shot-002"):
            raise Music2VideoError("cannot encode shot-002: the encoder is gone")
        if output.name.startswith("shot-003"):
            raise RuntimeError("x264 broke\nat line 2 of its log")
        original_write(self, frames, frame_count, output, reference)

    monkeypatch.setattr(DiffusersRenderer, "_write_clip", failing_write)
    results = {}
    for background in (True, False):
        run = RunFolder(tmp_path / f"run-{background}")
        results[background] = render(tiny_wan, run, write_in_background=background)
        assert [count_frames(run.root / clip.path) for clip in results[background].clips] == [12, 12, 12]
        assert [clip.path for clip in results[background].clips][1:] == [f"{CLIPS_FOLDER}/shot-002-failed.mp4", f"{CLIPS_FOLDER}/shot-003-failed.mp4"]
    assert results[True].failed_shots == results[False].failed_shots == {
        "shot-002": "cannot encode shot-002: the encoder is gone",
        "shot-003": "RuntimeError: x264 broke",
    }


def test_ended_writes_hands_out_each_shot_once_its_clip_is_written_or_failed(tiny_wan, tmp_path, monkeypatch):
    """What a Ray worker reports after each shot: the clips written since it last asked, without
    waiting for the one still in the writer; ``wait=True`` (the worker's flush) waits for it."""
    release = threading.Event()
    original_write = DiffusersRenderer._write_clip

    def held_write(self, frames, frame_count, output, reference=None):
        if output.name.startswith("shot-003"):
            raise Music2VideoError("cannot encode shot-003: the encoder is gone")
        if output.name.startswith("shot-002"):
            assert release.wait(WAIT_S)
        original_write(self, frames, frame_count, output, reference)

    monkeypatch.setattr(DiffusersRenderer, "_write_clip", held_write)
    storyboard = three_shots()
    with make_renderer(tiny_wan) as renderer:
        outputs = {shot.id: tmp_path / f"{shot.id}.mp4" for shot in storyboard.shots}
        for shot in storyboard.shots[:2]:
            renderer.render_shot(shot, storyboard, make_analysis(3 * SHOT_S), 12, outputs[shot.id])
        assert renderer.ended_writes() == {"shot-001": None}  # waited for before shot 2 was handed over
        assert outputs["shot-001"].is_file() and not outputs["shot-002"].exists()
        assert renderer.ended_writes() == {}  # reported once; shot 2 is still being written
        release.set()
        renderer.render_shot(storyboard.shots[2], storyboard, make_analysis(3 * SHOT_S), 12, outputs["shot-003"])
        assert renderer.ended_writes(wait=True) == {"shot-002": None, "shot-003": "cannot encode shot-003: the encoder is gone"}
        assert outputs["shot-002"].is_file()
        assert renderer.finish() == {} and renderer.ended_writes(wait=True) == {}


def test_a_stopped_run_keeps_finished_clips_and_the_next_run_renders_the_rest(tiny_wan, tmp_path, monkeypatch):
    """Ctrl-C while shot 3 generates: clip 2, still in the writer then, is finished and kept; nothing half
    written is left; the same command renders shot 3 alone, reusing clips 1 and 2 byte for byte."""
    generated: list[str] = []
    original = DiffusersRenderer._generate_with_memory_fallback

    def stopped_at_shot_3(self, shot, plan, images):
        generated.append(shot.id)
        if shot.id == "shot-003":
            raise KeyboardInterrupt
        return original(self, shot, plan, images)

    monkeypatch.setattr(DiffusersRenderer, "_generate_with_memory_fallback", stopped_at_shot_3)
    run = RunFolder(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        render(tiny_wan, run)
    clips = run.path(CLIPS_FOLDER)
    kept = sorted(clips.iterdir())
    assert [path.name[:8] for path in kept] == ["shot-001", "shot-002"] and all(path.suffix == ".mp4" for path in kept)
    before = {path.name: path.read_bytes() for path in kept}

    generated.clear()
    monkeypatch.setattr(DiffusersRenderer, "_generate_with_memory_fallback", lambda self, *a: generated.append(a[0].id) or original(self, *a))
    result = render(tiny_wan, run)
    assert generated == ["shot-003"] and result.failed_shots == {}
    assert {name: (clips / name).read_bytes() for name in before} == before
    assert [count_frames(run.root / clip.path) for clip in result.clips] == [12, 12, 12]


def test_clips_written_in_the_background_are_the_clips_written_in_line(tiny_wan, tmp_path):
    """Same hash, same bytes: where and when a clip is written changes nothing in it."""
    clips = {}
    for background in (True, False):
        run = RunFolder(tmp_path / f"run-{background}")
        result = render(tiny_wan, run, write_in_background=background)
        clips[background] = [(clip.path, (run.root / clip.path).read_bytes()) for clip in result.clips]
    assert clips[True] == clips[False]


def test_frames_finished_on_the_device_match_the_cpu_path(tiny_vace, tmp_path, monkeypatch):
    """The CUDA path (frames kept as a tensor; colour, retime and scale in torch; only the encoding in
    the background), run here on CPU tensors, gives the numpy path's clip and colour record."""
    matched: list[tuple[str, str]] = []
    original_match = DiffusersRenderer._match_colour

    def spy(self, frames, reference, output):
        matched.append((type(frames).__module__.split(".")[0], threading.current_thread().name))
        original_match(self, frames, reference, output)

    monkeypatch.setattr(DiffusersRenderer, "_match_colour", spy)
    key = write_keyframe(tmp_path / "key.png", (200, 60, 40), size=(64, 40))
    shot = make_shot(end_s=0.5)
    outputs = {}
    for on_device in (False, True):
        output = tmp_path / f"clip-{on_device}.mp4"
        with make_renderer(tiny_vace, width=48, height=40) as renderer:
            renderer._frames_on_device = on_device
            renderer.render_shot(shot, make_storyboard([shot]), make_analysis(0.5), 12, output, images=ShotImages(first=key, colour_reference=key))
            assert renderer.finish() == {}
        outputs[on_device] = (read_frames(output).astype(np.int16), colour_sidecar(output).read_text())
    # numpy frames are matched in the writer thread; a tensor on the thread that generated it.
    assert [(kind, thread.startswith("clip-writer")) for kind, thread in matched] == [("numpy", True), ("torch", False)]
    (cpu, cpu_colour), (device, device_colour) = outputs[False], outputs[True]
    assert device.shape == cpu.shape == (12, 40, 48, 3)
    assert np.abs(device - cpu).mean() < 0.5 and np.abs(device - cpu).max() <= 3
    assert device_colour == cpu_colour  # drift before and after, to 3 decimals
