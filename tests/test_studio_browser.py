"""The studio in a real headless Chromium (Debian's, driven by Playwright), as a user walks through it.

The server runs on a loopback port in a thread of the test process; long work runs in its
child processes as it does for a user. Skipped, with the reason, where chromium, playwright or
the web extra is missing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import soundfile
from browser import needs_chromium, open_page

pytest.importorskip("fastapi", reason="the studio needs the web extra (pip install -e '.[web]')")
pytest.importorskip("uvicorn", reason="the studio needs the web extra (pip install -e '.[web]')")

from music2video.demo import synthesize_demo_song  # noqa: E402
from music2video.studio import create_app  # noqa: E402

pytestmark = [pytest.mark.slow, needs_chromium]

SONG_S = 12.0
JOB_TIMEOUT_MS = 120_000


@contextmanager
def running_studio(work: Path, **options) -> Iterator[str]:
    """The studio on a free loopback port; yields its URL."""
    import uvicorn

    config = uvicorn.Config(create_app(work, **options), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the studio did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(30)


def _job(page, selector: str) -> None:
    """Click what starts a job and wait until that job (not an earlier one) has ended well."""
    previous = page.evaluate("studio.job && studio.job.id")
    page.click(selector)
    page.wait_for_function(
        f"studio.job && studio.job.id !== {json.dumps(previous)} && ['done', 'failed', 'cancelled'].includes(studio.job.state)",
        timeout=JOB_TIMEOUT_MS,
    )
    assert page.evaluate("studio.job.state") == "done", page.evaluate("studio.job.error")
    # The page has read the run's new state once the job ended.
    page.wait_for_function("document.getElementById('job-state').textContent === 'done'")


def _clips(run: Path) -> dict[str, tuple[str, int]]:
    """Every clip file of a run folder: name -> (sha256, mtime in ns)."""
    from music2video.runfolder import file_sha256

    return {path.name: (file_sha256(path), path.stat().st_mtime_ns) for path in sorted((run / "clips").glob("*.mp4"))}


def _a_cut_to_move(state: dict) -> tuple[int, float]:
    """(cut index, a beat to move it to) that keeps both shots inside the default limits."""
    from music2video.settings import ShotSettings

    limits = ShotSettings()
    shots = state["shots"]
    for cut in range(1, len(shots)):
        before, after = shots[cut - 1], shots[cut]
        for beat in state["beats_s"]:
            if abs(beat - after["start_s"]) < 0.01:
                continue
            if limits.min_shot_s <= beat - before["start_s"] <= limits.max_shot_s and limits.min_shot_s <= after["end_s"] - beat <= limits.max_shot_s:
                return cut, beat
    raise AssertionError("no cut of the test song can move by a beat inside the limits")


def test_studio_walk_through(tmp_path: Path):
    """Upload a song and render a preview; play it (its duration is the song's) and seek from
    the timeline; drag a cut (it lands on a beat); edit one prompt and re-render that shot only;
    compare the takes and keep the previous one; export OTIO and read it back; a path out of
    the work folder is refused."""
    song = tmp_path / "My Song (demo).wav"
    synthesize_demo_song(song, duration_s=SONG_S)
    work = tmp_path / "work"
    # Playwright's waits evaluate strings, which the studio's Content-Security-Policy forbids
    # (the API tests check that header); every request the page makes is recorded instead.
    with running_studio(work) as url, open_page(tmp_path / "home", bypass_csp=True) as page:
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        assert page.is_visible("#start-form")  # an empty work folder: the start form is open

        page.set_input_files("#upload", str(song))
        page.wait_for_function("document.getElementById('song-picker').value === 'My_Song_demo.wav'")
        assert (work / "My_Song_demo.wav").read_bytes() == song.read_bytes()
        page.select_option("#pipeline", "preview")
        page.fill("input[name=width]", "128")
        page.fill("input[name=height]", "72")
        page.fill("input[name=fps]", "12")
        page.uncheck("input[name=evaluate]")
        page.click("#start-run")
        # Closing the page loses nothing: the run goes on, and its address shows it again
        # (the job still running, or how it ended).
        page.wait_for_function("studio.job && studio.job.stages.length >= 2", timeout=JOB_TIMEOUT_MS)
        page.goto("about:blank")
        page.goto(url + "#run=My_Song_demo.music2video")
        page.wait_for_function(
            "studio.job && ['done', 'failed', 'cancelled'].includes(studio.job.state) && "
            "document.getElementById('job-state').textContent === studio.job.state",
            timeout=JOB_TIMEOUT_MS,
        )
        assert page.evaluate("studio.job.state") == "done", page.evaluate("studio.job.error")
        assert page.is_visible("#run") and not page.is_visible("#shot-form")  # no shot picked yet
        stages = page.eval_on_selector_all(".stage", "rows => rows.map(r => r.dataset.stage)")
        assert {"decode", "structure", "render", "assemble"} <= set(stages)
        assert "rendered shot-" in page.text_content(".stage[data-stage=render] .what")  # per shot
        rendered = page.evaluate("studio.job.stages.find(s => s.name === 'render').messages.filter(m => m.startsWith('rendered '))")

        # The timeline: every shot has a box and a thumbnail; the run reopens from its address.
        state = page.evaluate("studio.state")
        assert len(state["shots"]) >= 3 and state["beats_s"] and state["sections"]
        assert sorted(rendered) == sorted(f"rendered {shot['id']}" for shot in state["shots"])  # each shot, as it finished
        page.wait_for_function("Array.from(document.querySelectorAll('.shot img')).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator(".shot").count() == len(state["shots"])
        page.goto("about:blank")
        page.goto(url + "#run=My_Song_demo.music2video")
        page.wait_for_selector("body[data-ready='1']")
        assert page.evaluate("studio.state.shots.length") == len(state["shots"])

        # The video plays, and lasts as long as the song (within a frame at 12 fps).
        page.wait_for_function("document.getElementById('player').readyState >= 1")
        duration = page.evaluate("document.getElementById('player').duration")
        assert duration == pytest.approx(state["duration_s"], abs=1 / 12 + 0.03)
        assert state["duration_s"] == pytest.approx(soundfile.info(str(song)).duration, abs=0.01)
        page.evaluate("(() => { const v = document.getElementById('player'); v.muted = true; return v.play(); })()")
        page.wait_for_function("document.getElementById('player').currentTime > 0.3", timeout=20_000)
        page.evaluate("document.getElementById('player').pause()")

        # Clicking the waveform seeks there; clicking a shot seeks to its start.
        wave = page.locator("#wave")
        target_s = state["duration_s"] * 0.6
        x = page.evaluate(f"studio.timeToX({target_s})")
        wave.click(position={"x": x, "y": 100})
        page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {target_s}) < 0.1")
        second = state["shots"][1]
        page.click(f"#{second['id']}")
        page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {second['start_s']}) < 0.1")
        assert page.text_content("#shot-name") == second["id"]

        # Drag a cut: it lands exactly on the beat nearest to where it was dropped.
        run = work / "My_Song_demo.music2video"
        cut, beat = _a_cut_to_move(state)
        period = 60.0 / state["tempo_bpm"]
        page.locator("#wave").scroll_into_view_if_needed()
        box = page.locator("#wave").bounding_box()
        x_from = box["x"] + page.evaluate(f"studio.timeToX({state['shots'][cut]['start_s']})")
        x_to = box["x"] + page.evaluate(f"studio.timeToX({beat + 0.2 * period})")  # off the beat, nearer it than any other
        page.mouse.move(x_from, box["y"] + 60)
        page.mouse.down()
        page.mouse.move(x_to, box["y"] + 60, steps=6)
        page.mouse.up()
        page.wait_for_function(f"Math.abs(studio.state.shots[{cut}].start_s - {beat}) < 1e-6")
        plan = json.loads((run / "shots.json").read_text())
        assert plan["shots"][cut]["start_s"] == beat and beat in json.loads((run / "analysis.json").read_text())["beats_s"]
        assert plan["shots"][cut - 1]["end_s"] == beat
        moved = {state["shots"][cut - 1]["id"], state["shots"][cut]["id"]}
        assert set(page.evaluate("studio.state.edit.changed")) == moved
        _job(page, "#rerender-changed")
        assert page.evaluate("studio.state.edit.changed") == []

        # Edit one prompt and re-render that shot alone: no other clip is touched.
        shot = next(index for index, s in enumerate(state["shots"]) if s["id"] not in moved)
        shot_id = state["shots"][shot]["id"]
        old_prompt = state["shots"][shot]["prompt"]
        page.click(f"#{shot_id}")
        page.fill("#shot-form textarea[name=prompt]", "a lighthouse in fog at dawn, slow push in")
        page.click("#save-shot")
        page.wait_for_function(f"studio.state.edit.changed.includes('{shot_id}')")
        before = _clips(run)
        _job(page, "#rerender-shot")
        after = _clips(run)
        new = sorted(set(after) - set(before))
        assert len(new) == 1 and new[0].startswith(shot_id + "-"), new
        assert {name: after[name] for name in before} == before  # same bytes, same modification time
        board = json.loads((run / "storyboard.json").read_text())
        assert board["shots"][shot]["prompt"] == "a lighthouse in fog at dawn, slow push in"

        # The previous take and the new one side by side; keep the previous one.
        page.wait_for_selector("#takes:not([hidden]) figure.take >> nth=1")
        assert page.eval_on_selector_all("#takes figure.take video", "videos => videos.length") == 2
        _job(page, "#takes figure.take >> nth=0 >> button.keep")
        board = json.loads((run / "storyboard.json").read_text())
        assert board["shots"][shot]["prompt"] == old_prompt
        assert _clips(run) == after  # keeping a take renders nothing

        # The video, joined again, still lasts as long as the song.
        page.wait_for_function("document.getElementById('player').readyState >= 1")
        duration = page.evaluate("document.getElementById('player').duration")
        assert duration == pytest.approx(state["duration_s"], abs=1 / 12 + 0.03)

        # Export OTIO and read it back: every clip starts at its shot's frame, the song beneath.
        otio = pytest.importorskip("opentimelineio", reason="the export extra is not installed")
        with page.expect_download() as download:
            page.click("a.download:text('OTIO')")
        exported = tmp_path / "export.otio"
        download.value.save_as(exported)
        timeline = otio.adapters.read_from_file(str(exported))
        video_track = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video)
        audio_track = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio)
        final = json.loads((run / "shots.json").read_text())["shots"]
        fps = state["fps"]
        assert [clip.name for clip in video_track] == [s["id"] for s in final]
        for index, planned in enumerate(final):
            placed = video_track.range_of_child_at_index(index)
            assert placed.start_time.rate == fps
            assert placed.start_time.value == round(planned["start_s"] * fps), planned["id"]
        assert round(final[cut]["start_s"] * fps) == round(beat * fps)  # the moved cut, as moved
        assert audio_track[0].source_range.duration.to_seconds() == pytest.approx(state["duration_s"], abs=1 / fps)
        assert page.problems == []

        # Split the longest shot (in its middle: the playhead is elsewhere), merge it back; lock
        # a shot, and its cut refuses to move with a message that says why.
        count = len(final)
        longest = max(range(count), key=lambda i: final[i]["end_s"] - final[i]["start_s"])
        page.click(f"#{final[longest]['id']}")
        page.evaluate(f"document.getElementById('player').currentTime = {final[longest]['end_s'] + 0.5 if longest < count - 1 else 0}")
        page.click("#split-shot")
        page.wait_for_function(f"studio.state.shots.length === {count + 1}")
        split_at = json.loads((run / "shots.json").read_text())["shots"][longest + 1]["start_s"]
        assert split_at in json.loads((run / "analysis.json").read_text())["beats_s"]
        page.click("#merge-shot")
        page.wait_for_function(f"studio.state.shots.length === {count}")
        page.click(f"#{final[0]['id']}")
        page.click("#lock-shot")
        page.wait_for_selector(f"#{final[0]['id']}.locked")
        assert json.loads((run / "shots.json").read_text())["shots"][0]["locked"] is True
        page.locator("#wave").scroll_into_view_if_needed()
        box = page.locator("#wave").bounding_box()
        x_cut = box["x"] + page.evaluate(f"studio.timeToX({final[1]['start_s']})")
        page.mouse.move(x_cut, box["y"] + 60)
        page.mouse.down()
        page.mouse.move(x_cut + 40, box["y"] + 60, steps=4)
        page.mouse.up()
        page.wait_for_selector("#message.error:not([hidden])")
        assert "locked" in page.text_content("#message")
        assert json.loads((run / "shots.json").read_text())["shots"][1]["start_s"] == final[1]["start_s"]

        # A path out of the work folder, asked for by the page, is refused.
        status = page.evaluate("fetch('/api/file?path=' + encodeURIComponent('../My Song (demo).wav')).then(r => r.status)")
        assert status == 403
        status = page.evaluate(f"fetch('/api/file?path=' + encodeURIComponent('{song}')).then(r => r.status)")
        assert status == 403
        assert [r for r in requests if not r.startswith(url) and r != "about:blank"] == []  # nothing from elsewhere
