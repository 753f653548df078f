"""The studio in a real headless Chromium (Debian's, driven by Playwright), as a user walks through it.

The server runs on a loopback port in a thread of the test process; long work runs in its
child processes as it does for a user. Skipped, with the reason, where chromium, playwright or
the web extra is missing.
"""

from __future__ import annotations

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


def _wait_for_job(page, state: str = "done") -> None:
    page.wait_for_function(
        "['done', 'failed', 'cancelled'].includes(document.getElementById('job-state').textContent)", timeout=JOB_TIMEOUT_MS
    )
    assert page.text_content("#job-state") == state, page.text_content("#job-error")


def test_upload_render_play_and_seek(tmp_path: Path):
    """Upload a song, render a preview, play it (its duration is the song's), seek from the
    timeline, and find that a path out of the work folder is refused."""
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
        _wait_for_job(page)
        stages = page.eval_on_selector_all(".stage", "rows => rows.map(r => r.dataset.stage)")
        assert {"decode", "structure", "render", "assemble"} <= set(stages)
        assert "rendered shot-" in page.text_content(".stage[data-stage=render] .what")  # per shot

        # The timeline: every shot has a box and a thumbnail; the run reopens from its address.
        state = page.evaluate("studio.state")
        assert len(state["shots"]) >= 3 and state["beats_s"] and state["sections"]
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

        assert page.problems == []

        # A path out of the work folder, asked for by the page, is refused.
        status = page.evaluate("fetch('/api/file?path=' + encodeURIComponent('../My Song (demo).wav')).then(r => r.status)")
        assert status == 403
        status = page.evaluate(f"fetch('/api/file?path=' + encodeURIComponent('{song}')).then(r => r.status)")
        assert status == 403
        assert [r for r in requests if not r.startswith(url) and r != "about:blank"] == []  # nothing from elsewhere
