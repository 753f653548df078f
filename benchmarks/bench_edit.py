"""How long the studio waits for an edit: each music2video.edit operation and each export format
on a preview run of the 3-minute demo song (the default 640x360, 24 fps).

Every operation runs ``--runs`` times on a fresh copy of the finished run folder (edits change
it) and the median wall time is printed with the CPU seconds beside it (the machine may be
shared: CPU time shows the work, wall time what a user waits). The run itself is made once.

Targets (2-core CPU): an edit of the cut or a shot well under a second, so that the timeline
answers a drag at once; ``changed_shots`` and an export under a second.

    python benchmarks/bench_edit.py [--runs 5] [--duration 180]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def timed(operation: Callable[[Path], object], finished: Path, scratch: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``operation`` on fresh copies of the run folder."""
    walls, cpus = [], []
    for index in range(runs):
        copy = scratch / f"run-{index}" / finished.name
        if copy.parent.exists():
            shutil.rmtree(copy.parent)
        shutil.copytree(finished, copy)
        wall, cpu = time.perf_counter(), time.process_time()
        operation(copy)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=180.0, help="Demo song length, seconds.")
    args = parser.parse_args()

    from music2video import edit, make_video
    from music2video.demo import synthesize_demo_song
    from music2video.export import export_timeline

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        song = root / "song.wav"
        synthesize_demo_song(song, duration_s=args.duration)
        started = time.perf_counter()
        make_video(song, root / "song.mp4", pipeline="preview", evaluate={"enabled": False})
        print(f"preview run of a {args.duration:g} s song: {time.perf_counter() - started:.1f} s (made once)")
        finished = root / "song.music2video"
        state = edit.open_run(finished)
        shots = state.plan.shots
        middle = len(shots) // 2
        beats = state.analysis.beats_s
        cut = shots[middle].start_s
        one_beat_later = min(t for t in beats if t > cut + 0.1)
        print(f"{len(shots)} shots, load {os.getloadavg()[0]:.1f}, median of {args.runs} runs\n")

        operations: dict[str, Callable[[Path], object]] = {
            "open_run": edit.open_run,
            "changed_shots": edit.changed_shots,
            "move_cut (one beat)": lambda run: edit.move_cut(run, middle, one_beat_later),
            "update_shot (prompt)": lambda run: edit.update_shot(run, middle, prompt="a lighthouse in fog"),
            "lock_shot": lambda run: edit.lock_shot(run, middle),
            "merge_shots": lambda run: edit.merge_shots(run, middle - 1) if shots[middle - 1].duration_s + shots[middle].duration_s <= 5 else None,
            "rerender (one edited shot, joined again)": lambda run: (
                edit.update_shot(run, middle, prompt="a lighthouse in fog"), edit.rerender(run)
            ),
            "export otio": lambda run: export_timeline(run, "otio"),
            "export fcpxml": lambda run: export_timeline(run, "fcpxml"),
            "export xml": lambda run: export_timeline(run, "xml"),
            "export edl": lambda run: export_timeline(run, "edl"),
        }
        print(f"{'operation':42} {'wall s':>8} {'CPU s':>8}")
        for name, operation in operations.items():
            wall, cpu = timed(operation, finished, root / "scratch", args.runs)
            print(f"{name:42} {wall:8.3f} {cpu:8.3f}")


if __name__ == "__main__":
    main()
