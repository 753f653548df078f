"""Clips written on a background thread while the renderer generates the next shot.

Writing a clip (colour, retime, scale, encode) takes seconds on the CPU; the GPU would idle
through it. ``ClipWrites`` runs each write on one background thread and keeps the books: which
shots' clips are on disk or failed, handed out once each (``ended``), so a Ray driver counts a
shot as done only when its clip exists. The diffusers renderer uses it; so do the Ray tests'
and benchmark's stand-in renderers, so they exercise the same bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from music2video.errors import Music2VideoError
from music2video.preflight import is_disk_full

log = logging.getLogger(__name__)


class ClipWrites:
    """Background clip writes of one renderer: ``open`` before the first shot, ``close`` after.

    ``max_pending``: writes that may wait at once; ``submit`` waits for the earlier ones beyond
    that (each holds a shot's frames in memory). None: no limit.
    """

    def __init__(self, max_pending: int | None = 1):
        self.max_pending = max_pending
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[tuple[str, Future[None]]] = []
        # Shots whose clip is written (None) or failed to write (why), not yet handed out.
        self._ended: dict[str, str | None] = {}

    def open(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-writer")

    def close(self, wait_for_pending: bool = False) -> None:
        """Stop the writer; ``wait_for_pending``: let the writes waiting finish first (they do
        anyway, the thread is joined; this also collects their failures, a full disk raising)."""
        try:
            if wait_for_pending:
                self._collect(wait=True)
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            self._pending, self._ended = [], {}

    def submit(self, shot_id: str, write: Callable[..., None], *arguments: object) -> None:
        """Write ``shot_id``'s clip in the background: ``write(*arguments)``."""
        if self.max_pending is not None and len(self._pending) >= self.max_pending:
            self._collect(wait=True)
        if self._writer is None:
            raise RuntimeError("ClipWrites.submit called before open()")
        self._pending.append((shot_id, self._writer.submit(write, *arguments)))

    def written(self, shot_id: str) -> None:
        """Record a clip written in line (no background write)."""
        self._ended[shot_id] = None

    def ended(self, wait: bool = False) -> dict[str, str | None]:
        """``{shot id: None when its clip is on disk, else why writing it failed}`` for each
        write that ended since the last call; ``wait``: wait for every write first."""
        self._collect(wait)
        ended, self._ended = self._ended, {}
        return ended

    def failures(self) -> dict[str, str]:
        """Wait for every write; ``{shot id: why}`` for those that failed."""
        return {shot_id: why for shot_id, why in self.ended(wait=True).items() if why is not None}

    def _collect(self, wait: bool) -> None:
        """Move the writes that have ended (all, waiting, with ``wait``) to the ended ones. A full
        disk raises: no room for any clip, the run stops."""
        from music2video.render import failure_reason

        pending, self._pending = self._pending, []
        for shot_id, future in pending:
            if not wait and not future.done():
                self._pending.append((shot_id, future))
                continue
            try:
                future.result()
                self._ended[shot_id] = None
            except Exception as error:  # reported per shot, as if render_shot had raised it
                if is_disk_full(error):
                    raise
                if not isinstance(error, Music2VideoError):
                    log.error("writing the clip of %s failed", shot_id, exc_info=error)
                self._ended[shot_id] = failure_reason(error)
