"""The run folder: where every stage's artifact lives, keyed by a hash of what produced it.

Rules that make a run resumable and safe to kill at any moment:

* Every write is atomic: data goes to a temporary file in the same folder, then ``os.replace``
  moves it into place, so a reader sees either the old file or the new one, never half of one.
* An artifact is reused only when it parses and its ``key`` equals the hash of the current
  inputs and settings. "The file exists" is never enough.
* An artifact that a person edited by hand is kept if its key still matches (the edit wins),
  and backed up before it is ever replaced, so no edit is lost.
* One process makes a video in a run folder at a time: :meth:`RunFolder.locked` holds the
  lock file ``.lock`` (owner pid, host, start time). Temporary files carry their owner's pid
  and host in their names; only the owner, or a later lock holder that finds the owner dead,
  removes them. Readers (``report``, ``evaluate``) take no lock and delete nothing.
* An artifact made by a fallback backend (the LLM server was down, say) is saved under a
  provisional key: it is used for the rest of that run, but the next run does not trust it and
  tries the intended backend again, replacing it when that succeeds. A person's edit of a
  provisional artifact wins over that retry, as any edit does.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from music2video.artifacts import Artifact
from music2video.errors import RunFolderBusy

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Artifact)

KEY_LENGTH = 16
PROVISIONAL_MARK = "+provisional"


def provisional_key(key: str) -> str:
    """The key under which a fallback's artifact made for ``key`` is saved: it never equals
    ``key``, so a later run makes the artifact again with the intended backend."""
    return key if key.endswith(PROVISIONAL_MARK) else key + PROVISIONAL_MARK


LOCK_FILE = ".lock"
# How often a run started with wait=True looks whether the owner has finished, seconds.
LOCK_POLL_S = 0.5
# Temporary files: ".<stem>.pid<pid>-<host>.<random>.tmp<suffix>" (older versions: no owner).
TEMPORARY_GLOB = ".*.tmp*"
_OWNER_IN_NAME = re.compile(r"\.pid(\d+)-([A-Za-z0-9_-]*)\.")


def stable_hash(*parts: Any) -> str:
    """A short hex digest of JSON-serialisable parts (pydantic models included), order-sensitive."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, BaseModel):
            part = part.model_dump(mode="json")
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()[:KEY_LENGTH]


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it into place, on error delete it.

    The temporary name keeps the suffix so that libraries which pick a format from the file
    name (PyAV, soundfile) still do the right thing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The owner's pid and host in the name: another run in the same folder can tell whether
    # the file is still being written (see RunFolder.remove_stale_temporaries).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.{owner_tag()}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, model: BaseModel) -> None:
    write_text_atomic(path, model.model_dump_json(indent=2) + "\n")


