"""Executors: who renders the shots that :func:`~music2video.render.render_storyboard` hands out.

``render_storyboard`` plans the shots, hashes them and names their clips; an executor only runs
:func:`~music2video.render.render_one` on each :class:`~music2video.render.ShotJob` and reports
back. So a clip lands under the same name, through the same atomic ``ClipWriter``, whichever
executor made it, and a run started with one executor resumes with the other.

* :class:`LocalExecutor` (``--executor local``, the default): one renderer in this process,
  shots in order. Needs nothing beyond the renderer.
* :class:`RayExecutor` (``--executor ray``, the ``ray`` extra): one Ray actor per GPU (or CPU),
  each holding one loaded renderer that it reuses for every shot it is given. The driver (this
  process) keeps the run folder, its lock, the listening and writing stages and the progress
  display; the actors write clips straight into the run folder, which must therefore sit on a
  file system every Ray node sees at the same path (one machine always does).

An actor writes each clip in the background while it renders its next shot, as the local
executor does (the diffusers renderer's writer thread): each call returns the shots whose clips
have been written (or failed to write) since its last call, and the driver counts a shot as done
only then; once the queue is empty, ``flush`` collects each actor's last clips.

Fault tolerance on Ray: actors restart after dying (``ray.max_restarts``), and the shot a dead
actor was rendering is retried by Ray on the restarted actor (``ray.max_task_retries``), or by
the driver on any live actor once Ray's own retries are spent, up to
:data:`MAX_SHOT_ATTEMPTS` times; so are the shots whose clips it was still writing (each actor
life has its own id, so the driver sees a restart even when Ray retried the call). Every other
shot is unaffected: finished clips are on disk before the driver counts them. A driver killed
mid-run leaves finished clips in the run folder; the next run, with either executor, reuses them.

Memory plan: one model per actor. A stage with another per-shot model (keyframes) runs all of
its shots through :meth:`RayExecutor.render` first; when the render stage then asks for a
different renderer, the pool's actors are stopped (freeing their GPU memory) before the video
actors load. Actors with the same renderer settings are kept across songs (``music2video batch``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from music2video.errors import Music2VideoError
from music2video.optional import require
from music2video.preflight import is_disk_full
from music2video.render import LOCAL_WORKER, ShotJob, ShotRenderer, render_one
from music2video.runfolder import stable_hash

if TYPE_CHECKING:
    from music2video.artifacts import Analysis, Storyboard
    from music2video.settings import RaySettings, Settings

log = logging.getLogger(__name__)

ShotDone = Callable[[ShotJob, "str | None", str, float], None]
"""``on_done(job, failure, worker, seconds)``: called in the driver as each shot ends; ``failure``
is None when the clip is on disk, else why the shot failed."""

# How long the driver waits for a result before it looks again (Ctrl-C is honoured in between), s.
POLL_S = 0.5
# A result that ray.wait reported ready is fetched within this, s (it is already local).
GET_TIMEOUT_S = 60.0
# Times the driver gives one shot to workers that died with it, beyond Ray's own task retries.
MAX_SHOT_ATTEMPTS = 3
# Calls failing in a row because their actor is gone before the driver stops using that actor.
MAX_ACTOR_FAILURES = 3

# Ray, started here for one machine, reaches nothing outside it: it binds 127.0.0.1, sends no
# usage statistics (which would also probe cloud metadata servers) and needs no token.
LOCAL_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}


class ShotExecutor(Protocol):
    """Runs shot jobs with a renderer; see the module docstring."""

    name: str

    def render(
        self,
        renderer: ShotRenderer,
        jobs: list[ShotJob],
        storyboard: Storyboard,
        analysis: Analysis,
        on_done: ShotDone,
    ) -> dict[str, str]:
        """Render every job's clip; call ``on_done`` as each ends; return {shot id: why} of every
        shot that failed (including failures found after ``on_done``, such as a clip written in
        the background). A full disk raises."""


class LocalExecutor:
    """Today's behaviour: the renderer is entered here and renders the shots in order."""

    name = "local"

    def render(
        self,
        renderer: ShotRenderer,
        jobs: list[ShotJob],
        storyboard: Storyboard,
        analysis: Analysis,
        on_done: ShotDone,
    ) -> dict[str, str]:
        failed: dict[str, str] = {}
        with renderer:
            for job in jobs:
                started = time.perf_counter()
                failure = render_one(renderer, job, storyboard, analysis)
                if failure is not None:
                    failed[job.shot.id] = failure
                on_done(job, failure, LOCAL_WORKER, time.perf_counter() - started)
            # A renderer that writes clips in the background reports their failures here.
            finish = getattr(renderer, "finish", None)
            if finish is not None:
                for shot_id, why in finish().items():
                    log.error("%s failed and is replaced by a placeholder: %s", shot_id, why)
                    failed[shot_id] = why
        return failed


