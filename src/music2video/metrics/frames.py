"""One decoding pass over a video at reduced size: per-frame change and motion curves.

Every measurement of the evaluate stage works on small frames: cuts, flashes and motion peaks
survive a downscale to ``ANALYSIS_WIDTH_PX``, and the pass over a 3-minute 640x360 video
then costs about as much as decoding it. Frames are scaled once, by FFmpeg's swscale (one
reused scaler, area averaging), to YUV 4:4:4, so luma and both chroma planes are at the
analysis size without a colour conversion.

Curves (one value per frame ``k``, for the change *into* frame ``k``; value 0 is a copy of
value 1 for motion, 0 for change):

* ``change[k]``: mean absolute difference of Y, U and V between frames ``k-1`` and ``k``,
  averaged over the three planes, 0..255. A hard cut gives a large value; a flash does too.
* ``change_before[k]`` / ``change_after[k]``: the same measure between frames ``k-1-P`` and
  ``k``, and between ``k-1`` and ``k+P``, where ``P`` (``persist_frames``) is
  ``PERSIST_S`` in frames, at least ``MIN_PERSIST_FRAMES``. A cut changes the picture for good,
  so both are large; a flash (or a beat pulse that decays) returns to the old picture, so one
  of them is small. :mod:`~music2video.metrics.cuts` uses this to tell the two apart.
* ``drift_after[k]``: the same measure between frames ``k+1`` and ``k+1+P``: how much the
  picture after the change keeps changing by itself (motion, a fading pulse). A cut's
  ``change_after`` stands well above it; a pulse's does not.
* ``motion[k]``: how much moves between ``k-1`` and ``k``. With ``method="flow"`` (needs
  ``opencv-python-headless``) it is the mean magnitude of Farnebäck dense optical flow in
  pixels per frame at ``FLOW_WIDTH_PX`` width, with the parameters of the AV-Align reference
  code; with ``method="difference"`` (no extra package) it is the mean absolute luma
  difference, 0..255. The difference also rises for pure brightness changes (a flash on a
  still frame), which optical flow ignores; it is the documented fallback, not an equivalent.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from music2video.errors import InputError
from music2video.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

ANALYSIS_WIDTH_PX = 160
"""Width the change curves are measured at (height follows the aspect ratio)."""

FLOW_WIDTH_PX = 160
"""Width optical flow is computed at; flow magnitudes are in pixels per frame at this width."""

PERSIST_S = 0.25
"""A change must still be there this long after (and before) it to count as a cut: flashes and
decaying beat pulses shorter than this are not cuts. (The animatic's pulses decay with a 0.13 s
time constant; a quarter second leaves 15 % of one.)"""

MIN_PERSIST_FRAMES = 2
"""Lower bound of the persistence horizon in frames, for low frame rates."""

FLOW_WORKERS = 2
"""Threads computing optical flow beside the decoder (OpenCV releases the GIL while it works)."""

_MAX_PENDING_FLOW = 32  # frame pairs waiting for a flow thread; bounds memory when decoding runs ahead

# Farnebäck parameters of the AV-Align reference implementation (Yariv et al. 2024):
# pyramid scale 0.5, 3 levels, window 15 px, 3 iterations, poly_n 5, poly_sigma 1.2.
_FARNEBACK_ARGS = (0.5, 3, 15, 3, 5, 1.2, 0)

_PROGRESS_EVERY_FRAMES = 240

MotionMethod = Literal["auto", "flow", "difference"]


@dataclass
class VideoScan:
    """What one pass over a video measured. Curves have one value per decoded frame."""

    path: Path
    fps: float
    frame_count: int
    width: int = field(metadata={"unit": "px, original"})
    height: int = field(metadata={"unit": "px, original"})
    change: np.ndarray
    change_before: np.ndarray
    change_after: np.ndarray
    drift_after: np.ndarray
    motion: np.ndarray
    motion_method: Literal["flow", "difference"]
    persist_frames: int
    """``P`` of ``change_before`` / ``change_after``."""
    kept: dict[int, np.ndarray] = field(default_factory=dict)
    """Frames asked for with ``keep_frames``: index -> RGB uint8 (height, width, 3)."""

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0

    def frame_time_s(self, index: int | np.ndarray) -> float | np.ndarray:
        """Presentation time of frame ``index`` (seconds), assuming a constant frame rate."""
        return index / self.fps


def persist_frames(fps: float) -> int:
    """The persistence horizon ``P`` in frames at ``fps``: ``PERSIST_S`` rounded, at least ``MIN_PERSIST_FRAMES``."""
    return max(MIN_PERSIST_FRAMES, int(round(PERSIST_S * fps)))


def flow_available() -> bool:
    """True when OpenCV (``opencv-python-headless``) can be imported for optical flow."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_motion_method(method: MotionMethod) -> Literal["flow", "difference"]:
    """``auto`` -> ``flow`` when OpenCV is installed, else ``difference``; ``flow`` without OpenCV is an error."""
    if method == "auto":
        return "flow" if flow_available() else "difference"
    if method == "flow" and not flow_available():
        raise InputError(
            "motion method 'flow' needs OpenCV: pip install opencv-python-headless (or use --motion difference)"
        )
    if method not in ("flow", "difference"):
        raise InputError(f"motion method {method!r} is not one of auto, flow, difference")
    return method


