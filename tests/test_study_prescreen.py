"""The automatic pre-screen with a tiny random-weight vision-language model (Idefics3 classes,
the default model's family) saved locally: the real loading and scoring code, offline; and its
agreement with people reported by study results."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from study_helpers import make_videos

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from music2video.study.design import create_study  # noqa: E402
from music2video.study.prescreen import NOT_A_SUBSTITUTE, PROMPT_TEMPLATE, prescreen_study, sample_frames  # noqa: E402
from music2video.study.results import write_results  # noqa: E402
from music2video.study.store import AnswerStore  # noqa: E402

pytestmark = pytest.mark.slow  # builds a model (about 10 s on two cores)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    from tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


def test_frames_are_sampled_evenly_through_the_video(tmp_path):
    clip = make_videos(tmp_path, 1, seconds=2.0)[0]  # 24 frames at 12 fps
    images, times = sample_frames(clip, 4, size_px=32)
    assert times == pytest.approx([0.25, 0.75, 1.25, 1.75], abs=1 / 12)
    assert all(max(image.size) <= 32 for image in images)


def test_prescreen_scores_every_criterion_and_records_model_and_prompt(tiny_vlm, tmp_path, one_torch_thread):
    clips = make_videos(tmp_path / "clips", 4)
    # one of ours, with a run folder whose listener described the song
    run = tmp_path / "clips" / "clip-0.music2video"
    run.mkdir()
    song = {"start_s": 0, "end_s": 1, "text": "a slow, warm piano ballad"}
    (run / "descriptions.json").write_text(json.dumps({"listener": "dsp", "song": song, "sections": [], "shots": []}))
    folder = tmp_path / "s.study"
    study = create_study(clips, folder, name="s", conditions=["ours", "base", "ours", "base"], attention_check=False)
    seen = []
    result = prescreen_study(folder, model=str(tiny_vlm), frames=3, device="cpu", progress=lambda done, total: seen.append((done, total)))

    assert seen[-1] == (4, 4)
    saved = json.loads((folder / "prescreen.json").read_text())
    assert saved["model"] == str(tiny_vlm) and saved["prompt_template"] == PROMPT_TEMPLATE and len(saved["prompt_sha256"]) == 64
    assert saved["note"] == NOT_A_SUBSTITUTE and "not a substitute for people" in saved["note"]
    for video in result.videos:
        assert set(video.scores) == {d.id for d in study.dimensions}
        for dimension, score in video.scores.items():
            probabilities = video.probabilities[dimension]
            assert len(probabilities) == 5 and sum(probabilities) == pytest.approx(1, abs=1e-4)
            assert score == pytest.approx(np.dot(probabilities, range(1, 6)), abs=1e-3) and 1 <= score <= 5
            assert 0 < video.answer_mass[dimension] < 1  # a random model spreads over its whole vocabulary
        assert len(video.frame_times_s) == 3
    described = {v.video: v.audio_description for v in result.videos}
    assert described[study.videos[0].code] == "a slow, warm piano ballad"
    assert described[study.videos[1].code] is None

    # With people's ratings too, results report Spearman's rho per criterion, labelled.
    store = AnswerStore(folder, study)
    rng = random.Random(0)
    for _ in range(3):
        me = store.new_participant()
        for code in me.order:
            store.answer(me.id, code, {d.id: rng.randint(1, 5) for d in study.dimensions})
    store.close()
    results, page = write_results(folder)
    assert results.prescreen["model"] == str(tiny_vlm)
    rows = results.prescreen["agreement"]
    assert [row["dimension"] for row in rows] == [d.id for d in study.dimensions]
    assert all(row["videos"] == 4 for row in rows)
    assert all(row["spearman_rho"] is None or -1 <= row["spearman_rho"] <= 1 for row in rows)
    assert "not a substitute for people" in page.read_text()


def test_a_model_folder_that_is_not_one_says_so(tmp_path):
    from music2video.errors import ModelLoadError

    clips = make_videos(tmp_path / "clips", 1)
    create_study(clips, tmp_path / "s", name="s", conditions=["a"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="vision-language model in the folder"):
        prescreen_study(tmp_path / "s", model=str(tmp_path / "empty"), device="cpu")
