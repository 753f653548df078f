"""The installed ``music2video`` script as a user types it: mistakes get one line and the right
exit code, and no input is ever written over. None of these runs the pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("music2video")  # the console script of this environment


def music2video(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"the console script is not installed beside {sys.executable}")
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def one_line(done: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The run failed with ``code`` and said so in one line (no traceback) holding ``words``."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def song(tmp_path: Path) -> Path:
    """A file standing for the user's song: only its bytes matter here, never its decoding."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"the user's only copy")
    return path


# -- never destroy an input -----------------------------------------------------------------


def test_output_that_is_the_song_is_refused(song):
    one_line(music2video(song, "-o", song), 1, "is the song itself", "--overwrite")
    assert song.read_bytes() == b"the user's only copy"


def test_the_default_output_in_the_songs_own_folder_is_refused(song):
    """``music2video clip.mp4`` in the clip's folder would write ./clip.mp4 over it."""
    one_line(music2video(song.name, cwd=song.parent), 1, "is the song itself")
    assert song.read_bytes() == b"the user's only copy"


def test_a_relative_path_or_a_symlink_to_the_song_is_refused(song, tmp_path):
    (tmp_path / "sub").mkdir()
    one_line(music2video(song, "-o", "sub/../clip.mp4", cwd=tmp_path), 1, "is the song itself")
    link = tmp_path / "sub" / "video.mp4"
    link.symlink_to(song)
    one_line(music2video(song, "-o", link), 1, "is the song itself")
    assert song.read_bytes() == b"the user's only copy" and link.is_symlink()


def test_any_other_existing_file_is_refused(song, tmp_path):
    holiday = tmp_path / "holiday.mp4"
    holiday.write_bytes(b"someone's holiday")
    one_line(music2video(song, "-o", holiday), 1, "holiday.mp4 exists and is not a video this run made", "--overwrite")
    assert holiday.read_bytes() == b"someone's holiday"


def test_overwrite_lets_the_run_go_on(song, tmp_path):
    holiday = tmp_path / "holiday.mp4"
    holiday.write_bytes(b"someone's holiday")
    done = music2video(song, "-o", holiday, "--overwrite", "--pipeline", "preview")
    # Past the output check, the run fails only because these bytes are not audio.
    assert done.returncode == 1 and "exists" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: ") and "not an audio" in done.stderr


def test_the_api_refuses_too(song):
    from music2video import make_video
    from music2video.errors import InputError

    with pytest.raises(InputError, match="is the song itself"):
        make_video(song, song, pipeline="preview")
    assert song.read_bytes() == b"the user's only copy"


# -- usage errors: one line, exit code 2 ------------------------------------------------------


def test_a_misspelt_flag_gets_a_did_you_mean(song):
    one_line(music2video(song, "--resolutoin", "640x360"), 2, "--resolutoin", "did you mean --resolution?")


def test_a_bad_flag_value_names_the_flag(song):
    one_line(music2video(song, "--fps", "0"), 2, "--fps", "greater than 0")
    one_line(music2video(song, "--resolution", "big"), 2, "--resolution", "WIDTHxHEIGHT")
    one_line(music2video(song, "--pipeline", "fast"), 2, "--pipeline", "'preview'")
    assert "did you mean" not in music2video(song, "--pipeline", "fast").stderr  # nothing close to 'fast'


def test_a_misspelt_choice_gets_a_did_you_mean(song):
    one_line(music2video(song, "--pipeline", "previw"), 2, "--pipeline", "did you mean preview?")
    one_line(music2video(song, "--keyframe-speed", "lightning8"), 2, "--keyframe-speed", "did you mean lightning-8?")


def test_a_bad_video_option_names_the_flag(song):
    one_line(music2video(song, "--colour-match", "rgb"), 2, "--colour-match", "'lab'")
    one_line(music2video(song, "--vae-float32", "maybe"), 2, "--vae-float32", "boolean")
    one_line(music2video(song, "--image-conditioning", "last-frame"), 2, "--image-conditioning", "'first-frame'")
    one_line(music2video(song, "--video-speed", "turbo"), 2, "--video-speed", "'distilled'")


def test_make_without_a_song():
    one_line(music2video("make"), 2, "Missing argument 'SONG'")


def test_an_unknown_command_gets_a_did_you_mean(tmp_path):
    one_line(music2video("analyse", "x.wav", cwd=tmp_path), 2, "No such command 'analyse'", "analyze")


def test_a_bare_command_shows_the_help():
    done = music2video()
    assert done.returncode == 0 and "Usage: music2video" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_help_and_version_exit_0():
    done = music2video("--version")
    assert done.returncode == 0 and done.stdout.startswith("music2video ")
    assert "--version" in music2video("--help").stdout


# -- the machine: one line, exit code 1; a traceback only with --verbose -------------------------


def test_a_missing_song(tmp_path):
    one_line(music2video(tmp_path / "nope.mp3"), 1, "nope.mp3: no such file")


def test_an_unwritable_output_folder(song):
    one_line(music2video(song, "-o", "/proc/x.mp4"), 1, "cannot write /proc/x.mp4")


