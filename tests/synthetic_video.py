"""Synthetic videos and click tracks with known cuts, flashes and onsets, for the evaluate and report tests.

Videos are written with the project's ``ClipWriter`` (H.264, as every clip), small (96x54) and
short, so a test writes one in a few tens of milliseconds. Segments alternate between solid
colours and a blocky random texture, so both the frame difference and optical flow see a cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from music2video.videofile import ClipWriter

WIDTH_PX, HEIGHT_PX = 96, 54
FPS = 24.0
CLICK_RATE_HZ = 22_050

# Well-separated colours: neighbouring segments never look alike.
PALETTE = [
    (220, 40, 40),
    (30, 60, 200),
    (240, 220, 40),
    (20, 160, 60),
    (200, 60, 200),
    (30, 200, 220),
    (250, 140, 20),
    (90, 40, 160),
]


def solid(colour: Sequence[int], width: int = WIDTH_PX, height: int = HEIGHT_PX) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


def texture(seed: int, width: int = WIDTH_PX, height: int = HEIGHT_PX, block: int = 6) -> np.ndarray:
    """A blocky random colour texture (blocks of ``block`` pixels): something optical flow can track."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // block + 1, width // block + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, block, 0), block, 1)[:height, :width].copy()


def segment_frames(cut_frames: Sequence[int], total_frames: int, textured: bool = False) -> list[np.ndarray]:
    """Frames of a video whose shots start at ``cut_frames``: each shot one colour (or texture), still."""
    starts = [0, *cut_frames]
    frames = []
    for k in range(total_frames):
        shot = sum(1 for s in starts if s <= k) - 1
        if textured:
            frames.append(texture(seed=100 + shot))
        else:
            frames.append(solid(PALETTE[shot % len(PALETTE)]))
    return frames


def jolt_frames(jolt_frames_at: Sequence[int], total_frames: int, step_px: int = 4) -> list[np.ndarray]:
    """One still texture that jumps ``step_px`` sideways at each given frame (and stays): a motion peak per jolt."""
    base = texture(seed=7)
    jolts = sorted(jolt_frames_at)
    frames = []
    for k in range(total_frames):
        shift = step_px * sum(1 for j in jolts if j <= k)
        frames.append(np.roll(base, shift, axis=1))
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = FPS) -> Path:
    height, width, _ = frames[0].shape
    with ClipWriter(path, width, height, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def click_track(path: Path, times_s: Sequence[float], duration_s: float, rate_hz: int = CLICK_RATE_HZ) -> Path:
    """A WAV of short decaying noise bursts at ``times_s`` over quiet noise: one clear onset each."""
    rng = np.random.default_rng(0)
    samples = 0.003 * rng.standard_normal(int(duration_s * rate_hz)).astype(np.float32)
    click_len = int(0.03 * rate_hz)
    envelope = np.exp(-np.arange(click_len) / (0.006 * rate_hz)).astype(np.float32)
    for t in times_s:
        start = int(round(t * rate_hz))
        end = min(len(samples), start + click_len)
        samples[start:end] += 0.8 * envelope[: end - start] * rng.standard_normal(end - start).astype(np.float32)
    sf.write(str(path), samples, rate_hz)
    return path


def mux_audio(video: Path, wav: Path, output: Path) -> Path:
    """Copy ``video``'s H.264 packets and encode ``wav`` as AAC into one MP4 (a video with its own audio track)."""
    samples, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    with av.open(str(video)) as source, av.open(str(output), "w", format="mp4") as target:
        video_in = source.streams.video[0]
        video_out = target.add_stream_from_template(video_in)
        audio_out = target.add_stream("aac", rate=rate, layout="mono")
        for packet in source.demux(video_in):
            if packet.dts is None:
                continue
            packet.stream = video_out
            target.mux(packet)
        block = 1024
        for first in range(0, len(samples), block):
            chunk = np.ascontiguousarray(samples[first : first + block, 0][None, :])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = first
            frame.time_base = Fraction(1, rate)
            target.mux(audio_out.encode(frame))
        target.mux(audio_out.encode(None))
    return output
