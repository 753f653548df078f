"""The run folder: where every stage's artifact lives, keyed by a hash of what produced it.

Rules that make a run resumable and safe to kill at any moment:

* Every write is atomic: data goes to a temporary file in the same folder, then ``os.replace``
  moves it into place, so a reader sees either the old file or the new one, never half of one.
* An artifact is reused only when it parses and its ``key`` equals the hash of the current
  inputs and settings. "The file exists" is never enough.
* An artifact that a person edited by hand is kept if its key still matches (the edit wins),
  and backed up before it is ever replaced, so no edit is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from music2video.artifacts import Artifact

log = logging.getLogger(__name__)

A = TypeVar("A", bound=Artifact)

KEY_LENGTH = 16


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
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
        self.remove_stale_temporaries()

    def path(self, name: str) -> Path:
        return self.root / name

    def remove_stale_temporaries(self) -> None:
        """Delete temporaries that a killed run left behind; nothing ever trusts them."""
        for tmp in self.root.rglob(".*.tmp*"):
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
        if key is not None and artifact.key != key:
            return None
        return artifact

    def save(self, name: str, artifact: Artifact) -> None:
        path = self.path(name)
        self._back_up_hand_edits(path)
        write_json_atomic(path, artifact)
        self._remember_written(path)

    def cached(self, name: str, model: type[A], key: str, make: Callable[[], A]) -> A:
        """Reuse the artifact called ``name`` if it was made from ``key``; else make and save it."""
        artifact = self.load(name, model, key)
        if artifact is not None:
            log.info("reusing %s", name)
            return artifact
        artifact = make()
        artifact.key = key
        self.save(name, artifact)
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
