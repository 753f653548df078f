"""Debian's chromium, headless and offline, driven by Playwright: shared by the browser tests.

Tests using it skip, with the reason, where chromium or the playwright package is missing
(``make test`` installs both; Playwright's own browser download is never used).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Offline and quiet: no sandbox (root in CI), no GPU, no background or update traffic, every
# host name but loopback unresolvable.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="Debian's chromium is not installed (make test installs it)")


@contextmanager
def open_page(home: Path, **context_options) -> Iterator:
    """A fresh page (1280x900) in a headless chromium whose HOME is ``home``.

    ``page.problems`` collects console errors and uncaught exceptions for the test to check.
    """
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    home.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, env={**os.environ, "HOME": str(home)})
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
            page = context.new_page()
            page.problems = []
            page.on("console", lambda message: page.problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: page.problems.append(str(error)))
            yield page
        finally:
            browser.close()
