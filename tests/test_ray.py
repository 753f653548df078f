"""The Ray executor on a local two-CPU cluster (loopback only), with the animatic renderer.

One ``ray.init`` serves the whole module (about 5 s). Checked here: the same frames and clip
names as the local executor, a worker killed in the middle of a shot, a run resumed across
executors, and ``music2video batch`` with one broken song among good ones.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'music2video[ray]')")

from music2video.artifacts import Analysis, Section, Storyboard, StoryboardShot, StyleBible  # noqa: E402
from music2video.errors import Music2VideoError  # noqa: E402
from music2video.render import LOCAL_WORKER, RENDER_ARTIFACT, render_storyboard  # noqa: E402
from music2video.render.animatic import AnimaticRenderer  # noqa: E402
from music2video.render.executors import RayExecutor  # noqa: E402
from music2video.runfolder import RunFolder, pid_alive, temporary_owner  # noqa: E402
from music2video.settings import RaySettings  # noqa: E402

WIDTH, HEIGHT, FPS = 64, 36, 12.0
SHOT_S = 1.0
SHOTS = 6
MOTIFS = ["grid", "rays", "ribbons", "particles", "rings", "waves"]


def loopback_ray_env(home: Path) -> dict[str, str]:
    """What keeps a local Ray cluster on this machine (see DESIGN.md): loopback, no usage
    statistics or cloud probes, no token; HOME holding a local-provider bootstrap file."""
    (home / "ray_bootstrap_config.yaml").write_text("provider: {type: local}\n")
    return {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "HOME": str(home),
    }


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One local two-CPU Ray cluster for the module."""
    home = Path(tempfile.mkdtemp(prefix="m2v-ray-home-"))
    env = loopback_ray_env(home)
    saved = {name: os.environ.get(name) for name in env}
    # Short: Ray's socket paths must stay under 108 bytes.
    temp = tempfile.mkdtemp(prefix="m2vray", dir="/tmp")
    # Test renderers defined in this module travel to the workers by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    os.environ.update(env)  # Ray's processes inherit it; HOME only for as long as they start
    try:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False, logging_level=logging.WARNING)
    finally:
        _restore({"HOME": saved["HOME"]})
    try:
        yield
    finally:
        ray.shutdown()
        _restore(saved)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def make_analysis(duration_s: float) -> Analysis:
    beats = [i * 0.5 for i in range(int(duration_s * 2))]
    return Analysis(
        duration_s=duration_s,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=beats,
        downbeats_s=beats[::4],
        sections=[Section(index=0, start_s=0.0, end_s=duration_s, label="A", role="verse", energy=0.5)],
        curve_rate_hz=10.0,
        energy=[0.5] * int(duration_s * 10),
        brightness=[0.5] * int(duration_s * 10),
        onset_strength=[0.5] * int(duration_s * 10),
    )


def make_storyboard(count: int = SHOTS) -> Storyboard:
    palette = ["#0d1b2a", "#415a77", "#e0a458"]
    shots = [
        StoryboardShot(
            id=f"shot-{i + 1:03d}", start_s=i * SHOT_S, end_s=(i + 1) * SHOT_S, section_index=0, scene="s", prompt="p",
            seed=i, palette=palette, motif=MOTIFS[i % len(MOTIFS)], camera="push in",
        )
        for i in range(count)
    ]  # fmt: skip
    return Storyboard(writer="t", title="t", concept="c", style=StyleBible(look="l", palette=palette), sections=[], shots=shots)


def clip_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def render(root: Path, executor=None, renderer=None, shots: int = SHOTS, progress=None):
    """render_storyboard, then clips.json saved as the pipeline saves it."""
    kwargs = {"progress": progress} if progress else {}
    result = render_storyboard(
        renderer or AnimaticRenderer(WIDTH, HEIGHT, FPS, workers=1),
        make_storyboard(shots),
        make_analysis(SHOTS * SHOT_S),
        RunFolder(root),
        FPS,
        WIDTH,
        HEIGHT,
        executor=executor,
        **kwargs,
    )
    RunFolder(root).save(RENDER_ARTIFACT, result)
    return result


@pytest.fixture(scope="module")
def local_clips(tmp_path_factory) -> dict[str, np.ndarray]:
    """The local executor's clips, by file name (which carries the shot's hash)."""
    root = tmp_path_factory.mktemp("local")
    result = render(root)
    return {Path(clip.path).name: clip_frames(root / clip.path) for clip in result.clips}


