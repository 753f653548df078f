"""The edit API (music2video.edit) on a real preview run: cuts snap to beats, limits hold, locks
survive a new plan, and the pipeline afterwards sees the edits and re-renders only what changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from music2video import edit, make_video
from music2video.artifacts import Shot, ShotPlan, Storyboard
from music2video.demo import synthesize_demo_song
from music2video.errors import InputError
from music2video.shots import plan_shots
from music2video.settings import ShotSettings

SMALL = {"pipeline": "preview", "width": 64, "height": 36, "fps": 12, "evaluate": {"enabled": False}}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A 20 s demo song made into a preview video once; tests edit copies of its run folder."""
    folder = tmp_path_factory.mktemp("edit-run")
    song = folder / "song.wav"
    synthesize_demo_song(song, duration_s=20.0)
    make_video(song, folder / "song.mp4", **SMALL)
    return folder / "song.music2video"


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    """A copy of the finished run whose video goes to this test's folder."""
    copy = tmp_path / "song.music2video"
    shutil.copytree(finished_run, copy)
    summary = json.loads((copy / "run.json").read_text())
    summary["output"] = str(tmp_path / "song.mp4")
    (copy / "run.json").write_text(json.dumps(summary))
    return copy


def _plan(run: Path) -> ShotPlan:
    return ShotPlan.model_validate_json((run / "shots.json").read_text())


def _board(run: Path) -> Storyboard:
    return Storyboard.model_validate_json((run / "storyboard.json").read_text())


def _clips(run: Path) -> set[str]:
    return {path.name for path in (run / "clips").glob("*.mp4")}


def test_a_moved_cut_snaps_to_the_nearest_beat_and_only_its_two_shots_render_again(run):
    state = edit.open_run(run)
    beats = state.analysis.beats_s
    before = state.plan.shots
    assert edit.changed_shots(run) == []
    # Half a beat past the cut at the start of shot 5: the nearest beat is one beat later.
    cut = before[5].start_s
    after_one_beat = min((t for t in beats if t > cut + 0.1), key=lambda t: t - cut)
    wanted = cut + 0.6 * (after_one_beat - cut)

    state = edit.move_cut(run, 5, wanted, snap="beat")

    moved = state.plan.shots[5].start_s
    assert moved == after_one_beat
    assert state.plan.shots[4].end_s == moved and state.storyboard.shots[5].start_s == moved
    assert state.plan.shots[5].cut in ("beat", "downbeat")
    assert edit.changed_shots(run) == [before[4].id, before[5].id]
    clips_before = _clips(run)
    result = edit.rerender(run)
    assert result.rendered == [before[4].id, before[5].id] and result.failed == {} and result.pending == []
    assert len(_clips(run) - clips_before) == 2  # two new clips; the old takes stay on disk
    # The pipeline reads the same state: the edited cut is where the video cuts.
    video = json.loads((run / "video.json").read_text())
    assert video["cut_frames"][4] == round(moved * 12)


def test_a_downbeat_snap_lands_on_a_bar_line(run):
    state = edit.open_run(run)
    shot = state.plan.shots[2]
    state = edit.move_cut(run, shot.id, shot.start_s + 0.3, snap="downbeat")
    assert state.plan.shots[2].start_s in state.analysis.downbeats_s


def test_split_and_merge_keep_every_other_shot_and_its_clip(run):
    before = edit.open_run(run)
    shot = max(before.plan.shots, key=lambda s: s.duration_s)
    index = shot.index
    middle = (shot.start_s + shot.end_s) / 2
    if middle - shot.start_s < 1.5 or shot.end_s - middle < 1.5:
        pytest.skip("no shot of the demo plan is long enough to split within the limits")

    state = edit.split_shot(run, shot.id, middle, snap="frame")

    ids = [s.id for s in state.plan.shots]
    assert ids == [*[s.id for s in before.plan.shots[: index + 1]], shot.id + "b", *[s.id for s in before.plan.shots[index + 1 :]]]
    first, second = state.storyboard.shots[index], state.storyboard.shots[index + 1]
    assert first.end_s == second.start_s == round(middle * 12) / 12
    assert second.prompt == first.prompt and second.seed != first.seed
    assert edit.changed_shots(run) == [shot.id, shot.id + "b"]  # every other clip is still good

    state = edit.merge_shots(run, shot.id)
    assert [s.id for s in state.plan.shots] == [s.id for s in before.plan.shots]
    assert state.storyboard.shots[index] == before.storyboard.shots[index]
    assert edit.changed_shots(run) == []  # back to the entry the clip was made from