def scan_video(
    path: Path,
    motion: MotionMethod = "auto",
    keep_frames: Iterable[int] = (),
    keep_width_px: int | None = None,
    progress: ProgressCallback = no_progress,
) -> VideoScan:
    """Decode ``path`` once and measure every frame (see the module docstring for the curves).

    Args:
        path: any video FFmpeg reads; the first video stream is used.
        motion: ``flow``, ``difference`` or ``auto`` (flow when OpenCV is installed).
        keep_frames: frame indices to keep as RGB pictures (for CLIP, the report's contact
            sheet); indices past the end are ignored.
        keep_width_px: width of the kept pictures (height follows, even); None keeps the
            original size.
        progress: called with (frames done, frames expected).

    Returns:
        a :class:`VideoScan`.

    Raises:
        InputError: the file cannot be opened or has no video frames.
    """
    path = Path(path)
    method = resolve_motion_method(motion)
    wanted = set(int(k) for k in keep_frames)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise InputError(f"{path}: cannot open as a video ({error})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise InputError(f"{path}: the video stream states no frame rate")
        fps = float(rate)
        width, height = stream.codec_context.width, stream.codec_context.height
        expected = stream.frames
        if not expected and stream.duration and stream.time_base:
            expected = int(float(stream.duration * stream.time_base) * fps)
        persist = persist_frames(fps)
        small_w, small_h = ANALYSIS_WIDTH_PX, _even(ANALYSIS_WIDTH_PX * height / max(width, 1))
        keep_w = keep_width_px or width
        keep_h = _even(keep_w * height / max(width, 1)) if keep_width_px else height

        scaler = VideoReformatter()
        keeper = VideoReformatter()
        flow = _FlowMeter(small_w, small_h) if method == "flow" else None

        change: list[float] = []
        motion_curve: list[float] = []
        # Flow of each frame pair runs in a thread pool while the next frames decode; results are
        # put in place in order, at most _MAX_PENDING_FLOW pairs behind the decoder.
        pool = ThreadPoolExecutor(FLOW_WORKERS, thread_name_prefix="flow") if flow is not None else None
        pending: deque[tuple[int, Future[float]]] = deque()
        persistence = _Persistence(persist)
        kept: dict[int, np.ndarray] = {}
        previous: np.ndarray | None = None
        index = -1
        try:
            for index, frame in enumerate(container.decode(stream)):
                yuv = scaler.reformat(frame, width=small_w, height=small_h, format="yuv444p", interpolation="AREA")
                planes = yuv.to_ndarray().astype(np.int16)  # (3, h, w): Y, U, V
                if previous is not None:
                    change.append(_mean_abs_diff(previous, planes))
                    if pool is not None:
                        pending.append((len(motion_curve), pool.submit(flow, previous[0], planes[0])))
                        motion_curve.append(0.0)
                        while len(pending) > _MAX_PENDING_FLOW:
                            position, result = pending.popleft()
                            motion_curve[position] = result.result()
                    else:
                        motion_curve.append(float(np.abs(planes[0] - previous[0]).mean()))
                else:
                    change.append(0.0)
                    motion_curve.append(0.0)
                persistence.add(index, planes)
                previous = planes
                if index in wanted:
                    picture = keeper.reformat(frame, width=keep_w, height=keep_h, format="rgb24", interpolation="AREA")
                    kept[index] = picture.to_ndarray()
                if index % _PROGRESS_EVERY_FRAMES == 0:
                    progress(index, max(expected, index + 1), "scanning frames")
            for position, result in pending:
                motion_curve[position] = result.result()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        count = index + 1
        if count == 0:
            raise InputError(f"{path}: no video frame could be decoded")
        before_arr, after_arr, drift_arr = persistence.finish(count)

    change_arr = np.asarray(change, np.float32)
    motion_arr = np.asarray(motion_curve, np.float32)
    if count > 1:
        motion_arr[0] = motion_arr[1]  # as the AV-Align reference: the first frame repeats the second
    progress(count, count, "scanned")
    return VideoScan(
        path=path,
        fps=fps,
        frame_count=count,
        width=width,
        height=height,
        change=change_arr,
        change_before=before_arr,
        change_after=after_arr,
        drift_after=drift_arr,
        motion=motion_arr,
        motion_method=method,
        persist_frames=persist,
        kept=kept,
    )


class _Persistence:
    """``change_before``, ``change_after`` and ``drift_after`` of every frame, from a sliding window.

    Frame ``k``'s values need frames ``k-1-P`` .. ``k+1+P``, so they are computed when frame
    ``k+1+P`` arrives, from a window of the last ``2P+3`` frames. Frames before the first and
    after the last are clamped to the first and last frame.
    """

    def __init__(self, persist: int):
        self.persist = persist
        self.window: deque[tuple[int, np.ndarray]] = deque(maxlen=2 * persist + 3)
        self.before: dict[int, float] = {}
        self.after: dict[int, float] = {}
        self.drift: dict[int, float] = {}

    def add(self, index: int, planes: np.ndarray) -> None:
        self.window.append((index, planes))
        self._measure(index - self.persist - 1, last=index)

    def finish(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for k in range(max(1, count - self.persist - 1), count):
            self._measure(k, last=count - 1)
        arrays = []
        for values in (self.before, self.after, self.drift):
            array = np.zeros(count, np.float32)
            for k, value in values.items():
                array[k] = value
            arrays.append(array)
        return arrays[0], arrays[1], arrays[2]

    def _measure(self, k: int, last: int) -> None:
        if k < 1 or k in self.before:
            return
        p = self.persist
        self.before[k] = _mean_abs_diff(self._frame(k - 1 - p, last), self._frame(k, last))
        self.after[k] = _mean_abs_diff(self._frame(k - 1, last), self._frame(k + p, last))
        self.drift[k] = _mean_abs_diff(self._frame(k + 1, last), self._frame(k + 1 + p, last))

    def _frame(self, index: int, last: int) -> np.ndarray:
        first = self.window[0][0]
        index = min(max(index, 0), last)
        if index < first:  # only at the very start, where the window still holds frame 0
            index = first
        return self.window[index - first][1]


class _FlowMeter:
    """Mean Farnebäck optical-flow magnitude between consecutive luma planes."""

    def __init__(self, width: int, height: int):
        import cv2

        self._cv2 = cv2
        self._size = (FLOW_WIDTH_PX, _even(FLOW_WIDTH_PX * height / max(width, 1)))
        self._same = self._size == (width, height)

    def __call__(self, previous_luma: np.ndarray, luma: np.ndarray) -> float:
        cv2 = self._cv2
        a = previous_luma.astype(np.uint8)
        b = luma.astype(np.uint8)
        if not self._same:
            a = cv2.resize(a, self._size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, self._size, interpolation=cv2.INTER_AREA)
        flow = cv2.calcOpticalFlowFarneback(a, b, None, *_FARNEBACK_ARGS)
        return float(np.hypot(flow[..., 0], flow[..., 1]).mean())


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two int16 (3, h, w) YUV stacks, averaged over planes (0..255)."""
    return float(np.abs(a - b).mean())


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def read_frames_at(path: Path, indices: Iterable[int], width_px: int | None = None) -> dict[int, np.ndarray]:
    """Decode only up to the last wanted frame and return those frames as RGB uint8.

    Args:
        path: a video file.
        indices: frame indices (0-based, in presentation order).
        width_px: scale the pictures to this width (height follows, even); None keeps the size.

    Returns:
        index -> (height, width, 3) uint8, for every index that exists in the video.
    """
    wanted = sorted(set(int(k) for k in indices if k >= 0))
    if not wanted:
        return {}
    found: dict[int, np.ndarray] = {}
    scaler = VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        w = width_px or width
        h = _even(w * height / max(width, 1)) if width_px else height
        last = wanted[-1]
        targets = set(wanted)
        for index, frame in enumerate(container.decode(stream)):
            if index in targets:
                found[index] = scaler.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
            if index >= last:
                break
    return found
