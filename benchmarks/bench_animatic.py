"""Speed of the animatic renderer and the assembler at preview size (640x360, 24 fps).

Prints medians over ``--runs`` runs, each as wall-clock time and as this process's CPU time
(all threads): on a busy shared machine the CPU time is the steadier of the two.

* drawing time per frame for every motif (no encoding), in ms,
* H.264 encoding speed of animatic frames through ClipWriter, in frames per second,
* for a synthetic song of ``--song-s`` seconds cut into 2-second shots: the time to render every
  clip (draw + encode), the time to assemble them with the song's audio, and the real-time
  factor of both together.

Budget on the 2-core CI machine: the whole preview runs >= 5x real time, so a 3-minute song
leaves about 25 s for drawing + encoding 4320 frames (drawing <= ~3 ms a frame).

    python benchmarks/bench_animatic.py [--runs 3] [--song-s 180] [--frames 96]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from music2video.artifacts import Analysis, Section, Storyboard, StoryboardShot, StyleBible
from music2video.assemble import assemble_video
from music2video.render import render_storyboard
from music2video.render.animatic import MOTIFS, AnimaticRenderer
from music2video.runfolder import RunFolder
from music2video.videofile import ClipWriter

WIDTH, HEIGHT, FPS = 640, 360, 24.0
TEMPO_BPM = 120.0
SHOT_S = 2.0
SAMPLE_RATE_HZ = 48_000
PALETTE = ["#14142b", "#5b3f8c", "#e05d8c", "#ffd27f"]
CAMERAS = ["slow push in", "orbit left", "static", "pan right", "pull out", "handheld"]


def synthetic_analysis(duration_s: float) -> Analysis:
    beats = list(np.arange(0.0, duration_s, 60 / TEMPO_BPM).round(6))
    rate_hz = 20.0
    energy = (0.5 + 0.4 * np.sin(np.arange(int(duration_s * rate_hz)) / 37)).round(4).tolist()
    return Analysis(
        duration_s=duration_s,
        tempo_bpm=TEMPO_BPM,
        beats_per_bar=4,
        beats_s=beats,
        downbeats_s=beats[::4],
        sections=[Section(index=0, start_s=0.0, end_s=duration_s, label="A", role="verse", energy=0.5)],
        curve_rate_hz=rate_hz,
        energy=energy,
        brightness=energy,
        onset_strength=energy,
    )


def synthetic_storyboard(duration_s: float) -> Storyboard:
    starts = list(np.arange(0.0, duration_s, SHOT_S))
    ends = [*starts[1:], duration_s]
    shots = [
        StoryboardShot(
            id=f"shot-{i:03d}",
            start_s=float(start),
            end_s=float(end),
            section_index=0,
            scene="benchmark",
            prompt=f"shot {i}",
            seed=i,
            palette=PALETTE,
            motif=MOTIFS[i % len(MOTIFS)],
            camera=CAMERAS[i % len(CAMERAS)],
            energy=0.3 + 0.6 * ((i * 7) % 10) / 10,
        )
        for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]
    return Storyboard(writer="bench", title="bench", concept="bench", style=StyleBible(look="x", palette=PALETTE), sections=[], shots=shots)


def one_shot(motif: str, frames: int, camera: str = "slow push in") -> tuple[StoryboardShot, Storyboard]:
    shot = StoryboardShot(
        id="shot-000", start_s=0.0, end_s=frames / FPS, section_index=0, scene="s", prompt="p", seed=1,
        palette=PALETTE, motif=motif, camera=camera, energy=0.7,
    )
    return shot, Storyboard(writer="b", title="b", concept="b", style=StyleBible(look="x", palette=PALETTE), sections=[], shots=[shot])


class Timer:
    """Wall-clock and process CPU seconds of a ``with`` block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def time_drawing(motif: str, frames: int, analysis: Analysis) -> tuple[float, float]:
    """(wall, CPU) milliseconds per frame to draw ``frames`` frames of one shot (set-up included)."""
    renderer = AnimaticRenderer(WIDTH, HEIGHT, FPS)
    shot, storyboard = one_shot(motif, frames, "orbit left" if motif in ("orbs", "tunnel") else "slow push in")
    with Timer() as timer:
        for _ in renderer.frames(shot, storyboard, analysis, frames):
            pass
    return timer.wall / frames * 1e3, timer.cpu / frames * 1e3


