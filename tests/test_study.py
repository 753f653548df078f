"""A study from creation to results, without a server: the folder, its blinding and orders, the
answers as stored, and the statistics, plots and CSV a researcher reads."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from study_helpers import make_videos

from music2video.errors import InputError
from music2video.study.design import create_study, load_preset, load_study, parse_dimension, presentation
from music2video.study.results import analyse_study, write_results
from music2video.study.store import AnswerError, AnswerStore, read_answers


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return make_videos(tmp_path_factory.mktemp("clips"), 4)


def test_create_copies_the_videos_under_blinded_names(clips, tmp_path):
    study = create_study(clips, tmp_path / "s.study", name="pilot", conditions=["ours", "base", "ours", "base"])
    assert [v.condition for v in study.videos] == ["ours", "base", "ours", "base"]
    for video, source in zip(study.videos, clips):
        copy = tmp_path / "s.study" / video.file
        assert copy.read_bytes() == source.read_bytes()
        assert video.code in copy.name and "clip" not in copy.name and "ours" not in copy.name
    assert len({v.code for v in study.videos}) == 4
    assert load_study(tmp_path / "s.study") == study
    assert [d.id for d in study.dimensions] == ["storytelling", "visual_coherence", "emotional_alignment", "sync", "overall"]


def test_conditions_come_from_the_run_folder_beside_a_video(clips, tmp_path):
    ours = tmp_path / "song.mp4"
    ours.write_bytes(clips[0].read_bytes())
    run = tmp_path / "song.music2video"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"song": "/music/song.wav", "pipeline": "preview", "backends": {"renderer": "animatic"}, "settings": {"seed": 3}}))
    other = tmp_path / "other.mp4"
    other.write_bytes(clips[1].read_bytes())
    with pytest.raises(InputError, match="no condition for other.mp4"):
        create_study([ours, other], tmp_path / "a.study", name="a")
    study = create_study([ours], tmp_path / "b.study", name="b")
    assert (study.videos[0].condition, study.videos[0].song) == ("preview", "song")
    assert study.videos[0].details["settings"] == {"seed": 3}


def test_create_refuses_the_usual_mistakes(clips, tmp_path):
    with pytest.raises(InputError, match="2 --condition values for 4 videos"):
        create_study(clips, tmp_path / "x", name="x", conditions=["a", "b"])
    with pytest.raises(InputError, match="twice"):
        create_study([clips[0], clips[0]], tmp_path / "x", name="x", conditions=["a", "b"])
    with pytest.raises(InputError, match="is not a file"):
        create_study([tmp_path / "missing.mp4"], tmp_path / "x", name="x", conditions=["a"])
    with pytest.raises(InputError, match="between-subject study needs at least two conditions"):
        create_study(clips[:2], tmp_path / "x", name="x", conditions=["a", "a"], design="between")
    create_study(clips[:1], tmp_path / "y", name="y", conditions=["a"])
    with pytest.raises(InputError, match="already holds a study"):
        create_study(clips[:1], tmp_path / "y", name="y", conditions=["a"])


def test_orders_are_counterbalanced_and_seeded(clips, tmp_path):
    study = create_study(clips, tmp_path / "w", name="w", conditions=["a", "b", "a", "b"], seed=5)
    orders = [presentation(study, i) for i in range(4)]
    assert all(sorted(order) == sorted(v.code for v in study.videos) for order in orders)
    assert all(len({order[position] for order in orders}) == 4 for position in range(4))  # every video first once ...
    assert presentation(study, 4) == orders[0]  # ... and the square repeats
    between = create_study(clips, tmp_path / "b", name="b", conditions=["a", "b", "a", "b"], design="between")
    shown = [{between.video(code).condition for code in presentation(between, i)} for i in range(4)]
    assert shown == [{"a"}, {"b"}, {"a"}, {"b"}]


def test_the_automv_preset_records_the_twelve_criteria_and_the_published_means(clips, tmp_path):
    preset = load_preset("automv")
    groups: dict[str, list[str]] = {}
    for dimension in preset.dimensions:
        groups.setdefault(dimension.group, []).append(dimension.label)
    assert list(groups) == ["Technical Module", "Post-production Editing", "Content Module", "Artistic Module"]
    assert [len(labels) for labels in groups.values()] == [4, 2, 3, 3]
    assert "Audio-Visual Correlation" in groups["Post-production Editing"]
    assert preset.reference.means["AutoMV"] == 2.42 and preset.reference.means["Human (professional MVs)"] == 2.90
    assert "arXiv 2512.12196" in preset.source and "not their wording" in preset.wording_note
    study = create_study(clips[:2], tmp_path / "m", name="m", conditions=["a", "b"], preset="automv")
    assert len(study.dimensions) == 12 and study.reference is not None
    seven = create_study(clips[:2], tmp_path / "m7", name="m7", conditions=["a", "b"], preset="automv", scale_points=7)
    assert seven.reference is None  # their means are on 1-5: not comparable with a 7-point study


def test_custom_dimensions():
    assert parse_dimension("Colour grading=Is the colour pleasing?").model_dump() == {
        "id": "colour_grading", "label": "Colour grading", "question": "Is the colour pleasing?", "group": None,
    }
    with pytest.raises(InputError):
        parse_dimension("=why")


def _take_part(store: AnswerStore, rate, *, attention_right: bool = True) -> str:
    """One participant rates every video with ``rate(video_code, dimension)``."""
    me = store.new_participant()
    for code in me.order:
        attention = None
        if me.attention and me.attention[0] == code:
            attention = me.attention[1] if attention_right else me.attention[1] % store.study.scale_points + 1
        store.answer(me.id, code, {d.id: rate(code, d.id) for d in store.study.dimensions}, attention=attention, watched_s=1.0)
    return me.id


def test_answers_are_checked_and_stored_as_given(clips, tmp_path):
    folder = tmp_path / "s"
    study = create_study(clips[:2], folder, name="s", conditions=["a", "b"], attention_check=False)
    store = AnswerStore(folder, study)
    me = store.new_participant()
    ratings = {d.id: 3 for d in study.dimensions}
    with pytest.raises(AnswerError, match="not a whole number from 1 to 5"):
        store.answer(me.id, me.order[0], {**ratings, "sync": 6})
    with pytest.raises(AnswerError, match="missing: overall"):
        store.answer(me.id, me.order[0], {k: v for k, v in ratings.items() if k != "overall"})
    with pytest.raises(AnswerError, match="not one this participant rates"):
        store.answer(me.id, "nosuch", ratings)
    store.answer(me.id, me.order[0], ratings, watched_s=1.0)
    with pytest.raises(AnswerError, match="already rated"):
        store.answer(me.id, me.order[0], {**ratings, "sync": 1})
    answers, participants = read_answers(folder)
    assert {(a.video, a.dimension, a.rating) for a in answers} == {(me.order[0], d, 3) for d in ratings}
    assert participants[me.id]["finished"] is False
    store.close()


def test_the_same_video_sent_twice_at_once_is_stored_once(clips, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    study = create_study(clips[:2], tmp_path / "s", name="s", conditions=["a", "b"], attention_check=False)
    store = AnswerStore(tmp_path / "s", study)
    me = store.new_participant()
    ratings = {d.id: 3 for d in study.dimensions}

    def submit(_):
        try:
            store.answer(me.id, me.order[0], ratings)
            return "stored"
        except AnswerError as error:
            return "refused" if "already rated" in str(error) else str(error)

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(submit, range(8)))
    assert sorted(outcomes) == ["refused"] * 7 + ["stored"]
    store.answer(me.id, me.order[1], ratings)
    store.close()
    answers, participants = read_answers(tmp_path / "s")
    assert len(answers) == 2 * len(ratings) and participants[me.id]["finished"]


def test_results_find_a_real_difference_and_leave_out_inattentive_participants(clips, tmp_path):
    folder = tmp_path / "s"
    study = create_study(clips, folder, name="pilot", conditions=["ours", "base", "ours", "base"])
    store = AnswerStore(folder, study)
    rng = random.Random(7)
    better = {v.code for v in study.videos if v.condition == "ours"}

    def rate(code, dimension):  # "ours" about 1.5 points higher, with noise
        return max(1, min(5, round(rng.gauss(4.0 if code in better else 2.5, 0.8))))

    for _ in range(12):
        _take_part(store, rate)
    inattentive = _take_part(store, lambda code, dimension: 1 if code in better else 5, attention_right=False)
    half = store.new_participant()  # stopped after one video: counts for what was rated
    store.answer(half.id, half.order[0], {d.id: 3 for d in study.dimensions}, attention=half.attention[1] if half.attention and half.attention[0] == half.order[0] else None)
    store.close()

    results, page = write_results(folder)
    assert (results.participants, results.finished, results.excluded_attention) == (13, 12, 1)
    assert len(results.comparisons) == 5 and all(c.test == "wilcoxon" for c in results.comparisons)
    assert all(c.significant and c.effect > 0.8 and c.condition_a == "ours" for c in results.comparisons)
    assert all(c.p_holm >= c.p for c in results.comparisons)
    means = {(c.condition, c.dimension): c for c in results.cells}
    for dimension in results.dimensions:
        ours, base = means[("ours", dimension)], means[("base", dimension)]
        assert ours.ci_low <= ours.mean <= ours.ci_high and ours.ci_low > base.ci_high
        assert sum(ours.distribution) == ours.ratings
    assert all(a.krippendorff_alpha is not None and a.krippendorff_alpha > 0.2 for a in results.agreement)  # raters agree well above chance (0)

    out = folder / "results"
    html = page.read_text()
    for name in [*results.dimensions, "means"]:
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{name}.png" in html
    rows = list(csv.DictReader((out / "answers.csv").open()))
    assert len(rows) == (12 * 4 + 4 + 1) * 5  # every rating given, the left-out participant's too
    assert {row["attention_passed"] for row in rows if row["participant"] == inattentive} == {"false"}
    assert {row["condition"] for row in rows} == {"ours", "base"}
    assert json.loads((out / "results.json").read_text())["excluded_attention"] == 1


def test_results_of_a_between_subject_study_use_mann_whitney(clips, tmp_path):
    folder = tmp_path / "s"
    study = create_study(clips, folder, name="b", conditions=["ours", "base", "ours", "base"], design="between", attention_check=False)
    store = AnswerStore(folder, study)
    for index in range(16):
        _take_part(store, lambda code, dimension: 3)
    store.close()
    results = analyse_study(folder)
    assert {c.test for c in results.comparisons} == {"mann-whitney"}
    assert all(c.n_a == 8 and c.n_b == 8 and not c.significant for c in results.comparisons)


def test_automv_group_and_overall_means_read_against_their_table(clips, tmp_path):
    folder = tmp_path / "m"
    study = create_study(clips[:2], folder, name="m", conditions=["ours", "base"], preset="automv", attention_check=False)
    group = {d.id: d.group for d in study.dimensions}
    store = AnswerStore(folder, study)
    for _ in range(3):
        _take_part(store, lambda code, dimension: 2 if group[dimension] == "Technical Module" else 4)
    store.close()
    results = analyse_study(folder)
    groups = {(c.condition, c.dimension): c.mean for c in results.groups}
    assert groups[("ours", "Technical Module")] == 2.0 and groups[("base", "Content Module")] == 4.0
    assert [c.mean for c in results.overall] == pytest.approx([(4 * 2 + 8 * 4) / 12] * 2)
    assert results.reference["means"]["AutoMV"] == 2.42
