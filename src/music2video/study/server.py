"""``music2video study serve``: the page participants open, and the small JSON API behind it.

FastAPI + uvicorn, with a static page (``study/static/``: HTML, JS, CSS; nothing fetched from
outside). The page shows one blinded video at a time; the rating form unlocks when the video
has played to its end; each video's ratings are posted and committed before the next video
loads. The participant's anonymous id lives in the browser's localStorage, so a reloaded or
reopened tab resumes at the first video not rated yet.

The API never names a condition, a song or a source file: only blinded codes. The studio's
guard (:class:`music2video.studio.safety.Guard`) wraps the app: bound to loopback it answers
only to a loopback ``Host`` (no DNS rebinding), changes need the page's ``X-Studio`` header and
its own origin, and every response forbids loading anything from elsewhere.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the request models from the
# annotations of functions defined inside create_app, which it can only do when they are objects.

import contextlib
from importlib import resources
from pathlib import Path
from typing import Annotated

import pydantic

from music2video.errors import MissingDependencyError, Music2VideoError
from music2video.study.design import Study, load_study
from music2video.study.store import AnswerError, AnswerStore, Participant
from music2video.studio.safety import LOOPBACK_HOSTS, Guard, is_loopback
from music2video.study import DEFAULT_HOST, DEFAULT_PORT

STATIC_FILES = ("index.html", "study.js", "study.css")


def _check_web_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(error.name or "fastapi", "web", "music2video study serve") from None


def create_app(folder: Path, *, allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS):
    """The app serving the study in ``folder`` (its database opened, or made, there), behind
    the guard. ``allowed_hosts``: the ``Host`` names it answers to (None: any, for a study
    served to other machines)."""
    _check_web_extra()
    from fastapi import Body, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

    folder = Path(folder)
    study = load_study(folder)
    store = AnswerStore(folder, study)
    static = resources.files("music2video.study").joinpath("static")

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        store.close()

    app = FastAPI(title=f"music2video study: {study.name}", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    class AnswerIn(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")

        participant: str
        video: str
        ratings: dict[str, int]
        attention: int | None = None
        watched_s: float | None = None

    def state(participant: Participant) -> dict:
        return {
            "id": participant.id,
            "order": participant.order,
            "done": participant.done,
            "finished": participant.finished,
            "attention": _attention_text(study, participant),
        }

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return static.joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404)
        media = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[1]]
        return PlainTextResponse(static.joinpath(name).read_text(encoding="utf-8"), media_type=media)

    @app.get("/api/study")
    def study_info() -> dict:
        return {
            "title": "Music video study",
            "instructions": study.instructions,
            "scale": {"points": study.scale_points, "anchors": list(study.scale_anchors)},
            "dimensions": [{"id": d.id, "label": d.label, "question": d.question} for d in study.dimensions],
        }

    @app.post("/api/participants")
    def new_participant() -> dict:
        return state(store.new_participant())

    @app.get("/api/participants/{participant_id}")
    def participant(participant_id: str) -> dict:
        try:
            return state(store.participant(participant_id))
        except AnswerError as error:
            raise HTTPException(404, str(error)) from None

    @app.post("/api/answers")
    def answer(body: Annotated[AnswerIn, Body()]) -> dict:
        try:
            return state(store.answer(body.participant, body.video, body.ratings, attention=body.attention, watched_s=body.watched_s))
        except AnswerError as error:
            raise HTTPException(409 if "already rated" in str(error) else 422, str(error)) from None

    @app.get("/video/{code}")
    def video(code: str) -> FileResponse:
        try:
            entry = study.video(code)
        except KeyError:
            raise HTTPException(404, "no such video") from None
        suffix = Path(entry.file).suffix
        media = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska", ".mov": "video/quicktime", ".ogv": "video/ogg"}
        # The file is sent under its code only: its source name could give the condition away.
        return FileResponse(folder / entry.file, media_type=media.get(suffix, "application/octet-stream"), filename=f"{code}{suffix}", content_disposition_type="inline")

    return Guard(app, None, allowed_hosts)


def _attention_text(study: Study, participant: Participant) -> dict | None:
    if participant.attention is None:
        return None
    video, expected = participant.attention
    return {"video": video, "question": f"Attention check: to show that you read the questions, choose {expected} here."}


def _check_address(host: str, port: int) -> None:
    """Fail with one line, before uvicorn logs its own, when the address cannot be bound."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise Music2VideoError(f"cannot serve on {host}: {error.strerror or error}; give --host an address of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise Music2VideoError(f"cannot serve on {host}:{port} ({error.strerror or error}); choose another --port") from None


def serve_study(folder: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, on_ready=None) -> None:
    """Serve the study in ``folder`` at http://host:port/ until interrupted.

    Binds 127.0.0.1 unless told otherwise: on another address anyone who can reach the machine
    can take part (and add answers), which is the point when participants use their own
    computers on a local network, and the caller's responsibility.
    """
    _check_web_extra()
    import uvicorn

    _check_address(host, port)
    app = create_app(folder, allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", server_header=False, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    if on_ready is not None:
        original = server.startup

        async def startup(sockets=None):
            await original(sockets)
            if server.started:
                on_ready(f"http://{'[' + host + ']' if ':' in host else host}:{port}/")

        server.startup = startup
    try:
        server.run()
    except SystemExit:  # uvicorn's way of saying it could not bind (it logged why)
        pass
    except OSError as error:
        raise Music2VideoError(f"cannot serve on {host}:{port} ({error.strerror or error}); choose another --port") from None
    if not server.started:
        raise Music2VideoError(f"cannot serve on {host}:{port} (the address is in use or not this machine's); choose another --port or --host")
