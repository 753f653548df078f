"""Writing and reading H.264 clips with PyAV (FFmpeg bundled in the wheel; no system ffmpeg).

Every clip the renderers write uses the same encoder settings, so the assembler can join clips
by copying their packets instead of encoding every frame a second time:

* H.264 (libx264), yuv420p, constant frame rate, no B-frames (so decode order equals display
  order and each clip's timestamps simply shift by the clip's first frame),
* a keyframe at the start of every clip (each clip is its own closed GOP).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from music2video.runfolder import atomic_path

VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
# crf 20 looks clean for animatics and diffusion output; 'veryfast' trades a little size for
# a lot of speed on the 2-core machines we target. No 'fastdecode' tune: it turns off CABAC and
# the deblocking filter, which shows as 8x8 blocks in dark gradients at ~50 % more bit rate.
#
# Within veryfast, a diamond motion search and the first subpixel refinement level (me=dia,
# subme=1) cost a third less encoding time on the animatic's soft, drifting pictures for 0.06 dB
# less luma PSNR and 2 % more bits (a real song's storyboard, 640x360: 4.5 -> 3.0 ms CPU a
# frame, 46.31 -> 46.25 dB); 'superfast' would save more but costs 60 % more bits.
X264_OPTIONS = {"crf": "20", "preset": "veryfast", "bf": "0", "x264-params": "me=dia:subme=1"}

# x264's AVX-512 code is not repeatable here: on the AVX-512 machines we run on (2-core VMs),
# the same frames encoded twice in one process came out as different bitstreams whose decoded
# pictures differed by up to 87 levels on some pixels, whenever other threads kept the CPU busy
# (6 of 6 clips over 8 encodes at 64x36, 0 of 6 with AVX-512 left out). Its AVX2 and SSE4.2
# code give the same bitstream as each other, every time, so a clip's hash names one picture.
# Capped per machine at encoder start, outside X264_OPTIONS (and so outside the clip hash).
X264_ASM_BELOW_AVX512 = "AVX2"
# x264's slices, fixed: left to x264, there is one per core the encoding thread may run on, and
# the slices change the picture (one CPU against two: up to 87 levels apart at 320x180), so a
# clip would depend on the machine (a 16-core GPU host, a Ray node, a process pinned to one
# core). Two is what x264 chose on the 2-core machines clips were made on so far: their bytes
# and hashes stay as they were.
X264_THREADS = "2"


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def encoder_options(extra: dict[str, str] | None = None) -> dict[str, str]:
    """X264_OPTIONS (plus ``extra``) as every encoder here opens them: :data:`X264_THREADS`
    slices whatever the cores, and on a CPU with AVX-512, x264's AVX2 code instead (see
    :data:`X264_ASM_BELOW_AVX512`)."""
    options = {"threads": X264_THREADS, **X264_OPTIONS, **(extra or {})}
    flags = _cpu_flags()
    if "avx512f" in flags and {"avx2", "fma", "bmi1", "bmi2"} <= flags:
        params = options.get("x264-params", "")
        options["x264-params"] = f"{params}:asm={X264_ASM_BELOW_AVX512}" if params else f"asm={X264_ASM_BELOW_AVX512}"
    return options


def fps_fraction(fps: float) -> Fraction:
    """Exact rational frame rate: 23.976 -> 24000/1001, 24 -> 24/1."""
    for ntsc in (24, 30, 60, 120):
        if abs(fps - ntsc * 1000 / 1001) < 1e-3:
            return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


class ClipWriter:
    """Write RGB frames (uint8, height x width x 3) to an H.264 MP4, atomically.

    Use as a context manager: the file appears at ``path`` only when the block finishes without
    an error, so a killed render never leaves a clip that looks complete.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, options: dict[str, str] | None = None):
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self.options = encoder_options(options)
        self.frames_written = 0
        self._atomic = atomic_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None

    def __enter__(self) -> ClipWriter:
        tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        stream = self._container.add_stream(VIDEO_CODEC, rate=fps_fraction(self.fps), options=self.options)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, PIXEL_FORMAT
        self._stream = stream
        return self

    def write(self, frame_rgb: np.ndarray) -> None:
        if frame_rgb.shape != (self.height, self.width, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(
                f"frame is {frame_rgb.shape} {frame_rgb.dtype}; expected ({self.height}, {self.width}, 3) uint8"
            )
        self._encode(av.VideoFrame.from_ndarray(frame_rgb, format="rgb24"))

    def write_yuv420p(self, planes: np.ndarray) -> None:
        """Write one frame given as yuv420p planes: (height * 3 / 2, width) uint8, Y then U then V."""
        if planes.shape != (self.height * 3 // 2, self.width) or planes.dtype != np.uint8:
            raise ValueError(
                f"planes are {planes.shape} {planes.dtype}; expected ({self.height * 3 // 2}, {self.width}) uint8"
            )
        self._encode(av.VideoFrame.from_ndarray(planes, format="yuv420p"))

    def _encode(self, frame: av.VideoFrame) -> None:
        frame.pts = self.frames_written
        assert self._container is not None and self._stream is not None
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._container is not None and self._stream is not None
        try:
            try:
                if exc_type is None:
                    self._container.mux(self._stream.encode(None))
            finally:
                self._container.close()
        except BaseException as error:  # flushing or closing failed (a full disk): no temporary left
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        self._atomic.__exit__(exc_type, exc, tb)


def write_clip(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write a whole (frames, height, width, 3) uint8 array as one clip."""
    _, height, width, _ = frames.shape
    with ClipWriter(path, width, height, fps) as writer:
        for frame in frames:
            writer.write(frame)


def read_frames(path: Path) -> np.ndarray:
    """Every frame of a video as (frames, height, width, 3) uint8 RGB. For tests and metrics."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def count_frames(path: Path) -> int:
    """Number of video frames, counted by decoding (container headers can round)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
