"""Long work (a whole run, a re-render) in a child process, with per-stage progress and cancel.

The studio's server never runs the pipeline in its own process: a child process (``spawn``:
no copy of the server's threads) calls the same public function the CLI calls, with a progress
object that sends each stage's ``(done, total, message)`` back through a queue. Cancelling
sends SIGTERM: inside a run the run folder's lock turns it into ``SystemExit``, so the lock is
released, the stage at work leaves no half-written artifact (writes are atomic) and finished
stages are kept for the next run. The browser only watches: closing it changes nothing, and a
run's state is in its folder, not in the job.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import queue
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# How long a cancelled child gets to release the lock before it is killed, seconds.
CANCEL_GRACE_S = 10.0
# How long a finished job stays listed, seconds.
FINISHED_JOB_KEEP_S = 3600.0


# Messages kept per stage (a render says "rendered shot-007" once per shot).
STAGE_MESSAGES_KEPT = 2000


@dataclass
class StageProgress:
    name: str
    done: int = 0
    total: int = 0
    message: str = ""
    messages: list[str] = field(default_factory=list)  # every distinct message in turn: the page marks finished shots


@dataclass
class Job:
    """One piece of long work on one run folder, as the page shows it."""

    id: str
    run: str  # the run folder, relative to the work folder
    title: str
    state: str = "starting"  # starting, running, done, failed, cancelled
    stages: list[StageProgress] = field(default_factory=list)
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def public(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")


class _QueueProgress:
    """A :class:`~music2video.progress.PipelineProgress` that reports through a queue."""

    def __init__(self, events):
        self.events = events

    def stage(self, name: str):
        self.events.put(("stage", name, 0, 0, ""))

        def report(done: int, total: int, message: str = "") -> None:
            self.events.put(("progress", name, int(done), int(total), str(message)))

        return report


def _child(events, function: str, kwargs: dict[str, Any], progress_keyword: str | None) -> None:
    """The child process: call ``module:function(**kwargs)`` and say how it ended.

    ``progress_keyword`` names the function's progress argument, a
    :class:`~music2video.progress.PipelineProgress`."""
    from music2video.errors import Music2VideoError

    logging.basicConfig(level=logging.WARNING, format="studio job: %(message)s")
    try:
        module, name = function.split(":")
        target = getattr(importlib.import_module(module), name)
        if progress_keyword is not None:
            kwargs = {**kwargs, progress_keyword: _QueueProgress(events)}
        target(**kwargs)
    except SystemExit:
        events.put(("cancelled", ""))
        raise
    except Music2VideoError as error:
        events.put(("failed", " ".join(str(error).split())))
    except BaseException as error:  # a bug: the page shows it, the log keeps the traceback
        traceback.print_exc()
        events.put(("failed", f"{type(error).__name__}: {error}"))
    else:
        events.put(("done", ""))


class JobManager:
    """Starts, watches and cancels jobs; at most one active job per run folder."""

    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._processes: dict[str, multiprocessing.Process] = {}
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("spawn")

    def start(
        self,
        run: str,
        title: str,
        function: str,
        kwargs: dict[str, Any],
        progress_keyword: str | None = "progress",
    ) -> Job:
        """Run ``function`` (``"module:name"``, importable in a fresh process) with ``kwargs``
        (picklable) in a child process; ``progress_keyword`` names its pipeline progress argument."""
        from music2video.errors import RunFolderBusy

        with self._lock:
            self._forget_old()
            busy = self.active_for(run)
            if busy is not None:
                raise RunFolderBusy(f"{run} is busy with '{busy.title}'; wait for it or cancel it")
            job = Job(id=uuid.uuid4().hex[:12], run=run, title=title)
            events = self._context.Queue()
            # Not a daemon: the pipeline starts processes of its own (the animatic renderer's pool),
            # which a daemonic process may not. The server stops its jobs when it stops (shutdown).
            process = self._context.Process(target=_child, args=(events, function, kwargs, progress_keyword), name=f"studio-{job.id}")
            self._jobs[job.id] = job
            self._processes[job.id] = process
            process.start()
        threading.Thread(target=self._watch, args=(job, process, events), name=f"watch-{job.id}", daemon=True).start()
        return job

    def _watch(self, job: Job, process, events) -> None:
        ended: tuple[str, str] | None = None
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if not process.is_alive():
                    # Drain what the child put just before it exited.
                    try:
                        event = events.get(timeout=0.5)
                    except queue.Empty:
                        break
                else:
                    continue
            kind = event[0]
            with self._lock:
                if kind in ("stage", "progress"):
                    _, name, done, total, message = event
                    job.state = "running" if job.state == "starting" else job.state
                    stage = next((s for s in job.stages if s.name == name), None)
                    if stage is None:
                        stage = StageProgress(name)
                        job.stages.append(stage)
                    if kind == "progress":
                        stage.done, stage.total, stage.message = done, total, message
                        if message and (not stage.messages or stage.messages[-1] != message):
                            stage.messages = [*stage.messages, message][-STAGE_MESSAGES_KEPT:]
                else:
                    ended = (kind, event[1])
        process.join()
        with self._lock:
            if job.state == "cancelling" or (ended is not None and ended[0] == "cancelled"):
                job.state, job.error = "cancelled", None
            elif ended is not None:
                job.state, job.error = ended[0], ended[1] or None
            else:
                job.state, job.error = "failed", f"the job's process ended with exit code {process.exitcode}"
            job.finished = time.time()
            self._processes.pop(job.id, None)

    def cancel(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            process = self._processes.get(job_id)
            if job is None:
                raise KeyError(job_id)
            if not job.active or process is None:
                return job
            job.state = "cancelling"
        process.terminate()  # SIGTERM: the run folder's lock is released on the way out
        threading.Thread(target=self._kill_later, args=(process,), daemon=True).start()
        return job

    @staticmethod
    def _kill_later(process) -> None:
        process.join(CANCEL_GRACE_S)
        if process.is_alive():
            process.kill()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def active_for(self, run: str) -> Job | None:
        return next((job for job in self._jobs.values() if job.run == run and (job.active or job.state == "cancelling")), None)

    def for_run(self, run: str) -> list[Job]:
        return [job for job in self._jobs.values() if job.run == run]

    def shutdown(self) -> None:
        """Cancel every active job (the server is stopping)."""
        for job_id, process in list(self._processes.items()):
            process.terminate()
            process.join(CANCEL_GRACE_S)
            if process.is_alive():
                process.kill()

    def _forget_old(self) -> None:
        now = time.time()
        for job_id in [j.id for j in self._jobs.values() if j.finished and now - j.finished > FINISHED_JOB_KEEP_S]:
            del self._jobs[job_id]
