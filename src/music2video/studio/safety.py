"""What keeps the studio safe to run: every path stays in the work folder, names are tame,
only the right clients get in.

* :func:`resolve_inside` is the one door from a browser-supplied path to the file system: it
  refuses absolute paths, ``..``, NUL bytes and backslashes, and resolves symbolic links before
  checking that the result is still inside the work folder (a link inside that points out is
  refused like ``..``).
* :func:`sanitise_name` turns an uploaded file's name into a plain ASCII name with a known
  audio/video extension; :func:`unique_path` never replaces an existing file.
* :class:`Guard` is an ASGI middleware. Bound to loopback without a token, it accepts only
  requests whose ``Host`` names loopback (a web page elsewhere cannot reach the studio by
  DNS rebinding). With a token (required for any other address), every request must carry it:
  ``Authorization: Bearer``, or the cookie set when the page was opened with ``?token=``.
  Requests that change anything must carry the ``X-Studio`` header, which a page of another
  origin cannot send without the CORS permission the studio never gives (no cross-site form
  posts), and an ``Origin``, when present, must be the studio's own.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlencode

from music2video.errors import Music2VideoError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "music2video_studio_token"
CHANGE_HEADER = "x-studio"
MAX_NAME_CHARS = 100
SONG_EXTENSIONS = (
    ".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma",
    ".mp4", ".m4v", ".mkv", ".webm", ".mov",
)  # fmt: skip
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
# What the page may load: only its own files. No outside script, style, font, picture or
# connection, whatever a storyboard's text contains.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class PathRefused(Music2VideoError):
    """A browser-supplied path that would leave the work folder (or is malformed)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) stays on this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` with symbolic links resolved, if it stays inside ``root``.

    ``relative`` comes from a browser: it must be a relative POSIX path (``""`` is the root
    itself) without ``..``, backslashes or NUL bytes. Raises :class:`PathRefused` otherwise,
    or when a symbolic link on the way leads out of ``root``. The result need not exist.
    """
    if not isinstance(relative, str) or "\x00" in relative or "\\" in relative:
        raise PathRefused(f"refused path {relative!r}: not a plain relative path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", relative):
        raise PathRefused(f"refused path {relative!r}: absolute paths are not accepted, only paths inside the work folder")
    if ".." in pure.parts:
        raise PathRefused(f"refused path {relative!r}: '..' is not accepted")
    base = root.resolve()
    resolved = (base / pure).resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise PathRefused(f"refused path {relative!r}: it leads outside the work folder")
    return resolved


def relative_to_root(root: Path, path: Path) -> str:
    """``path`` (inside ``root``) as the relative POSIX string the browser sends back."""
    return path.resolve().relative_to(root.resolve()).as_posix()


def sanitise_name(name: str, extensions: tuple[str, ...] = SONG_EXTENSIONS) -> str:
    """A safe file name for an upload called ``name``: the last path component only, in ASCII
    letters, digits, ``-``, ``_`` and ``.``, not hidden, at most :data:`MAX_NAME_CHARS` long,
    with a lower-case extension from ``extensions`` (else :class:`Music2VideoError`)."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = "." + suffix.lower()
    if suffix not in extensions:
        raise Music2VideoError(f"{name!r} is not a file type the studio takes; use one of {' '.join(extensions)}")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_.") or "upload"
    return stem[: MAX_NAME_CHARS - len(suffix)] + suffix


def unique_path(folder: Path, name: str) -> Path:
    """``folder / name``, or ``stem-2.ext``, ``stem-3.ext`` ... if that exists already."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    count = 1
    while candidate.exists() or candidate.is_symlink():
        count += 1
        candidate = folder / f"{stem}-{count}{suffix}"
    return candidate


class Guard:
    """ASGI middleware: host, token, change-header and origin checks (see the module docstring)."""

    def __init__(self, app, token: str | None, allowed_hosts: tuple[str, ...] | None):
        self.app = app
        self.token = token
        # None: any Host (a token is required then); else the host names a request may use.
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no WebSocket route exists: none may slip past the checks below
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        host = headers.get("host", "")
        if self.allowed_hosts is not None and _host_name(host) not in self.allowed_hosts:
            await _plain(send, 421, f"the studio answers only to {', '.join(self.allowed_hosts)}, not {host!r}")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if self.token is not None:
            given = _bearer(headers.get("authorization", "")) or _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
            from_query = (query.get("token") or [None])[0]
            if from_query is not None and scope["method"] == "GET" and _same(from_query, self.token):
                # The link printed at start-up: keep the token in a cookie and drop it from the URL.
                rest = {key: values for key, values in query.items() if key != "token"}
                location = scope["path"] + ("?" + urlencode(rest, doseq=True) if rest else "")
                await _redirect_with_cookie(send, location, self.token)
                return
            if given is None or not _same(given, self.token):
                await _plain(send, 401, "this studio needs its token: open the link it printed at start-up")
                return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if origin is not None and _origin_host(origin) != host:
                await _plain(send, 403, f"refused a request from another site ({origin})")
                return
            if headers.get(CHANGE_HEADER) != "1":
                await _plain(send, 403, "refused: changes must come from the studio's page")
                return
        await self.app(scope, receive, _with_security_headers(send))


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _origin_host(origin: str) -> str:
    return origin.split("://", 1)[-1].rstrip("/")


def _bearer(value: str) -> str | None:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _with_security_headers(send):
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers += [
                (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"),
                (b"cache-control", b"no-store"),
            ]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send, location: str, token: str) -> None:
    cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send({
        "type": "http.response.start",
        "status": 303,
        "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()), (b"content-length", b"0")],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": b""})