def assert_same_clips(root: Path, result, local_clips: dict[str, np.ndarray]) -> None:
    """Same clip names (the hashes), frame counts and decoded frames as the local executor's.

    Exactly: x264 encodes the same frames to the same bytes (ClipWriter leaves out its AVX-512
    code, which did not), so any difference is a real one.
    """
    assert not result.failed_shots
    assert sorted(Path(clip.path).name for clip in result.clips) == sorted(local_clips)
    for clip in result.clips:
        ours, theirs = clip_frames(root / clip.path), local_clips[Path(clip.path).name]
        assert ours.shape == theirs.shape, (clip.shot_id, ours.shape, theirs.shape)
        assert np.array_equal(ours, theirs), (clip.shot_id, np.argwhere(ours != theirs)[:3], np.abs(ours.astype(int) - theirs).max())


def test_ray_renders_the_same_clips_as_the_local_executor(ray_session, local_clips, tmp_path):
    with RayExecutor(RaySettings(workers=2)) as executor:
        result = render(tmp_path, executor)
        assert len(executor.actors) == 2
    assert_same_clips(tmp_path, result, local_clips)
    workers = {time.worker for time in result.shot_times}
    assert len(workers) == 2 and LOCAL_WORKER not in workers  # both actors took shots
    assert [time.shot_id for time in result.shot_times] == [shot.id for shot in make_storyboard().shots]


class SlowOnce(AnimaticRenderer):
    """Logs every shot it starts; the first attempt at ``slow_shot`` hangs until its worker is killed."""

    def __init__(self, log_file: Path, slow_shot: str):
        super().__init__(WIDTH, HEIGHT, FPS, workers=1)
        self.log_file, self.slow_shot = log_file, slow_shot

    def render_shot(self, shot, storyboard, analysis, frame_count, output):
        with open(self.log_file, "a") as log:
            log.write(f"{shot.id} {os.getpid()}\n")
        marker = self.log_file.with_suffix(".started")
        if shot.id == self.slow_shot and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(60)  # the test kills this worker long before
        super().render_shot(shot, storyboard, analysis, frame_count, output)


def test_a_worker_killed_mid_shot_loses_only_that_shot(ray_session, local_clips, tmp_path):
    attempts = tmp_path / "attempts.log"
    run_root = tmp_path / "run"
    killed: list[int] = []
    with RayExecutor(RaySettings(workers=2, max_restarts=1, max_task_retries=1)) as executor:

        def kill_when_started() -> None:
            marker = attempts.with_suffix(".started")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                actor = executor.actor_rendering("shot-003")
                if marker.exists() and actor is not None:
                    killed.append(int(marker.read_text()))
                    ray.kill(actor, no_restart=False)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_started)
        killer.start()
        result = render(run_root, executor, SlowOnce(attempts, "shot-003"))
        killer.join()
    assert killed, "the slow shot never started"
    assert_same_clips(run_root, result, local_clips)
    started = [line.split() for line in attempts.read_text().splitlines()]
    shots = [shot for shot, _ in started]
    assert shots.count("shot-003") == 2  # the killed attempt and its retry
    assert sorted(set(shots)) == sorted(shot.id for shot in make_storyboard().shots)
    assert all(shots.count(shot) == 1 for shot in set(shots) - {"shot-003"})  # nothing else re-rendered
    retry_pid = next(int(pid) for shot, pid in started[::-1] if shot == "shot-003")
    assert retry_pid != killed[0]  # the retry ran in a new worker process


