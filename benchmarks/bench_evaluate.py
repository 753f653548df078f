"""Speed of the evaluate and report stages on a real preview run (640x360, 24 fps by default).

Makes a demo song of ``--song-s`` seconds, runs the preview pipeline on it once (reused on the
next call when ``--workdir`` is kept), then prints:

* ``evaluate_video`` time with each motion measure (``difference`` always, ``flow`` when
  OpenCV is installed), with the beats of the run's analysis,
* ``write_report`` time, first call in the process (includes importing matplotlib) and second,
* what the cut detector found against the planned cuts.

Budget: the report under 5 s for a 3-minute song with about 60 shots.

    python benchmarks/bench_evaluate.py [--song-s 180] [--workdir /tmp/bench-evaluate]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

from music2video.demo import synthesize_demo_song  # noqa: E402
from music2video.evaluate import evaluate_run, evaluate_video  # noqa: E402
from music2video.metrics.frames import flow_available  # noqa: E402
from music2video.pipeline import make_video  # noqa: E402
from music2video.report import write_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song-s", type=float, default=180.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-evaluate"))
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=24.0)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    song = args.workdir / f"demo-{args.song_s:g}s.wav"
    if not song.exists():
        synthesize_demo_song(song, duration_s=args.song_s, tempo_bpm=120.0, seed=0)
    started = time.perf_counter()
    result = make_video(
        song, args.workdir / "demo.mp4", pipeline="preview", fps=args.fps, width=args.width, height=args.height
    )
    print(f"preview run: {time.perf_counter() - started:.1f} s ({len(result.plan.shots)} shots; reused if fast)")
    analysis = result.analysis
    video = result.video_path if result.video_path.is_absolute() else result.run_folder / result.video_path

    methods = ["difference"] + (["flow"] if flow_available() else [])
    for method in methods:
        started = time.perf_counter()
        evaluation = evaluate_video(
            video, result.run_folder / "audio.wav", analysis.beats_s, analysis.downbeats_s,
            tempo_bpm=analysis.tempo_bpm, motion=method, planned_cut_frames=result.video.cut_frames,
        )  # fmt: skip
        print(
            f"evaluate ({method}): {time.perf_counter() - started:.2f} s for {evaluation.duration_s:.0f} s of "
            f"{evaluation.width}x{evaluation.height} @ {evaluation.fps:g} fps; cuts found {len(evaluation.cuts.frames)} "
            f"of {len(result.video.cut_frames)} planned (recall {evaluation.cuts.recall}, precision {evaluation.cuts.precision}); "
            f"BAS {evaluation.beat_alignment.visual_to_music}, AV-Align {evaluation.av_align.score if evaluation.av_align else None}"
        )
    evaluate_run(result.run_folder)
    for attempt in ("first", "second"):
        started = time.perf_counter()
        write_report(result.run_folder)
        print(f"report ({attempt} call): {time.perf_counter() - started:.2f} s")
    print(f"report: {result.run_folder / 'report.html'}")


if __name__ == "__main__":
    main()
