"""The request log: every request and raw answer of one storyboard, as files a person can read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from music2video.runfolder import write_text_atomic


class RequestLog:
    """Writes each request as ``NNN-<part>.request.json`` and its raw answer as
    ``NNN-<part>.response.txt`` (or ``.error.txt``) under ``folder``; does nothing without one."""

    PATTERN = re.compile(r"^\d{3}-.*\.(request\.json|response\.txt|error\.txt)$")

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.count = 0
        if folder is not None and folder.is_dir():
            # One run's conversation per folder: logs of an earlier run would interleave.
            for old in folder.iterdir():
                if self.PATTERN.match(old.name):
                    old.unlink()

    def request(self, part: str, payload: dict[str, Any]) -> str:
        self.count += 1
        stem = f"{self.count:03d}-{part}"
        if self.folder is not None:
            write_text_atomic(self.folder / f"{stem}.request.json",
                              json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return stem

    def response(self, stem: str, text: str) -> None:
        if self.folder is not None:
            write_text_atomic(self.folder / f"{stem}.response.txt", text)

    def error(self, stem: str, text: str) -> None:
        if self.folder is not None:
            write_text_atomic(self.folder / f"{stem}.error.txt", text + "\n")

