"""Render throughput on Ray against the local executor, with the preview (animatic) renderer.

The storyboard is the preview pipeline's own for the 60-s demo song (640x360, 24 fps). Each
configuration renders every shot into a fresh run folder, several times; medians are printed:

* local, one process (``AnimaticRenderer(workers=1)``), with numpy's default BLAS threads and
  with one (as Ray's workers have it): the per-shot baselines;
* local as the pipeline runs it (the animatic's own process pool over the machine's cores);
* Ray with 1 and with 2 local actors (``ray.init(num_cpus=2)``, loopback only), actors kept
  loaded across repetitions, as a batch keeps them across songs.

Shots per minute, the 2-worker / 1-worker ratio, and the scheduling overhead per shot: Ray's
1-worker wall time per shot less the local one-process, one-BLAS-thread wall time per shot
(what Ray adds around the same work), and less the seconds the actor itself measured (the
driver's share).
The machine's load average is printed before and after each configuration: on a shared
2-core machine a second worker can only help as far as the second core is free.

    python benchmarks/bench_ray.py [--runs 5] [--song-s 60]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

WIDTH, HEIGHT, FPS = 640, 360, 24.0


def storyboard_for(song_s: float, folder: Path):
    from music2video import make_video
    from music2video.demo import synthesize_demo_song

    song = folder / "song.wav"
    synthesize_demo_song(song, duration_s=song_s)
    result = make_video(song, folder / "song.mp4", until="write", pipeline="preview", width=WIDTH, height=HEIGHT, fps=FPS)
    return result.storyboard, result.analysis


def time_render(make_renderer, storyboard, analysis, executor, runs: int) -> tuple[list[float], list[float]]:
    """Wall seconds of each run, and the mean per-shot seconds the workers reported."""
    from music2video.render import render_storyboard
    from music2video.runfolder import RunFolder

    walls, inside = [], []
    for _ in range(runs):
        root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
        try:
            started = time.perf_counter()
            result = render_storyboard(make_renderer(), storyboard, analysis, RunFolder(root), FPS, WIDTH, HEIGHT, executor=executor)
            walls.append(time.perf_counter() - started)
            assert not result.failed_shots, result.failed_shots
            inside.append(statistics.mean(t.seconds for t in result.shot_times))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return walls, inside


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per configuration (median)")
    parser.add_argument("--song-s", type=float, default=60.0, help="length of the demo song, seconds")
    args = parser.parse_args()

    import ray

    from music2video.render.animatic import AnimaticRenderer
    from music2video.render.executors import LOCAL_RAY_ENV, RayExecutor
    from music2video.settings import RaySettings

    work = Path(tempfile.mkdtemp(prefix="bench-ray-song-"))
    storyboard, analysis = storyboard_for(args.song_s, work)
    shots = len(storyboard.shots)
    frames = sum(round(s.end_s * FPS) - round(s.start_s * FPS) for s in storyboard.shots)
    print(f"{shots} shots, {frames} frames at {WIDTH}x{HEIGHT}, {FPS:g} fps; {args.runs} runs each; {os.cpu_count()} CPUs")

    rows: list[tuple[str, float, float, str]] = []

    def measure(name: str, make_renderer, executor) -> tuple[float, float]:
        before = load()
        warm, _ = time_render(make_renderer, storyboard, analysis, executor, 1)  # imports; Ray: actors start
        walls, inside = time_render(make_renderer, storyboard, analysis, executor, args.runs)
        wall, per_shot_inside = statistics.median(walls), statistics.median(inside)
        rows.append((name, wall, 60 * shots / wall, f"{before} -> {load()}"))
        print(
            f"  {name:30s} {wall:6.2f} s  {60 * shots / wall:6.1f} shots/min  (first run {warm[0]:.2f} s)  load {before} -> {load()}",
            flush=True,
        )
        return wall, per_shot_inside

    local_one, _ = measure("local, one process", lambda: AnimaticRenderer(WIDTH, HEIGHT, FPS, workers=1), None)
    # Ray starts its workers with OMP_NUM_THREADS=1, so their numpy matrix products run on one
    # BLAS thread; the same in this process separates that from what Ray itself adds.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        local_blas1, _ = measure("local, one process, 1 BLAS thread", lambda: AnimaticRenderer(WIDTH, HEIGHT, FPS, workers=1), None)
    measure("local, animatic process pool", lambda: AnimaticRenderer(WIDTH, HEIGHT, FPS), None)

    home = Path(tempfile.mkdtemp(prefix="bench-ray-home-"))
    (home / "ray_bootstrap_config.yaml").write_text("provider: {type: local}\n")
    os.environ.update(LOCAL_RAY_ENV)
    saved_home, os.environ["HOME"] = os.environ.get("HOME"), str(home)
    temp = tempfile.mkdtemp(prefix="m2vray", dir="/tmp")
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False, logging_level=logging.WARNING)
    if saved_home is not None:
        os.environ["HOME"] = saved_home
    print(f"  ray.init(num_cpus=2): {time.perf_counter() - started:.1f} s")
    try:
        results = {}
        for workers in (1, 2):
            with RayExecutor(RaySettings(workers=workers)) as executor:
                name = f"ray, {workers} worker{'s' if workers > 1 else ''}"
                results[workers] = measure(name, lambda: AnimaticRenderer(WIDTH, HEIGHT, FPS), executor)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    one, two = results[1][0], results[2][0]
    print(f"\n2 workers / 1 worker: {one / two:.2f}x shots per minute")
    print(
        f"Ray overhead per shot: {1000 * (one - local_blas1) / shots:.0f} ms against the local one-process run with one "
        f"BLAS thread ({1000 * local_blas1 / shots:.0f} ms a shot there; {1000 * local_one / shots:.0f} ms with numpy's "
        f"default threads); {1000 * (one / shots - results[1][1]):.0f} ms between the driver's wall time and the actor's "
        "own time for the shot"
    )


if __name__ == "__main__":
    main()
