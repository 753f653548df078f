"""The executor flags without a Ray cluster: a missing ray extra and bad values are caught before
any work (the Ray runs themselves are in test_ray.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from music2video.cli import main
from music2video.demo import synthesize_demo_song


@pytest.fixture
def song(tmp_path: Path) -> Path:
    path = tmp_path / "song.wav"
    synthesize_demo_song(path, duration_s=4.0)
    return path


def test_executor_ray_without_the_ray_extra_says_what_to_install_before_any_work(song, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as without the extra
    with pytest.raises(SystemExit) as exit_:
        main([str(song), "-o", str(tmp_path / "song.mp4"), "--executor", "ray", "--pipeline", "preview"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "pip install 'music2video[ray]'" in " ".join(err.split())
    assert not (tmp_path / "song.music2video" / "audio.json").exists()  # nothing analysed


@pytest.mark.parametrize(
    ("flag", "value"), [("--executor", "dask"), ("--gpus-per-worker", "-1"), ("--ray-workers", "0")]
)
def test_bad_executor_values_are_usage_errors_naming_the_flag(song, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        main([str(song), "-o", str(tmp_path / "song.mp4"), flag, value])
    assert exit_.value.code == 2
    assert flag in capsys.readouterr().err