def test_edits_outside_the_limits_are_refused_with_the_limit_named(run):
    state = edit.open_run(run)
    plan_before = (run / "shots.json").read_text()
    with pytest.raises(edit.EditError, match=r"shots\.min_shot_s"):
        edit.move_cut(run, 3, state.plan.shots[3].start_s - state.plan.shots[2].duration_s + 0.2, snap="frame")
    long_pair = next(i for i, (a, b) in enumerate(zip(state.plan.shots, state.plan.shots[1:])) if a.duration_s + b.duration_s > 5.0)
    with pytest.raises(edit.EditError, match=r"longer than this run's longest shot \(5 s, shots\.max_shot_s\)"):
        edit.merge_shots(run, long_pair)
    with pytest.raises(edit.EditError, match="no shot 99"):
        edit.lock_shot(run, 99)
    with pytest.raises(edit.EditError, match="unknown snap"):
        edit.move_cut(run, 1, 1.0, snap="bar")  # type: ignore[arg-type]
    assert (run / "shots.json").read_text() == plan_before  # nothing was written


def test_the_last_shot_may_hold_through_the_ending_but_its_music_stays_within_the_limit():
    limits = edit.ShotLimits(min_s=1.5, max_s=5.0, fps=24.0, ending_s=40.0)
    limits.check("the last shot", 36.0, 50.0)  # 4 s of music, then 10 s ringing out
    limits.check("a split in the ending", 41.0, 50.0)
    held_too_long = r"the last shot would last 6\.00 s before the song's ending, longer than this run's longest shot"
    with pytest.raises(edit.EditError, match=held_too_long):
        limits.check("the last shot", 34.0, 50.0)
    with pytest.raises(edit.EditError, match="shots.min_shot_s"):
        limits.check("the last shot", 39.5, 40.5)


def test_update_shot_checks_fields_and_keep_take_goes_back(run):
    state = edit.open_run(run)
    with pytest.raises(edit.EditError, match="editable fields are scene, prompt"):
        edit.update_shot(run, 0, start_s=3.0)
    with pytest.raises(edit.EditError, match="not among the storyboard's characters"):
        edit.update_shot(run, 0, characters=["Nobody"])
    with pytest.raises(edit.EditError, match="seed must be a whole number"):
        edit.update_shot(run, 0, seed=-1)

    old = state.storyboard.shots[1]
    edit.update_shot(run, 1, prompt="a lighthouse in fog, dawn", camera="slow push in", seed=7)
    assert edit.changed_shots(run) == [old.id]
    result = edit.rerender(run, [old.id])
    assert result.rendered == [old.id] and result.video is not None and result.video.exists()
    takes = edit.takes(run, old.id)
    assert [t.number for t in takes] == [1, 2] and takes[0].entry == old
    assert takes[1].entry.prompt == "a lighthouse in fog, dawn"
    assert all((run / t.path).is_file() for t in takes)  # both takes can be compared
    assert edit.current_take(run, old.id).number == 2

    state = edit.keep_take(run, old.id, 1)
    assert state.storyboard.shots[1] == old
    assert edit.changed_shots(run) == []  # take 1's clip is the shot's clip again, nothing to render
    video = json.loads((run / "video.json").read_text())
    clips = json.loads((run / "clips.json").read_text())["clips"]
    assert clips[1]["path"] == takes[0].path and Path(video["video_path"]).exists()


