"""Progress reporting: library code calls a callback; only the CLI (and a UI) draws bars."""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int, message: str = "") -> None:
        """``done`` of ``total`` units of the current stage are finished."""


def no_progress(done: int, total: int, message: str = "") -> None:
    """The default callback: report nothing."""
