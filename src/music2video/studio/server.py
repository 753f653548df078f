"""The studio's HTTP API (FastAPI) and its static page.

Every route takes paths relative to the work folder and goes through
:func:`~music2video.studio.safety.resolve_inside`; long work runs in child processes
(:mod:`music2video.studio.jobs`); edits go through :mod:`music2video.edit`, the same functions
a Python user calls, so the CLI sees the same run folder state.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from music2video.errors import Music2VideoError, RunFolderBusy
from music2video.runfolder import atomic_path
from music2video.studio import runs
from music2video.studio.jobs import JobManager
from music2video.studio.safety import (
    IMAGE_EXTENSIONS,
    LOOPBACK_HOSTS,
    SONG_EXTENSIONS,
    Guard,
    PathRefused,
    relative_to_root,
    resolve_inside,
    sanitise_name,
    unique_path,
)

log = logging.getLogger(__name__)

STATIC_FOLDER = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 1 << 30
"""Largest upload accepted, bytes (1 GiB: a long song as a video file)."""
MAX_PICTURE_BYTES = 50 << 20
"""Largest keyframe or reference picture accepted, bytes."""
REFERENCES_FOLDER = "references"
"""Where uploaded reference pictures go, in the work folder."""


class StartRun(BaseModel):
    """What the page's start form sends: a song in the work folder and the run's settings.

    Fields left empty keep the config file's (or the default) value, as an unused CLI flag does.
    """

    model_config = ConfigDict(extra="forbid")

    song: str = Field(description="The song, relative to the work folder.")
    pipeline: str | None = None
    style: str | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    listener: str | None = None
    writer: str | None = None
    renderer: str | None = None
    clap_model: str | None = None
    lalm_model: str | None = None
    llm_model: str | None = None
    llm_base_url: str | None = None
    video_model: str | None = None
    reference_model: str | None = None
    keyframe_model: str | None = None
    references: dict[str, str] = Field(
        default_factory=dict, description="Character, place or prop name -> your picture of it, relative to the work folder."
    )
    evaluate: bool = Field(True, description="Evaluate the video and write report.html.")

    def overrides(self) -> dict[str, Any]:
        """Settings keywords for :func:`music2video.make_video` (nested sections as dicts)."""
        flat = {
            "pipeline": self.pipeline, "style": self.style, "seed": self.seed, "width": self.width,
            "height": self.height, "fps": self.fps, "listener": self.listener, "writer": self.writer,
            "renderer": self.renderer,
        }  # fmt: skip
        overrides: dict[str, Any] = {key: value for key, value in flat.items() if value not in (None, "")}
        sections = {
            "clap": {"model": self.clap_model},
            "lalm": {"model": self.lalm_model},
            "llm": {"model": self.llm_model, "base_url": self.llm_base_url},
            "video": {"model": self.video_model},
            "keyframes": {"reference_model": self.reference_model, "keyframe_model": self.keyframe_model},
            "evaluate": {"enabled": self.evaluate},
        }
        for section, fields in sections.items():
            given = {key: value for key, value in fields.items() if value not in (None, "")}
            if given:
                overrides[section] = given
        return overrides


class EditRequest(BaseModel):
    """One timeline or shot edit, handed to the function of :mod:`music2video.edit` it names."""

    model_config = ConfigDict(extra="forbid")

    run: str
    operation: Literal["move_cut", "split_shot", "merge_shots", "lock_shot", "update_shot"]
    shot: int | None = Field(None, description="Shot index (0 is the first); for move_cut, the cut at the start of this shot.")
    cut: int | None = Field(None, description="move_cut: the cut at the start of shot ``cut`` (1 and up).")
    to_s: float | None = None
    at_s: float | None = None
    snap: Literal["beat", "downbeat", "frame"] = "beat"
    locked: bool = True
    fields: dict[str, Any] = Field(default_factory=dict)

    def call(self, folder: Path) -> None:
        from music2video import edit

        needed = {"move_cut": ("cut", "to_s"), "split_shot": ("shot", "at_s")}.get(self.operation, ("shot",))
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise Problem(422, f"{self.operation} needs {' and '.join(missing)}")
        if self.operation == "move_cut":
            edit.move_cut(folder, self.cut, self.to_s, snap=self.snap)
        elif self.operation == "split_shot":
            edit.split_shot(folder, self.shot, self.at_s, snap=self.snap)
        elif self.operation == "merge_shots":
            edit.merge_shots(folder, self.shot)
        elif self.operation == "lock_shot":
            edit.lock_shot(folder, self.shot, self.locked)
        else:
            edit.update_shot(folder, self.shot, **self.fields)


class RerenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str
    shots: list[int] | Literal["changed"] = Field(description="Shot indices, or every changed shot.")


class KeepTakeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str
    shot: int
    number: int


class Problem(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(
    work_folder: Path,
    *,
    token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS,
) -> Any:
    """The studio's ASGI app over ``work_folder`` (made if missing).

    ``token``: required on every request when given (it must be given when the server listens
    on anything but loopback). ``allowed_hosts``: the ``Host`` names accepted (None: any,
    only with a token). Returns the FastAPI app wrapped in the safety middleware; the app
    itself is at ``.app`` and its job manager at ``.app.state.jobs``.
    """
    root = Path(work_folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if allowed_hosts is None and token is None:
        raise Music2VideoError("a studio that answers to any host name needs a token")
    jobs = JobManager()

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.shutdown()  # the server stops: so do its jobs (their finished stages are kept)

    options: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI).parameters:
        # FastAPI 0.16x records OpenTelemetry spans, metrics and logs for whatever provider the
        # environment configures (and exports them with FASTAPI_OTEL_AUTO_CONFIGURE=true): off.
        options["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False}
    api = FastAPI(title="music2video studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan, **options)
    api.state.root = root
    api.state.jobs = jobs

    @api.exception_handler(Problem)
    async def _problem(_request: Request, error: Problem) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @api.exception_handler(PathRefused)
    async def _refused(_request: Request, error: PathRefused) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=403)

    @api.exception_handler(RunFolderBusy)
    async def _busy(_request: Request, error: RunFolderBusy) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=409)

    @api.exception_handler(Music2VideoError)
    async def _error(_request: Request, error: Music2VideoError) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(error).split())}, status_code=400)

    def run_folder(run: str) -> Path:
        folder = resolve_inside(root, run)
        if not runs.is_run_folder(folder):
            raise Problem(404, f"{run!r} is not a run folder in the work folder")
        return folder

    @api.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_FOLDER / "index.html", media_type="text/html")

    @api.get("/api/options")
    def options() -> dict[str, Any]:
        from music2video.settings import PIPELINES, Settings

        defaults = Settings.model_construct()
        return {
            "work_folder": str(root),
            "pipelines": ["auto", *PIPELINES],
            "defaults": {"width": defaults.width, "height": defaults.height, "fps": defaults.fps, "seed": defaults.seed},
            "max_upload_bytes": max_upload_bytes,
            "max_picture_bytes": MAX_PICTURE_BYTES,
            "song_extensions": list(SONG_EXTENSIONS),
        }

    @api.get("/api/work")
    def work() -> dict[str, Any]:
        return runs.list_work_folder(root)

    @api.put("/api/upload")
    async def upload(request: Request, name: str, kind: Literal["song", "picture"] = "song") -> dict[str, Any]:
        """The request body is the file: streamed to the work folder (a picture: to its
        ``references/``), stopped at the size limit."""
        if kind == "song":
            folder, safe, limit = root, sanitise_name(name), max_upload_bytes
        else:
            folder, safe, limit = root / REFERENCES_FOLDER, sanitise_name(name, IMAGE_EXTENSIONS), min(max_upload_bytes, MAX_PICTURE_BYTES)
            folder.mkdir(exist_ok=True)
            folder = resolve_inside(root, REFERENCES_FOLDER)  # no link out of the work folder
        target = unique_path(folder, safe)
        received = 0
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                async for chunk in _limited(request, name, limit):
                    received += len(chunk)
                    handle.write(chunk)
            if received == 0:
                raise Problem(400, f"{name} is empty")
        return {"path": relative_to_root(root, target), "bytes": received}

    async def read_picture(request: Request, name: str) -> bytes:
        return b"".join([chunk async for chunk in _limited(request, name, min(max_upload_bytes, MAX_PICTURE_BYTES))])

    @api.put("/api/keyframe")
    async def keyframe(request: Request, run: str, shot: int) -> dict[str, Any]:
        """The body (a PNG, JPEG or WebP picture) becomes the shot's keyframe (music2video.edit.replace_keyframe)."""
        from music2video import edit

        folder = run_folder(run)
        picture = await read_picture(request, f"the keyframe of shot {shot}")
        path = await run_in_threadpool(edit.replace_keyframe, folder, shot, picture)  # takes the run folder's lock
        return {"saved": relative_to_root(root, path), "state": await run_in_threadpool(state_of, folder)}

    @api.put("/api/reference")
    async def reference(request: Request, run: str, name: str) -> dict[str, Any]:
        """The body becomes the reference picture of a character, place or prop (music2video.edit.replace_reference)."""
        from music2video import edit

        folder = run_folder(run)
        picture = await read_picture(request, f"the reference of {name!r}")
        path = await run_in_threadpool(edit.replace_reference, folder, name, picture)
        return {"saved": relative_to_root(root, path), "state": await run_in_threadpool(state_of, folder)}

    @api.post("/api/runs")
    def start_run(request: StartRun) -> dict[str, Any]:
        from music2video.preflight import check_run, default_run_folder
        from music2video.settings import load_settings

        song = resolve_inside(root, request.song)
        if not song.is_file():
            raise Problem(404, f"{request.song!r} is not a file in the work folder")
        if song.suffix.lower() not in SONG_EXTENSIONS:
            raise Problem(400, f"{request.song!r} is not an audio or video file")
        overrides = request.overrides()
        if request.references:
            pictures = {name: resolve_inside(root, path) for name, path in request.references.items()}
            missing = [name for name, path in pictures.items() if not path.is_file()]
            if missing:
                raise Problem(404, f"the reference picture of {missing[0]!r} is not a file in the work folder")
            overrides.setdefault("keyframes", {})["references"] = {name: str(path) for name, path in pictures.items()}
        load_settings(**overrides)  # answer a bad value now, not from the job
        # The video and the run folder go beside the song; neither may be a link out of the work folder.
        output = resolve_inside(root, runs.output_for(song).relative_to(root).as_posix())
        folder = resolve_inside(root, default_run_folder(output).relative_to(root).as_posix())
        check_run(song, output, folder)
        run = folder.relative_to(root).as_posix()
        job = jobs.start(
            run,
            f"make {song.name}",
            "music2video.pipeline:make_video",
            {"song": str(song), "output": str(output), "workdir": str(folder), **overrides},
        )
        return {"run": run, "job": job.public()}

    @api.get("/api/run")
    def run_state(run: str) -> dict[str, Any]:
        folder = run_folder(run)
        return state_of(folder)

    def state_of(folder: Path) -> dict[str, Any]:
        state = runs.run_state(root, folder)
        state["jobs"] = [job.public() for job in jobs.for_run(state["run"])]
        state["edit"] = runs.edit_state(folder)
        state["export_formats"] = runs.export_formats(folder)
        return state

    @api.post("/api/edit")
    def edit(request: EditRequest) -> dict[str, Any]:
        """Move a cut, split, merge, lock or change a shot (through :mod:`music2video.edit`); the run's new state."""
        folder = run_folder(request.run)
        request.call(folder)
        return state_of(folder)

    @api.post("/api/rerender")
    def rerender(request: RerenderRequest) -> dict[str, Any]:
        """Render shots again in a job (the previous takes stay); the video is joined again
        when no changed shot remains."""
        folder = run_folder(request.run)
        shots = None if request.shots == "changed" else list(request.shots)
        title = "re-render changed shots" if shots is None else f"re-render shot{'s' if len(shots) > 1 else ''} {', '.join(map(str, shots))}"
        job = jobs.start(relative_to_root(root, folder), title, "music2video.edit:rerender", {"run": str(folder), "shots": shots})
        return {"job": job.public()}

    @api.get("/api/takes")
    def takes(run: str, shot: int) -> dict[str, Any]:
        return {"takes": runs.takes(root, run_folder(run), shot)}

    @api.post("/api/keep_take")
    def keep_take(request: KeepTakeRequest) -> dict[str, Any]:
        """Make a take the shot's clip again and join the video again, in a job."""
        folder = run_folder(request.run)
        job = jobs.start(
            relative_to_root(root, folder), f"keep take {request.number} of shot {request.shot}", "music2video.edit:keep_take",
            {"run": str(folder), "shot": request.shot, "number": request.number}, progress_keyword=None,
        )  # fmt: skip
        return {"job": job.public()}

    @api.get("/api/export")
    def export(run: str, format: str) -> FileResponse:
        """The cut as an OTIO, FCP XML or EDL file for a video editor (written in the run folder, then downloaded)."""
        from music2video.export import export_timeline

        folder = run_folder(run)
        result = export_timeline(folder, format)
        path = resolve_inside(root, relative_to_root(root, result.path))
        return FileResponse(path, filename=path.name, content_disposition_type="attachment")

    @api.get("/api/waveform")
    def waveform(run: str) -> dict[str, Any]:
        return runs.waveform(run_folder(run))

    @api.get("/api/thumbnail")
    def thumbnail(path: str) -> Response:
        """A small JPEG of a keyframe picture or of a clip's first frame (``path`` in the work folder)."""
        source = resolve_inside(root, path)
        if not source.is_file():
            raise Problem(404, f"{path!r} is not a file in the work folder")
        return Response(runs.thumbnail(source), media_type="image/jpeg")

    @api.get("/api/file")
    def file(path: str, download: bool = False) -> FileResponse:
        """A file in the work folder (videos are served with byte ranges, so the player can seek)."""
        target = resolve_inside(root, path)
        if not target.is_file():
            raise Problem(404, f"{path!r} is not a file in the work folder")
        return FileResponse(target, filename=target.name if download else None, content_disposition_type="attachment" if download else "inline")

    @api.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        found = jobs.get(job_id)
        if found is None:
            raise Problem(404, f"no job {job_id}")
        return found.public()

    @api.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        try:
            return jobs.cancel(job_id).public()
        except KeyError:
            raise Problem(404, f"no job {job_id}") from None

    api.mount("/static", StaticFiles(directory=STATIC_FOLDER), name="static")
    return Guard(api, token, allowed_hosts)


