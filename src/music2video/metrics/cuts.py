"""Hard-cut detection on the change curves of :func:`~music2video.metrics.frames.scan_video`.

The rule is PySceneDetect's ``AdaptiveDetector`` (a frame's change against the mean change of
its neighbours, plus an absolute floor), measured on YUV instead of HSV because the decoder
hands out YUV for free, with one addition that keeps flashes out:

A frame ``k`` starts a new shot when

1. ``change[k] >= MIN_CHANGE``: the picture changes by at least this much (mean absolute
   Y/U/V difference, 0..255) from frame ``k-1`` to ``k``;
2. ``change[k] >= ADAPTIVE_RATIO * mean(change of the NEIGHBOUR_FRAMES frames on each side)``:
   the change stands out from the motion around it (fast motion is not a cut);
3. the change persists: frame ``k-1-P`` differs from ``k``, and ``k-1`` from ``k+P``, by at
   least ``PERSIST_FRACTION`` of ``change[k]``, where ``P`` is a quarter second in frames
   (``frames.PERSIST_S``). A flash returns to the old picture and fails this test;
4. the new picture is new: frame ``k+P`` differs from ``k-1`` by at least ``DRIFT_FRACTION``
   of how much the picture changes by itself from ``k+1`` to ``k+1+P`` (its motion, a fading
   pulse). A beat pulse (a flash with a zoom bump that fades while the camera moves) leaves a
   picture that has only drifted, and mostly fails this test;
5. no stronger candidate lies within ``MIN_CUT_GAP_S``.

On the preview animatic, whose every downbeat flashes and bumps the zoom, this finds about 90 %
of the planned cuts with about 95 % precision at 24 fps (all of them at 12 fps); the misses are
cuts between two shots of the same motif, where the new shot starts on a pulse.

Dissolves and fades are not hard cuts and are not reported; the assembler only makes hard cuts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from music2video.metrics.frames import VideoScan

MIN_CHANGE = 8.0
"""Smallest frame-to-frame change (mean abs Y/U/V difference, 0..255) that can be a cut."""

ADAPTIVE_RATIO = 3.0
"""A cut's change must be this many times the mean change of its neighbours (PySceneDetect's default)."""

NEIGHBOUR_FRAMES = 2
"""Frames on each side that form the neighbourhood of rule 2 (PySceneDetect's ``window_width``)."""

NEIGHBOUR_FLOOR = 1.0
"""Neighbourhood means below this (0..255) count as this: a still picture has no noise to divide by."""

PERSIST_FRACTION = 0.5
"""Share of a cut's change that must still be there a quarter second later and earlier (rule 3)."""

DRIFT_FRACTION = 0.8
"""Rule 4: the change across a cut, against the picture's own change over the same span after it."""

MIN_CUT_GAP_S = 0.2
"""Two candidates closer than this are one cut (the stronger wins)."""


@dataclass
class CutDetection:
    """Detected cuts: ``frames[i]`` is the first frame of a new shot, ``strengths[i]`` its change (0..255)."""

    frames: list[int]
    strengths: list[float]
    fps: float

    @property
    def times_s(self) -> list[float]:
        """Start time of each new shot, seconds (frame index / fps)."""
        return [frame / self.fps for frame in self.frames]


def detect_cuts(
    scan: VideoScan,
    min_change: float = MIN_CHANGE,
    adaptive_ratio: float = ADAPTIVE_RATIO,
    min_gap_s: float = MIN_CUT_GAP_S,
) -> CutDetection:
    """Find the hard cuts of a scanned video (rules in the module docstring).

    Args:
        scan: the output of ``scan_video``.
        min_change: rule 1 floor, 0..255.
        adaptive_ratio: rule 2 ratio.
        min_gap_s: rule 5 spacing, seconds.

    Returns:
        cut frames in increasing order with their strengths; frame 0 is never a cut.
    """
    change = scan.change
    count = len(change)
    candidates: list[tuple[float, int]] = []
    for k in range(1, count):
        value = float(change[k])
        if value < min_change:
            continue
        lo, hi = max(1, k - NEIGHBOUR_FRAMES), min(count, k + NEIGHBOUR_FRAMES + 1)
        neighbours = np.concatenate([change[lo:k], change[k + 1 : hi]])
        neighbourhood = max(float(neighbours.mean()) if len(neighbours) else 0.0, NEIGHBOUR_FLOOR)
        if value < adaptive_ratio * neighbourhood:
            continue
        after = float(scan.change_after[k])
        if min(float(scan.change_before[k]), after) < PERSIST_FRACTION * value:
            continue
        if after < DRIFT_FRACTION * max(float(scan.drift_after[k]), NEIGHBOUR_FLOOR):
            continue
        candidates.append((value, k))

    # Rule 5: strongest first, each keeps the frames within the gap for itself.
    gap_frames = max(1, int(round(min_gap_s * scan.fps)))
    chosen: list[tuple[int, float]] = []
    for value, k in sorted(candidates, reverse=True):
        if all(abs(k - other) >= gap_frames for other, _ in chosen):
            chosen.append((k, value))
    chosen.sort()
    return CutDetection(
        frames=[k for k, _ in chosen], strengths=[round(v, 3) for _, v in chosen], fps=scan.fps
    )
