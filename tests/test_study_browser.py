"""One participant takes a small study in a real headless chromium (Debian's, driven by
Playwright) against ``music2video study serve`` on loopback: watches each video to its end,
answers every question and the attention check, closes the tab halfway and comes back.
The page runs under its Content-Security-Policy (no eval), so the test waits on selectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import needs_chromium, open_page
from study_helpers import free_port, make_videos, start_server

pytest.importorskip("fastapi", reason="the web extra is not installed (pip install -e '.[web]')")

from music2video.study.design import create_study  # noqa: E402
from music2video.study.results import analyse_study  # noqa: E402
from music2video.study.store import read_answers  # noqa: E402

pytestmark = [pytest.mark.slow, needs_chromium]


def _rate_current_video(page, rating: int) -> None:
    """Play the video, wait for the questions to unlock at its end, answer all, submit."""
    assert page.evaluate("document.getElementById('questions').disabled")  # nothing to answer before watching
    assert page.locator(".question input").first.is_disabled()
    page.click("#play")
    page.wait_for_selector("#questions:not([disabled])", timeout=20_000)
    assert page.evaluate("document.getElementById('player').ended")
    for question in page.locator(".question").all():
        name = question.get_attribute("data-dimension")
        if name == "__attention__":
            text = question.inner_text()
            value = int(text.split("choose ")[1][0])
        else:
            value = rating
        question.locator(f"input[value='{value}']").check()
    page.click("#submit")


def test_a_participant_completes_a_small_study(tmp_path: Path):
    clips = make_videos(tmp_path / "clips", 2, seconds=1.0)
    folder = tmp_path / "pilot.study"
    study = create_study(clips, folder, name="pilot", conditions=["ours", "base"])
    port = free_port()
    server = start_server(folder, port)
    try:
        with open_page(tmp_path / "home") as page:
            url = f"http://127.0.0.1:{port}/"
            page.goto(url)
            page.click("#start")
            page.wait_for_selector("#rate:not([hidden])")
            assert page.inner_text("#progress") == "Video 1 of 2"
            first = page.evaluate("document.getElementById('player').src")

            # Submitting without every answer is refused on the page, and nothing is stored.
            page.click("#play")
            page.wait_for_selector("#questions:not([disabled])", timeout=20_000)
            page.locator(".question").first.locator("input[value='2']").check()
            page.click("#submit")
            assert "Please answer every question" in page.inner_text("#error")
            assert read_answers(folder)[0] == []
            page.reload()  # the tab is reloaded before answering: the same video comes back
            page.wait_for_selector("#rate:not([hidden])")
            assert page.evaluate("document.getElementById('player').src") == first

            _rate_current_video(page, 4)
            page.wait_for_selector("#progress:text-is('Video 2 of 2')")
            assert len(read_answers(folder)[0]) == len(study.dimensions)  # saved before the next video

            assert page.problems == []
            page.close()  # the tab is closed; the participant opens the page again
            page = page.context.new_page()
            page.problems = []
            page.on("console", lambda message: page.problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: page.problems.append(str(error)))
            page.goto(url)
            page.wait_for_selector("#rate:not([hidden])")
            assert page.inner_text("#progress") == "Video 2 of 2"
            _rate_current_video(page, 2)
            page.wait_for_selector("#done:not([hidden])")
            participant = page.inner_text("#participant-id")
            assert page.problems == []
    finally:
        server.terminate()
        server.wait(timeout=20)

    answers, participants = read_answers(folder)
    assert set(participants) == {participant}
    info = participants[participant]
    assert info["finished"] and info["attention_given"] == info["attention_expected"]
    assert sorted(a.rating for a in answers) == [2] * len(study.dimensions) + [4] * len(study.dimensions)
    assert all(a.watched_s is not None and a.watched_s >= 0.9 for a in answers)  # watched to the end
    results = analyse_study(folder)
    assert (results.participants, results.finished, results.excluded_attention) == (1, 1, 0)
