"""``music2video studio``: serve the local web app over a work folder."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated

import typer

from music2video.cli.show import console
from music2video.errors import Music2VideoError

STUDIO_EXAMPLES = """[bold]Examples[/bold]

  music2video studio                          [dim]# the current folder, at http://127.0.0.1:8765/[/dim]
  music2video studio --work-folder ~/videos --port 9000
  music2video studio --host 0.0.0.0           [dim]# other machines too: a token is made and printed[/dim]
"""

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,}")


def studio(
    work_folder: Annotated[Path, typer.Option("--work-folder", "-w", help="The folder the studio works in: songs are uploaded there, runs are made there, and no path from the browser leads outside it.", metavar="DIR")] = Path("."),
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) needs a token.", metavar="ADDRESS")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).", min=0, max=65535, metavar="PORT")] = 8765,
    token: Annotated[str | None, typer.Option(help="Secret every request must carry (16+ letters, digits, - or _). Made up and printed when --host is not loopback and none is given. Also read from MUSIC2VIDEO_STUDIO_TOKEN.", envvar="MUSIC2VIDEO_STUDIO_TOKEN", show_envvar=False, metavar="TOKEN")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted, megabytes.", min=1, metavar="MB")] = 1024.0,
) -> None:
    """Open the studio: a local web page to start runs, watch progress, edit cuts and shots, re-render and export.

    Runs live in their folders, so closing the browser (or the studio) loses nothing.
    Nothing is fetched from outside and nothing is reported anywhere.
    """
    from music2video.optional import require
    from music2video.studio.safety import is_loopback

    require("fastapi", "uvicorn", extra="web", purpose="music2video studio")
    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise typer.BadParameter("use 16 or more letters, digits, '-' or '_'", param_hint="--token")
    if not is_loopback(host) and token is None:
        token = secrets.token_urlsafe(24)
    folder = work_folder.expanduser()
    if folder.exists() and not folder.is_dir():
        raise Music2VideoError(f"--work-folder {folder} is a file, not a folder")
    from music2video.studio import serve

    def ready(url: str) -> None:
        console.print(f"music2video studio: [bold]{url}[/bold]\n[dim]work folder: {folder.resolve()}; Ctrl-C stops[/dim]")
        if not is_loopback(host):
            console.print("[yellow]reachable from other machines:[/yellow] share the link only with people you trust")

    serve(folder, host=host, port=port, token=token, max_upload_bytes=int(max_upload_mb * 1e6), on_ready=ready)
