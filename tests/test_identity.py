"""Identity consistency and keyframe fidelity, with tiny random-weight DINOv2 and CLIP models.

A synthetic video whose shots showing one character show one picture, and whose other shot shows
another: whatever a random model's features mean, identical pictures embed alike, so the
character's shots must score higher among themselves than against the other shot. Keyframes are
PNGs written here: the shot's own picture, or a wrong one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
PIL = pytest.importorskip("PIL.Image")

from synthetic_video import FPS, texture, write_video
from tiny_dinov2 import build_tiny_dinov2

from music2video.artifacts import Character, SectionTreatment, Storyboard, StoryboardShot, StyleBible
from music2video.evaluate import evaluate_video

SHOT_S = 1.0
PICTURES = [1, 2, 1, 1]  # texture seed per shot: shots 0, 2 and 3 show the keeper
CHARACTERS = [["Keeper"], ["Stranger"], ["Keeper"], ["Keeper", "Stranger"]]


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory) -> Path:
    return build_tiny_dinov2(tmp_path_factory.mktemp("tiny-dinov2") / "model")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    frames = [texture(seed=PICTURES[int(k / FPS / SHOT_S)]) for k in range(int(len(PICTURES) * SHOT_S * FPS))]
    return write_video(tmp_path_factory.mktemp("identity") / "v.mp4", frames)


def storyboard() -> Storyboard:
    shots = [
        StoryboardShot(
            id=f"shot-{i:03d}", start_s=i * SHOT_S, end_s=(i + 1) * SHOT_S, section_index=0, scene="s", prompt="p",
            seed=i, palette=["#112233"], motif="m", characters=CHARACTERS[i],
        )
        for i in range(len(PICTURES))
    ]  # fmt: skip
    return Storyboard(
        writer="test", title="t", concept="c", style=StyleBible(look="l", palette=["#112233"]),
        characters=[Character(name="Keeper", description="k"), Character(name="Stranger", description="s")],
        sections=[SectionTreatment(section_index=0, label="A", role="verse", palette=["#112233"], motif="m")],
        shots=shots,
    )  # fmt: skip


def keyframe(path: Path, seed: int, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Path:
    PIL.fromarray((texture(seed=seed) * np.array(tint)).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("kind", ["dinov2", "clip"])
def test_identity_and_keyframe_fidelity(kind, tiny_dinov2, video, tmp_path, request):
    if kind == "clip":
        from tiny_clip import build_tiny_clip

        model = build_tiny_clip(tmp_path / "clip")
    else:
        model = tiny_dinov2
    # Shot 0's keyframe is its own picture; shot 1's is another picture, tinted red.
    keys = {0: keyframe(tmp_path / "k0.png", seed=1), 1: keyframe(tmp_path / "k1.png", seed=7, tint=(1.0, 0.3, 0.3))}
    evaluation = evaluate_video(
        video, beats_s=[0.0, 1.0, 2.0, 3.0], storyboard=storyboard(), identity_model=str(model), keyframes=keys, device="cpu"
    )
    identity = evaluation.identity
    assert identity is not None and identity.model == str(model)
    by_name = {c.name: c for c in identity.characters}
    keeper, stranger = by_name["Keeper"], by_name["Stranger"]
    assert keeper.shot_ids == ["shot-000", "shot-002", "shot-003"] and stranger.shot_ids == ["shot-001", "shot-003"]
    # The keeper's three shots are one picture: near 1 among themselves, lower against the stranger's shot.
    assert keeper.within > 0.99 and keeper.margin > 0.01 and keeper.margin == pytest.approx(keeper.within - keeper.between, abs=1e-5)
    # The stranger's two shots show different pictures: less alike than the keeper's.
    assert stranger.within < keeper.within
    assert identity.consistency == pytest.approx((keeper.within + stranger.within) / 2, abs=1e-5)
    fidelity = evaluation.keyframe_fidelity
    assert fidelity is not None and [s.shot_id for s in fidelity.shots] == ["shot-000", "shot-001"]
    right, wrong = fidelity.shots
    assert right.frame == 0 and wrong.frame == round(SHOT_S * FPS)
    assert right.cosine > 0.99 and wrong.cosine < right.cosine
    assert right.colour_delta_e < 4 and wrong.colour_delta_e > 20  # H.264 and scaling cost the right one ~3


def test_a_model_that_cannot_load_skips_only_identity(video, tmp_path):
    evaluation = evaluate_video(video, beats_s=[0.0, 1.0], storyboard=storyboard(), identity_model=str(tmp_path / "none"), device="cpu")
    assert evaluation.identity is None and evaluation.cut_on_beat is not None
    assert any("identity consistency and keyframe fidelity skipped" in warning for warning in evaluation.warnings)


def test_the_report_shows_identity_beside_the_sync_metrics(tiny_dinov2, video, tmp_path):
    from music2video.report import RunArtifacts, _metrics_section

    keys = {0: keyframe(tmp_path / "k0.png", seed=1)}
    evaluation = evaluate_video(
        video, beats_s=[0.0, 1.0], storyboard=storyboard(), identity_model=str(tiny_dinov2), keyframes=keys, device="cpu"
    )
    html = _metrics_section(RunArtifacts(root=tmp_path, evaluation=evaluation))
    assert "identity consistency" in html and f"{evaluation.identity.consistency:.3f}" in html
    assert "keyframe fidelity" in html and f"{evaluation.keyframe_fidelity.mean_cosine:.3f}" in html
    assert "cuts on a beat" in html  # the same section as the sync metrics
    assert "<td>Keeper</td><td>3</td>" in html
