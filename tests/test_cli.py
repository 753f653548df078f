"""The CLI end to end on the demo song: a real MP4, exact cuts, resume, edits, bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from music2video.artifacts import Storyboard
from music2video.cli import main

SMALL = ["--resolution", "128x72", "--fps", "12", "--pipeline", "preview"]


def run_cli(*args: str) -> None:
    main([str(arg) for arg in args])


def cli_subprocess(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed entry point in a child process: what a user's shell sees."""
    return subprocess.run(
        [sys.executable, "-m", "music2video", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def preview_video(demo_song, tmp_path_factory):
    """The demo song made into a preview video once for the checks below."""
    song, truth = demo_song
    out = tmp_path_factory.mktemp("cli") / "demo video.mp4"
    run_cli(song, "-o", out, *SMALL)
    return song, truth, out


@pytest.mark.slow
def test_video_has_h264_aac_and_the_songs_duration(preview_video):
    song, truth, out = preview_video
    duration_s = sf.info(str(song)).duration
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert video.average_rate == Fraction(12)
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == round(duration_s * 12)  # duration within one frame of the song
    with av.open(str(out)) as container:
        audio_s = float(container.streams.audio[0].duration * container.streams.audio[0].time_base)
    assert abs(audio_s - duration_s) < 1 / 12 + 0.05  # AAC priming aside, the song's length
    head = out.read_bytes()[:65536]
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    assert moov != -1 and (mdat == -1 or moov < mdat)  # faststart: the index comes first


@pytest.mark.slow
def test_cuts_sit_on_the_frame_nearest_their_beat(preview_video):
    song, truth, out = preview_video
    run = out.with_name(out.stem + ".music2video")
    plan = json.loads((run / "shots.json").read_text())
    video = json.loads((run / "video.json").read_text())
    analysis = json.loads((run / "analysis.json").read_text())
    beats = np.array(analysis["beats_s"] + [0.0])
    starts = [shot["start_s"] for shot in plan["shots"][1:]]
    assert video["cut_frames"] == [round(t * 12) for t in starts]
    for shot in plan["shots"][1:]:
        if shot["cut"] in ("downbeat", "beat", "section"):
            assert np.min(np.abs(beats - shot["start_s"])) < 1e-3 or shot["cut"] == "section"
    # Every section boundary is a cut.
    boundaries = [s["start_s"] for s in analysis["sections"][1:]]
    assert all(any(abs(b - t) < 1e-6 for t in starts) for b in boundaries)


@pytest.mark.slow
def test_rerun_reuses_every_stage(preview_video, capsys):
    song, truth, out = preview_video
    run = out.with_name(out.stem + ".music2video")
    clips_before = {p.name: p.stat().st_mtime_ns for p in (run / "clips").iterdir()}
    video_before = out.stat().st_mtime_ns
    report_before = (run / "report.html").stat().st_mtime_ns
    capsys.readouterr()
    run_cli(song, "-o", out, *SMALL)
    summary = json.loads((run / "run.json").read_text())
    assert all(stage["reused"] for stage in summary["stages"]), summary["stages"]
    assert {p.name: p.stat().st_mtime_ns for p in (run / "clips").iterdir()} == clips_before
    assert out.stat().st_mtime_ns == video_before
    assert (run / "report.html").stat().st_mtime_ns == report_before  # none of its inputs changed
    assert "nothing changed" in capsys.readouterr().err


@pytest.mark.slow
def test_editing_one_shot_rerenders_only_that_shot(demo_song, tmp_path):
    song, _ = demo_song
    out = tmp_path / "edit.mp4"
    run_cli(song, "-o", out, *SMALL)
    run = tmp_path / "edit.music2video"
    board = Storyboard.model_validate_json((run / "storyboard.json").read_text())
    before = {p.name: p.stat().st_mtime_ns for p in (run / "clips").iterdir()}
    data = json.loads((run / "storyboard.json").read_text())
    data["shots"][2]["motif"] = "tunnel" if data["shots"][2]["motif"] != "tunnel" else "rings"
    data["shots"][2]["prompt"] += " Now through a tunnel of light."
    (run / "storyboard.json").write_text(json.dumps(data, indent=2))

    run_cli(song, "-o", out, *SMALL)
    after = {p.name: p.stat().st_mtime_ns for p in (run / "clips").iterdir()}
    new = set(after) - set(before)
    assert len(new) == 1 and next(iter(new)).startswith(board.shots[2].id)
    assert all(after[name] == stamp for name, stamp in before.items())  # nothing else re-rendered
    assert "tunnel of light" in (run / "storyboard.json").read_text()  # the edit was kept


@pytest.mark.slow
def test_an_edit_that_breaks_the_storyboard_is_reported_not_overwritten(demo_song, tmp_path, capsys):
    song, _ = demo_song
    out = tmp_path / "broken.mp4"
    run_cli("storyboard", song, "-o", out)
    path = tmp_path / "broken.music2video" / "storyboard.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(song, "-o", out, *SMALL)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "storyboard.json was edited and is no longer valid" in " ".join(err.split())
    assert path.read_text().endswith(path.read_text()[-10:])  # still the person's file


@pytest.mark.slow
def test_a_killed_render_resumes_without_redoing_finished_shots(demo_song, tmp_path, monkeypatch):
    from music2video import make_video
    from music2video.render.animatic import AnimaticRenderer

    song, _ = demo_song
    out = tmp_path / "killed.mp4"
    original = AnimaticRenderer.render_shot
    rendered: list[str] = []

    def render_then_die(self, shot, *args, **kwargs):
        if len(rendered) == 3:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the fourth shot
        original(self, shot, *args, **kwargs)
        rendered.append(shot.id)

    monkeypatch.setattr(AnimaticRenderer, "render_shot", render_then_die)
    with pytest.raises(KeyboardInterrupt):
        make_video(song, out, pipeline="preview", width=128, height=72, fps=12)
    assert not out.exists()
    clips = tmp_path / "killed.music2video" / "clips"
    assert len(list(clips.glob("*.mp4"))) == 3 and not list(clips.glob(".*"))

    monkeypatch.setattr(AnimaticRenderer, "render_shot", original)
    second: list[str] = []
    monkeypatch.setattr(
        AnimaticRenderer, "render_shot", lambda self, shot, *a, **k: (second.append(shot.id), original(self, shot, *a, **k))
    )
    result = make_video(song, out, pipeline="preview", width=128, height=72, fps=12)
    assert not set(second) & set(rendered)
    assert len(second) == len(result.plan.shots) - 3
    assert out.exists()


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_an_estimate(demo_song, tmp_path):
    song, _ = demo_song
    done = cli_subprocess(song, "-o", tmp_path / "dry.mp4", "--dry-run", "--pipeline", "preview")
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert "shot-001" in text and "animatic" in text and "frames" in text
    assert not (tmp_path / "dry.mp4").exists()
    assert not (tmp_path / "dry.music2video" / "clips").exists()


def test_help_reads_well():
    done = cli_subprocess("--help")
    assert done.returncode == 0
    for command in ("make", "analyze", "storyboard", "render", "assemble", "demo-song"):
        assert command in done.stdout
    done = cli_subprocess("make", "--help")
    for flag in ("--pipeline", "--listener", "--writer", "--renderer", "--seed", "--resolution", "--fps", "--workdir", "--dry-run", "--config"):
        assert flag in done.stdout


@pytest.mark.slow
def test_config_file_and_environment_reach_the_run(demo_song, tmp_path, monkeypatch):
    song, _ = demo_song
    config = tmp_path / "m2v.toml"
    config.write_text('pipeline = "preview"\nwidth = 96\nheight = 64\n')
    monkeypatch.setenv("MUSIC2VIDEO_FPS", "10")
    out = tmp_path / "configured.mp4"
    run_cli(song, "-o", out, "--config", config)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height, stream.average_rate) == (96, 64, 10)


# -- bad and odd inputs through the CLI --------------------------------------------------------


def _one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr  # one line, and the last
    message = " ".join(done.stderr[done.stderr.index("error:") :].split())
    for word in words:
        assert word.lower() in message.lower(), message


def test_missing_file(tmp_path):
    _one_line_error(cli_subprocess(tmp_path / "nope.mp3", "-o", tmp_path / "x.mp4"), "no such file")


def test_empty_file(tmp_path):
    song = tmp_path / "empty.mp3"
    song.write_bytes(b"")
    done = cli_subprocess(song, "-o", tmp_path / "x.mp4", *SMALL)
    _one_line_error(done, "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp3"]  # nothing left behind


def test_not_audio(tmp_path):
    song = tmp_path / "notes.mp3"
    song.write_text("these are not the droids you are looking for\n" * 100)
    _one_line_error(cli_subprocess(song, "-o", tmp_path / "x.mp4", *SMALL), "notes.mp3")
    assert not (tmp_path / "x.mp4").exists()


def test_too_short(tmp_path):
    song = tmp_path / "blip.wav"
    sf.write(song, np.sin(np.linspace(0, 2000, 8820)).astype(np.float32), 22050)
    _one_line_error(cli_subprocess(song, "-o", tmp_path / "x.mp4", *SMALL), "at least 1 s")


def _assert_playable(out: Path, duration_s: float, fps: int = 12) -> None:
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        assert container.streams.audio
    assert frames == round(duration_s * fps)


@pytest.mark.slow
def test_silence_makes_a_calm_video_and_says_why(tmp_path):
    song = tmp_path / "silence.wav"
    sf.write(song, np.zeros(44100 * 6, np.float32), 44100)
    out = tmp_path / "silence.mp4"
    done = cli_subprocess(song, "-o", out, *SMALL)
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr.lower()
    _assert_playable(out, 6.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, rate, channels",
    [("six channels.wav", 48000, 6), ("telephone 8k.wav", 8000, 1), ("studio 192k.wav", 192000, 2), ("Mötley Crüe — ça va.wav", 44100, 2)],
)
def test_odd_inputs_make_correct_videos(tmp_path, demo_song, name, rate, channels):
    song_path, _ = demo_song
    samples, source_rate = sf.read(song_path, dtype="float32", always_2d=True)
    clip = samples[: source_rate * 5, 0]
    import librosa

    clip = librosa.resample(clip, orig_sr=source_rate, target_sr=rate)
    data = np.stack([clip * (0.5 + 0.1 * c) for c in range(channels)], axis=1)
    folder = tmp_path / "odd folder ü"
    folder.mkdir()
    song = folder / name
    sf.write(song, data, rate)
    out = folder / "vidéo.mp4"
    done = cli_subprocess(song, "-o", out, *SMALL)
    assert done.returncode == 0, done.stderr
    _assert_playable(out, len(clip) / rate)


@pytest.mark.slow
def test_the_api_stops_after_the_stage_asked_for(demo_song, tmp_path):
    from music2video import make_video

    song, _ = demo_song
    last: dict[str, tuple[int, int]] = {}  # each stage's last progress report: (done, total)

    class Recording:
        def stage(self, name):
            return lambda done, total, message="": last.__setitem__(name, (done, total))

    result = make_video(song, tmp_path / "api.mp4", pipeline="preview", width=128, height=72, fps=12, until="write", progress=Recording())
    assert result.storyboard is not None and result.video is None
    assert len(result.storyboard.shots) == len(result.plan.shots)
    assert last["write"] == (len(result.plan.shots), len(result.plan.shots))  # the bar ends full, not at 0/?
    shutil.rmtree(result.run_folder)


@pytest.mark.slow
def test_user_lyrics_reach_the_storyboard_and_the_subtitles(demo_song, tmp_path):
    song, _ = demo_song
    lrc = tmp_path / "words.lrc"
    lrc.write_text("[00:09.00]first line in the verse\n[00:21.50]here comes the chorus\n[00:33.00]second verse\n")
    out = tmp_path / "sung.mp4"
    run_cli(song, "-o", out, *SMALL, "--lyrics", lrc, "--subtitles", "soft")
    run = tmp_path / "sung.music2video"
    board = Storyboard.model_validate_json((run / "storyboard.json").read_text())
    # Each shot gets the words sung while it is on screen: a line across a cut is split at a word.
    sung = [shot for shot in board.shots if shot.lyrics]
    assert "here comes the chorus" in " ".join(shot.lyrics.replace(" / ", " ") for shot in sung)
    chorus_shots = [shot for shot in sung if {"comes", "chorus"} & set(shot.lyrics.split())]
    assert chorus_shots and all(shot.start_s < 33.0 and shot.end_s > 21.5 for shot in chorus_shots)
    assert "--> " in (run / "lyrics.srt").read_text()
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.subtitles] == ["mov_text"]
        assert container.streams.video and container.streams.audio
    _assert_playable(out, sf.info(str(song)).duration)
