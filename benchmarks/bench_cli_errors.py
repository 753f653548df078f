"""Time to the answer: how long the installed ``music2video`` script takes to answer simple
mistakes, and to rerun a finished preview with nothing to do; each run ``--runs`` times in a
fresh process (median, min and max printed).

Budget (issue 12), on an idle 2-core machine: under 1 s for each mistake (the song, the flags
and the output folder are checked before torch, librosa or the pipeline are imported), about
1 s for the rerun.

    python benchmarks/bench_cli_errors.py [--runs 7] [--script .venv/bin/music2video] [--no-rerun]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def mistakes(folder: Path) -> dict[str, list[str]]:
    song = folder / "song.wav"
    song.write_bytes(b"RIFF")  # never decoded: every mistake below is caught before that
    return {
        "missing song": [str(folder / "nope.mp3")],
        "--fps 0": [str(song), "--fps", "0"],
        "misspelt flag": [str(song), "--resolutoin", "640x360"],
        "output is the song": [str(song), "-o", str(song)],
        "unwritable output": [str(song), "-o", "/proc/x.mp4"],
        "--help": ["make", "--help"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--script", type=Path, default=Path(sys.executable).with_name("music2video"))
    parser.add_argument("--no-rerun", action="store_true", help="skip the rerun (it needs one preview run first)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = mistakes(folder)
        if not args.no_rerun:
            song, video = folder / "demo.wav", folder / "demo.mp4"
            subprocess.run([str(args.script), "demo-song", str(song), "--duration", "30"], check=True, capture_output=True)
            make = [str(song), "-o", str(video), "--pipeline", "preview"]
            subprocess.run([str(args.script), *make], check=True, capture_output=True)
            cases["rerun, nothing to do"] = make
        print(f"{'case':<22} {'exit':>4} {'median s':>9} {'min s':>7} {'max s':>7}")
        for name, argv in cases.items():
            times, code = [], None
            for _ in range(args.runs):
                started = time.perf_counter()
                done = subprocess.run([str(args.script), *argv], capture_output=True, text=True)
                times.append(time.perf_counter() - started)
                code = done.returncode
            print(f"{name:<22} {code:>4} {statistics.median(times):>9.2f} {min(times):>7.2f} {max(times):>7.2f}")


if __name__ == "__main__":
    main()
