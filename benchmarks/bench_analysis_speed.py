"""First-run and warm speed of ``music2video analyze`` on a real-instrument 3-minute song.

The song is ``--song`` (any recording), or else the dev set's pieces (benchmarks/devset,
``make devset``) joined end to end up to ``--duration`` seconds. Every run is the console
script as a user types it (``music2video analyze SONG -o OUT``), a fresh process timed from
outside, with a fresh run folder:

* **first analysis in a fresh install** (``--runs`` times, median): each run gets its own empty
  numba cache folder (``NUMBA_CACHE_DIR``) and an empty user cache folder (``XDG_CACHE_HOME``),
  so any just-in-time compilation on the analysis path is paid in every one of them
  (target < 20 s for 3 minutes on two cores);
* **warm** (``--runs`` times, median): the same command again, caches as the first run left
  them (target >= 40x real time).

Then one more cold run inside a tracer lists every numba function compiled on the way (there
should be none: the analysis front end is numpy, see ``music2video.spectral``), and the numba
cache folders of the cold runs are checked for anything written. The machine's load average is
printed beside the figures: the machine may be shared.

    python benchmarks/bench_analysis_speed.py [--song SONG] [--duration 180] [--runs 3] [--baseline-src DIR]
        [--tracker beatnet]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "devset"))
import build as devset  # noqa: E402

TRACER = r"""
import sys, json
compiled = []
try:
    import numba.core.dispatcher as dispatcher
    import numba.np.ufunc.ufuncbuilder as ufuncbuilder
except ImportError:  # a core install: nothing can compile
    compiled.append("(numba is not installed)")
else:
    def traced(original, kind):
        def compile(self, *args, **kwargs):
            compiled.append(f"{self.py_func.__module__}.{self.py_func.__name__}{kind}")
            return original(self, *args, **kwargs)
        return compile
    dispatcher.Dispatcher.compile = traced(dispatcher.Dispatcher.compile, "")
    for builder in (ufuncbuilder.UFuncBuilder, ufuncbuilder.GUFuncBuilder):  # eagerly compiled (g)ufuncs
        builder.add = traced(builder.add, " (ufunc)")
from music2video.cli import main
sys.argv = ["music2video", "analyze", sys.argv[1], "-o", sys.argv[2], *sys.argv[3:]]
try:
    main()
except SystemExit as stop:
    if stop.code:
        raise
print(json.dumps(sorted(set(c for c in compiled if not c.startswith("numba.")))))
"""


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("music2video")
    return [str(script)] if script.exists() else [sys.executable, "-m", "music2video"]


def fresh_caches(root: Path, name: str) -> dict[str, str]:
    """Environment of a fresh install: empty numba and user cache folders under ``root``."""
    return dict(os.environ, NUMBA_CACHE_DIR=str(root / f"{name}-numba"), XDG_CACHE_HOME=str(root / f"{name}-cache"))


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run: on a shared machine the CPU time shows the work,
    the wall time what a user waits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def joined_devset(path: Path, duration_s: float) -> Path:
    import soundfile

    parts, total, rate = [], 0, 44100
    for wav, _ in devset.load_devset():
        audio, rate = soundfile.read(wav, dtype="float32")
        parts.append(audio)
        total += len(audio)
        if total >= duration_s * rate:
            break
    soundfile.write(path, np.concatenate(parts)[: int(duration_s * rate)], rate)
    return path


def measure(song: Path, root: Path, runs: int, tag: str, src: str | None, extra: list[str]) -> dict:
    """Cold and warm runs of one code version (``src``: a ``src`` folder put first on PYTHONPATH)."""
    def env_of(name: str) -> dict[str, str]:
        env = fresh_caches(root, f"{tag}-{name}")
        if src:
            env["PYTHONPATH"] = src
        return env

    result: dict = {"cold": [], "warm": []}
    for i in range(runs):
        result["cold"].append(timed([*console_script(), "analyze", str(song), "-o", str(root / f"{tag}-cold{i}.mp4"), *extra], env_of(f"cold{i}")))
    for i in range(runs):
        result["warm"].append(timed([*console_script(), "analyze", str(song), "-o", str(root / f"{tag}-warm{i}.mp4"), *extra], env_of("cold0")))
    result["written"] = sorted(str(p.relative_to(root)) for i in range(runs) for p in (root / f"{tag}-cold{i}-numba").rglob("*") if p.is_file())
    traced = subprocess.run([sys.executable, "-c", TRACER, str(song), str(root / f"{tag}-traced.mp4"), *extra], env=env_of("traced"), capture_output=True, text=True, check=True)
    result["compiled"] = json.loads(traced.stdout.strip().splitlines()[-1])
    return result


def report(label: str, result: dict, duration_s: float) -> None:
    print(label)
    for name, runs in (("  first `music2video analyze` in a fresh install (empty numba and user caches)", result["cold"]), ("  warm `music2video analyze`", result["warm"])):
        median = statistics.median(wall for wall, _ in runs)
        print(f"{name}: median {median:.1f} s over {len(runs)} runs = {duration_s / median:.0f}x real time "
              f"(runs: {', '.join(f'{wall:.1f}' for wall, _ in runs)} s; CPU {statistics.median(cpu for _, cpu in runs):.1f} s)")  # fmt: skip
    written = result["written"]
    print(f"  numba functions compiled on the way: {', '.join(result['compiled']) or 'none'}; "
          f"files in the cold runs' numba caches: {len(written) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--song", type=Path, help="a real recording (default: dev-set pieces joined)")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of the joined dev set")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-src", help="also measure the code in this src folder (e.g. `git archive` of an older commit), right after ours")
    parser.add_argument("--tracker", help="analyse with --beat-tracker TRACKER (default: the default tracker)")
    args = parser.parse_args()
    extra = ["--beat-tracker", args.tracker] if args.tracker else []
    import soundfile

    with tempfile.TemporaryDirectory(prefix="m2v-speed-") as tmp:
        root = Path(tmp)
        song = args.song or joined_devset(root / "song.wav", args.duration)
        duration_s = soundfile.info(str(song)).duration
        loads = [os.getloadavg()[0]]
        ours = measure(song, root, args.runs, "ours", None, extra)
        loads.append(os.getloadavg()[0])
        baseline = measure(song, root, args.runs, "baseline", args.baseline_src, extra) if args.baseline_src else None
        loads.append(os.getloadavg()[0])

    print(f"song: {song.name if args.song else 'dev-set pieces joined'}, {duration_s:.1f} s; {os.cpu_count()} CPUs; "
          f"load average (1 min) at the start, middle and end: {', '.join(f'{x:.2f}' for x in loads)}")  # fmt: skip
    report(f"this code{' with --beat-tracker ' + args.tracker if args.tracker else ''}:", ours, duration_s)
    if baseline:
        report(f"baseline ({args.baseline_src}):", baseline, duration_s)


if __name__ == "__main__":
    main()
