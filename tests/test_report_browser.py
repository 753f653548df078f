"""report.html in a real headless Chromium (Debian's package, driven by Playwright): the page a user opens.

Skipped, with the reason, where Debian's chromium or the playwright package is missing
(``make test`` installs both; Playwright's own browser download is never used).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

from browser import needs_chromium, open_page
from test_report import build_run_folder

from music2video.report import write_report

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture
def page(tmp_path: Path):
    with open_page(tmp_path / "home") as page:
        yield page


def _open(page, report: Path) -> None:
    page.goto(report.as_uri())
    # the video must know its length before a seek sticks
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15_000)


def _current_time(page) -> float:
    return page.evaluate("document.getElementById('player').currentTime")


def test_clicking_a_shot_plays_the_video_from_that_shot(tmp_path: Path, page):
    run = build_run_folder(tmp_path)  # six 1-second shots, shot-003 starts at 3.0 s
    _open(page, write_report(run))

    page.click("#shot-003 .frame")
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 3.0) < 0.5", timeout=10_000)
    assert 3.0 <= _current_time(page) < 4.0  # inside shot-003, not past it
    assert page.problems == []


def test_the_timeline_and_its_sections_seek_the_video(tmp_path: Path, page):
    run = build_run_folder(tmp_path)  # sections A 0-3 s, B 3-6 s
    _open(page, write_report(run))

    page.click(".bands .band >> nth=1")  # section B
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 3.0) < 0.5", timeout=10_000)
    page.evaluate("document.getElementById('player').pause()")

    # a click a quarter of the way along the waveform's time axis lands near 1.5 s
    plot = page.locator(".seekable").first
    box = plot.bounding_box()
    left, right = (float(plot.get_attribute(name)) for name in ("data-left", "data-right"))
    x = box["width"] * (left + (right - left) * 0.25)
    plot.click(position={"x": x, "y": box["height"] / 2})
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 1.5) < 0.3", timeout=10_000)
    assert page.problems == []


def test_shot_cards_filter_by_section_and_fold(tmp_path: Path, page):
    run = build_run_folder(tmp_path)
    _open(page, write_report(run))
    visible = "Array.from(document.querySelectorAll('.shot')).filter(c => !c.hidden).map(c => c.id)"

    page.click(".filter[data-filter='B']")
    assert page.evaluate(visible) == ["shot-003", "shot-004", "shot-005"]
    page.click(".filter[data-filter='']")
    assert len(page.evaluate(visible)) == 6

    page.click(".fold[data-open='0']")
    assert page.evaluate("Array.from(document.querySelectorAll('.shot details.body')).every(d => !d.open)")
    assert page.locator("#shot-000 .scene").is_hidden()
    page.click(".fold[data-open='1']")
    assert page.locator("#shot-000 .scene").is_visible()

    page.click("nav.toc a[href='#shots']")  # the table of contents leads to the section
    assert page.evaluate("document.getElementById('shots').getBoundingClientRect().top") < 200
    assert page.problems == []