class BackgroundWriter(AnimaticRenderer):
    """Writes each clip in a background thread, as the diffusers renderer does (``ended_writes``,
    ``finish``), and logs "generate SHOT PID" and "written SHOT PID" to ``log_file``.

    A clip's write waits until this process starts generating its next shot, or until its last
    clips are asked for (``ended_writes(wait=True)``): a worker that waited for each clip before
    its next shot would log every "written" before the next "generate". ``fail_shot``'s write
    raises; the first write of ``hang_shot`` hangs until the test kills its worker.
    """

    def __init__(self, log_file: Path, fail_shot: str = "", hang_shot: str = ""):
        super().__init__(WIDTH, HEIGHT, FPS, workers=1)
        self.log_file, self.fail_shot, self.hang_shot = log_file, fail_shot, hang_shot

    def __enter__(self):
        from music2video.render.clip_writes import ClipWrites

        # The diffusers renderer's bookkeeping; no limit on writes waiting, so a hanging write
        # never holds up the next shot's generation here.
        self._writes = ClipWrites(max_pending=None)
        self._writes.open()
        self._release: threading.Event | None = None
        return super().__enter__()

    def __exit__(self, *exc_info):
        self._writes.close()
        return super().__exit__(*exc_info)

    def _log(self, event: str, shot_id: str) -> None:
        with open(self.log_file, "a") as log:
            log.write(f"{event} {shot_id} {os.getpid()}\n")

    def render_shot(self, shot, storyboard, analysis, frame_count, output):
        self._log("generate", shot.id)
        if self._release is not None:
            self._release.set()  # the clip before may be written now
        self._release = threading.Event()
        self._writes.submit(shot.id, self._write, self._release, shot, storyboard, analysis, frame_count, output)

    def _write(self, release, shot, storyboard, analysis, frame_count, output):
        release.wait(timeout=60)
        marker = self.log_file.with_suffix(".hanging")
        if shot.id == self.hang_shot and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(60)  # the test kills this worker long before
        if shot.id == self.fail_shot:
            raise Music2VideoError(f"cannot encode {shot.id}: the encoder gave up")
        super().render_shot(shot, storyboard, analysis, frame_count, output)
        self._log("written", shot.id)

    def ended_writes(self, wait: bool = False) -> dict[str, str | None]:
        if wait and self._release is not None:
            self._release.set()
        return self._writes.ended(wait)

    def finish(self) -> dict[str, str]:
        if self._release is not None:
            self._release.set()
        return self._writes.failures()


def events(log_file: Path) -> list[tuple[str, str, int]]:
    return [(event, shot, int(pid)) for event, shot, pid in (line.split() for line in log_file.read_text().splitlines())]


def clips_on_disk_when_reported(root: Path) -> tuple[list[tuple[str, bool]], object]:
    """A progress callback, and what it saw: (shot, its clip on disk) for each shot reported done."""
    seen: list[tuple[str, bool]] = []

    def progress(done, total, message=""):
        if message.startswith("rendered "):
            shot = message.split()[1]
            seen.append((shot, any((root / "clips").glob(f"{shot}-*.mp4"))))

    return seen, progress


def test_ray_workers_write_each_clip_while_rendering_the_next_and_report_it_once_written(ray_session, local_clips, tmp_path):
    log_file, root = tmp_path / "events.log", tmp_path / "run"
    seen, progress = clips_on_disk_when_reported(root)
    with RayExecutor(RaySettings(workers=2)) as executor:
        result = render(root, executor, BackgroundWriter(log_file), progress=progress)
    assert_same_clips(root, result, local_clips)
    assert sorted(seen) == [(shot.id, True) for shot in make_storyboard().shots]  # each reported once, on disk
    logged = events(log_file)
    by_worker = {pid: [(event, shot) for event, shot, p in logged if p == pid] for _, _, pid in logged}
    assert max(sum(event == "generate" for event, _ in lines) for lines in by_worker.values()) >= 2
    for lines in by_worker.values():
        generated = [shot for event, shot in lines if event == "generate"]
        for earlier, later in zip(generated, generated[1:]):
            # The worker went on to its next shot before the clip of the one before was written.
            assert lines.index(("generate", later)) < lines.index(("written", earlier)), lines


def test_a_clip_that_fails_to_write_on_ray_fails_its_shot_alone(ray_session, tmp_path):
    root = tmp_path / "run"
    seen, progress = clips_on_disk_when_reported(root)
    with RayExecutor(RaySettings(workers=2)) as executor:
        result = render(root, executor, BackgroundWriter(tmp_path / "events.log", fail_shot="shot-002"), progress=progress)
    assert result.failed_shots == {"shot-002": "cannot encode shot-002: the encoder gave up"}
    assert sorted(seen) == [(shot.id, shot.id != "shot-002") for shot in make_storyboard().shots]
    assert {clip.shot_id: Path(clip.path).name for clip in result.clips}["shot-002"] == "shot-002-failed.mp4"
    assert "shot-002" not in {time.shot_id for time in result.shot_times}