def test_a_locked_shot_and_its_entry_survive_a_new_plan(run):
    state = edit.open_run(run)
    shot = state.plan.shots[3]
    edit.update_shot(run, shot.id, prompt="the locked prompt")
    edit.lock_shot(run, shot.id)
    with pytest.raises(edit.EditError, match="is locked"):
        edit.move_cut(run, shot.id, shot.start_s + 0.5)
    summary = json.loads((run / "run.json").read_text())

    # Other shot lengths make a new plan (and a new storyboard): the locked shot stays.
    result = make_video(
        summary["song"], summary["output"], workdir=run, until="write", **{**SMALL, "shots": {"min_shot_s": 1.0, "max_shot_s": 3.0}}
    )

    kept = next(s for s in result.plan.shots if s.id == shot.id)
    assert (kept.start_s, kept.end_s, kept.locked) == (shot.start_s, shot.end_s, True)
    assert result.plan.shots != state.plan.shots
    assert all(a.end_s == b.start_s for a, b in zip(result.plan.shots, result.plan.shots[1:]))
    assert result.storyboard.shots[kept.index].prompt == "the locked prompt"
    # The edited storyboard it replaced is kept, as every hand edit is.
    assert list(run.glob("storyboard.edited-*.json"))


def test_the_planner_plans_around_locked_shots(demo_analysis):
    settings = ShotSettings()
    free = plan_shots(demo_analysis, settings)
    beats = demo_analysis.beats_s
    lock = Shot(index=0, id="shot-042", start_s=beats[9], end_s=beats[13], section_index=0, cut="beat", locked=True)
    plan = plan_shots(demo_analysis, settings, [lock])
    assert lock.model_copy(update={"index": 1}) == plan.shots[1]  # after the intro's first shot
    assert plan.shots[0].start_s == 0 and plan.shots[-1].end_s == demo_analysis.duration_s
    assert all(a.end_s == b.start_s for a, b in zip(plan.shots, plan.shots[1:]))
    assert [s.index for s in plan.shots] == list(range(len(plan.shots)))
    assert len({s.id for s in plan.shots}) == len(plan.shots)
    assert plan.shots != free.shots
    outside = lock.model_copy(update={"start_s": demo_analysis.duration_s + 1, "end_s": demo_analysis.duration_s + 3})
    assert plan_shots(demo_analysis, settings, [outside]).shots == free.shots


def test_a_folder_that_is_no_run_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        edit.open_run(tmp_path / "missing")
    with pytest.raises(InputError, match="no run.json: not a music2video run folder"):
        edit.changed_shots(tmp_path)


def test_the_cli_after_an_edit_reuses_every_clip_but_the_edited_shots(run, monkeypatch):
    from music2video.cli import main

    monkeypatch.setenv("MUSIC2VIDEO_EVALUATE__ENABLED", "false")
    summary = json.loads((run / "run.json").read_text())
    edit.update_shot(run, "shot-002", scene="The keeper climbs the stairs.", prompt="a spiral staircase, lantern light")
    before = _clips(run)

    main([summary["song"], "-o", summary["output"], "--workdir", str(run), "--resolution", "64x36", "--fps", "12", "--pipeline", "preview"])

    new = _clips(run) - before
    assert len(new) == 1 and next(iter(new)).startswith("shot-002-")
    assert _board(run).shots[1].prompt == "a spiral staircase, lantern light"  # the edit was kept
    assert edit.changed_shots(run) == []


def test_replacing_a_keyframe_or_a_reference_writes_the_file_the_keyframes_stage_takes_as_yours(run, tmp_path):
    from PIL import Image

    from music2video.artifacts import Keyframe, KeyframeSet
    from music2video.runfolder import file_sha256, write_json_atomic

    picture = tmp_path / "mine.jpg"
    Image.new("RGB", (32, 18), (200, 40, 40)).save(picture)
    write_json_atomic(run / "keyframes.json", KeyframeSet(model="test", shots=[Keyframe(shot=1, path="keyframes/x.png", sha256="0")]))

    path = edit.replace_keyframe(run, "shot-002", picture)
    assert path == run / "keyframes" / "shot-002.png"
    assert Image.open(path).format == "PNG" and Image.open(path).size == (32, 18)
    listed = KeyframeSet.model_validate_json((run / "keyframes.json").read_text()).shots
    assert listed == [Keyframe(shot=1, shot_id="shot-002", path="keyframes/shot-002.png", sha256=file_sha256(path), user_edited=True)]

    first = path.read_bytes()
    edit.replace_keyframe(run, 1, _png_bytes((0, 0, 255)))
    kept = list((run / "keyframes").glob("shot-002.replaced-*.png"))
    assert len(kept) == 1 and kept[0].read_bytes() == first and path.read_bytes() != first

    with pytest.raises(edit.EditError, match="not a picture"):
        edit.replace_keyframe(run, 1, b"not an image")
    board = _board(run)
    name = board.characters[0].name
    reference = edit.replace_reference(run, name, picture)
    assert reference.parent == run / "references" and reference.stem == name.lower().replace(" ", "-")
    with pytest.raises(edit.EditError, match="no character, place or prop called 'Nobody'"):
        edit.replace_reference(run, "Nobody", picture)