def time_encoding(frames: np.ndarray, folder: Path) -> tuple[float, float]:
    """(wall, CPU) milliseconds per frame that ClipWriter takes to encode pre-drawn frames."""
    with Timer() as timer, ClipWriter(folder / "encode.mp4", WIDTH, HEIGHT, FPS) as writer:
        for frame in frames:
            writer.write(frame)
    return timer.wall / len(frames) * 1e3, timer.cpu / len(frames) * 1e3


def time_song(duration_s: float, folder: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) seconds to render every clip of a song, and to assemble them with its audio."""
    run = RunFolder(folder)
    analysis, storyboard = synthetic_analysis(duration_s), synthetic_storyboard(duration_s)
    t = np.arange(round(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    song = 0.2 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1)
    soundfile.write(run.path("audio.wav"), song.astype(np.float32), SAMPLE_RATE_HZ, subtype="FLOAT")
    with Timer() as rendering:
        render = render_storyboard(AnimaticRenderer(WIDTH, HEIGHT, FPS), storyboard, analysis, run, FPS, WIDTH, HEIGHT)
    cuts = [shot.start_s for shot in storyboard.shots[1:]]
    with Timer() as assembling:
        assemble_video(render, run.root, run.path("audio.wav"), run.path("video.mp4"), duration_s, cuts)
    return (rendering.wall, rendering.cpu), (assembling.wall, assembling.cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=96, help="frames drawn per motif and run")
    parser.add_argument("--song-s", type=float, default=180.0, help="length of the synthetic song; 0 skips that part")
    args = parser.parse_args()

    analysis = synthetic_analysis(max(10.0, args.frames / FPS + 1))
    print(f"drawing at {WIDTH}x{HEIGHT}, median of {args.runs} runs of {args.frames} frames (wall / CPU)")
    for motif in MOTIFS:
        time_drawing(motif, 4, analysis)  # warm-up: first-call costs
        wall, cpu = median_pair([time_drawing(motif, args.frames, analysis) for _ in range(args.runs)])
        print(f"  {motif:10s} {wall:6.2f} / {cpu:5.2f} ms/frame")

    with tempfile.TemporaryDirectory() as folder:
        renderer = AnimaticRenderer(WIDTH, HEIGHT, FPS)
        shot, storyboard = one_shot("waves", args.frames)
        frames = np.stack([f.copy() for f in renderer.frames(shot, storyboard, analysis, args.frames)])
        wall, cpu = median_pair([time_encoding(frames, Path(folder)) for _ in range(args.runs)])
        print(f"encoding (ClipWriter, x264) {1e3 / wall:5.0f} frames/s: {wall:.2f} / {cpu:.2f} ms/frame")

    if args.song_s > 0:
        render_runs, assemble_runs = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                rendering, assembling = time_song(args.song_s, Path(folder))
            render_runs.append(rendering)
            assemble_runs.append(assembling)
        (render_wall, render_cpu), (assemble_wall, assemble_cpu) = median_pair(render_runs), median_pair(assemble_runs)
        frames = round(args.song_s * FPS)
        total = render_wall + assemble_wall
        print(f"song of {args.song_s:.0f} s, {frames} frames, {SHOT_S:g} s shots (wall / CPU):")
        print(f"  render (draw + encode) {render_wall:6.2f} / {render_cpu:6.2f} s  ({render_wall / frames * 1e3:.2f} ms/frame wall)")
        print(f"  assemble (copy + AAC)  {assemble_wall:6.2f} / {assemble_cpu:6.2f} s")
        print(f"  together               {total:6.2f} s wall = {args.song_s / total:.1f}x real time")


if __name__ == "__main__":
    main()
