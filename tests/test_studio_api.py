"""The studio's safety rules, through its HTTP API (FastAPI's TestClient, no socket).

Paths from the browser never leave the work folder (``..``, absolute paths, symbolic links),
uploads are size-limited and get tame names, only loopback host names are answered without a
token, changes need the studio's own header, and the page may load nothing from elsewhere.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the studio needs the web extra (pip install -e '.[web]')")
pytest.importorskip("httpx2", reason="FastAPI's TestClient needs httpx2 (pip install -e '.[dev]')")

from starlette.testclient import TestClient  # noqa: E402

from music2video.errors import Music2VideoError  # noqa: E402
from music2video.studio import create_app  # noqa: E402
from music2video.studio.safety import CONTENT_SECURITY_POLICY, PathRefused, resolve_inside, sanitise_name  # noqa: E402

CHANGE = {"X-Studio": "1"}
SECRET = "the content of a file outside the work folder"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    (folder / "song.music2video").mkdir(parents=True)
    (folder / "song.music2video" / "run.json").write_text("{}")
    (folder / "inside.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text(SECRET)
    return folder


def client(work: Path, **options) -> TestClient:
    return TestClient(create_app(work, **options), base_url="http://127.0.0.1:8765")


@pytest.mark.parametrize(
    "path",
    ["../secret.txt", "/etc/passwd", "song.music2video/../../secret.txt", "..", "a\\..\\..\\secret.txt", "C:/Windows", "x\x00y"],
)
def test_paths_that_leave_the_work_folder_are_refused(work: Path, path: str):
    with pytest.raises(PathRefused):
        resolve_inside(work, path)
    answer = client(work).get("/api/file", params={"path": path})
    assert answer.status_code == 403
    assert SECRET not in answer.text and "root:" not in answer.text


def test_a_symbolic_link_out_of_the_work_folder_is_refused(work: Path, tmp_path: Path):
    (work / "link.txt").symlink_to(tmp_path / "secret.txt")
    (work / "linked-folder").symlink_to(tmp_path)
    studio = client(work)
    for path in ("link.txt", "linked-folder/secret.txt"):
        answer = studio.get("/api/file", params={"path": path})
        assert answer.status_code == 403, path
        assert SECRET not in answer.text
    # A run folder given through a link that leads out is refused the same way.
    assert studio.get("/api/run", params={"run": "linked-folder"}).status_code == 403


def test_files_inside_are_served_and_encoded_dots_do_not_help(work: Path):
    studio = client(work)
    assert studio.get("/api/file", params={"path": "inside.txt"}).text == "inside"
    assert studio.get("/api/file?path=%2e%2e%2fsecret.txt").status_code == 403
    assert studio.get("/api/run", params={"run": "../work/song.music2video"}).status_code == 403
    assert studio.get("/api/run", params={"run": "inside.txt"}).status_code == 404  # not a run folder


def test_uploads_get_a_plain_name_inside_the_work_folder(work: Path, tmp_path: Path):
    studio = client(work)
    answer = studio.put("/api/upload", params={"name": "../../Tëst sóng (live).MP3"}, content=b"ID3 not really", headers=CHANGE)
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "Test_song_live.mp3"
    assert (work / "Test_song_live.mp3").read_bytes() == b"ID3 not really"
    again = studio.put("/api/upload", params={"name": "Test song live.mp3"}, content=b"2", headers=CHANGE)
    assert again.json()["path"] == "Test_song_live-2.mp3"  # never replaces a file
    assert not (tmp_path / "Tëst sóng (live).MP3").exists()
    assert sanitise_name("..hidden.wav") == "hidden.wav"
    assert sanitise_name("C:\\music\\a b.flac") == "a_b.flac"
    with pytest.raises(Music2VideoError):
        sanitise_name("evil.sh")
    assert studio.put("/api/upload", params={"name": "evil.sh"}, content=b"#!", headers=CHANGE).status_code == 400


def test_uploads_over_the_limit_are_refused_and_leave_nothing(work: Path):
    studio = client(work, max_upload_bytes=1000)
    declared = studio.put("/api/upload", params={"name": "big.wav"}, content=b"x" * 2000, headers=CHANGE)
    assert declared.status_code == 413

    def chunks():  # no Content-Length: the stream itself is counted
        for _ in range(10):
            yield b"y" * 300

    streamed = studio.put("/api/upload", params={"name": "big.wav"}, content=chunks(), headers=CHANGE)
    assert streamed.status_code == 413
    assert sorted(p.name for p in work.iterdir()) == ["inside.txt", "song.music2video"]  # no file, no temporary


def test_only_loopback_host_names_are_answered_without_a_token(work: Path):
    studio = client(work)
    assert studio.get("/api/work", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert studio.get("/api/work", headers={"Host": "localhost:8765"}).status_code == 200
    assert studio.get("/api/work", headers={"Host": "[::1]:8765"}).status_code == 200
    # A name that resolves to 127.0.0.1 for an attacker's page (DNS rebinding) is not enough.
    assert studio.get("/api/work", headers={"Host": "evil.example:8765"}).status_code == 421


def test_changes_need_the_studios_header_and_origin(work: Path):
    studio = client(work)
    assert studio.put("/api/upload", params={"name": "a.wav"}, content=b"1").status_code == 403
    foreign = {**CHANGE, "Origin": "http://evil.example"}
    assert studio.put("/api/upload", params={"name": "a.wav"}, content=b"1", headers=foreign).status_code == 403
    own = {**CHANGE, "Origin": "http://127.0.0.1:8765"}
    assert studio.put("/api/upload", params={"name": "a.wav"}, content=b"1", headers=own).status_code == 200


def test_a_token_guards_every_request(work: Path):
    token = "t0ken-for-the-studio-tests"
    studio = client(work, token=token, allowed_hosts=None)
    assert studio.get("/api/work").status_code == 401
    assert studio.get("/api/work", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
    assert studio.get("/api/work", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # The printed link: the token becomes an HttpOnly cookie and leaves the address bar.
    opened = studio.get("/", params={"token": token}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    assert "HttpOnly" in opened.headers["set-cookie"]
    assert studio.get("/api/work").status_code == 200  # the client kept the cookie
    with pytest.raises(Music2VideoError, match="token"):
        create_app(work, token=None, allowed_hosts=None)


def test_other_hosts_need_a_token(work: Path):
    from music2video.studio import serve

    with pytest.raises(Music2VideoError, match="--token"):
        serve(work, host="0.0.0.0", port=0)


def test_the_page_may_load_nothing_from_elsewhere(work: Path):
    studio = client(work)
    page = studio.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY and "connect-src 'self'" in CONTENT_SECURITY_POLICY
    static = Path(__file__).parents[1] / "src" / "music2video" / "studio" / "static"
    for file in static.iterdir():
        text = file.read_text(encoding="utf-8").replace("http://localhost:11434/v1", "")  # a placeholder, not a request
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, file.name


def test_starting_a_run_takes_only_songs_inside(work: Path, tmp_path: Path):
    studio = client(work)
    assert studio.post("/api/runs", json={"song": "../secret.txt"}, headers=CHANGE).status_code == 403
    assert studio.post("/api/runs", json={"song": str(tmp_path / "secret.txt")}, headers=CHANGE).status_code == 403
    assert studio.post("/api/runs", json={"song": "missing.wav"}, headers=CHANGE).status_code == 404
    assert studio.post("/api/runs", json={"song": "inside.txt"}, headers=CHANGE).status_code == 400
    (work / "song.wav").write_bytes(b"RIFF")
    bad = studio.post("/api/runs", json={"song": "song.wav", "width": 33}, headers=CHANGE)
    assert bad.status_code == 400 and "even" in bad.json()["error"]


@pytest.mark.slow  # a child process that imports the pipeline and decodes a minute of audio: ~6 s
def test_a_run_can_be_cancelled_and_leaves_its_folder_free(tmp_path: Path, demo_song):
    """Cancel during the analysis: the job says so, the lock is gone, finished stages stay."""
    from music2video.runfolder import RunFolder

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(demo_song[0], work / "song.wav")
    app = create_app(work)
    studio = TestClient(app, base_url="http://127.0.0.1:8765")
    started = studio.post("/api/runs", json={"song": "song.wav", "pipeline": "preview", "width": 64, "height": 36, "fps": 6}, headers=CHANGE)
    assert started.status_code == 200, started.text
    job, run = started.json()["job"], started.json()["run"]
    assert run == "song.music2video"
    deadline = time.monotonic() + 60
    while not (work / run / "audio.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = studio.post(f"/api/jobs/{job['id']}/cancel", headers=CHANGE).json()
    assert cancelled["state"] in ("cancelling", "cancelled", "done")
    while app.app.state.jobs.get(job["id"]).active or app.app.state.jobs.get(job["id"]).state == "cancelling":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    state = studio.get(f"/api/jobs/{job['id']}").json()
    assert state["state"] == "cancelled", state
    assert (work / run / "audio.json").is_file()  # a finished stage is kept
    with RunFolder(work / run).locked():  # and nobody holds the folder any more
        pass
    assert studio.get("/api/run", params={"run": run}).json()["jobs"][0]["state"] == "cancelled"


def test_edits_go_through_the_edit_api_and_its_refusals_come_back_as_messages(tmp_path: Path):
    """The timeline's requests reach music2video.edit: a cut lands on a beat, both its shots
    become changed, and a broken limit or a locked shot comes back as one line to show."""
    from test_report import build_run_folder

    work = tmp_path / "work"
    build_run_folder(work, duration_s=8.0, shot_s=2.0)  # work/song.music2video: four 2-s shots, beats every 0.5 s
    studio = client(work)

    def edit(**body):
        return studio.post("/api/edit", json={"run": "song.music2video", **body}, headers=CHANGE)

    moved = edit(operation="move_cut", cut=2, to_s=4.62)
    assert moved.status_code == 200, moved.text
    state = moved.json()
    assert state["shots"][2]["start_s"] == 4.5 and state["shots"][1]["end_s"] == 4.5  # the nearest beat
    assert set(state["edit"]["changed"]) >= {"shot-001", "shot-002"}
    too_short = edit(operation="move_cut", cut=1, to_s=3.9)  # shot-001 would last 0.5 s
    assert too_short.status_code == 400 and "shortest shot" in too_short.json()["error"]
    assert edit(operation="lock_shot", shot=0, locked=True).json()["edit"]["locked"] == ["shot-000"]
    locked = edit(operation="move_cut", cut=1, to_s=2.5)
    assert locked.status_code == 400 and "locked" in locked.json()["error"]
    updated = edit(operation="update_shot", shot=3, fields={"prompt": "a lighthouse in fog", "seed": 7})
    assert updated.json()["shots"][3]["prompt"] == "a lighthouse in fog" and updated.json()["shots"][3]["seed"] == 7
    assert edit(operation="update_shot", shot=3, fields={"id": "x"}).status_code == 400
    assert edit(operation="move_cut", cut=2).status_code == 422  # no time
    assert studio.post("/api/edit", json={"run": "../work/song.music2video", "operation": "merge_shots", "shot": 0}, headers=CHANGE).status_code == 403
    assert studio.post("/api/edit", json={"run": "song.music2video", "operation": "merge_shots", "shot": 2}).status_code == 403  # no X-Studio
    assert studio.post("/api/rerender", json={"run": "/tmp", "shots": "changed"}, headers=CHANGE).status_code == 403


def _png(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pictures_replace_a_keyframe_or_a_reference_and_references_start_a_run(tmp_path: Path):
    from test_report import build_run_folder

    work = tmp_path / "work"
    run = build_run_folder(work, duration_s=8.0, shot_s=2.0)
    studio = client(work, max_upload_bytes=10_000)

    replaced = studio.put("/api/keyframe", params={"run": "song.music2video", "shot": 1}, content=_png(), headers=CHANGE)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["saved"] == "song.music2video/keyframes/shot-001.png"
    assert (run / "keyframes" / "shot-001.png").is_file()
    not_a_picture = studio.put("/api/keyframe", params={"run": "song.music2video", "shot": 1}, content=b"GIF89a", headers=CHANGE)
    assert not_a_picture.status_code == 400 and "picture" in not_a_picture.json()["error"]
    assert studio.put("/api/keyframe", params={"run": "song.music2video", "shot": 1}, content=b"x" * 20_000, headers=CHANGE).status_code == 413

    keeper = studio.put("/api/reference", params={"run": "song.music2video", "name": "Keeper"}, content=_png((0, 90, 200)), headers=CHANGE)
    assert keeper.status_code == 200 and keeper.json()["saved"] == "song.music2video/references/keeper.png"
    stranger = studio.put("/api/reference", params={"run": "song.music2video", "name": "Nobody"}, content=_png(), headers=CHANGE)
    assert stranger.status_code == 400 and "Keeper" in stranger.json()["error"]
    assert [m["name"] for m in studio.get("/api/run", params={"run": "song.music2video"}).json()["cast"]] == ["Keeper"]

    # A reference for a new run: uploaded into references/, passed on as keyframes.references.
    uploaded = studio.put("/api/upload", params={"name": "the singer.PNG", "kind": "picture"}, content=_png(), headers=CHANGE)
    assert uploaded.json()["path"] == "references/the_singer.png"
    assert studio.put("/api/upload", params={"name": "song.mp3", "kind": "picture"}, content=b"1", headers=CHANGE).status_code == 400
    from music2video.studio.server import StartRun

    request = StartRun(song="song.wav", pipeline="preview", references={"the singer": "references/the_singer.png"}, keyframe_model="m")
    assert request.overrides()["keyframes"] == {"keyframe_model": "m"}  # references are checked and added by the route
    (work / "x.wav").write_bytes(b"RIFF")
    refused = studio.post("/api/runs", json={"song": "x.wav", "references": {"a": "../../secret.png"}}, headers=CHANGE)
    assert refused.status_code == 403


@pytest.mark.slow  # a fresh Python that imports the CLI and uvicorn: 2-7 s
def test_the_studio_command_serves_the_work_folder_on_loopback(tmp_path: Path):
    """`music2video studio` as typed: it prints its loopback URL, answers there, and stops on Ctrl-C."""
    import json
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    work = tmp_path / "videos"
    process = subprocess.Popen(
        [sys.executable, "-m", "music2video", "studio", "--work-folder", str(work), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, line
        with urllib.request.urlopen(found.group(0) + "api/work", timeout=10) as answer:
            assert json.load(answer) == {"songs": [], "runs": []}
        assert work.is_dir()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    assert process.returncode in (0, 130)


def test_the_studio_command_refuses_a_weak_token(capsys):
    from music2video.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["studio", "--host", "0.0.0.0", "--token", "short"])
    assert stopped.value.code == 2
    assert "--token" in capsys.readouterr().err


def test_fastapi_telemetry_is_off(work: Path):
    app = create_app(work).app
    config = getattr(app, "_telemetry", None)
    if config is None:
        pytest.skip("this FastAPI has no telemetry")
    assert not any(config[name] for name in ("tracing", "metrics", "logs", "operation_spans", "auto_configure"))


def _spawns_a_process() -> None:
    """A job's work that starts a process of its own, as the animatic renderer's pool does."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0.01,))
    child.start()
    child.join()
    assert child.exitcode == 0


@pytest.mark.slow  # two Python start-ups: ~3 s
def test_a_job_may_start_processes_of_its_own():
    from music2video.studio.jobs import JobManager

    jobs = JobManager()
    job = jobs.start("run", "spawns", f"{__name__}:_spawns_a_process", {}, progress_keyword=None)
    deadline = time.monotonic() + 60
    while jobs.get(job.id).active:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (jobs.get(job.id).state, jobs.get(job.id).error) == ("done", None)