# -- Ray -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReport:
    """What a :class:`RenderWorker` call sends back to the driver."""

    worker: str  # the worker's name, for the report
    life: str  # this life of the actor: a new one after Ray restarted it
    seconds: float  # the shot's time on the worker, its background write left out (0 for flush)
    ended: dict[str, str | None]  # shots whose clip ended since the last call: None on disk, else why not


class RenderWorker:
    """The body of one Ray actor: one renderer, loaded once, reused for every shot it is given.

    Ray restarts the actor after it dies (this constructor runs again and reloads the model).
    A renderer that writes clips in the background (``ended_writes``, the diffusers renderer's)
    keeps writing while the actor renders its next shot; its ended writes travel in the reports.
    """

    def __init__(self, renderer: ShotRenderer, index: int):
        # The executor is the parallelism: a renderer that would start its own worker
        # processes (the animatic's) draws in this one.
        if getattr(renderer, "workers", 1) > 1:
            renderer.workers = 1  # type: ignore[attr-defined]
        self.name = f"w{index}@{socket.gethostname()}"
        self.life = uuid.uuid4().hex
        self.renderer = renderer
        self.background = callable(getattr(renderer, "ended_writes", None))
        renderer.__enter__()

    def pid(self) -> int:
        return os.getpid()

    def render(self, job: ShotJob, storyboard: Storyboard, analysis: Analysis) -> WorkerReport:
        """Render ``job``. It is in this report's ``ended`` if it failed or its clip was written in
        line; else its clip is being written, and a later report lists it (:meth:`flush`'s at the latest)."""
        started = time.perf_counter()
        run_root = job.path.parent.parent
        if run_root.is_dir():
            failure = render_one(self.renderer, job, storyboard, analysis)
        else:
            failure = (
                f"{self.name} cannot see the run folder {run_root}: on a Ray cluster the run folder must be on "
                "a file system every node mounts at the same path"
            )
        if self.background:
            ended = self.renderer.ended_writes()  # type: ignore[attr-defined]
        else:  # any other renderer's clip is on disk once it has finished
            finish = getattr(self.renderer, "finish", None)
            ended = {job.shot.id: failure or (finish().get(job.shot.id) if finish is not None else None)}
        if failure is not None:
            ended[job.shot.id] = failure
        return WorkerReport(self.name, self.life, time.perf_counter() - started, ended)

    def flush(self) -> WorkerReport:
        """Wait for the clips still being written and report them."""
        ended = self.renderer.ended_writes(wait=True) if self.background else {}  # type: ignore[attr-defined]
        return WorkerReport(self.name, self.life, 0.0, ended)


