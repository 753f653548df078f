"""The clap and lalm pipelines end to end through the CLI, with tiny random-weight models.

Every model is built here and saved with ``save_pretrained``; the pipeline loads each from its
folder through the same code that loads a Hugging Face id. Random weights cannot judge music,
so these tests check the mechanics a user relies on: every stage runs with its real backend,
models load one after another, and the result is a playable video exactly the song's length.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from music2video.artifacts import Descriptions, RenderResult, Storyboard
from music2video.cli import main
from tiny_clap import build_tiny_clap
from tiny_lalm import build_tiny_qwen2_audio
from tiny_llm import build_tiny_llm
from tiny_video_models import build_tiny_wan
from tiny_whisper import build_tiny_whisper

EXCERPT_S = 16.0
FPS = 12


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "clap": build_tiny_clap(root / "clap"),
        "lalm": build_tiny_qwen2_audio(root / "lalm"),
        "llm": build_tiny_llm(root / "llm"),
        "video": build_tiny_wan(root / "wan"),
        "whisper": build_tiny_whisper(root / "whisper"),
    }


@pytest.fixture(scope="module")
def excerpt(demo_song, tmp_path_factory) -> Path:
    """The demo song's first 16 s: intro and a verse, enough for two sections."""
    song, _ = demo_song
    samples, rate = sf.read(song, dtype="float32")
    path = tmp_path_factory.mktemp("excerpt") / "excerpt.wav"
    sf.write(path, samples[: int(EXCERPT_S * rate)], rate)
    return path


@pytest.fixture(autouse=True)
def small_and_offline(monkeypatch, tmp_path):
    # Tiny models run ~10x faster on one thread on a 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MUSIC2VIDEO_VIDEO__STEPS", "2")
    monkeypatch.setenv("MUSIC2VIDEO_VIDEO__GENERATION_SIZE", "32x32")
    monkeypatch.setenv("MUSIC2VIDEO_EVALUATE__ENABLED", "false")
    # Vocal separation defaults to Demucs where installed; its weights come from outside the hub.
    monkeypatch.setenv("MUSIC2VIDEO_LYRICS__SEPARATION", "none")
    yield
    torch.set_num_threads(threads)


def _common_flags(models: dict[str, Path]) -> list[str]:
    return [
        "--llm-model", models["llm"], "--video-model", models["video"], "--whisper-model", models["whisper"],
        "--device", "cpu", "--resolution", "64x48", "--fps", str(FPS),
    ]  # fmt: skip


def _check_video(out: Path, song: Path) -> None:
    duration_s = sf.info(str(song)).duration
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == round(duration_s * FPS)
    assert np.std(np.stack(frames)) > 1  # the diffusion model drew something, not a blank placeholder


@pytest.mark.slow  # about a minute on 2 cores: the whole pipeline with five tiny models
def test_clap_pipeline_end_to_end(tiny_models, excerpt, tmp_path):
    out = tmp_path / "clap.mp4"
    main([str(a) for a in [excerpt, "-o", out, "--pipeline", "clap", "--clap-model", tiny_models["clap"], *_common_flags(tiny_models)]])
    run = tmp_path / "clap.music2video"
    descriptions = Descriptions.model_validate_json((run / "descriptions.json").read_text())
    storyboard = Storyboard.model_validate_json((run / "storyboard.json").read_text())
    clips = RenderResult.model_validate_json((run / "clips.json").read_text())
    plan = json.loads((run / "shots.json").read_text())
    assert descriptions.listener == "clap" and descriptions.model == str(tiny_models["clap"])
    assert {"mood", "genre", "instruments"} <= set(descriptions.shots[0].tags)
    assert storyboard.writer.startswith("llm")
    assert [shot.id for shot in storyboard.shots] == [shot["id"] for shot in plan["shots"]]
    assert clips.renderer == "diffusers" and not clips.failed_shots
    assert (run / "lyrics.json").exists()
    summary = json.loads((run / "run.json").read_text())
    assert summary["backends"] == {"listener": "clap", "lyrics": "whisper", "writer": "llm", "renderer": "diffusers"}
    _check_video(out, excerpt)


@pytest.mark.slow  # about a minute on 2 cores; the listener contract alone is in test_conformance.py
def test_lalm_pipeline_end_to_end(tiny_models, excerpt, tmp_path):
    out = tmp_path / "lalm.mp4"
    main([str(a) for a in [excerpt, "-o", out, "--pipeline", "lalm", "--lalm-model", tiny_models["lalm"], *_common_flags(tiny_models)]])
    run = tmp_path / "lalm.music2video"
    descriptions = Descriptions.model_validate_json((run / "descriptions.json").read_text())
    assert descriptions.listener == "lalm"
    # Random weights answer gibberish: the listener retries, then falls back to DSP, and says so.
    assert any("DSP description used" in warning for warning in descriptions.warnings)
    assert len(descriptions.shots) == len(json.loads((run / "shots.json").read_text())["shots"])
    _check_video(out, excerpt)


def test_a_model_that_cannot_be_loaded_is_one_clear_line(excerpt, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(excerpt), "-o", str(tmp_path / "x.mp4"), "--pipeline", "clap", "--clap-model", "no-such-org/no-such-clap"])
    assert exit_info.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no-such-org/no-such-clap" in err and "--clap-model" in err
