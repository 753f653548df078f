"""Settings merge flags > environment > config file > defaults, and bad values get clear errors."""

from __future__ import annotations

import pytest

from music2video.errors import Music2VideoError
from music2video.settings import load_settings, parse_resolution


def test_defaults_pick_preview_without_gpu():
    settings = load_settings()
    assert settings.backends(has_gpu=False) == {
        "listener": "dsp", "lyrics": "vocals", "writer": "template", "renderer": "animatic",
    }
    assert settings.backends(has_gpu=True)["listener"] == "clap"


def test_overrides_beat_presets():
    settings = load_settings(pipeline="clap", renderer="animatic", writer="template")
    assert settings.backends() == {"listener": "clap", "lyrics": "whisper", "writer": "template", "renderer": "animatic"}


def test_precedence_flags_env_config(tmp_path, monkeypatch):
    config = tmp_path / "m2v.toml"
    config.write_text('fps = 30\nseed = 7\nstyle = "from config"\n[clap]\nbatch_size = 3\ndevice = "cpu"\n')
    monkeypatch.setenv("MUSIC2VIDEO_SEED", "11")
    monkeypatch.setenv("MUSIC2VIDEO_CLAP__DTYPE", "float16")
    settings = load_settings(config, style="from flag", clap={"model": "some/folder"})
    assert settings.fps == 30  # config
    assert settings.seed == 11  # environment beats config
    assert settings.style == "from flag"  # flag beats both
    assert (settings.clap.model, settings.clap.batch_size, settings.clap.device, settings.clap.dtype) == (
        "some/folder", 3, "cpu", "float16",
    )


def test_default_config_file_in_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "music2video.toml").write_text("width = 320\nheight = 180\n")
    assert (load_settings().width, load_settings().height) == (320, 180)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"width": 641}, "odd"),
        ({"fps": 0}, "fps"),
        ({"pipeline": "magic"}, "pipeline"),
        ({"shots": {"min_shot_s": 6, "max_shot_s": 2}}, "min_shot_s"),
    ],
)
def test_bad_values_name_the_setting(overrides, expected):
    with pytest.raises(Music2VideoError, match=expected):
        load_settings(**overrides)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(Music2VideoError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_parse_resolution():
    assert parse_resolution("640x360") == (640, 360)
    assert parse_resolution(" 1280 X 720 ") == (1280, 720)
    with pytest.raises(Music2VideoError, match="WIDTHxHEIGHT"):
        parse_resolution("720p")


def test_the_replaced_llm_timeout_names_its_successors(tmp_path):
    config = tmp_path / "music2video.toml"
    config.write_text("[llm]\ntimeout_s = 30\n")
    with pytest.raises(Music2VideoError, match="connect_timeout_s, llm.first_token_timeout_s and llm.budget_s"):
        load_settings(config)
    settings = load_settings(llm={"budget_s": 90, "temperature": 0.2}, write={"max_prompt_chars": 500})
    assert (settings.llm.budget_s, settings.llm.temperature, settings.write.max_prompt_chars) == (90, 0.2, 500)


def test_no_gpu_device_file_means_no_cuda_without_importing_torch(monkeypatch):
    """``--pipeline auto`` asks whether CUDA is there; on a Linux machine without a GPU device
    file the answer is no without importing torch (1-10 s, more than a song's analysis)."""
    import sys
    import types

    from music2video import settings

    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(settings.os.path, "exists", lambda path: False)
    assert settings.cuda_available() is False
    monkeypatch.setattr(settings.os.path, "exists", lambda path: path == "/dev/nvidiactl")
    assert settings.cuda_available() is True  # a driver is there: torch decides