async def _limited(request: Request, name: str, limit: int):
    """The request body in chunks; :class:`Problem` 413 once it passes ``limit`` bytes (told by
    its Content-Length before anything is read, or counted)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"{name} is {int(declared) / 1e6:.0f} MB; the studio takes files up to {limit / 1e6:.0f} MB")
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise Problem(413, f"{name} is larger than {limit / 1e6:.0f} MB, the studio's limit")
        yield chunk


def serve(
    work_folder: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    on_ready=None,
) -> None:
    """Serve the studio until interrupted. Loopback needs no token; any other host does.

    ``on_ready(url)`` is called once the socket listens (the CLI prints the URL). Jobs run in
    child processes started with ``spawn``, which imports the main module again: a script that
    calls this must do so under ``if __name__ == "__main__":``.
    """
    import asyncio

    import uvicorn

    from music2video.studio.safety import is_loopback

    if not is_loopback(host) and not token:
        raise Music2VideoError(f"--host {host} makes the studio reachable from other machines; give it a --token")
    app = create_app(work_folder, token=token, max_upload_bytes=max_upload_bytes, allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) and not token else None)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", server_header=False, access_log=False, lifespan="on")
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and on_ready is not None:
            bound = server.servers[0].sockets[0].getsockname()[1]
            # Listening on every address: the machine's name is what another machine types.
            shown = socket.gethostname() if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
            on_ready(f"http://{shown}:{bound}/" + (f"?token={token}" if token else ""))
        await task

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    asyncio.run(main())
