"""Export to video editors: the OTIO timeline read back with opentimelineio puts every clip at
its shot's frame with the song under it; FCP XML and EDL through OTIO's adapters; the CLI as typed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from music2video import edit, make_video
from music2video.artifacts import RenderResult, ShotPlan
from music2video.demo import synthesize_demo_song
from music2video.errors import Music2VideoError
from music2video.export import FORMATS, export_timeline

otio = pytest.importorskip("opentimelineio", reason="the export extra is not installed: pip install 'music2video[export]'")

FPS = 24  # a SMPTE timecode rate, which FCP XML and EDL need


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export-run")
    song = folder / "song.wav"
    synthesize_demo_song(song, duration_s=16.0)
    make_video(song, folder / "song.mp4", pipeline="preview", width=64, height=36, fps=FPS, evaluate={"enabled": False})
    return folder / "song.music2video"


def _expected_starts(run: Path) -> list[tuple[str, int, int]]:
    """(shot id, first frame, frame count) of every shot, from shots.json."""
    plan = ShotPlan.model_validate_json((run / "shots.json").read_text())
    return [(s.id, round(s.start_s * FPS), round(s.end_s * FPS) - round(s.start_s * FPS)) for s in plan.shots]


def _placed(track) -> list[tuple[str, int, int]]:
    clips = list(track.find_clips())
    return [(c.name, c.range_in_parent().start_time.to_frames(), c.source_range.duration.to_frames()) for c in clips]


def test_the_otio_timeline_puts_every_clip_at_its_frame_with_the_song_under_it(finished_run, tmp_path):
    result = export_timeline(finished_run, "otio", tmp_path / "cut.otio")

    timeline = otio.adapters.read_from_file(str(result.path))
    video, audio = timeline.video_tracks(), timeline.audio_tracks()
    assert len(video) == 1 and len(audio) == 1
    assert _placed(video[0]) == _expected_starts(finished_run)
    clips = RenderResult.model_validate_json((finished_run / "clips.json").read_text()).clips
    for clip, rendered in zip(video[0].find_clips(), clips):
        assert clip.source_range.start_time.rate == FPS
        assert Path(clip.media_reference.target_url.removeprefix("file://")) == (finished_run / rendered.path).resolve()
        assert clip.metadata["music2video"]["prompt"]
    (song,) = audio[0].find_clips()
    duration_s = json.loads((finished_run / "analysis.json").read_text())["duration_s"]
    assert song.range_in_parent().start_time.to_frames() == 0
    assert song.source_range.duration.to_frames() == round(duration_s * FPS) == video[0].duration().to_frames()
    assert song.media_reference.target_url == (finished_run / "audio.wav").resolve().as_uri()
    sections = json.loads((finished_run / "analysis.json").read_text())["sections"]
    assert [m.marked_range.start_time.to_frames() for m in song.markers] == [round(s["start_s"] * FPS) for s in sections[1:]]
    assert result.clips == len(_expected_starts(finished_run))


@pytest.mark.parametrize("format", ["fcpxml", "xml", "edl"])
def test_editor_formats_read_back_with_the_same_cuts(finished_run, tmp_path, format):
    result = export_timeline(finished_run, format, tmp_path / f"cut{FORMATS[format].suffix}")
    timeline = otio.adapters.read_from_file(str(result.path), adapter_name=FORMATS[format].adapter)
    shots = [clip for clip in timeline.find_clips() if clip.name.startswith("shot-")]
    expected = _expected_starts(finished_run)
    placed = [(c.name, c.range_in_parent().start_time.to_frames(), c.source_range.duration.to_frames()) for c in shots]
    if format == "edl":  # an EDL keeps reel names, not clip names: compare the frames
        placed = [(None, start, count) for _, start, count in placed]
        expected = [(None, start, count) for _, start, count in expected]
    assert placed == expected


def test_a_cut_edited_since_the_render_is_exported_only_once_rendered(finished_run, tmp_path):
    run = tmp_path / "song.music2video"
    shutil.copytree(finished_run, run)
    summary = json.loads((run / "run.json").read_text())
    summary["output"] = str(tmp_path / "song.mp4")
    (run / "run.json").write_text(json.dumps(summary))
    state = edit.open_run(run)
    cut = state.plan.shots[2].start_s
    edit.move_cut(run, 2, cut + 0.5, snap="beat")
    with pytest.raises(Music2VideoError, match="not those of the shot plan"):
        export_timeline(run, "otio")

    edit.rerender(run)
    path = export_timeline(run, "otio").path
    assert path == run / "song.otio"
    placed = _placed(otio.adapters.read_from_file(str(path)).video_tracks()[0])
    assert placed == _expected_starts(run) and placed[2][1] != round(cut * FPS)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "music2video", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow  # five interpreters start: about 20 s on 2 busy cores
def test_the_export_command_as_typed(finished_run, tmp_path):
    out = tmp_path / "timeline.otio"
    done = _cli("export", finished_run, "--format", "otio", "-o", out)
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote ") and str(out) in lines[0]
    assert _placed(otio.adapters.read_from_file(str(out)).video_tracks()[0]) == _expected_starts(finished_run)

    edl = _cli("export", finished_run, "-f", "edl", "-o", tmp_path / "cut.edl")
    assert edl.returncode == 0 and (tmp_path / "cut.edl").read_text().startswith("TITLE:")

    mistyped = _cli("export", finished_run, "--format", "otoi")
    assert mistyped.returncode == 2
    assert mistyped.stderr.strip().count("\n") == 0 and "did you mean otio?" in mistyped.stderr

    nowhere = _cli("export", tmp_path / "no-such-run", "--format", "otio")
    assert nowhere.returncode == 1
    assert nowhere.stderr.strip().count("\n") == 0 and "is not a folder" in nowhere.stderr

    not_a_run = _cli("export", tmp_path, "--format", "otio")
    assert not_a_run.returncode == 1 and "not a music2video run folder" in not_a_run.stderr


def test_a_run_without_clips_or_without_the_extra_is_one_clear_error(finished_run, tmp_path, monkeypatch):
    run = tmp_path / "song.music2video"
    shutil.copytree(finished_run, run)
    (run / "clips.json").unlink()
    with pytest.raises(Music2VideoError, match="has no rendered clips yet"):
        export_timeline(run, "otio")
    with pytest.raises(Music2VideoError, match="unknown export format 'fcp'; did you mean fcpxml?"):
        export_timeline(finished_run, "fcp")

    from music2video.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "opentimelineio", None)  # a core install: the export extra is absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'music2video\[export\]'"):
        export_timeline(finished_run, "otio", tmp_path / "cut.otio")
