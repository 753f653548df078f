"""``music2video study ...`` as typed, with the usual mistakes: each gets one line and the right
exit code (2 for a usage error, 1 for a problem with the inputs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from study_helpers import cli_env, make_videos

from music2video.cli import main


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return make_videos(tmp_path_factory.mktemp("clips"), 2)


def run(capsys, *args: object) -> tuple[int, str, str]:
    try:
        main([str(arg) for arg in args])
        code = 0
    except SystemExit as done:
        code = done.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(result: tuple[int, str, str], code: int, *words: str) -> None:
    got, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.slow  # plots for twelve criteria: a few seconds
def test_create_then_results_as_typed(clips, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "study", "create", *clips, "--name", "My pilot", "--condition", "ours", "--condition", "base", "--preset", "automv")
    assert code == 0, err
    assert (tmp_path / "My-pilot.study" / "study.json").is_file()
    assert "ours" in out and "music2video study serve My-pilot.study" in err
    code, out, err = run(capsys, "study", "results", "My-pilot.study")
    assert code == 0, err
    assert "no answers yet" in err and (tmp_path / "My-pilot.study" / "results" / "results.html").is_file()
    assert "character_consistency" in out  # the AutoMV criteria in the table
    html = (tmp_path / "My-pilot.study" / "results" / "results.html").read_text()
    assert "<i>Post-production Editing</i>" in html  # and their four groups


def test_usage_mistakes_exit_2(clips, tmp_path, capsys):
    folder = tmp_path / "x.study"
    one_line(run(capsys, "study", "create", *clips, "-o", folder), 2, "--name")
    one_line(run(capsys, "study", "create", "--name", "x"), 2, "VIDEO")
    one_line(run(capsys, "study", "create", *clips, "--name", "x", "--scale", "4"), 2, "--scale", "5 or 7")
    one_line(run(capsys, "study", "create", *clips, "--name", "x", "--design", "mixed"), 2, "--design")
    one_line(run(capsys, "study", "create", *clips, "--name", "x", "--preset", "automvv"), 2, "--preset")
    one_line(run(capsys, "study", "create", *clips, "--name", "x", "--conditon", "a"), 2, "--conditon", "did you mean --condition")
    one_line(run(capsys, "study", "results", tmp_path, "--alpha", "5"), 2, "--alpha")
    one_line(run(capsys, "study", "serve", tmp_path, "--port", "70000"), 2, "--port")
    one_line(run(capsys, "study", "prescreen", tmp_path, "--frames", "0"), 2, "--frames")
    one_line(run(capsys, "study", "creat"), 2, "creat")
    assert not folder.exists()


def test_input_problems_exit_1(clips, tmp_path, capsys):
    one_line(run(capsys, "study", "create", *clips, "--name", "x", "-o", tmp_path / "a"), 1, "no condition for clip-0.mp4", "--condition")
    one_line(run(capsys, "study", "create", *clips, "--name", "x", "--condition", "a", "-o", tmp_path / "a"), 1, "1 --condition values for 2 videos")
    one_line(run(capsys, "study", "create", tmp_path / "nope.mp4", "--name", "x", "--condition", "a", "-o", tmp_path / "a"), 1, "nope.mp4", "is not a file")
    one_line(run(capsys, "study", "results", tmp_path), 1, "not a study folder", "study create")
    one_line(run(capsys, "study", "serve", tmp_path / "missing"), 1, "not a study folder")
    one_line(run(capsys, "study", "prescreen", tmp_path), 1, "not a study folder")
    one_line(run(capsys, "study", "create", *clips, "--name", "x", "--dimension", "=only a question", "--condition", "a", "--condition", "b", "-o", tmp_path / "a"), 1, "has no name")


def test_serve_on_a_busy_port_says_so_in_one_line(clips, tmp_path, capsys):
    import socket

    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    run(capsys, "study", "create", *clips, "--name", "x", "--condition", "a", "--condition", "b", "-o", tmp_path / "s")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        one_line(run(capsys, "study", "serve", tmp_path / "s", "--port", busy.getsockname()[1]), 1, "cannot serve", "choose another --port")


@pytest.mark.slow  # a Python start-up per command
def test_the_installed_command_line(clips, tmp_path):
    """The same through ``python -m music2video`` in a child process: what a shell sees."""
    done = subprocess.run(
        [sys.executable, "-m", "music2video", "study", "create", *map(str, clips), "--name", "shell", "--condition", "a", "--condition", "b", "--scale", "7"],
        capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"scale_points": 7' in (tmp_path / "shell.study" / "study.json").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "music2video", "study", "create", *map(str, clips), "--name", "same"],
        capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=120,
    )  # no run folders and no --condition: said in one line
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "--condition" in done.stderr
    done = subprocess.run([sys.executable, "-m", "music2video", "study"], capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=120)
    assert done.returncode == 0 and "create" in done.stdout and "prescreen" in done.stdout


def test_one_condition_for_every_video_is_warned_about(clips, tmp_path, capsys):
    code, _, err = run(capsys, "study", "create", *clips, "--name", "x", "--condition", "a", "--condition", "a", "-o", tmp_path / "s")
    assert code == 0 and "every video is 'a'" in err and "1 condition," in err
