"""Defined outcomes when runs collide and file systems fail.

One run per run folder (a lock naming its owner; stale locks of dead processes taken over),
temporary files that only their owner or a later run finding the owner dead removes, places
that cannot be written reported in one line before any work, and a full disk that stops the run
with finished clips kept.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import av
import pytest
import soundfile as sf

from music2video import make_video
from music2video.demo import synthesize_demo_song
from music2video.errors import Music2VideoError, RunFolderBusy, WriteError
from music2video.runfolder import LOCK_FILE, RunFolder, RunLock, host_tag, owner_tag
from test_cli import _one_line_error, cli_subprocess

SONG_S = 10.0
SMALL = {"pipeline": "preview", "width": 96, "height": 54, "fps": 8.0}
SMALL_FLAGS = ["--pipeline", "preview", "--resolution", "96x54", "--fps", "8"]


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("song") / "song.wav"
    synthesize_demo_song(path, duration_s=SONG_S)
    return path


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def assert_valid_video(path: Path, song: Path) -> None:
    """An H.264 + AAC MP4 as long as the song (whose length the synthesiser rounds to whole bars)."""
    duration_s = sf.info(str(song)).duration
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == pytest.approx(duration_s * SMALL["fps"], abs=1)


# -- the lock ------------------------------------------------------------------------------------


def test_a_busy_run_folder_names_its_owner(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run.locked():
        record = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["host"] == host_tag() and record["started"]
        # A second opener (another open file description, as another process has) is refused.
        with pytest.raises(RunFolderBusy, match=rf"in use by another music2video run \(pid {os.getpid()} on "):
            RunLock(tmp_path / "run" / LOCK_FILE).acquire(wait=False)
    assert not (tmp_path / "run" / LOCK_FILE).exists()  # released: the folder is left as it was


def test_wait_waits_for_the_owner_to_finish(tmp_path):
    holder = RunLock(tmp_path / LOCK_FILE)
    holder.acquire()
    released_at: list[float] = []

    def release_soon() -> None:
        time.sleep(0.6)
        released_at.append(time.monotonic())
        holder.release()

    thread = threading.Thread(target=release_soon)
    thread.start()
    waiter = RunLock(tmp_path / LOCK_FILE)
    waiter.acquire(wait=True)
    got_it_at = time.monotonic()
    thread.join()
    assert released_at and got_it_at >= released_at[0]
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    waiter.release()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    pid = dead_pid()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": host_tag(), "started": "2026-01-01T00:00:00+00:00"}))
    with caplog.at_level("WARNING"), RunFolder(tmp_path).locked():
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"taking over the lock of pid {pid}" in caplog.text


def test_a_lock_recorded_by_another_host_is_honoured(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(RunFolderBusy, match="pid 1 on elsewhere.*delete"):
        with RunFolder(tmp_path).locked():
            pass


def test_the_lock_is_released_on_an_exception(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(ValueError), run.locked():
        raise ValueError("a stage failed")
    assert not (tmp_path / LOCK_FILE).exists()
    with run.locked():  # and can be taken again at once
        pass


def test_sigterm_releases_the_lock_and_removes_the_owners_temporaries(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from music2video.runfolder import RunFolder, atomic_path
        run = RunFolder(Path({str(tmp_path)!r}))
        with run.locked():
            with atomic_path(run.path("big.json")) as tmp:
                tmp.write_text("half")
                print("ready", flush=True)
                time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    assert (tmp_path / LOCK_FILE).exists() and list(tmp_path.glob(".big.*.tmp.json"))
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no lock, no temporary, no big.json


# -- temporaries -------------------------------------------------------------------------------


def test_temporaries_carry_their_owner_and_only_dead_owners_lose_them(tmp_path):
    mine = tmp_path / f".audio.{owner_tag()}.abc.tmp.wav"
    other_host = tmp_path / f".audio.pid{dead_pid()}-elsewhere.abc.tmp.wav"
    dead = tmp_path / "clips" / f".shot-001-x.pid{dead_pid()}-{host_tag()}.abc.tmp.mp4"
    legacy = tmp_path / ".storyboard.abc.tmp.json"  # from a version without owners or locks
    dead.parent.mkdir()
    for path in (mine, other_host, dead, legacy):
        path.write_text("x")
    run = RunFolder(tmp_path)  # opening deletes nothing: report and evaluate open folders too
    assert all(path.exists() for path in (mine, other_host, dead, legacy))
    with run.locked():
        assert mine.exists() and other_host.exists()  # a live owner, an owner we cannot check
        assert not dead.exists() and not legacy.exists()


# -- two real processes on one folder ---------------------------------------------------------


@pytest.mark.slow
def test_two_runs_racing_on_one_folder_leave_one_valid_video(song, tmp_path):
    out = tmp_path / "race.mp4"
    command = [sys.executable, "-m", "music2video", str(song), "-o", str(out), *SMALL_FLAGS]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in results)
    for code, stdout, stderr in results:
        assert "Traceback" not in stderr, stderr
        if code == 1:  # the loser says who holds the folder, in one line
            _one_line_error(subprocess.CompletedProcess(command, code, stdout, stderr), "in use by another music2video run", "pid")
    assert codes in ([0, 0], [0, 1]), results
    assert_valid_video(out, song)
    assert not (tmp_path / "race.music2video" / LOCK_FILE).exists()


@pytest.mark.slow
def test_a_second_run_that_waits_reuses_the_first_runs_work(song, tmp_path):
    out = tmp_path / "wait.mp4"
    command = [sys.executable, "-m", "music2video", str(song), "-o", str(out), *SMALL_FLAGS, "--wait"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "wait.music2video" / LOCK_FILE
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, first_err + second.stderr
    assert "Traceback" not in first_err + second.stderr
    # run.json is the second run's: it rendered nothing, the first run's clips were reused.
    stages = json.loads((tmp_path / "wait.music2video" / "run.json").read_text())["stages"]
    assert [stage["reused"] for stage in stages if stage["name"] == "render"] == [True]
    assert_valid_video(out, song)


# -- places that cannot be written -------------------------------------------------------------


def test_workdir_that_is_a_file(song, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    done = cli_subprocess(song, "-o", tmp_path / "x.mp4", "--workdir", blocker, *SMALL_FLAGS)
    _one_line_error(done, str(blocker), "is a file")
    assert blocker.read_text() == "mine"


def test_workdir_under_a_file(song, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    done = cli_subprocess(song, "-o", tmp_path / "x.mp4", "--workdir", blocker / "run", *SMALL_FLAGS)
    _one_line_error(done, str(blocker / "run"), f"under {blocker}, which is a file")


def test_output_where_no_file_can_be_made(song, tmp_path):
    with pytest.raises(Music2VideoError, match="cannot write /proc/x.mp4: /proc is not writable"):
        make_video(song, "/proc/x.mp4", workdir=tmp_path / "run", **SMALL)
    with pytest.raises(Music2VideoError, match="is a folder"):
        make_video(song, tmp_path, workdir=tmp_path / "run", **SMALL)
    assert not (tmp_path / "run").exists()  # refused before anything was made


@pytest.fixture
def mount_point(tmp_path):
    """Mount something at a fresh folder (root only); unmounted after the test."""
    mounted: list[Path] = []

    def mount(*arguments: str) -> Path:
        target = tmp_path / f"mount{len(mounted)}"
        target.mkdir()
        done = subprocess.run(["mount", *arguments, str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def read_only_folder(mount_point, tmp_path) -> Path:
    """A folder that even root cannot write to: a read-only bind mount."""
    source = tmp_path / "source"
    source.mkdir()
    folder = mount_point("--bind", str(source))
    done = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
    return folder


def test_output_into_a_read_only_folder_fails_before_any_work(song, tmp_path, mount_point):
    folder = read_only_folder(mount_point, tmp_path)
    run = tmp_path / "run"
    done = cli_subprocess(song, "-o", folder / "x.mp4", "--workdir", run, *SMALL_FLAGS)
    _one_line_error(done, f"cannot write {folder / 'x.mp4'}", "read-only")
    assert not (run / "audio.json").exists()  # stopped before decoding, not at the final rename


def test_a_run_folder_on_a_read_only_file_system(song, tmp_path, mount_point):
    folder = read_only_folder(mount_point, tmp_path)
    with pytest.raises(WriteError, match=f"cannot create the run folder {folder / 'run'}.*Read-only"):
        make_video(song, tmp_path / "x.mp4", workdir=folder / "run", **SMALL)


# -- a full disk -------------------------------------------------------------------------------


def test_a_disk_too_small_for_the_run_is_refused_before_any_work(song, tmp_path, mount_point):
    disk = mount_point("-t", "tmpfs", "-o", "size=2m", "tmpfs")
    with pytest.raises(WriteError, match=f"not enough free space for the run folder {disk / 'run'}"):
        make_video(song, tmp_path / "x.mp4", workdir=disk / "run", **SMALL)
    assert sorted(path.name for path in (disk / "run").iterdir()) == []


def test_a_full_disk_stops_rendering_and_keeps_finished_clips(song, tmp_path, mount_point, monkeypatch):
    """A real ENOSPC on a small tmpfs, past the up-front check (which the estimate could miss)."""
    disk = mount_point("-t", "tmpfs", "-o", "size=8m", "tmpfs")
    run_folder = disk / "run"
    make_video(song, tmp_path / "x.mp4", workdir=run_folder, until="write", **SMALL)
    # Leave room for about two clips, then fill the rest of the disk.
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 40_000))
    monkeypatch.setattr("music2video.pipeline.check_free_space", lambda *args: None)
    with pytest.raises(WriteError, match="the disk is full writing .*clips.*finished, and they are kept") as raised:
        make_video(song, tmp_path / "x.mp4", workdir=run_folder, **SMALL)
    assert "rendering stopped with" in str(raised.value)
    clips = sorted(path.name for path in (run_folder / "clips").iterdir())
    assert not any("failed" in name or ".tmp" in name for name in clips), clips  # no stand-ins, no leftovers
    assert not (run_folder / LOCK_FILE).exists()
    # Room again: the same command resumes and keeps what was finished.
    filler.unlink()
    kept = {name: (run_folder / "clips" / name).stat().st_mtime_ns for name in clips}
    result = make_video(song, tmp_path / "x.mp4", workdir=run_folder, **SMALL)
    assert all((run_folder / "clips" / name).stat().st_mtime_ns == stamp for name, stamp in kept.items())
    assert_valid_video(result.video_path, song)


def test_an_injected_enospc_stops_after_the_first_clip(song, tmp_path, monkeypatch):
    """Where no tmpfs can be mounted: the disk fills after the first clip."""
    from music2video.render.animatic import AnimaticRenderer

    original = AnimaticRenderer.render_shot
    calls = []

    def render_until_full(self, shot, storyboard, analysis, frame_count, output):
        calls.append(shot.id)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(output))
        return original(self, shot, storyboard, analysis, frame_count, output)

    monkeypatch.setattr(AnimaticRenderer, "render_shot", render_until_full)
    with pytest.raises(WriteError, match="rendering stopped with 1 of"):
        make_video(song, tmp_path / "x.mp4", **SMALL)
    assert len(calls) == 2  # stopped at the full disk, not shot after shot
    clips = list((tmp_path / "x.music2video" / "clips").iterdir())
    assert len(clips) == 1 and "failed" not in clips[0].name
