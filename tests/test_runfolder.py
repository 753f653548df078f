"""The run folder's promises: atomic writes, reuse by key only, hand edits never lost."""

from __future__ import annotations

import json

import pytest

from music2video.artifacts import ShotPlan, Shot
from music2video.runfolder import RunFolder, atomic_path, stable_hash


def _plan(duration_s: float = 4.0) -> ShotPlan:
    shots = [
        Shot(index=0, id="shot-001", start_s=0.0, end_s=2.0, section_index=0, cut="start"),
        Shot(index=1, id="shot-002", start_s=2.0, end_s=duration_s, section_index=0, cut="downbeat"),
    ]
    return ShotPlan(duration_s=duration_s, shots=shots)


def test_stable_hash_is_order_sensitive_and_model_aware():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    assert stable_hash(1, 2) != stable_hash(2, 1)
    assert stable_hash(_plan()) == stable_hash(_plan().model_dump(mode="json"))
    assert stable_hash(_plan(4.0)) != stable_hash(_plan(5.0))


def test_atomic_path_leaves_nothing_behind_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_cached_reuses_only_a_matching_key(tmp_path):
    run = RunFolder(tmp_path)
    calls = []

    def make():
        calls.append(1)
        return _plan()

    first = run.cached("shots.json", ShotPlan, "key-1", make)
    again = run.cached("shots.json", ShotPlan, "key-1", make)
    assert first == again and len(calls) == 1
    run.cached("shots.json", ShotPlan, "key-2", make)
    assert len(calls) == 2


def test_a_half_written_artifact_is_never_trusted(tmp_path):
    run = RunFolder(tmp_path)
    run.cached("shots.json", ShotPlan, "k", _plan)
    text = run.path("shots.json").read_text()
    run.path("shots.json").write_text(text[: len(text) // 2])  # a crash mid-write by another tool
    assert run.load("shots.json", ShotPlan, "k") is None
    remade = run.cached("shots.json", ShotPlan, "k", _plan)
    assert remade.shots[1].end_s == 4.0


def test_stale_temporaries_are_removed_by_the_lock_holder_not_on_open(tmp_path):
    (tmp_path / ".storyboard.abc.tmp.json").write_text("{")
    run = RunFolder(tmp_path)
    assert (tmp_path / ".storyboard.abc.tmp.json").exists()  # readers delete nothing
    with run.locked():
        assert not (tmp_path / ".storyboard.abc.tmp.json").exists()


def test_hand_edits_are_backed_up_before_being_replaced(tmp_path):
    run = RunFolder(tmp_path)
    run.cached("shots.json", ShotPlan, "k1", _plan)
    assert not run.was_edited("shots.json")
    data = json.loads(run.path("shots.json").read_text())
    data["shots"][0]["id"] = "my-shot"
    run.path("shots.json").write_text(json.dumps(data))
    assert run.was_edited("shots.json")
    # Same key: the edit wins and is reused as is.
    assert run.cached("shots.json", ShotPlan, "k1", _plan).shots[0].id == "my-shot"
    # New key: the artifact is remade, and the edited file is kept as a backup.
    run.cached("shots.json", ShotPlan, "k2", _plan)
    backups = list(tmp_path.glob("shots.edited-*.json"))
    assert len(backups) == 1 and "my-shot" in backups[0].read_text()


def test_a_fallbacks_artifact_is_used_once_then_made_again_until_the_intended_backend_succeeds(tmp_path):
    run = RunFolder(tmp_path)
    intended_works = False
    calls = []

    def make():
        calls.append(1)
        plan = _plan()
        if not intended_works:
            plan.mark_provisional("server down")
        return plan

    first = run.cached("shots.json", ShotPlan, "k", make)
    assert first.key == "k+provisional" and json.loads(run.path("shots.json").read_text())["key"] == "k+provisional"
    assert "provisional" not in json.loads(run.path("shots.json").read_text())  # the JSON schema is unchanged
    assert run.load("shots.json", ShotPlan, "k") is None  # never trusted by a later run
    run.cached("shots.json", ShotPlan, "k", make)  # still failing: tried again, still provisional
    assert len(calls) == 2 and run.load("shots.json", ShotPlan).key == "k+provisional"
    intended_works = True
    final = run.cached("shots.json", ShotPlan, "k", make)
    assert final.key == "k" and len(calls) == 3
    assert run.cached("shots.json", ShotPlan, "k", make).key == "k" and len(calls) == 3  # now reused


def test_a_hand_edited_fallback_artifact_is_kept(tmp_path):
    run = RunFolder(tmp_path)

    def fallback():
        plan = _plan()
        plan.mark_provisional("server down")
        return plan

    run.cached("shots.json", ShotPlan, "k", fallback)
    data = json.loads(run.path("shots.json").read_text())
    data["shots"][0]["id"] = "my-shot"
    run.path("shots.json").write_text(json.dumps(data))
    calls = []
    kept = run.cached("shots.json", ShotPlan, "k", lambda: calls.append(1) or _plan())
    assert kept.shots[0].id == "my-shot" and calls == []
    assert run.load("shots.json", ShotPlan, "other") is None  # new inputs still remake it
