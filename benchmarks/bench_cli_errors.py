"""Time to the error line: how long the installed ``music2video`` script takes to answer simple
mistakes, each run ``--runs`` times in a fresh process (median, min and max printed).

Budget: under 1 s for each, on an idle 2-core machine (issue 12): the song, the flags and the
output folder are checked before torch, librosa or the pipeline are imported.

    python benchmarks/bench_cli_errors.py [--runs 7] [--script .venv/bin/music2video]
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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'mistake':<20} {'exit':>4} {'median s':>9} {'min s':>7} {'max s':>7}")
        for name, argv in mistakes(Path(tmp)).items():
            times, code = [], None
            for _ in range(args.runs):
                started = time.perf_counter()
                done = subprocess.run([str(args.script), *argv], capture_output=True, text=True)
                times.append(time.perf_counter() - started)
                code = done.returncode
            print(f"{name:<20} {code:>4} {statistics.median(times):>9.2f} {min(times):>7.2f} {max(times):>7.2f}")


if __name__ == "__main__":
    main()
