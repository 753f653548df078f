"""Speed and memory of the offline preview pipeline on a 3-minute song.

Prints, as medians over ``--runs`` runs after one warm-up (numba compiles librosa's kernels on
first use):

* analysis (decode + structure + shots) time and real-time factor,
* the full preview video (analysis, dsp listener, template writer, animatic render, encode,
  assemble) time and real-time factor at 640x360, 24 fps,
* the peak resident memory of one full run (measured in a child process).

Targets on the 2-core CI machine: analysis >= 40x real time, full preview >= 5x, peak < 2 GB.

    python benchmarks/bench_preview.py [--duration 180] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "music2video-numba"))

CHILD = r"""
import json, resource, sys, time
from music2video import make_video
song, out, work, until = sys.argv[1:5]
started = time.perf_counter()
result = make_video(song, out, workdir=work, pipeline="preview", width=640, height=360, fps=24, until=until)
seconds = time.perf_counter() - started
stages = {s.name: s.seconds for s in result.summary.stages}
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "stages": stages}))
"""


def run_child(song: Path, workdir: Path, until: str) -> dict:
    """One fresh run in a child process (fresh run folder), so peak memory is that run's alone."""
    output = workdir.with_suffix(".mp4")
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(song), str(output), str(workdir), until],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180.0, help="song length in seconds")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from music2video.demo import synthesize_demo_song

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        song = root / "song.wav"
        synthesize_demo_song(song, duration_s=args.duration)
        run_child(song, root / "warmup", "shots")  # numba compilation, page cache

        analysis = [run_child(song, root / f"analysis-{i}", "shots") for i in range(args.runs)]
        full = [run_child(song, root / f"full-{i}", "assemble") for i in range(args.runs)]

    analysis_s = statistics.median(r["seconds"] for r in analysis)
    full_s = statistics.median(r["seconds"] for r in full)
    print(f"song: {args.duration:.0f} s synthetic demo song; {args.runs} runs each, medians; {os.cpu_count()} CPUs")
    print(f"analysis (decode+structure+shots): {analysis_s:6.2f} s   {args.duration / analysis_s:6.1f}x real time")
    print(f"full preview 640x360 @ 24 fps:     {full_s:6.2f} s   {args.duration / full_s:6.1f}x real time")
    stage_names = full[0]["stages"].keys()
    for name in stage_names:
        print(f"  {name:10s} {statistics.median(r['stages'][name] for r in full):6.2f} s")
    print(f"peak memory of one full run:       {max(r['peak_rss_mb'] for r in full):6.0f} MB")


if __name__ == "__main__":
    main()
