"""Ray workers with the clip written in line against written in the background (the diffusers
renderer's way), on a stand-in renderer: "generation" sleeps (a GPU leaves the CPU idle), the
write draws and encodes the animatic's clip (real CPU work).

The generation lasts ``--ratio`` times the write (default 2.5: an H100's projected ~5.0 s of
distilled generation per ~2.0 s of writing); the write's time is measured first, in this
process. Both renderers make the same clips; the in-line one has no ``ended_writes``, so its
worker waits for each clip as every worker did before. Each configuration runs ``--runs`` times
on fresh run folders after a first run that starts its actors (another renderer class is another
actor pool); medians are printed, with the ideal ratio (write + generation) / max(write, generation).

    python benchmarks/bench_ray_overlap.py [--runs 3] [--song-s 60] [--ratio 2.5]
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

from bench_ray import FPS, HEIGHT, WIDTH, load, storyboard_for, time_render

from music2video.render.animatic import AnimaticRenderer


class SleepThenWrite(AnimaticRenderer):
    """Generation: ``generate_s`` of sleep; then the animatic writes the clip, in line."""

    def __init__(self, generate_s: float):
        super().__init__(WIDTH, HEIGHT, FPS, workers=1)
        self.generate_s = generate_s

    def render_shot(self, shot, storyboard, analysis, frame_count, output):
        time.sleep(self.generate_s)
        super().render_shot(shot, storyboard, analysis, frame_count, output)


class SleepThenWriteInBackground(SleepThenWrite):
    """The same, the clip written in a background thread, one clip in line at most: the
    diffusers renderer's ``ClipWrites``."""

    def __enter__(self):
        from music2video.render.clip_writes import ClipWrites

        self._writes = ClipWrites(max_pending=1)
        self._writes.open()
        return super().__enter__()

    def __exit__(self, *exc_info):
        self._writes.close()
        return super().__exit__(*exc_info)

    def render_shot(self, shot, storyboard, analysis, frame_count, output):
        time.sleep(self.generate_s)
        self._writes.submit(shot.id, AnimaticRenderer.render_shot, self, shot, storyboard, analysis, frame_count, output)

    def ended_writes(self, wait: bool = False) -> dict[str, str | None]:
        return self._writes.ended(wait)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per configuration (median)")
    parser.add_argument("--song-s", type=float, default=60.0, help="length of the demo song, seconds")
    parser.add_argument("--ratio", type=float, default=2.5, help="generation time / write time")
    args = parser.parse_args()

    import ray

    from music2video.render.executors import LOCAL_RAY_ENV, RayExecutor
    from music2video.settings import RaySettings

    work = Path(tempfile.mkdtemp(prefix="bench-ray-overlap-"))
    storyboard, analysis = storyboard_for(args.song_s, work)
    shots = len(storyboard.shots)
    _, write_s = time_render(lambda: AnimaticRenderer(WIDTH, HEIGHT, FPS, workers=1), storyboard, analysis, None, 1)
    generate_s = args.ratio * write_s[0]
    print(f"{shots} shots at {WIDTH}x{HEIGHT}; write {write_s[0]:.3f} s a shot (measured), generation {generate_s:.3f} s (sleep)")

    home = Path(tempfile.mkdtemp(prefix="bench-ray-home-"))
    (home / "ray_bootstrap_config.yaml").write_text("provider: {type: local}\n")
    os.environ.update(LOCAL_RAY_ENV)
    saved_home, os.environ["HOME"] = os.environ.get("HOME"), str(home)
    temp = tempfile.mkdtemp(prefix="m2vray", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False, logging_level=logging.WARNING)
    if saved_home is not None:
        os.environ["HOME"] = saved_home
    renderers = {"in line": SleepThenWrite, "background": SleepThenWriteInBackground}
    try:
        for workers in (1, 2):
            with RayExecutor(RaySettings(workers=workers)) as executor:
                walls: dict[str, float] = {}
                for name, kind in renderers.items():
                    before = load()
                    time_render(lambda kind=kind: kind(generate_s), storyboard, analysis, executor, 1)  # actors start
                    runs, _ = time_render(lambda kind=kind: kind(generate_s), storyboard, analysis, executor, args.runs)
                    walls[name] = wall = statistics.median(runs)
                    print(
                        f"ray, {workers} worker(s), written {name:10s} {wall:6.2f} s  {wall / shots * workers:.3f} s a shot "
                        f"per worker  {60 * shots / wall:6.1f} shots/min  (runs {', '.join(f'{r:.2f}' for r in runs)})  "
                        f"load {before} -> {load()}",
                        flush=True,
                    )
                print(
                    f"  background / in line: {walls['in line'] / walls['background']:.2f}x shots per minute "
                    f"(ideal {(write_s[0] + generate_s) / max(write_s[0], generate_s):.2f}x)"
                )
    finally:
        ray.shutdown()
        for folder in (temp, home, work):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
