"""First-run and warm speed of ``music2video analyze`` on a real-instrument 3-minute song.

The song is the dev set's pieces (benchmarks/devset, ``make devset``) joined end to end up to
``--duration`` seconds. Two measurements, each in a fresh process, as a user sees them:

* **first analysis in a fresh install**: an empty numba cache folder, so any just-in-time
  compilation on the analysis path is paid here (target < 20 s for 3 minutes);
* **warm**: the same command again, caches filled, a fresh run folder (target >= 40x real time).

Also lists the numba functions compiled during the cold run (there should be none on the
analysis path).

    python benchmarks/bench_analysis_speed.py [--duration 180] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "devset"))
import build as devset  # noqa: E402

CHILD = r"""
import sys, time, json
import numba.core.dispatcher as dispatcher
compiled = []
original = dispatcher.Dispatcher.compile
def compile(self, signature):
    compiled.append(f"{self.py_func.__module__}.{self.py_func.__name__}")
    return original(self, signature)
dispatcher.Dispatcher.compile = compile
started = time.perf_counter()
from music2video.cli import main
sys.argv = ["music2video", "analyze", sys.argv[1], "-o", sys.argv[2]]
try:
    main()
except SystemExit as stop:
    if stop.code:
        raise
print(json.dumps({"seconds": time.perf_counter() - started, "compiled": sorted(set(c for c in compiled if not c.startswith("numba.")))}))
"""


def run(song: Path, out: Path, numba_dir: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_dir))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(song), str(out)], env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import soundfile

    pieces = devset.load_devset()
    with tempfile.TemporaryDirectory(prefix="m2v-speed-") as tmp:
        tmp = Path(tmp)
        parts, total = [], 0
        for wav, _ in pieces:
            audio, rate = soundfile.read(wav, dtype="float32")
            parts.append(audio)
            total += len(audio)
            if total >= args.duration * rate:
                break
        song = tmp / "song.wav"
        soundfile.write(song, np.concatenate(parts)[: int(args.duration * rate)], rate)
        cold = run(song, tmp / "cold.mp4", tmp / "numba-cold")
        warm = [run(song, tmp / f"warm{i}.mp4", tmp / "numba-cold")["wall_s"] for i in range(args.runs)]
    print(f"first analysis, empty numba cache: {cold['wall_s']:.1f} s for {args.duration:.0f} s of audio "
          f"(numba compiled: {', '.join(cold['compiled']) or 'nothing'})")
    median = statistics.median(warm)
    print(f"warm `music2video analyze`: median {median:.1f} s over {args.runs} runs = {args.duration / median:.0f}x real time "
          f"(runs: {', '.join(f'{w:.1f}' for w in warm)})")


if __name__ == "__main__":
    main()