def test_a_run_folder_that_cannot_be_made(song, tmp_path):
    done = music2video(song, "-o", tmp_path / "out.mp4", "--workdir", "/proc/m2v-run", "--pipeline", "preview")
    one_line(done, 1, "/proc/m2v-run")


@pytest.mark.parametrize(
    "error, words",
    [(PermissionError(13, "Permission denied", "/music/out.mp4"), "/music/out.mp4: Permission denied"),
     (RuntimeError("an unexpected state"), "RuntimeError: an unexpected state")],
)  # fmt: skip
def test_an_unforeseen_error_is_one_line_and_verbose_shows_the_traceback(song, monkeypatch, capsys, error, words):
    """Errors no check foresaw (the machine's, or a bug): one line; --verbose raises them whole."""
    from music2video.cli import main, run_commands

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(run_commands, "run_pipeline", fail)
    with pytest.raises(SystemExit) as exit_info:
        main([str(song)])
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    with pytest.raises(type(error)):
        main([str(song), "--verbose"])


def test_a_usage_error_needs_no_click(song):
    """The light install has typer's bundled parser only: usage errors must not import click."""
    code = "import sys; sys.modules['click'] = None; from music2video.cli import main; main(sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", code, "publish", "x"], capture_output=True, text=True, timeout=120, env=os.environ
    )
    one_line(done, 2, "No such command 'publish'")


def test_starting_the_cli_imports_no_numerical_or_web_library():
    """`music2video --help` and every usage error pay only for the CLI itself: the commands import
    numpy, torch, the run folder and the web servers when they run, not when the CLI is built."""
    code = (
        "import sys; import music2video.cli.app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'fastapi', 'ray', 'opentimelineio') "
        "or m in ('music2video.runfolder', 'music2video.pipeline')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- help -----------------------------------------------------------------------------------------


def test_make_help_groups_the_flags_and_shows_defaults(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option, so that each check reads one row
    text = music2video("make", "--help").stdout
    for panel in ("Input and output", "Music", "Look", "Models", "Speed", "Advanced"):
        assert f"─ {panel} ─" in text
    rows = {line.split()[1]: line for line in text.splitlines() if line.strip("│ ").startswith("--")}
    assert "WxH" in rows["--resolution"] and "[default: 640x360]" in rows["--resolution"]
    assert "FPS" in rows["--fps"] and "[default: 24]" in rows["--fps"]
    assert "SECONDS" in rows["--min-shot"] and "[default: 1.5]" in rows["--min-shot"]
    assert "[default: 0]" in rows["--seed"] and "[default: none]" in rows["--subtitles"]
    assert "[default: auto]" in rows["--device"]
    assert "<bool>" not in text and "Examples" in text and "--overwrite" in text


def test_analyze_help_does_not_promise_a_video(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = music2video("analyze", "--help").stdout
    assert "--output" in text and "Video to write" not in text
    assert "--overwrite" not in text and "--resolution" not in text  # analysis reads neither


# -- no silent waits ------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME places the user's cache folder on Linux only")
def test_numba_caches_in_the_users_cache_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"XDG_CACHE_HOME": str(tmp_path)}
    code = "import os, music2video; print(os.environ['NUMBA_CACHE_DIR'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == str(tmp_path / "music2video" / "numba")
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")  # the user's own choice wins
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == str(tmp_path / "mine")



# What `pip install music2video` leaves out: every extra's packages, and librosa/numba (dev only).
EXTRAS_ONLY = ("fastapi", "uvicorn", "multipart", "torch", "transformers", "diffusers", "accelerate", "safetensors", "demucs",
               "llguidance", "openai", "opentimelineio", "ray", "cv2", "mido", "music21", "librosa", "numba")  # fmt: skip


def test_analyze_runs_in_a_core_install_without_any_extra(tmp_path):
    """The light core install (no extra) can run every command's start-up and the analysis: the
    CI installs every extra, so a top-level import of one (FastAPI once) would go unseen."""
    from music2video.demo import synthesize_demo_song

    wav = tmp_path / "song.wav"
    synthesize_demo_song(wav, duration_s=8.0)
    code = (
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {EXTRAS_ONLY!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Absent())\n"
        "from music2video.cli import main\n"
        f"sys.argv = ['music2video', 'analyze', {str(wav)!r}, '-o', {str(tmp_path / 'out.mp4')!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out.music2video" / "analysis.json").is_file()


def test_the_video_flags_reach_the_video_settings(tmp_path, monkeypatch):
    from music2video.cli.flags import split_settings, to_keywords
    from music2video.settings import load_settings

    monkeypatch.chdir(tmp_path)  # no music2video.toml of the developer's
    given = {"colour_match": "none", "vae_float32": "off", "image_conditioning": "reference", "video_speed": "distilled"}
    fields, _others = split_settings(to_keywords(given))
    video = load_settings(**fields).video
    assert (video.colour_match, video.vae_float32, video.image_conditioning, video.speed) == ("none", False, "reference", "distilled")
