"""A storyboard written by the fallback because the LLM server was down is provisional: the
next run asks the server again and replaces it, unless a person has edited it since.
Through the whole pipeline (``make_video``), with a scripted server on loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fake_llm_server import FakeServer

from music2video import make_video
from music2video.artifacts import Storyboard
from music2video.demo import synthesize_demo_song


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("song") / "song.wav"
    synthesize_demo_song(path, duration_s=8.0)
    return path


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write(song: Path, run: Path, url: str) -> Storyboard:
    result = make_video(song, run.with_suffix(".mp4"), workdir=run, until="write", pipeline="preview", writer="llm",
                        llm={"model": "test-model", "base_url": url, "first_token_timeout_s": 5.0})
    assert result.storyboard is not None
    return result.storyboard


@pytest.mark.slow  # three pipeline runs up to the storyboard: several seconds on 2 cores
def test_a_fallback_storyboard_is_replaced_once_the_server_is_back(song: Path, tmp_path: Path) -> None:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}/v1"
    run = tmp_path / "run"

    down = write(song, run, url)
    assert down.writer == f"template (fallback: LLM unreachable at {url} (connection refused))"
    on_disk = json.loads((run / "storyboard.json").read_text())
    assert on_disk["key"].endswith("+provisional") and on_disk["writer"] == down.writer

    server = FakeServer(port=port)
    try:
        up = write(song, run, url)
        asked = len(server.requests)
        assert asked > 0 and up.writer == f"llm:test-model@{url}"
        assert json.loads((run / "storyboard.json").read_text())["key"] == on_disk["key"].removesuffix("+provisional")
        assert up.title == "Felt Rain"  # the server's storyboard, not the template's
        again = write(song, run, url)
        assert again == up and len(server.requests) == asked  # final now: reused, nothing asked
    finally:
        server.close()


@pytest.mark.slow  # two pipeline runs up to the storyboard
def test_an_edited_fallback_storyboard_is_kept_when_the_server_is_back(song: Path, tmp_path: Path) -> None:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}/v1"
    run = tmp_path / "run"
    write(song, run, url)
    data = json.loads((run / "storyboard.json").read_text())
    data["shots"][0]["scene"] = "My own opening scene."
    (run / "storyboard.json").write_text(json.dumps(data, indent=2))

    server = FakeServer(port=port)
    try:
        kept = write(song, run, url)
    finally:
        server.close()
    assert kept.shots[0].scene == "My own opening scene." and server.requests == []
    assert not list(run.glob("storyboard.edited-*.json"))  # nothing replaced, so nothing backed up
