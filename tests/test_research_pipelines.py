"""The clap and lalm pipelines end to end through the CLI, with tiny random-weight models.

Every model is built here and saved with ``save_pretrained``; the pipeline loads each from its
folder through the same code that loads a Hugging Face id. Random weights cannot judge music,
so these tests check the mechanics a user relies on: every stage runs with its real backend,
models load one after another, and the result is a playable video exactly the song's length.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image as PIL_Image

from music2video.artifacts import Descriptions, KeyframeSet, ReferenceSet, RenderResult, Storyboard
from music2video.cli import main
from tiny_clap import build_tiny_clap
from tiny_dinov2 import build_tiny_dinov2
from tiny_image_models import build_tiny_qwen_image, build_tiny_qwen_image_edit_plus, small_edit_pipeline
from tiny_lalm import build_tiny_qwen2_audio
from tiny_llm import build_tiny_llm
from tiny_video_models import build_tiny_wan_vace
from tiny_whisper import build_tiny_whisper

EXCERPT_S = 16.0
FPS = 12


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("tiny-models")
    # The edit pipeline's processor without torchvision, references encoded small (see tiny_image_models).
    with small_edit_pipeline():
        yield {
            "clap": build_tiny_clap(root / "clap"),
            "lalm": build_tiny_qwen2_audio(root / "lalm"),
            "llm": build_tiny_llm(root / "llm"),
            "video": build_tiny_wan_vace(root / "vace"),  # the default kind: starts shots from keyframes
            "whisper": build_tiny_whisper(root / "whisper"),
            "image": build_tiny_qwen_image(root / "qwen-image"),
            "edit": build_tiny_qwen_image_edit_plus(root / "qwen-edit"),
            "identity": build_tiny_dinov2(root / "dinov2"),
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
    monkeypatch.setenv("MUSIC2VIDEO_KEYFRAMES__STEPS", "2")
    monkeypatch.setenv("MUSIC2VIDEO_KEYFRAMES__REFERENCE_SIZE", "32x32")
    monkeypatch.setenv("MUSIC2VIDEO_EVALUATE__ENABLED", "false")
    # Vocal separation defaults to Demucs where installed; its weights come from outside the hub.
    monkeypatch.setenv("MUSIC2VIDEO_LYRICS__SEPARATION", "none")
    yield
    torch.set_num_threads(threads)


def _common_flags(models: dict[str, Path]) -> list[str]:
    return [
        "--llm-model", models["llm"], "--video-model", models["video"], "--whisper-model", models["whisper"],
        "--reference-model", models["image"], "--keyframe-model", models["edit"],
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


def _check_keyframes(run: Path, storyboard: Storyboard, clips: RenderResult) -> KeyframeSet:
    """references.json covers the storyboard's cast and set; one keyframe per shot, which its clip starts from."""
    references = ReferenceSet.model_validate_json((run / "references.json").read_text())
    cast = [m.name for m in (*storyboard.characters, *storyboard.places, *storyboard.props)]
    assert [r.name for r in references.references] == cast and not references.failed
    assert all((run / r.path).is_file() for r in references.references)
    keyframes = KeyframeSet.model_validate_json((run / "keyframes.json").read_text())
    assert [k.shot for k in keyframes.shots] == list(range(len(storyboard.shots))) and not keyframes.failed
    assert [clip.keyframe for clip in clips.clips] == [k.path for k in keyframes.shots]
    return keyframes


@pytest.mark.slow  # about a minute on 2 cores: the whole pipeline with seven tiny models
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
    # References and keyframes were made before the video model, and every shot starts from its keyframe.
    stages = [stage["name"] for stage in summary["stages"]]
    assert stages.index("write") < stages.index("references") < stages.index("keyframes") < stages.index("render")
    keyframes = _check_keyframes(run, storyboard, clips)
    _check_video(out, excerpt)

    # A keyframe edited by hand re-renders that shot alone (one inside a scene: a scene's first
    # keyframe is also the colour reference of the shots after it); the edit is kept.
    from music2video.render.conditioning import scene_starts

    inside = next(i for i, start in enumerate(scene_starts(storyboard)) if start != i)
    edited = run / keyframes.shots[inside].path
    PIL_Image.new("RGB", (32, 32), (0, 200, 0)).save(edited)
    main([str(a) for a in [excerpt, "-o", out, "--pipeline", "clap", "--clap-model", tiny_models["clap"], *_common_flags(tiny_models)]])
    again = RenderResult.model_validate_json((run / "clips.json").read_text())
    changed = [a.shot_id for a, b in zip(clips.clips, again.clips, strict=True) if a.shot_hash != b.shot_hash]
    assert changed == [storyboard.shots[inside].id]
    frames = KeyframeSet.model_validate_json((run / "keyframes.json").read_text())
    assert frames.shots[inside].user_edited and frames.shots[inside].path == keyframes.shots[inside].path
    assert edited.exists() and [f for f in frames.shots if f.shot != inside] == [
        f for f in keyframes.shots if f.shot != inside
    ]
    rerun = {stage["name"]: stage["reused"] for stage in json.loads((run / "run.json").read_text())["stages"]}
    assert rerun["references"] and rerun["write"]


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
    storyboard = Storyboard.model_validate_json((run / "storyboard.json").read_text())
    clips = RenderResult.model_validate_json((run / "clips.json").read_text())
    keyframes = _check_keyframes(run, storyboard, clips)
    _check_video(out, excerpt)
    # Each clip is colour-matched to its scene's first keyframe, and the drift is recorded.
    from music2video.render.conditioning import scene_starts

    starts = scene_starts(storyboard)
    assert [clip.colour.reference for clip in clips.clips] == [keyframes.shots[start].path for start in starts]
    assert all(clip.colour.drift_after < clip.colour.drift_before for clip in clips.clips)
    # Identity consistency and keyframe fidelity, measured on the finished video, in the report.
    from music2video.evaluate import Evaluation

    main(["report", str(run), "--identity-model", str(tiny_models["identity"]), "--device", "cpu"])
    evaluation = Evaluation.model_validate_json((run / "evaluation.json").read_text())
    assert evaluation.identity is not None and evaluation.identity.model == str(tiny_models["identity"])
    fidelity = evaluation.keyframe_fidelity
    assert fidelity is not None and [s.shot_id for s in fidelity.shots] == [shot.id for shot in storyboard.shots]
    page = (run / "report.html").read_text()
    assert "keyframe fidelity" in page and "Colour drift per scene" in page


def test_a_model_that_cannot_be_loaded_is_one_clear_line(excerpt, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(excerpt), "-o", str(tmp_path / "x.mp4"), "--pipeline", "clap", "--clap-model", "no-such-org/no-such-clap"])
    assert exit_info.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no-such-org/no-such-clap" in err and "--clap-model" in err
