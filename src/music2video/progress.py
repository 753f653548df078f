"""Progress reporting: library code calls a callback; only the CLI (and a UI) draws bars."""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int, message: str = "") -> None:
        """``done`` of ``total`` units of the current stage are finished."""


def no_progress(done: int, total: int, message: str = "") -> None:
    """The default callback: report nothing."""


class PipelineProgress(Protocol):
    """What the pipeline reports to: one progress callback per stage."""

    def stage(self, name: str) -> ProgressCallback:
        """Called when stage ``name`` starts; the returned callback receives that stage's progress."""


class SilentPipelineProgress:
    def stage(self, name: str) -> ProgressCallback:
        return no_progress