def _png_bytes(colour: tuple[int, int, int]) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_rerendering_one_of_two_changed_shots_renders_that_one_and_the_video_waits(run):
    edit.update_shot(run, 1, prompt="a red door in the rain")
    edit.update_shot(run, 2, prompt="a blue door in the snow")
    video_before = (run / "video.json").read_text()
    clips_before = _clips(run)

    result = edit.rerender(run, ["shot-002"])

    assert result.rendered == ["shot-002"] and result.pending == ["shot-003"] and result.video is None
    new = _clips(run) - clips_before
    assert len(new) == 1 and next(iter(new)).startswith("shot-002-")
    assert (run / "video.json").read_text() == video_before  # joined again only once nothing is pending
    assert [t.entry.prompt for t in edit.takes(run, "shot-002")][-1] == "a red door in the rain"
    assert edit.rerender(run, ["shot-002"]).rendered == []  # up to date: nothing to do
    assert edit.rerender(run, ["shot-002"], new_seed=True).rendered == ["shot-002"]  # a new variation
    assert len(edit.takes(run, "shot-002")) == 3


def test_a_replaced_keyframe_outdates_the_clips_it_conditions_and_keep_take_brings_it_back(run, tmp_path):
    """With an image-conditioned video model, clips are named by their pictures too: the edit
    API finds the same changed shots as the render stage, and a take brings its keyframe back.
    (Naming only: the clips here are empty files standing in for rendered ones.)"""
    from PIL import Image

    from music2video.artifacts import Keyframe, KeyframeSet
    from music2video.render import open_renderer, shot_jobs
    from music2video.runfolder import RunFolder, file_sha256, write_json_atomic

    summary = json.loads((run / "run.json").read_text())
    summary["backends"]["renderer"] = "diffusers"
    summary["settings"].update(renderer="diffusers", keyframes={**summary["settings"]["keyframes"], "enabled": "on"})
    summary["settings"]["video"]["model"] = "wan2.1-vace-1.3b"
    (run / "run.json").write_text(json.dumps(summary))
    state = edit.open_run(run)
    frames = []
    for index, shot in enumerate(state.storyboard.shots):
        path = run / "keyframes" / f"{shot.id}-generated.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (16, 16), (index * 20, 90, 90)).save(path)
        frames.append(Keyframe(shot=index, shot_id=shot.id, path=str(path.relative_to(run)), sha256=file_sha256(path)))
    write_json_atomic(run / "keyframes.json", KeyframeSet(model="test", shots=frames))

    def jobs():
        now = edit.open_run(run)
        settings = now.settings
        renderer = open_renderer("diffusers", settings.width, settings.height, settings.fps, settings.video)
        keyframes = KeyframeSet.model_validate_json((run / "keyframes.json").read_text()).paths(run)
        return shot_jobs(renderer, now.storyboard, RunFolder(run), settings.fps, keyframes)

    for job in jobs():  # every shot "rendered" from its keyframe
        job.path.touch()
    assert edit.changed_shots(run) == []

    edit.replace_keyframe(run, "shot-004", _png_bytes((250, 250, 0)))

    expected = [job.shot.id for job in jobs() if not job.path.exists()]
    assert "shot-004" in expected and len(expected) < len(state.plan.shots)
    assert edit.changed_shots(run) == expected
    (take,) = edit.takes(run, "shot-004")
    assert take.keyframe == "keyframes/shot-004-generated.png"

    edit.keep_take(run, "shot-004", 1, assemble=False)
    assert edit.changed_shots(run) == []
    assert file_sha256(run / "keyframes" / "shot-004.png") == file_sha256(run / take.keyframe)
    assert len(list((run / "keyframes").glob("shot-004.replaced-*.png"))) == 1  # the yellow one is kept
