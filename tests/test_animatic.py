"""The animatic renderer: exact frame counts, every motif, beat flashes, determinism, and the
render driver's reuse / re-render / failure handling with it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from music2video.artifacts import Analysis, Section, Storyboard, StoryboardShot, StyleBible
from music2video.errors import Music2VideoError
from music2video.render import render_storyboard
from music2video.render.animatic import resolve_motif, MOTIFS, AnimaticRenderer, _drawn_ahead, beat_pulses, parse_camera, parse_palette
from music2video.runfolder import RunFolder
from music2video.videofile import count_frames, read_frames

WIDTH, HEIGHT = 64, 36
TEMPO_BPM = 120.0  # a beat every 0.5 s, a bar (downbeat) every 2 s
DURATION_S = 4.0
CUTS_S = [0.0, 1.5, 2.25, 3.0, 4.0]
PALETTE = ["#101830", "#3a6ea5", "#ff8c42", "#ffe3a3"]


def make_analysis(duration_s: float = DURATION_S) -> Analysis:
    beats = [i * 60 / TEMPO_BPM for i in range(int(duration_s * TEMPO_BPM / 60))]
    rate_hz = 20.0
    curve = (0.5 + 0.4 * np.sin(np.arange(int(duration_s * rate_hz)) / 7)).round(4).tolist()
    return Analysis(
        duration_s=duration_s,
        tempo_bpm=TEMPO_BPM,
        beats_per_bar=4,
        beats_s=beats,
        downbeats_s=beats[::4],
        sections=[Section(index=0, start_s=0.0, end_s=duration_s, label="A", role="verse", energy=0.5)],
        curve_rate_hz=rate_hz,
        energy=curve,
        brightness=curve,
        onset_strength=curve,
    )


def make_shot(index: int, start_s: float, end_s: float, motif: str = "orbs", **changes) -> StoryboardShot:
    fields = dict(
        id=f"shot-{index:03d}",
        start_s=start_s,
        end_s=end_s,
        section_index=0,
        scene="a scene",
        prompt=f"prompt {index}",
        seed=1000 + index,
        palette=PALETTE,
        motif=motif,
        camera="slow push in",
        energy=0.6,
    )
    fields.update(changes)
    return StoryboardShot(**fields)


def make_storyboard(shots: list[StoryboardShot] | None = None) -> Storyboard:
    if shots is None:
        motifs = ["orbs", "waves", "rings", "tunnel"]
        shots = [make_shot(i, CUTS_S[i], CUTS_S[i + 1], motifs[i]) for i in range(4)]
    return Storyboard(
        writer="test",
        title="test",
        concept="a test",
        style=StyleBible(look="clean", palette=PALETTE),
        sections=[],
        shots=shots,
    )


def frames_of(renderer: AnimaticRenderer, shot: StoryboardShot, analysis: Analysis, count: int) -> np.ndarray:
    storyboard = make_storyboard([shot])
    return np.stack([frame.copy() for frame in renderer.frames(shot, storyboard, analysis, count)])


# --------------------------------------------------------------------------------------------
# clips


@pytest.mark.parametrize("fps", [24.0, 25.0, 23.976])
def test_every_clip_has_exactly_its_frame_count(tmp_path: Path, fps: float):
    storyboard = make_storyboard()
    result = render_storyboard(AnimaticRenderer(WIDTH, HEIGHT, fps), storyboard, make_analysis(), RunFolder(tmp_path), fps, WIDTH, HEIGHT)
    assert not result.failed_shots
    expected = [round(CUTS_S[i + 1] * fps) - round(CUTS_S[i] * fps) for i in range(4)]
    assert [clip.frames for clip in result.clips] == expected
    assert [count_frames(tmp_path / clip.path) for clip in result.clips] == expected
    assert sum(expected) == round(DURATION_S * fps)


def test_render_shot_writes_a_playable_clip(tmp_path: Path):
    shot = make_shot(0, 0.0, 0.5)
    output = tmp_path / "clip.mp4"
    AnimaticRenderer(WIDTH, HEIGHT, 24).render_shot(shot, make_storyboard([shot]), make_analysis(), 12, output)
    frames = read_frames(output)
    assert frames.shape == (12, HEIGHT, WIDTH, 3)
    assert frames.std() > 3  # not a flat colour


def test_every_motif_renders_moves_and_differs():
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    looks = {}
    for motif in MOTIFS:
        frames = frames_of(renderer, make_shot(0, 0.25, 1.0, motif), analysis, 10).astype(np.float32)
        assert frames.shape == (10, HEIGHT, WIDTH, 3)
        assert frames[0].std() > 4, f"{motif} draws nothing"
        assert np.abs(frames[9] - frames[1]).mean() > 0.5, f"{motif} does not move"
        looks[motif] = frames[1]
    for i, a in enumerate(MOTIFS):
        for b in MOTIFS[i + 1 :]:
            assert np.abs(looks[a] - looks[b]).mean() > 3, f"{a} and {b} look alike"


@pytest.mark.parametrize("motif", MOTIFS)
def test_beat_flash_is_visible(motif: str):
    fps = 24.0
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, fps), make_analysis()
    shot = make_shot(0, 0.25, 2.25, motif, camera="static")
    first = round(shot.start_s * fps)
    frames = frames_of(renderer, shot, analysis, round(shot.end_s * fps) - first)
    brightness = frames.reshape(len(frames), -1).mean(axis=1)
    for beat_s in (0.5, 1.0, 1.5, 2.0):  # 2.0 s is a downbeat
        k = round(beat_s * fps) - first
        assert brightness[k] > brightness[k - 1] + 2, f"{motif}: no flash at {beat_s} s"
    downbeat, beat = round(2.0 * fps) - first, round(1.5 * fps) - first
    assert brightness[downbeat] - brightness[downbeat - 1] > brightness[beat] - brightness[beat - 1]


def test_beats_land_on_their_song_frame_at_ntsc_rate():
    fps = 24000 / 1001
    analysis = make_analysis()
    first = round(1.5 * fps)
    pulse, age, _ = beat_pulses(analysis, first, 30, fps)
    peaks = [k for k in range(30) if age[k] == 0]
    # beats at 1.5, 2.0 and 2.5 s fall on song frames 36, 48 and 60 (59.94 rounds up)
    assert peaks == [round(b * fps) - first for b in (1.5, 2.0, 2.5)] == [0, 12, 24]
    assert pulse[12] == pytest.approx(1.0)  # 2.0 s is a downbeat
    assert pulse[0] == pulse[24] < pulse[12]
    assert pulse[11] < 0.1 * pulse[12]  # the pulse decays before the next beat


def test_same_seed_same_frames_other_seed_other_frames():
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    shot = make_shot(0, 0.0, 0.5, "particles", camera="handheld orbit left")
    first = frames_of(renderer, shot, analysis, 8)
    again = frames_of(AnimaticRenderer(WIDTH, HEIGHT, 24), shot, analysis, 8)
    np.testing.assert_array_equal(first, again)
    other = frames_of(renderer, shot.model_copy(update={"seed": 7}), analysis, 8)
    assert np.abs(first.astype(int) - other).mean() > 1


def test_camera_change_keeps_the_composition():
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    shot = make_shot(0, 0.0, 0.5, "orbs", camera="static")
    static = frames_of(renderer, shot, analysis, 1)
    handheld = frames_of(renderer, shot.model_copy(update={"camera": "handheld"}), analysis, 1)
    # the first frame of a shaky camera barely moves: same orbs in the same places
    assert np.abs(static.astype(int) - handheld).mean() < 3


def test_free_text_motifs_map_onto_drawable_ones(caplog: pytest.LogCaptureFixture):
    """An LLM writer or a person writes motifs in words; the animatic still draws something apt."""
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    assert resolve_motif("lighthouse beam sweeping the fog") == "rays"
    assert resolve_motif("Rain on a window") in ("particles", "grid")  # first keyword wins, stably
    assert resolve_motif("jellyfish") == resolve_motif("jellyfish") in MOTIFS  # hashed, stable
    with caplog.at_level(logging.INFO, logger="music2video.render.animatic"):
        waves = frames_of(renderer, make_shot(0, 0.0, 0.5, "waves breaking on the shore"), analysis, 4)
    assert "waves breaking" in caplog.text  # the substitution is logged
    np.testing.assert_array_equal(waves, frames_of(renderer, make_shot(0, 0.0, 0.5, "waves"), analysis, 4))
    # names are matched regardless of case and spaces, as people type them
    np.testing.assert_array_equal(
        frames_of(renderer, make_shot(0, 0.0, 0.5, " Rings "), analysis, 2),
        frames_of(renderer, make_shot(0, 0.0, 0.5, "rings"), analysis, 2),
    )


def test_palette_drives_the_colours():
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    warm = frames_of(renderer, make_shot(0, 0.0, 0.5, palette=["#200000", "#ff3000", "#ff9000"]), analysis, 2)
    cold = frames_of(renderer, make_shot(0, 0.0, 0.5, palette=["#000020", "#0030ff", "#00b0ff"]), analysis, 2)
    red, blue = 0, 2
    assert warm[..., red].mean() > warm[..., blue].mean() + 10
    assert cold[..., blue].mean() > cold[..., red].mean() + 10


def test_bad_palette_entries_and_empty_palette_still_render():
    assert len(parse_palette(["#abc", "not a colour", "#A1B2C3", "123456"])) == 3
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    frames = frames_of(renderer, make_shot(0, 0.0, 0.5, palette=[], camera="something odd"), analysis, 2)
    assert frames.std() > 3


def test_camera_words():
    push, ok = parse_camera("slow push in")
    assert ok and push.zoom_per_s > 0 and not push.rolls
    assert parse_camera("pull back")[0].zoom_per_s < 0
    left, right = parse_camera("orbit left")[0], parse_camera("orbit right")[0]
    assert left.rolls and left.roll_rad_per_s == -right.roll_rad_per_s
    assert abs(parse_camera("whip pan")[0].whip) > 0.5
    assert parse_camera("static") == (parse_camera("")[0], True)
    assert parse_camera("interpretive dance")[1] is False
    # small words alone do not move the camera
    assert parse_camera("static close up, in the rain") == (parse_camera("")[0], True)
    assert parse_camera("dolly back")[0].zoom_per_s < 0 and parse_camera("crane down")[0].drift_y_per_s > 0


def test_half_resolution_drawing_is_doubled():
    renderer = AnimaticRenderer(320, 180, 24)
    assert renderer.draw_scale == 2
    frames = frames_of(renderer, make_shot(0, 0.0, 0.5, "waves"), make_analysis(), 2)
    assert frames.shape == (2, 180, 320, 3)
    np.testing.assert_array_equal(frames[:, 0::2, 0::2], frames[:, 1::2, 1::2])


def test_renderer_contract():
    renderer = AnimaticRenderer(WIDTH, HEIGHT, 25)
    assert renderer.name == "animatic" and renderer.model is None
    with renderer as entered:
        assert entered is renderer
    assert renderer.settings_fingerprint() == AnimaticRenderer(WIDTH, HEIGHT, 25).settings_fingerprint()
    assert renderer.settings_fingerprint() != AnimaticRenderer(WIDTH, HEIGHT, 24).settings_fingerprint()
    with pytest.raises(Music2VideoError):
        next(iter(renderer.frames(make_shot(0, 0, 1), make_storyboard(), make_analysis(), 0)))


def test_drawing_ahead_keeps_order_raises_errors_and_stops_its_thread():
    import threading

    def counting(n, fail_at=None):
        buffer = np.zeros(1)
        for i in range(n):
            if i == fail_at:
                raise ValueError("broken frame")
            buffer[0] = i  # the same buffer every time, as AnimaticRenderer.frames does
            yield buffer

    assert [int(f[0]) for f in _drawn_ahead(counting(20))] == list(range(20))
    with pytest.raises(ValueError, match="broken frame"):
        list(_drawn_ahead(counting(20, fail_at=7)))
    ahead = _drawn_ahead(counting(1000))
    next(ahead)
    ahead.close()  # the consumer stops early (an encoder error, say)
    assert not [t for t in threading.enumerate() if t.name == "animatic-draw"]


# --------------------------------------------------------------------------------------------
# the render driver with this renderer


class CountingRenderer(AnimaticRenderer):
    """Records which shots it was asked to draw; fails on the shots named in ``fail``."""

    def __init__(self, *args, fail: tuple[str, ...] = ()):
        super().__init__(*args)
        self.rendered: list[str] = []
        self.fail = fail

    def render_shot(self, shot, storyboard, analysis, frame_count, output):
        self.rendered.append(shot.id)
        if shot.id in self.fail:
            raise RuntimeError("out of memory (simulated)")
        super().render_shot(shot, storyboard, analysis, frame_count, output)


def test_second_render_reuses_every_clip(tmp_path: Path):
    run, storyboard, analysis = RunFolder(tmp_path), make_storyboard(), make_analysis()
    first_renderer = CountingRenderer(WIDTH, HEIGHT, 24)
    first = render_storyboard(first_renderer, storyboard, analysis, run, 24, WIDTH, HEIGHT)
    assert len(first_renderer.rendered) == 4
    mtimes = [(tmp_path / clip.path).stat().st_mtime_ns for clip in first.clips]

    again_renderer = CountingRenderer(WIDTH, HEIGHT, 24)
    again = render_storyboard(again_renderer, storyboard, analysis, run, 24, WIDTH, HEIGHT)
    assert again_renderer.rendered == []
    assert again.clips == first.clips
    assert [(tmp_path / clip.path).stat().st_mtime_ns for clip in again.clips] == mtimes


def test_editing_one_prompt_rerenders_only_that_shot(tmp_path: Path):
    run, storyboard, analysis = RunFolder(tmp_path), make_storyboard(), make_analysis()
    first = render_storyboard(CountingRenderer(WIDTH, HEIGHT, 24), storyboard, analysis, run, 24, WIDTH, HEIGHT)
    edited = storyboard.model_copy(deep=True)
    edited.shots[2].prompt = "a lighthouse in a storm"
    renderer = CountingRenderer(WIDTH, HEIGHT, 24)
    second = render_storyboard(renderer, edited, analysis, run, 24, WIDTH, HEIGHT)
    assert renderer.rendered == ["shot-002"]
    assert [a.path == b.path for a, b in zip(first.clips, second.clips, strict=True)] == [True, True, False, True]
    assert count_frames(tmp_path / second.clips[2].path) == second.clips[2].frames


def test_a_failing_shot_gets_a_placeholder_and_is_retried(tmp_path: Path):
    run, storyboard, analysis = RunFolder(tmp_path), make_storyboard(), make_analysis()
    result = render_storyboard(CountingRenderer(WIDTH, HEIGHT, 24, fail=("shot-001",)), storyboard, analysis, run, 24, WIDTH, HEIGHT)
    assert set(result.failed_shots) == {"shot-001"}
    assert "out of memory" in result.failed_shots["shot-001"]
    placeholder = result.clips[1]
    assert placeholder.path.endswith("shot-001-failed.mp4")
    frames = read_frames(tmp_path / placeholder.path)
    assert len(frames) == placeholder.frames and frames.std() < 2  # a flat grey stand-in
    for clip in (result.clips[0], result.clips[2], result.clips[3]):
        assert count_frames(tmp_path / clip.path) == clip.frames and "failed" not in clip.path
    # the next run retries the failed shot only
    renderer = CountingRenderer(WIDTH, HEIGHT, 24)
    retried = render_storyboard(renderer, storyboard, analysis, run, 24, WIDTH, HEIGHT)
    assert renderer.rendered == ["shot-001"] and not retried.failed_shots


# --------------------------------------------------------------------------------------------
# the prompt


def test_a_colour_named_in_the_prompt_is_drawn():
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    cold = ["#000020", "#0030ff", "#00b0ff"]
    plain = frames_of(renderer, make_shot(0, 0.0, 0.5, palette=cold, prompt="glowing orbs over a lake"), analysis, 2)
    crimson = frames_of(renderer, make_shot(0, 0.0, 0.5, palette=cold, prompt="crimson orbs over a lake"), analysis, 2)
    red = 0
    assert crimson[..., red].mean() > plain[..., red].mean() + 8  # the prompt's crimson lights the orbs
    # words that only describe the palette ("blue", "azure") change nothing
    described = frames_of(renderer, make_shot(0, 0.0, 0.5, palette=cold, prompt="blue and azure orbs over a lake"), analysis, 2)
    np.testing.assert_array_equal(described, plain)


def test_a_motif_named_in_the_prompt_is_drawn_unless_the_prompt_mentions_the_entrys_own():
    from music2video.render.animatic import prompt_motif

    assert prompt_motif("a neon city street at night", "orbs") == "grid"
    assert prompt_motif("snow falling on the dancer", "waves") == "particles"
    assert prompt_motif("glowing orbs of light over the city", "orbs") == "orbs"  # its own motif is named
    assert prompt_motif("prompt 3", "rings") == "rings"  # nothing named: the entry decides
    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24), make_analysis()
    edited = frames_of(renderer, make_shot(0, 0.0, 0.5, "orbs", prompt="a long tunnel"), analysis, 2)
    tunnel = frames_of(renderer, make_shot(0, 0.0, 0.5, "tunnel", prompt="a long tunnel"), analysis, 2)
    np.testing.assert_array_equal(edited, tunnel)


def test_editing_a_prompt_changes_the_clip(tmp_path: Path):
    """The issue seen: an edited prompt re-rendered its shot, but the clip came out byte-identical."""
    run, storyboard, analysis = RunFolder(tmp_path), make_storyboard(), make_analysis()
    renderer = AnimaticRenderer(WIDTH, HEIGHT, 24)
    first = render_storyboard(renderer, storyboard, analysis, run, 24, WIDTH, HEIGHT)
    edited = storyboard.model_copy(deep=True)
    edited.shots[2].prompt += ", crimson snow falling"
    second = render_storyboard(renderer, edited, analysis, run, 24, WIDTH, HEIGHT)
    before, after = (read_frames(tmp_path / result.clips[2].path) for result in (first, second))
    assert before.shape == after.shape
    assert np.abs(before.astype(int) - after).mean() > 2  # other colours, another motif


@pytest.mark.slow
def test_worker_processes_render_the_same_clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Past the first frames, shots go to worker processes: the same pictures, the same frame counts."""
    import music2video.render.animatic as animatic

    storyboard, analysis = make_storyboard(), make_analysis()
    here = render_storyboard(AnimaticRenderer(WIDTH, HEIGHT, 24, workers=1), storyboard, analysis, RunFolder(tmp_path / "here"), 24, WIDTH, HEIGHT)
    monkeypatch.setattr(animatic, "PARALLEL_AFTER_FRAMES", 20)  # the first shot (36 frames) here, the rest in workers
    renderer = AnimaticRenderer(WIDTH, HEIGHT, 24, workers=2)
    pooled = render_storyboard(renderer, storyboard, analysis, RunFolder(tmp_path / "pooled"), 24, WIDTH, HEIGHT)
    assert renderer._pool is None  # shut down on leaving the render
    assert pooled.failed_shots == {}
    for a, b in zip(here.clips, pooled.clips, strict=True):
        frames_here, frames_pooled = read_frames(tmp_path / "here" / a.path), read_frames(tmp_path / "pooled" / b.path)
        assert len(frames_pooled) == b.frames
        np.testing.assert_array_equal(frames_here, frames_pooled)