class RunFolder:
    """One folder per song run; artifacts are named after their stage (``analysis.json`` ...)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock: RunLock | None = None

    def path(self, name: str) -> Path:
        return self.root / name

    @contextlib.contextmanager
    def locked(self, wait: bool = False) -> Iterator[None]:
        """Hold the run folder's lock while the body runs: one writer at a time.

        A folder busy with another run raises :class:`RunFolderBusy` naming the owner, or with
        ``wait`` waits until the owner finishes. The lock goes when the body ends, also on an
        exception, Ctrl-C or SIGTERM (turned into ``SystemExit(143)`` while the lock is held,
        so that clean-up runs). Re-entrant within one RunFolder object.
        """
        if self._lock is not None:
            yield
            return
        lock = RunLock(self.path(LOCK_FILE))
        lock.acquire(wait)
        self._lock = lock
        try:
            with _sigterm_raises():
                self.remove_stale_temporaries()
                yield
        finally:
            self._lock = None
            lock.release()

    def remove_stale_temporaries(self) -> None:
        """Delete temporaries whose owner died (same host, pid gone); nothing ever trusts them.

        Temporaries of live processes (a ``report`` running beside this run) and of other
        hosts are left alone. Names without an owner come from older versions, which took no
        lock: the lock holder removes them.
        """
        for tmp in self.root.rglob(TEMPORARY_GLOB):
            owner = temporary_owner(tmp)
            if owner is not None and (owner[1] != host_tag() or pid_alive(owner[0])):
                continue
            with contextlib.suppress(OSError):
                tmp.unlink()

    def load(self, name: str, model: type[A], key: str | None = None) -> A | None:
        """The artifact if it exists, parses and (when ``key`` is given) was made from that key."""
        path = self.path(name)
        if not path.exists():
            return None
        try:
            artifact = model.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError, OSError) as error:
            log.warning("ignoring unreadable %s (%s); it will be made again", path.name, _first_line(error))
            return None
        if key is not None and not self.key_matches(name, artifact.key, key):
            return None
        return artifact

    def key_matches(self, name: str, found: str, wanted: str) -> bool:
        """Whether an artifact keyed ``found`` stands for inputs keyed ``wanted``: the same key,
        or the provisional key of a fallback's artifact that a person has since edited."""
        if found == wanted:
            return True
        if found == provisional_key(wanted) and self.was_edited(name):
            log.info("%s was made by a fallback and edited by hand; your edit is kept", name)
            return True
        return False

    def save(self, name: str, artifact: Artifact, *, keep_edits: bool = True) -> None:
        """Write ``artifact`` atomically. A hand-edited file it replaces is first kept as
        ``<name>.edited-<time>``, unless ``keep_edits`` is off: for a listing rebuilt from files
        that carry the edits themselves (``keyframes.json`` from the pictures in keyframes/)."""
        path = self.path(name)
        if keep_edits:
            self._back_up_hand_edits(path)
        write_json_atomic(path, artifact)
        self._remember_written(path)

    def save_keyed(self, name: str, artifact: Artifact, key: str) -> None:
        """Save ``artifact`` made from inputs ``key``; under its provisional key if a fallback made it."""
        if artifact.provisional is not None:
            artifact.key = provisional_key(key)
            log.warning("%s was made by a fallback (%s); the next run tries again", name, artifact.provisional)
        else:
            artifact.key = key
        self.save(name, artifact)

    def cached(self, name: str, model: type[A], key: str, make: Callable[[], A]) -> A:
        """Reuse the artifact called ``name`` if it was made from ``key``; else make and save it."""
        artifact = self.load(name, model, key)
        if artifact is not None:
            log.info("reusing %s", name)
            return artifact
        artifact = make()
        self.save_keyed(name, artifact, key)
        return artifact

    # Hand edits ---------------------------------------------------------------------------
    # The run folder remembers the hash of each file it wrote. A file whose content no longer
    # has that hash was edited by a person; before replacing it we keep a copy.

    def _ledger_path(self) -> Path:
        return self.path(".written.json")

    def _ledger(self) -> dict[str, str]:
        try:
            return json.loads(self._ledger_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _remember_written(self, path: Path) -> None:
        ledger = self._ledger()
        ledger[path.name] = file_sha256(path)
        write_text_atomic(self._ledger_path(), json.dumps(ledger, indent=2, sort_keys=True))

    def was_edited(self, name: str) -> bool:
        path = self.path(name)
        written = self._ledger().get(name)
        return path.exists() and written is not None and file_sha256(path) != written

    def _back_up_hand_edits(self, path: Path) -> None:
        if self.was_edited(path.name):
            backup = path.with_name(f"{path.stem}.edited-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
            os.replace(path, backup)
            log.warning("%s was edited by hand and its inputs changed; your version is kept as %s", path.name, backup.name)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


# -- ownership ---------------------------------------------------------------------------------


def host_tag() -> str:
    """This machine's name as it appears in lock files and temporary file names."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:32] or "host"


def owner_tag() -> str:
    """``pid<pid>-<host>``: who owns a temporary file (read back by :func:`temporary_owner`)."""
    return f"pid{os.getpid()}-{host_tag()}"


def temporary_owner(path: Path) -> tuple[int, str] | None:
    """(pid, host) from a temporary file's name; None for names without an owner."""
    match = _OWNER_IN_NAME.search(path.name)
    return (int(match.group(1)), match.group(2)) if match else None


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp" in path.name


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    started: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


class RunLock:
    """The lock file of one run folder.

    ``flock`` on the file decides who holds it (the kernel drops it when the holder dies, so a
    killed run never blocks the next one); the file's content names the holder for messages.
    A lock recorded by another host is honoured as long as it exists: its pid cannot be
    checked from here.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> None:
        announced = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy_with = _read_owner(fd)
                os.close(fd)
            else:
                if not _is_current(fd, self.path):  # released and deleted since we opened it
                    os.close(fd)
                    continue
                previous = _read_owner(fd)
                if previous is None or previous.host == host_tag():
                    if previous is not None and previous.pid != os.getpid():
                        log.warning(
                            "%s: taking over the lock of %s, which is no longer running", self.path.parent, previous
                        )
                    self._write_owner(fd)
                    self._fd = fd
                    return
                busy_with = previous  # another host's run: it may be alive
                os.close(fd)
            if not wait:
                raise RunFolderBusy(
                    f"{self.path.parent} is in use by another music2video run ({busy_with or 'owner unknown'}); "
                    f"wait for it to finish or run again with --wait"
                    + ("" if busy_with is None or busy_with.host == host_tag() else f" (if that run is gone, delete {self.path})")
                )
            if not announced:
                log.warning("%s is in use by %s; waiting for it to finish", self.path.parent, busy_with or "another run")
                announced = True
            time.sleep(LOCK_POLL_S)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _is_current(fd, self.path):
                self.path.unlink()
        except OSError as error:
            log.warning("could not remove the lock file %s: %s", self.path, error)
        finally:
            os.close(fd)  # drops the flock

    def _write_owner(self, fd: int) -> None:
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        record = {"pid": os.getpid(), "host": host_tag(), "started": started}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _read_owner(fd: int) -> LockOwner | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        return LockOwner(int(data["pid"]), str(data["host"]), str(data["started"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _is_current(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the body runs, SIGTERM raises SystemExit(143) so that ``finally`` clean-up runs.

    Only in the main thread, and only where nobody installed their own handler.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, _frame: Any) -> None:
        log.warning("terminated: finished stages are kept; run the same command again to resume")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