def test_a_worker_killed_while_writing_a_clip_renders_that_shot_again(ray_session, local_clips, tmp_path):
    log_file, root = tmp_path / "events.log", tmp_path / "run"
    marker = log_file.with_suffix(".hanging")
    seen, progress = clips_on_disk_when_reported(root)
    killed: list[int] = []

    def kill_when_hanging() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text():
                killed.append(int(marker.read_text()))
                os.kill(killed[0], 9)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_hanging)
    killer.start()
    with RayExecutor(RaySettings(workers=2, max_restarts=1, max_task_retries=1)) as executor:
        result = render(root, executor, BackgroundWriter(log_file, hang_shot="shot-002"), progress=progress)
    killer.join()
    assert killed, "the write never hung"
    assert_same_clips(root, result, local_clips)
    assert sorted(seen) == [(shot.id, True) for shot in make_storyboard().shots]  # each reported once, on disk
    logged = events(log_file)
    generated = [shot for event, shot, _ in logged if event == "generate"]
    assert generated.count("shot-002") == 2
    # Only shots whose clips the killed worker had not written yet were rendered again.
    written_by_killed = {shot for event, shot, pid in logged if event == "written" and pid == killed[0]}
    first_on_killed = {shot for event, shot, pid in logged if event == "generate" and pid == killed[0]}
    again = {shot for shot in generated if generated.count(shot) > 1}
    assert "shot-002" in again and again <= first_on_killed - written_by_killed
    assert all(generated.count(shot) <= 2 for shot in generated)


class CannotLoad(AnimaticRenderer):
    def __enter__(self):
        raise Music2VideoError("cannot load the tiny model from /nowhere: no such folder")


def test_a_model_that_no_worker_can_load_is_one_error_naming_why(ray_session, tmp_path):
    with RayExecutor(RaySettings(workers=2)) as executor, pytest.raises(Music2VideoError) as error:
        render(tmp_path, executor, CannotLoad(WIDTH, HEIGHT, FPS, workers=1))
    assert "every Ray worker died" in str(error.value)
    assert "cannot load the tiny model from /nowhere" in str(error.value)
    assert not list(tmp_path.glob("clips/*.mp4"))


