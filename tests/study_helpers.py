"""Small videos, study folders and a served study for the study tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from music2video.videofile import write_clip


def make_video(path: Path, *, colour: tuple[int, int, int] = (40, 90, 160), seconds: float = 1.0, fps: int = 12) -> Path:
    """A short H.264 clip: a coloured field with a moving bar (no audio)."""
    frames = np.empty((int(seconds * fps), 48, 64, 3), np.uint8)
    frames[:] = colour
    for index, frame in enumerate(frames):
        x = (index * 5) % 64
        frame[:, x : x + 6] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    write_clip(path, frames, fps)
    return path


def make_videos(folder: Path, count: int, seconds: float = 1.0) -> list[Path]:
    colours = [(200, 60, 60), (60, 160, 60), (60, 60, 200), (180, 180, 40), (120, 40, 160), (30, 160, 160)]
    return [make_video(folder / f"clip-{i}.mp4", colour=colours[i % len(colours)], seconds=seconds) for i in range(count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """``music2video study serve FOLDER`` in a subprocess, returned once the page answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "music2video", "study", "serve", str(folder), "--port", str(port)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read()}")
        try:
            api(port, "/api/study")
            return process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start within 60 s")


def api(port: int, path: str, body: dict | None = None, method: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json", "X-Studio": "1"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")
