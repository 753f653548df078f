"""Which stretches of the song the model hears: each section cut into windows it can hear whole."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from music2video.artifacts import Section, SegmentDescription, Shot


@dataclass(frozen=True)
class Window:
    """A stretch of one section that the model hears in one request (seconds from song start).

    ``part`` counts from 1 within its section; ``parts`` is how many windows the section has.
    """

    index: int
    section_position: int  # position of the section in ``analysis.sections``
    part: int
    parts: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def plan_windows(sections: Sequence[Section], limit_s: float) -> list[Window]:
    """Each section as ``ceil(length / limit_s)`` equal, contiguous windows of at most
    ``limit_s`` seconds, so nothing is cut off and no window is much shorter than the others."""
    if limit_s <= 0:
        raise ValueError(f"the window limit must be positive, got {limit_s}")
    windows: list[Window] = []
    for position, section in enumerate(sections):
        length_s = max(section.end_s - section.start_s, 0.0)
        parts = max(1, math.ceil(length_s / limit_s - 1e-9))
        step_s = length_s / parts
        for part in range(parts):
            start_s = section.start_s + part * step_s
            end_s = section.end_s if part == parts - 1 else section.start_s + (part + 1) * step_s
            windows.append(Window(len(windows), position, part + 1, parts, start_s, end_s))
    return windows


def window_for_shot(shot: Shot, windows: Sequence[Window], section_position: int | None) -> Window:
    """The window that overlaps ``shot`` most, preferring the windows of its own section."""
    own = [w for w in windows if w.section_position == section_position]
    candidates = own or list(windows)
    return max(candidates, key=lambda w: (min(w.end_s, shot.end_s) - max(w.start_s, shot.start_s), -w.index))



@dataclass
class WindowResult:
    """The description of one window and where it came from."""

    window: Window
    description: SegmentDescription
    from_model: bool
    problems: list[str] = field(default_factory=list)