def test_a_run_resumes_across_executors(ray_session, local_clips, tmp_path):
    # Half the shots locally (a run stopped half-way), the rest on Ray ...
    render(tmp_path, shots=SHOTS // 2)
    reports: list[str] = []
    with RayExecutor(RaySettings(workers=2)) as executor:
        on_ray = render(tmp_path, executor, progress=lambda done, total, message="": reports.append(message))
    assert_same_clips(tmp_path, on_ray, local_clips)
    by_shot = {time.shot_id: time.worker for time in on_ray.shot_times}
    first_half = [shot.id for shot in make_storyboard().shots[: SHOTS // 2]]
    assert all(by_shot[shot] == LOCAL_WORKER for shot in first_half)  # reused, with their local timing
    assert all(by_shot[shot] != LOCAL_WORKER for shot in by_shot if shot not in first_half)
    assert sum(message.startswith("rendered") for message in reports) == SHOTS - SHOTS // 2
    # ... and back: the local executor finds every clip done and renders nothing.
    again: list[str] = []
    local = render(tmp_path, progress=lambda done, total, message="": again.append(message))
    assert not [message for message in again if message.startswith("rendered")]
    assert local.shot_times == on_ray.shot_times
    # The report shows who rendered what.
    from music2video.report import write_report

    page = write_report(tmp_path).read_text(encoding="utf-8")
    workers = page[page.index("Render workers") :]
    for time_ in on_ray.shot_times:
        assert f"<td>{time_.shot_id}</td><td>{time_.worker}</td>" in workers


@pytest.mark.slow
def test_batch_renders_every_good_song_and_names_the_broken_one(ray_session, tmp_path, monkeypatch, capsys):
    from music2video.cli import main
    from music2video.demo import synthesize_demo_song

    for name in ("one", "two"):
        synthesize_demo_song(tmp_path / f"{name}.wav", duration_s=8.0, seed=len(name))
    (tmp_path / "broken.mp3").write_text("not a song")
    songs = tmp_path / "songs.txt"
    songs.write_text("one.wav\nbroken.mp3\n# a comment\ntwo.wav\n")
    out = tmp_path / "videos"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["batch", str(songs), "--output-dir", str(out), "--executor", "ray", "--pipeline", "preview",
              "--resolution", "64x36", "--fps", "12"])  # fmt: skip
    assert exit_.value.code == 1  # one song failed ...
    for name in ("one", "two"):  # ... and the others were made all the same
        assert (out / f"{name}.mp4").stat().st_size > 0
        assert (out / f"{name}.music2video" / "clips.json").exists()
    err = capsys.readouterr().err
    assert "broken.mp3" in err and "1 of 3 songs failed" in err
    table = err[err.index("┏") : err.index("error:")]  # the summary table
    rows = [line for line in table.splitlines() if ".wav" in line or ".mp3" in line]
    assert [("done" in row, "failed" in row) for row in rows] == [(True, False), (False, True), (True, False)]
    assert "broken.mp3" in rows[1]


@pytest.mark.slow
def test_a_driver_killed_mid_render_resumes_with_the_local_executor(tmp_path):
    from music2video import make_video
    from music2video.demo import synthesize_demo_song

    song, output = tmp_path / "song.wav", tmp_path / "song.mp4"
    synthesize_demo_song(song, duration_s=30.0)
    clips = tmp_path / "song.music2video" / "clips"
    home = tmp_path / "home"
    home.mkdir()
    # Large frames, so that the render lasts long enough to be killed in the middle.
    look = ["--pipeline", "preview", "--resolution", "640x360", "--fps", "24"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "music2video", "render", str(song), "-o", str(output), "--executor", "ray", *look],
        env={**os.environ, **loopback_ray_env(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not finished_clips(clips) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        driver.kill()
        _, err = driver.communicate(timeout=60)
    assert driver.returncode == -9, err.decode()[-2000:]  # killed, not finished or failed
    # Ray stops the killed driver's workers shortly after it; a worker's half-written clip is
    # removed by the next run that finds its owner dead.
    deadline = time.monotonic() + 60
    while any(pid_alive(temporary_owner(tmp)[0]) for tmp in clips.glob(".*tmp*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    before = {path.name: path.stat().st_mtime_ns for path in finished_clips(clips)}
    assert before

    result = make_video(song, output, until="render", pipeline="preview", width=640, height=360, fps=24)
    after = {Path(clip.path).name for clip in result.render.clips}
    assert not result.render.failed_shots
    assert set(before) < after  # the killed run's clips are kept, the rest rendered now
    assert all((clips / name).stat().st_mtime_ns == mtime for name, mtime in before.items())  # reused, not redone
    rendered_now = {time.shot_id for time in result.render.shot_times if time.worker == LOCAL_WORKER}
    assert len(rendered_now) == len(after) - len(before)
    assert not list(clips.glob(".*tmp*"))  # a killed worker's half-written clip was removed


def finished_clips(folder: Path) -> list[Path]:
    return [path for path in folder.glob("shot-*.mp4")]  # temporaries start with a dot


class CountingLoads:
    """Mixed into a renderer: each model load (``__enter__``) appends the process id to a file."""

    load_log: Path

    def __enter__(self):
        with open(self.load_log, "a") as log:
            log.write(f"{os.getpid()}\n")
        return super().__enter__()


@pytest.mark.slow
def test_tiny_wan_on_ray_loads_once_per_worker_and_matches_local(ray_session, tmp_path):
    """The diffusers renderer (a tiny random Wan) on two actors: each loads the pipeline once for
    all its shots, and the clips match the local executor's."""
    pytest.importorskip("diffusers")
    from tiny_video_models import build_tiny_wan

    from music2video.render.diffusion import DiffusersRenderer
    from music2video.render.video_models import resolve_video_model
    from music2video.settings import VideoModelSettings

    class CountingWan(CountingLoads, DiffusersRenderer):
        pass

    folder = build_tiny_wan(tmp_path / "tiny-wan")
    entry = dataclasses.replace(resolve_video_model(str(folder)), buckets=((32, 32),))
    settings = VideoModelSettings(model=str(folder), steps=2, device="cpu")

    def renderer(log_name: str) -> CountingWan:
        made = CountingWan(settings, 32, 32, 16.0, video_model=entry)
        made.load_log = tmp_path / log_name
        return made

    shots = [
        StoryboardShot(
            id=f"shot-{i + 1:03d}", start_s=i * 0.5, end_s=(i + 1) * 0.5, section_index=0, scene="a city",
            prompt=f"a neon city, view {i}", seed=i, palette=["#102030"], motif="neon",
        )
        for i in range(4)
    ]  # fmt: skip
    storyboard = Storyboard(writer="t", title="t", concept="c", style=StyleBible(look="l", palette=["#102030"]), sections=[], shots=shots)
    analysis = make_analysis(2.0)

    def render_wan(root: Path, made, executor=None):
        return render_storyboard(made, storyboard, analysis, RunFolder(root), 16.0, 32, 32, executor=executor)

    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    local = render_wan(local_root, renderer("local.log"))
    local_clips = {Path(clip.path).name: clip_frames(local_root / clip.path) for clip in local.clips}
    with RayExecutor(RaySettings(workers=2)) as executor:
        on_ray = render_wan(ray_root, renderer("ray.log"), executor)
    assert_same_clips(ray_root, on_ray, local_clips)
    loads = (tmp_path / "ray.log").read_text().split()
    assert len(loads) == len(set(loads)) == 2  # one load per actor, in two processes, for 4 shots
    assert len({time.worker for time in on_ray.shot_times}) == 2