def test_a_shot_that_failed_in_a_worker_is_reported_by_finish():
    from concurrent.futures import Future

    renderer = AnimaticRenderer(WIDTH, HEIGHT, 24, workers=2)
    done, failed = Future(), Future()
    done.set_result(None)
    failed.set_exception(Music2VideoError("shot-001: no room on the disk"))
    with renderer:
        renderer._in_flight.extend([("shot-000", done), ("shot-001", failed)])
        assert renderer.finish() == {"shot-001": "shot-001: no room on the disk"}
        assert renderer.finish() == {}  # reported once


@pytest.mark.parametrize("size", [(WIDTH, HEIGHT), (640, 360)])  # drawn at full and at half resolution
def test_yuv_frames_are_the_rgb_frames_as_the_encoder_takes_them(size: tuple[int, int]):
    """The renderer hands x264 yuv420p planes it converts itself; they show the RGB frames' picture."""
    import av

    width, height = size
    renderer, analysis = AnimaticRenderer(width, height, 24), make_analysis()
    shot = make_shot(0, 0.0, 0.5, "particles")
    storyboard = make_storyboard([shot])
    for rgb, planes in zip(renderer.frames(shot, storyboard, analysis, 3), renderer.frames(shot, storyboard, analysis, 3, "yuv420p"), strict=True):
        # FFmpeg's own BT.601 conversion of the RGB frame, its chroma averaged over 2x2 pixels
        # (the exact 4:2:0 of a pixel-doubled drawing; FFmpeg's default filter is a little softer)
        full = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p").to_ndarray().astype(float)
        u, v = (plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)) for plane in full[1:])
        chroma = planes[height:].reshape(2, height // 2, width // 2)
        assert np.abs(planes[:height] - full[0]).max() <= 1  # luma: rounding only
        assert np.abs(chroma[0] - u).max() <= 1 and np.abs(chroma[1] - v).max() <= 1


def test_when_the_workers_die_the_remaining_shots_render_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from concurrent.futures.process import BrokenProcessPool

    import music2video.render.animatic as animatic

    def broken(*args):
        raise BrokenProcessPool("a worker was killed (simulated)")

    monkeypatch.setattr(animatic, "PARALLEL_AFTER_FRAMES", 0)
    renderer = AnimaticRenderer(WIDTH, HEIGHT, 24, workers=2)
    monkeypatch.setattr(renderer, "_submit", broken)
    result = render_storyboard(renderer, make_storyboard(), make_analysis(), RunFolder(tmp_path), 24, WIDTH, HEIGHT)
    assert result.failed_shots == {} and renderer.workers == 1
    assert [count_frames(tmp_path / clip.path) for clip in result.clips] == [clip.frames for clip in result.clips]


@pytest.mark.slow  # 24 encodes: 2-8 s
def test_the_same_frames_encode_to_the_same_clip_while_other_threads_keep_the_cpu_busy(tmp_path: Path):
    """A clip's hash names one picture: x264 gives the same bytes for the same frames every time.

    Its AVX-512 code did not (on this project's AVX-512 VMs, 6 of 6 clips came out different at
    least once in 8 encodes under load, up to 87 levels apart when decoded); ClipWriter leaves it out.
    """
    import hashlib
    import threading

    from music2video.videofile import ClipWriter

    renderer, analysis = AnimaticRenderer(WIDTH, HEIGHT, 24, workers=1), make_analysis()
    shots = [make_shot(i, 0.0, 2.0, motif, camera="handheld") for i, motif in enumerate(("particles", "rings", "grid", "waves"))]
    clips = [[planes.copy() for planes in renderer.frames(shot, make_storyboard([shot]), analysis, 48, "yuv420p")] for shot in shots]
    stop = threading.Event()

    def keep_busy() -> None:
        matrix = np.random.default_rng(0).random((300, 300))
        while not stop.is_set():
            matrix @ matrix

    busy = [threading.Thread(target=keep_busy, daemon=True) for _ in range(2)]
    for thread in busy:
        thread.start()
    digests: list[set[str]] = [set() for _ in clips]
    try:
        for attempt in range(6):
            for frames, seen in zip(clips, digests, strict=True):
                path = tmp_path / f"clip-{attempt}.mp4"
                with ClipWriter(path, WIDTH, HEIGHT, 24) as writer:
                    for planes in frames:
                        writer.write_yuv420p(planes)
                seen.add(hashlib.sha256(path.read_bytes()).hexdigest())
    finally:
        stop.set()
        for thread in busy:
            thread.join()
    assert [len(seen) for seen in digests] == [1] * len(clips)


def test_encoders_leave_out_x264_avx512_code_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch):
    import music2video.videofile as videofile

    monkeypatch.setattr(videofile, "_cpu_flags", lambda: {"sse4_2", "avx", "avx2", "fma", "bmi1", "bmi2", "avx512f"})
    assert videofile.encoder_options()["x264-params"] == "me=dia:subme=1:asm=AVX2"
    assert videofile.encoder_options({"x264-params": ""})["x264-params"] == "asm=AVX2"
    monkeypatch.setattr(videofile, "_cpu_flags", lambda: {"sse4_2", "avx", "avx2", "fma", "bmi1", "bmi2"})
    assert videofile.encoder_options()["x264-params"] == "me=dia:subme=1"  # x264's own choice: it has no AVX-512 to use


def test_a_clip_does_not_depend_on_the_cores_the_encoder_may_use(tmp_path: Path):
    """x264 cuts each frame into one slice per core it may use, unless told: pinned to one core,
    the same frames must still give the same clip."""
    import os

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a Linux process allowed on two cores or more")
    from music2video.videofile import ClipWriter

    renderer = AnimaticRenderer(320, 180, 24, workers=1)
    shot = make_shot(0, 0.0, 0.5, "rings")
    frames = [planes.copy() for planes in renderer.frames(shot, make_storyboard([shot]), make_analysis(), 6, "yuv420p")]

    def encode(path: Path) -> bytes:
        with ClipWriter(path, 320, 180, 24) as writer:
            for planes in frames:
                writer.write_yuv420p(planes)
        return path.read_bytes()

    allowed = os.sched_getaffinity(0)
    everywhere = encode(tmp_path / "all-cores.mp4")
    os.sched_setaffinity(0, {min(allowed)})
    try:
        one_core = encode(tmp_path / "one-core.mp4")
    finally:
        os.sched_setaffinity(0, allowed)
    assert one_core == everywhere
