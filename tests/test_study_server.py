"""``music2video study serve`` as a participant's browser talks to it (plain HTTP on loopback):
blinded answers, refused mistakes, and a database that survives a server killed mid-study."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from study_helpers import api, free_port, make_videos, start_server

pytest.importorskip("fastapi", reason="the web extra is not installed (pip install -e '.[web]')")
pytest.importorskip("uvicorn", reason="the web extra is not installed (pip install -e '.[web]')")

from music2video.study.design import create_study  # noqa: E402
from music2video.study.store import read_answers  # noqa: E402

pytestmark = pytest.mark.slow  # a server process per test (about 2 s to start)


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    clips = make_videos(tmp_path / "clips", 4)
    folder = tmp_path / "pilot.study"
    create_study(clips, folder, name="pilot", conditions=["ours-secret", "theirs-secret", "ours-secret", "theirs-secret"])
    return folder


def _rate_next(port: int, me: dict, dimensions: list[str], rating: int = 4) -> dict:
    code = next(c for c in me["order"] if c not in me["done"])
    attention = None
    if me["attention"] and me["attention"]["video"] == code:
        attention = int(me["attention"]["question"].split("choose ")[1][0])
    return api(port, "/api/answers", {"participant": me["id"], "video": code, "ratings": {d: rating for d in dimensions}, "attention": attention, "watched_s": 1.0})


def _status(port: int, path: str, body: dict | None = None) -> int:
    try:
        api(port, path, body)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def test_the_database_survives_a_killed_server(study_folder):
    port = free_port()
    server = start_server(study_folder, port)
    try:
        dimensions = [d["id"] for d in api(port, "/api/study")["dimensions"]]
        me = api(port, "/api/participants", method="POST")
        me = _rate_next(port, me, dimensions, rating=2)
        me = _rate_next(port, me, dimensions, rating=5)
        rated = list(me["done"])
    finally:
        os.kill(server.pid, signal.SIGKILL)  # no shutdown, no checkpoint: a crash or a power cut
        server.wait()
    assert server.returncode == -signal.SIGKILL

    answers, participants = read_answers(study_folder)  # read as results reads it
    assert {(a.video, a.rating) for a in answers} == {(rated[0], 2), (rated[1], 5)}
    assert len(answers) == 2 * len(dimensions) and participants[me["id"]]["finished"] is False

    port = free_port()
    server = start_server(study_folder, port)
    try:  # the participant's tab reloads: it resumes at the third video
        me = api(port, f"/api/participants/{me['id']}")
        assert me["done"] == rated
        while not me["finished"]:
            me = _rate_next(port, me, dimensions)
    finally:
        server.terminate()
        server.wait(timeout=20)
    answers, participants = read_answers(study_folder)
    assert len(answers) == 4 * len(dimensions) and participants[me["id"]]["finished"] is True


def test_the_page_and_its_api_stay_blind_and_refuse_bad_answers(study_folder):
    port = free_port()
    server = start_server(study_folder, port)
    try:
        info = api(port, "/api/study")
        me = api(port, "/api/participants", method="POST")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/video/{me['order'][0]}", timeout=10) as response:
            video_headers = str(response.headers)
            assert response.read()[4:8] == b"ftyp"  # an MP4
        seen = json.dumps([info, me]) + video_headers
        for secret in ("secret", "clip-", "ours", "theirs"):
            assert secret not in seen
        dimensions = [d["id"] for d in info["dimensions"]]
        code = me["order"][0]
        body = {"participant": me["id"], "video": code, "ratings": {d: 3 for d in dimensions}}
        assert _status(port, "/api/answers", {**body, "ratings": {**body["ratings"], "sync": 9}}) == 422
        assert _status(port, "/api/answers", {**body, "ratings": {"sync": 3}}) == 422
        assert _status(port, "/api/answers", {**body, "participant": "nobody"}) == 422
        assert _status(port, f"/api/participants/nobody") == 404
        assert _status(port, "/video/..%2Fstudy.json") == 404
        assert _status(port, "/static/..%2F..%2Fdesign.py") == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert b"<script src=\"/static/study.js\">" in response.read()
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        # a page elsewhere: by DNS rebinding (another Host), or posting across sites
        rebound = urllib.request.Request(f"http://127.0.0.1:{port}/api/study", headers={"Host": f"attacker.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(rebound, timeout=10)
        assert refused.value.code == 421
        cross_site = urllib.request.Request(f"http://127.0.0.1:{port}/api/participants", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(cross_site, timeout=10)
        assert refused.value.code == 403
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert read_answers(study_folder)[0] == []  # nothing refused was stored
