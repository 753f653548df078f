"""How long the storyboard stage takes when the LLM server is down or hangs (issue 13.4).

Before the change, each part of the storyboard got 4 tries of up to 120 s: a hanging server
cost 24.5 minutes for a 21-s song with two sections. Now a refused connection is tried once and
ends every part; a silent server ends them after ``llm.first_token_timeout_s`` (60 s by
default); ``llm.budget_s`` bounds everything. Scripted loopback servers stand in for the real
ones (tests/fake_llm_server.py); the write stage's seconds come from run.json.

    python benchmarks/bench_llm_faults.py [--runs 3] [--first-token-timeout 60]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_llm_server import FakeServer  # noqa: E402

from music2video import make_video  # noqa: E402
from music2video.demo import synthesize_demo_song  # noqa: E402

SONG_S = 21.0  # the song of the report


def write_stage_s(song: Path, folder: Path, url: str, first_token_timeout_s: float) -> tuple[float, str]:
    result = make_video(song, folder.with_suffix(".mp4"), workdir=folder, until="write", pipeline="preview",
                        writer="llm", llm={"model": "m", "base_url": url, "first_token_timeout_s": first_token_timeout_s})
    seconds = next(stage.seconds for stage in result.summary.stages if stage.name == "write")
    return seconds, result.storyboard.writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--first-token-timeout", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        song = root / "song.wav"
        synthesize_demo_song(song, duration_s=SONG_S)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            refused_url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
        hanging = FakeServer()
        hanging.always = {"concept": "hang"}
        try:
            for name, url in (("refused connection", refused_url), ("hanging server", hanging.url)):
                before = len(hanging.requests)
                times, writer = [], ""
                for run in range(args.runs):
                    seconds, writer = write_stage_s(song, root / f"{name[:4]}-{run}", url, args.first_token_timeout)
                    times.append(seconds)
                requests = (len(hanging.requests) - before) / args.runs if url == hanging.url else None
                print(f"{name}: write stage median {statistics.median(times):.1f} s "
                      f"(min {min(times):.1f}, max {max(times):.1f}, {args.runs} runs)"
                      + (f", {requests:g} request(s) per run" if requests is not None else ""))
                print(f"  writer: {writer}")
        finally:
            hanging.close()


if __name__ == "__main__":
    main()