class RayExecutor:
    """Render shots on Ray actors (see the module docstring); a context manager.

    ``settings`` is the ``[ray]`` section. The first :meth:`render` joins the cluster at
    ``settings.address`` or, when None, starts a local one on this machine bound to loopback (or
    uses the Ray session this process already has: a notebook's, a test's), so a run whose clips
    are all reused never starts Ray. Actors start then too and are kept for later calls with the
    same renderer settings; on exit they stop, and so does a cluster started here.
    """

    name = "ray"

    def __init__(self, settings: RaySettings, *, poll_s: float = POLL_S):
        require("ray", extra="ray", purpose="--executor ray")
        self.settings = settings
        self.poll_s = poll_s
        self._started_ray = False
        self._actors: list[Any] = []  # ray actor handles, index = worker number - 1
        self._dead: set[int] = set()
        self._pool_key: str | None = None
        self._in_flight: dict[Any, tuple[ShotJob | None, int]] = {}  # call -> (its shot or None for flush, actor)

    # -- the cluster -----------------------------------------------------------------------

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        address = self.settings.address
        started = time.perf_counter()
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                for name, value in LOCAL_RAY_ENV.items():
                    os.environ.setdefault(name, value)
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise Music2VideoError(f"could not start or join {where}: {_first_line(error)}") from None
        self._started_ray = True
        resources = ray.cluster_resources()
        log.info(
            "Ray %s: %g CPUs, %g GPUs (%.1f s)",
            f"cluster at {address}" if address else "on this machine",
            resources.get("CPU", 0),
            resources.get("GPU", 0),
            time.perf_counter() - started,
        )

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            self._stop_actors()
            if self._started_ray:
                ray.shutdown()
        self._started_ray = False

    def _stop_actors(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors, self._dead, self._pool_key = [], set(), None

    @property
    def actors(self) -> list[Any]:
        """The live actors' handles (worker 1 first)."""
        return [actor for index, actor in enumerate(self._actors) if index not in self._dead]

    def actor_rendering(self, shot_id: str) -> Any | None:
        """The actor that is rendering ``shot_id`` right now, or None."""
        for job, index in self._in_flight.values():
            if job is not None and job.shot.id == shot_id:
                return self._actors[index]
        return None

    def _start_actors(self, renderer: ShotRenderer, jobs: int) -> None:
        """Make the pool fit ``renderer`` (same settings: keep it) with enough actors for ``jobs``."""
        import ray

        key = stable_hash(type(renderer).__qualname__, renderer.settings_fingerprint(), getattr(renderer, "settings", None))
        if key != self._pool_key:
            self._stop_actors()  # another model: free the GPUs before the new one loads
            self._pool_key = key
        settings = self.settings
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        num_gpus = settings.num_gpus
        if num_gpus is None:  # a diffusion model on a cluster with GPUs gets one each
            num_gpus = 1.0 if renderer.name == "diffusers" and gpus >= 1 else 0.0
        if num_gpus > gpus:
            raise Music2VideoError(
                f"each Ray worker asks for {num_gpus:g} GPU (ray.num_gpus) but the cluster has {gpus:g}; "
                "set ray.num_gpus = 0 to render on CPUs"
            )
        if settings.num_cpus > cpus:
            raise Music2VideoError(f"each Ray worker asks for {settings.num_cpus:g} CPUs (ray.num_cpus) but the cluster has {cpus:g}")
        capacity = math.floor(gpus / num_gpus + 1e-9) if num_gpus else math.floor(cpus / settings.num_cpus + 1e-9)
        wanted = settings.workers or min(capacity, jobs)
        if wanted > capacity:
            raise Music2VideoError(
                f"ray.workers = {wanted} needs {wanted * num_gpus:g} GPUs and {wanted * settings.num_cpus:g} CPUs; "
                f"the cluster has {gpus:g} GPUs and {cpus:g} CPUs"
            )
        alive = len(self._actors) - len(self._dead)
        if alive >= wanted:
            return
        worker = ray.remote(RenderWorker).options(
            num_cpus=settings.num_cpus,
            num_gpus=num_gpus,
            max_restarts=settings.max_restarts,
            max_task_retries=settings.max_task_retries,
        )
        while len(self._actors) - len(self._dead) < wanted:
            # The renderer travels unentered, by value (a restarted actor needs it again): each
            # actor loads its own model.
            self._actors.append(worker.remote(renderer, len(self._actors) + 1))
        log.info("%d Ray workers, %g CPU and %g GPU each", wanted, settings.num_cpus, num_gpus)

    # -- rendering -------------------------------------------------------------------------

    def render(
        self,
        renderer: ShotRenderer,
        jobs: list[ShotJob],
        storyboard: Storyboard,
        analysis: Analysis,
        on_done: ShotDone,
    ) -> dict[str, str]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        self.connect()
        self._start_actors(renderer, len(jobs))
        board_ref, analysis_ref = ray.put(storyboard), ray.put(analysis)
        queue = deque(jobs)
        idle = deque(index for index in range(len(self._actors)) if index not in self._dead)
        # Per actor: the life that holds them, and the shots whose clips it is writing -> (job, seconds, worker).
        lives: dict[int, str] = {}
        writing: dict[int, dict[str, tuple[ShotJob, float, str]]] = {index: {} for index in idle}
        attempts: Counter[str] = Counter()  # driver-side tries per shot lost with a dead worker
        actor_failures: Counter[int] = Counter()
        last_death = ""
        failed: dict[str, str] = {}

        def finished(job: ShotJob, failure: str | None, worker: str, seconds: float) -> None:
            if failure is None and not job.path.exists():
                failure = (
                    f"{worker} wrote {job.path.name} where this machine cannot see it: on a Ray cluster the run "
                    "folder must be on a file system every node mounts at the same path"
                )
            if failure is not None:
                failed[job.shot.id] = failure
            on_done(job, failure, worker, seconds)

        def lost(job: ShotJob, worker: str, death: str) -> None:
            """``job``'s worker died with it: try it again, up to MAX_SHOT_ATTEMPTS times."""
            attempts[job.shot.id] += 1
            if attempts[job.shot.id] < MAX_SHOT_ATTEMPTS:
                log.warning("%s: its worker died (%s); trying it again", job.shot.id, death)
                queue.appendleft(job)
            else:
                why = f"its Ray worker died {attempts[job.shot.id]} times rendering it: {death}"
                failed[job.shot.id] = why
                on_done(job, why, worker, 0.0)

        def writes_lost(index: int, death: str) -> None:
            """Actor ``index`` died or restarted: the clips it was writing are not coming."""
            for job, seconds, worker in writing[index].values():
                if job.path.exists():  # written (clips land atomically) before it died, not yet reported
                    finished(job, None, worker, seconds)
                else:
                    lost(job, worker, death)
            writing[index] = {}

        try:
            while queue or self._in_flight or any(writing.values()):
                while queue and idle:
                    index, job = idle.popleft(), queue.popleft()
                    ref = self._actors[index].render.remote(job, board_ref, analysis_ref)
                    self._in_flight[ref] = (job, index)
                if not queue:  # nothing left to give these actors: collect their last clips
                    for index in [index for index in idle if writing[index]]:
                        idle.remove(index)
                        self._in_flight[self._actors[index].flush.remote()] = (None, index)
                if not self._in_flight:  # jobs left and no live actor to take them
                    raise Music2VideoError(f"every Ray worker died, {len(queue)} shots unrendered; the last said: {last_death}")
                ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=self.poll_s)
                for ref in ready:
                    job, index = self._in_flight.pop(ref)
                    try:
                        report: WorkerReport = ray.get(ref, timeout=GET_TIMEOUT_S)
                    except RayTaskError as error:  # raised past render_one: a full disk
                        cause = getattr(error, "cause", None)
                        if is_disk_full(cause):
                            raise cause from None
                        what = job.shot.id if job is not None else "writing clips"
                        raise Music2VideoError(f"{what} on a Ray worker: {_first_line(error)}") from None
                    except RayActorError as error:
                        last_death = _first_line(error)
                        actor_failures[index] += 1
                        if error.actor_init_failed or actor_failures[index] >= MAX_ACTOR_FAILURES:
                            self._dead.add(index)
                            log.warning("Ray worker %d is gone: %s", index + 1, last_death)
                        else:
                            idle.append(index)
                        writes_lost(index, last_death)
                        if job is None:
                            continue
                        if error.actor_init_failed or actor_failures[index] > 1:
                            # The shot never ran (the model did not load), or its actor was gone
                            # already: no attempt used.
                            queue.appendleft(job)
                        else:
                            lost(job, f"w{index + 1}", last_death)
                        continue
                    actor_failures[index] = 0
                    idle.append(index)
                    if lives.get(index, report.life) != report.life:  # Ray restarted it and retried this call there
                        writes_lost(index, "restarted by Ray while writing its clip")
                    lives[index] = report.life
                    if job is not None:
                        writing[index][job.shot.id] = (job, report.seconds, report.worker)
                    for shot_id, failure in report.ended.items():
                        if shot_id in writing[index]:  # else a clip of a render call stopped early (below)
                            ended_job, seconds, worker = writing[index].pop(shot_id)
                            finished(ended_job, failure, worker, seconds)
                    if job is None:  # a flush leaves nothing being written
                        writes_lost(index, "its clip was not among those flushed")
        except BaseException:
            # Interrupted or stopped: take back the shots still queued on the actors.
            for ref in self._in_flight:
                try:
                    ray.cancel(ref)
                except Exception as error:  # already finished or its actor gone: nothing to take back
                    log.debug("could not cancel a shot: %s", error)
            # Clips still being written end in these reports, which nobody reads: an actor runs its
            # calls in order, so a batch's next song never gets them in its own.
            busy = {index for _, index in self._in_flight.values()} | {index for index, shots in writing.items() if shots}
            for index in busy - self._dead:
                self._actors[index].flush.remote()
            raise
        finally:
            self._in_flight = {}
        return failed


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    # Ray's messages put the cause last ("...\nModelLoadError: cannot load ..."): prefer it.
    named = [line for line in lines if ("Error:" in line or "Exception:" in line) and not line.startswith("File ")]
    return (named[-1] if named else lines[0] if lines else type(error).__name__)[:400]


@contextmanager
def executor_for(settings: Settings, shared: ShotExecutor | None = None) -> Iterator[ShotExecutor | None]:
    """The executor a run renders with: ``shared`` (a batch's), else the one ``settings.executor``
    names, started here and stopped afterwards; None is the local executor."""
    if shared is not None or settings.executor == "local":
        yield shared
        return
    with RayExecutor(settings.ray) as executor:
        yield executor
