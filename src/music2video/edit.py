"""Edit a run's cut and storyboard from Python: the API behind the studio's timeline.

Every function takes a run folder (``song.music2video/``) and works through the run folder's
own rules, so that ``music2video SONG`` afterwards sees the same state and re-renders only
what changed:

* ``shots.json`` and ``storyboard.json`` are rewritten atomically under the run folder's lock
  and keep their ``key``: the next run reuses them as it reuses any artifact made from the
  same inputs. They are written as *a person's edits* (the run folder's ledger of what it
  wrote is left alone), so when their inputs change later (another tempo, another style) the
  pipeline backs them up as ``*.edited-<time>.json`` before replacing them, as it does for
  edits made by hand in a text editor.
* A clip is named by the hash of its storyboard entry (``clips/<shot>-<hash>.mp4``), so a
  shot whose entry or times changed is rendered again and every other clip is reused. Cuts
  keep the ids of the shots around them: a split adds ``shot-007b`` after ``shot-007``
  instead of renumbering every later shot (which would re-render them all).
* Shot lengths stay inside the run's limits (``shots.min_shot_s`` .. ``shots.max_shot_s``,
  and at least one video frame); an edit that breaks them raises :class:`EditError` naming
  the shot, the length and the limit.
* A locked shot (``"locked": true`` in ``shots.json``) keeps its cuts when the shot plan is
  made again (:func:`music2video.shots.plan_shots` plans around it) and keeps its storyboard
  entry when the storyboard is written again; its cuts cannot be moved until it is unlocked.
* Takes: the clip an entry made is never deleted. Before an edit changes a rendered shot, the
  entry that made its clip is recorded in ``takes.json``; :func:`rerender` records the new
  clip, and :func:`keep_take` puts a take's entry back into the storyboard, which makes that
  clip the shot's clip again without rendering anything.

Shots are named by index in the plan (``0`` is the first) or by id (``"shot-007"``); cut
``k`` is the cut at the start of shot ``k`` (``1 <= k < number of shots``). Times are seconds
from the start of the song.

    from music2video import edit
    edit.move_cut("song.music2video", 3, 12.4, snap="downbeat")
    edit.update_shot("song.music2video", "shot-004", prompt="a lighthouse in fog, dawn")
    print(edit.changed_shots("song.music2video"))   # ['shot-003', 'shot-004']
    edit.rerender("song.music2video")                # renders those two, reassembles the video
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from music2video.artifacts import Analysis, Artifact, RenderResult, RunSummary, Shot, ShotPlan, Storyboard, StoryboardShot
from music2video.errors import InputError, Music2VideoError
from music2video.keyframes import KEYFRAMES_FOLDER, REFERENCES_FOLDER, keyframes_wanted
from music2video.keyframes.references import IMAGE_SUFFIXES, slug
from music2video.progress import PipelineProgress, ProgressCallback, no_progress
from music2video.runfolder import RunFolder, stable_hash, write_json_atomic
from music2video.settings import Settings

log = logging.getLogger(__name__)

Snap = Literal["beat", "downbeat", "frame"]
SNAPS: tuple[str, ...] = ("beat", "downbeat", "frame")
"""Where a moved cut or a split lands: the nearest beat, the nearest downbeat (bar line), or
the nearest video frame (no musical snapping)."""

ShotRef = int | str
"""A shot by index in the plan (0 is the first) or by id (``"shot-007"``)."""

EDITABLE_FIELDS: tuple[str, ...] = tuple(
    name
    for name in ("scene", "prompt", "negative_prompt", "seed", "camera", "characters", "places", "props")
    if name in StoryboardShot.model_fields
)
"""Storyboard fields :func:`update_shot` changes (``places``/``props`` where the storyboard has them)."""

MAX_SEED = 2**32 - 1
TAKES_ARTIFACT = "takes.json"
_SAME_TIME_S = 1e-6
"""Two times closer than this are the same instant (beat times are stored to the microsecond)."""


class EditError(Music2VideoError):
    """An edit the run cannot take: a shot too short or too long, a locked shot, an unknown
    shot or field. The message names the shot, the value and what to do; nothing was written."""


# --------------------------------------------------------------------------------------------
# takes.json


class Take(BaseModel):
    """One clip made for a shot, and the storyboard entry that made it."""

    model_config = ConfigDict(extra="forbid")

    number: int = Field(description="1, 2, 3 ... in the order the takes were recorded.")
    path: str = Field(description="The clip, relative to the run folder.")
    shot_hash: str = Field(description="The clip's hash (its name's suffix).")
    entry: StoryboardShot = Field(description="The storyboard entry that made the clip.")
    recorded: str = Field(description="When the take was recorded, ISO 8601 UTC.")


class TakeHistory(Artifact):
    """``takes.json``: every clip each shot has had, by shot id (see :func:`takes`)."""

    shots: dict[str, list[Take]] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# the run as the editor sees it


@dataclass(frozen=True)
class ShotLimits:
    """How long a shot of this run may be: at least ``min_s`` and one video frame, at most ``max_s``."""

    min_s: float
    max_s: float
    fps: float
    max_note: str = field(default="", metadata={"doc": "Why max_s, in words (the video model's one generation)."})

    def check(self, what: str, start_s: float, end_s: float) -> None:
        """Raise :class:`EditError` when a shot from ``start_s`` to ``end_s`` breaks the limits.

        Lengths count in video frames, as the shot will play (cuts sit on the nearest frame),
        so beat times a millisecond apart from the bounds do not decide.
        """
        frames = round(end_s * self.fps) - round(start_s * self.fps)
        length_s = frames / self.fps
        if frames < 1:
            raise EditError(
                f"{what} would last {max(end_s - start_s, 0):.3f} s, less than one frame at {self.fps:g} fps; "
                "move the cut further, or merge the shot with a neighbour"
            )
        if frames < round(self.min_s * self.fps):
            raise EditError(
                f"{what} would last {length_s:.2f} s, shorter than this run's shortest shot "
                f"({self.min_s:g} s, shots.min_shot_s); move the cut further, or merge the shot with a neighbour"
            )
        if frames > round(self.max_s * self.fps):
            raise EditError(
                f"{what} would last {length_s:.2f} s, longer than this run's longest shot "
                f"({self.max_s:g} s, shots.max_shot_s{self.max_note}); split it, or move the cut closer"
            )


@dataclass
class RunState:
    """A run folder's shot plan and storyboard, with what an edit needs to check them."""

    root: Path
    settings: Settings
    summary: RunSummary
    analysis: Analysis
    plan: ShotPlan
    storyboard: Storyboard | None
    limits: ShotLimits

    @property
    def fps(self) -> float:
        return self.settings.fps

    def index(self, shot: ShotRef) -> int:
        """The plan index of a shot given by index or id; :class:`EditError` if there is none."""
        count = len(self.plan.shots)
        if isinstance(shot, bool) or not isinstance(shot, (int, str)):
            raise EditError(f"a shot is an index (0 to {count - 1}) or an id like 'shot-001', not {shot!r}")
        if isinstance(shot, int):
            if not 0 <= shot < count:
                raise EditError(f"no shot {shot}: this run has shots 0 to {count - 1}")
            return shot
        for index, planned in enumerate(self.plan.shots):
            if planned.id == shot:
                return index
        raise EditError(f"no shot {shot!r} in {self.root / 'shots.json'} (ids run {self.plan.shots[0].id} .. {self.plan.shots[-1].id})")

    def entry(self, shot: ShotRef) -> StoryboardShot:
        """The storyboard entry of a shot; :class:`EditError` when the run has no storyboard yet."""
        index = self.index(shot)
        if self.storyboard is None:
            raise EditError(
                f"{self.root} has no storyboard.json yet; write one first (music2video storyboard SONG)"
            )
        return self.storyboard.shots[index]


def open_run(run: str | Path) -> RunState:
    """Read a run folder's settings (``run.json``), analysis, shot plan and storyboard.

    Raises :class:`InputError` when ``run`` is not a run folder with a shot plan, and
    :class:`Music2VideoError` when one of its files cannot be read.
    """
    root = Path(run)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give a run folder, e.g. song.music2video")
    for name in ("run.json", "analysis.json", "shots.json"):
        if not (root / name).is_file():
            raise InputError(
                f"{root} has no {name}: not a music2video run folder, or its song was not analysed yet "
                "(music2video analyze SONG makes one)"
            )
    summary = _read(root / "run.json", RunSummary)
    settings = run_settings(summary, root)
    analysis = _read(root / "analysis.json", Analysis)
    plan = _read(root / "shots.json", ShotPlan)
    storyboard = _read(root / "storyboard.json", Storyboard) if (root / "storyboard.json").is_file() else None
    if storyboard is not None:
        from music2video.pipeline import check_storyboard_matches_plan

        try:
            check_storyboard_matches_plan(storyboard, plan, root / "storyboard.json")
        except Music2VideoError:  # written for another plan: the next run writes it again
            log.warning("%s is not for the shots in shots.json; edits leave it alone until it is written again", root / "storyboard.json")
            storyboard = None
    return RunState(root, settings, summary, analysis, plan, storyboard, shot_limits(settings, summary))


def run_settings(summary: RunSummary, root: Path | None = None) -> Settings:
    """The settings a run was made with, from its ``run.json`` (the LLM's api_key, never
    written there, comes from the environment or config file as usual)."""
    data = dict(summary.settings)
    data["pipeline"] = summary.pipeline  # as resolved then: "auto" might pick another today
    try:
        return Settings(**data)
    except ValueError as error:
        where = f"{root / 'run.json'}" if root else "run.json"
        raise Music2VideoError(f"{where}: its settings no longer validate ({' '.join(str(error).split())[:300]})") from None


def shot_limits(settings: Settings, summary: RunSummary | None = None) -> ShotLimits:
    """The run's shot length limits; the note names the video model's one generation for
    the diffusers renderer (longer shots are extended, which costs quality)."""
    note = ""
    renderer = (summary.backends.get("renderer") if summary else None) or settings.backends(has_gpu=False)["renderer"]
    if renderer == "diffusers":
        from music2video.render.video_models import resolve_video_model

        with contextlib.suppress(Music2VideoError):
            model = resolve_video_model(settings.video.model)
            note = f"; {model.name} makes {model.max_seconds:g} s in one generation"
    return ShotLimits(settings.shots.min_shot_s, settings.shots.max_shot_s, settings.fps, note)


def _read(path: Path, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise Music2VideoError(
            f"cannot read {path} ({' '.join(str(error).split())[:200]}); fix it, or delete it and run again"
        ) from None


# --------------------------------------------------------------------------------------------
# cut edits


def move_cut(run: str | Path, cut: ShotRef, to_s: float, snap: Snap = "beat") -> RunState:
    """Move cut ``cut`` (the start of that shot: index ``1 ..`` or id) to the beat, downbeat or
    frame nearest ``to_s`` between its neighbouring cuts. Both shots it bounds change length;
    both must stay inside the limits and neither may be locked. Returns the edited run."""
    with _editing(run) as state:
        index = state.index(cut)
        if index == 0:
            raise EditError("cut 0 is the start of the song and cannot move; cuts are numbered 1 and up")
        before, after = state.plan.shots[index - 1], state.plan.shots[index]
        _refuse_locked(before, after, action="move its cut")
        time_s, kind = _snap(state, float(to_s), before.start_s, after.end_s, snap, f"cut {index} ({after.id})")
        state.limits.check(before.id, before.start_s, time_s)
        state.limits.check(after.id, time_s, after.end_s)
        shots = list(state.plan.shots)
        shots[index - 1] = before.model_copy(update={"end_s": time_s})
        shots[index] = after.model_copy(update={"start_s": time_s, "cut": kind})
        entries = _entries(state)
        if entries is not None:
            entries[index - 1] = entries[index - 1].model_copy(update={"end_s": time_s})
            entries[index] = entries[index].model_copy(update={"start_s": time_s})
        _save(state, shots, entries)
    return open_run(run)


def split_shot(run: str | Path, shot: ShotRef, at_s: float, snap: Snap = "beat") -> RunState:
    """Cut ``shot`` in two at the beat (downbeat, frame) nearest ``at_s``. The first part keeps
    the shot's id and entry; the second is a new shot (``shot-007b``) with the same scene and
    prompt and a seed of its own. Returns the edited run."""
    with _editing(run) as state:
        index = state.index(shot)
        planned = state.plan.shots[index]
        _refuse_locked(planned, action="split it")
        time_s, kind = _snap(state, float(at_s), planned.start_s, planned.end_s, snap, f"the split of {planned.id}")
        new_id = _new_id(planned.id, {s.id for s in state.plan.shots})
        state.limits.check(planned.id, planned.start_s, time_s)
        state.limits.check(f"the new shot {new_id}", time_s, planned.end_s)
        shots = list(state.plan.shots)
        shots[index : index + 1] = [
            planned.model_copy(update={"end_s": time_s}),
            planned.model_copy(update={"id": new_id, "start_s": time_s, "cut": kind}),
        ]
        entries = _entries(state)
        if entries is not None:
            first = entries[index]
            second = first.model_copy(
                update={"id": new_id, "start_s": time_s, "seed": int(stable_hash(first.seed, new_id), 16) % (MAX_SEED + 1)}
            )
            entries[index : index + 1] = [first.model_copy(update={"end_s": time_s}), second]
        _save(state, shots, entries)
    return open_run(run)


def merge_shots(run: str | Path, shot: ShotRef) -> RunState:
    """Merge ``shot`` with the shot after it: the cut between them goes; the merged shot keeps
    the first one's id and entry (its energy becomes the length-weighted mean of both).
    Returns the edited run."""
    with _editing(run) as state:
        index = state.index(shot)
        if index == len(state.plan.shots) - 1:
            raise EditError(f"{state.plan.shots[index].id} is the last shot; merge the shot before it instead")
        first, second = state.plan.shots[index], state.plan.shots[index + 1]
        _refuse_locked(first, second, action="merge them")
        state.limits.check(f"{first.id} merged with {second.id}", first.start_s, second.end_s)
        shots = list(state.plan.shots)
        shots[index : index + 2] = [first.model_copy(update={"end_s": second.end_s})]
        entries = _entries(state)
        if entries is not None:
            a, b = entries[index], entries[index + 1]
            energy = (a.energy * a.duration_s + b.energy * b.duration_s) / max(a.duration_s + b.duration_s, _SAME_TIME_S)
            entries[index : index + 2] = [a.model_copy(update={"end_s": b.end_s, "energy": round(energy, 4)})]
        _save(state, shots, entries)
    return open_run(run)


def lock_shot(run: str | Path, shot: ShotRef, locked: bool = True) -> RunState:
    """Lock (or unlock) a shot: a locked shot keeps its cuts and its storyboard entry when the
    shot plan or the storyboard is made again, and its cuts cannot be moved. Returns the run."""
    with _editing(run) as state:
        index = state.index(shot)
        shots = list(state.plan.shots)
        shots[index] = shots[index].model_copy(update={"locked": bool(locked)})
        _save(state, shots, _entries(state))
    return open_run(run)


def update_shot(run: str | Path, shot: ShotRef, **fields: Any) -> RunState:
    """Change a shot's storyboard entry: any of :data:`EDITABLE_FIELDS` (scene, prompt,
    negative_prompt, seed, camera, characters ...). Names in ``characters`` must be the
    storyboard's characters. Returns the edited run; the shot is then among
    :func:`changed_shots` until it is rendered again."""
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise EditError(f"cannot edit {', '.join(unknown)}; a shot's editable fields are {', '.join(EDITABLE_FIELDS)}")
    with _editing(run) as state:
        index = state.index(shot)
        entry = state.entry(index)
        update = {name: _checked_field(state, entry, name, value) for name, value in fields.items()}
        entries = _entries(state)
        entries[index] = StoryboardShot.model_validate({**entry.model_dump(), **update})
        _save(state, list(state.plan.shots), entries)
    return open_run(run)


def _checked_field(state: RunState, entry: StoryboardShot, name: str, value: Any) -> Any:
    if name == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise EditError(f"{entry.id}: seed must be a whole number from 0 to {MAX_SEED}, not {value!r}")
        return value
    if name in ("characters", "places", "props"):
        if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
            raise EditError(f"{entry.id}: {name} is a list of names, not {value!r}")
        known = [member.name for member in getattr(state.storyboard, name, [])]
        strangers = [v for v in value if v not in known]
        if strangers:
            raise EditError(
                f"{entry.id}: {', '.join(map(repr, strangers))} not among the storyboard's {name} "
                f"({', '.join(known) or 'none'}); add them to storyboard.json's {name} first"
            )
        return list(value)
    if not isinstance(value, str):
        raise EditError(f"{entry.id}: {name} is text, not {value!r}")
    if name in ("scene", "prompt") and not value.strip():
        raise EditError(f"{entry.id}: the {name} cannot be empty")
    return value


# --------------------------------------------------------------------------------------------
# pictures: a shot's keyframe, a character's, place's or prop's reference

def replace_keyframe(run: str | Path, shot: ShotRef, image: str | Path | bytes) -> Path:
    """Make ``image`` (a file or its bytes: PNG, JPEG or WebP) the shot's keyframe, its first frame.

    It is saved as ``keyframes/<shot id>.png``, the file the keyframes stage takes as yours: used
    as given, never regenerated. A keyframe of yours that it replaces is kept beside it as
    ``keyframes/<shot id>.replaced-<time>.png``. ``keyframes.json``, where there is one, names
    the new picture at once, so the shot's clip is out of date (see :func:`changed_shots`) with a
    renderer that starts shots from pictures. Returns the new keyframe's path.
    """
    with _editing(run) as state:
        entry = state.entry(shot)
        wanted, why = keyframes_wanted(state.settings)
        if not wanted:
            log.warning("%s: this run makes no keyframes (%s); the picture is used once it does", entry.id, why)
        path = state.root / KEYFRAMES_FOLDER / f"{entry.id}.png"
        _keep_previous(state.root / KEYFRAMES_FOLDER, entry.id)
        _save_picture(image, path, f"the keyframe of {entry.id}")
        _name_keyframe(state, state.index(entry.id), entry.id, path)
        return path


def replace_reference(run: str | Path, name: str, image: str | Path | bytes) -> Path:
    """Make ``image`` the reference picture of the storyboard's character, place or prop ``name``.

    It is saved as ``references/<name>.png`` (the name made file-safe), the file the keyframes
    stage takes as yours; the keyframes that show ``name`` are made again from it on the next
    run, and their shots re-rendered. A reference of yours that it replaces is kept as
    ``references/<name>.replaced-<time>.png``. Returns the new reference's path.
    """
    with _editing(run) as state:
        if state.storyboard is None:
            raise EditError(f"{state.root} has no storyboard.json yet; write one first (music2video storyboard SONG)")
        cast = [member.name for kind in ("characters", "places", "props") for member in getattr(state.storyboard, kind, [])]
        if name not in cast:
            raise EditError(f"no character, place or prop called {name!r} in the storyboard (there are: {', '.join(cast) or 'none'})")
        given = getattr(getattr(state.settings, "keyframes", None), "references", {}) or {}
        if name in given:
            raise EditError(
                f"this run takes {name!r}'s reference from {given[name]} (--reference); replace that file, or run without it"
            )
        stem = slug(name)
        folder = state.root / REFERENCES_FOLDER
        for other in (name.lower(), stem):  # whichever spelling the stage would find first
            _keep_previous(folder, other)
        path = folder / f"{stem}.png"
        _save_picture(image, path, f"the reference of {name!r}")
        return path


def _keep_previous(folder: Path, stem: str) -> None:
    """Move a picture of yours called ``<stem>.<suffix>`` aside, so that no replaced picture is lost."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    for suffix in IMAGE_SUFFIXES:
        old = folder / f"{stem}{suffix}"
        if old.is_file():
            old.replace(folder / f"{stem}.replaced-{stamp}{suffix}")


def _save_picture(image: str | Path | bytes, path: Path, what: str) -> None:
    """Check that ``image`` is a picture and write it to ``path`` as PNG, atomically."""
    import io

    import PIL.Image

    from music2video.runfolder import atomic_path

    source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else Path(image)
    if isinstance(source, Path) and not source.is_file():
        raise EditError(f"{what}: {source} does not exist")
    try:
        with PIL.Image.open(source) as opened:
            if opened.format not in ("PNG", "JPEG", "WEBP"):
                raise EditError(f"{what} must be a PNG, JPEG or WebP picture, not {opened.format or 'this file'}")
            picture = opened.convert("RGB")
    except (OSError, PIL.Image.DecompressionBombError) as error:
        raise EditError(f"{what}: not a picture PIL can read ({' '.join(str(error).split())[:120]})") from None
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def _name_keyframe(state: RunState, index: int, shot_id: str, path: Path) -> None:
    """Point keyframes.json's entry for the shot at ``path`` (marked yours), where the file exists."""
    from music2video.artifacts import Keyframe, KeyframeSet
    from music2video.runfolder import file_sha256

    listing = state.root / "keyframes.json"
    if not listing.is_file():
        return  # the keyframes stage lists it when it runs
    keyframes = _read(listing, KeyframeSet)
    frame = Keyframe(shot=index, shot_id=shot_id, path=str(path.relative_to(state.root)), sha256=file_sha256(path), user_edited=True)
    shots = [other for other in keyframes.shots if other.shot != index]
    keyframes = keyframes.model_copy(update={"shots": sorted([*shots, frame], key=lambda f: f.shot)})
    keyframes.failed.pop(shot_id, None)
    write_json_atomic(listing, keyframes)


# --------------------------------------------------------------------------------------------
# what changed, rendering and takes


def changed_shots(run: str | Path) -> list[str]:
    """Ids of the shots whose clip is missing or out of date: what the next render makes."""
    state = open_run(run)
    if state.storyboard is None:
        return []
    fingerprint = _renderer(state).settings_fingerprint()
    return [entry.id for entry in state.storyboard.shots if not _clip_path(state, entry, fingerprint)[1].exists()]


@dataclass
class RerenderResult:
    """What :func:`rerender` did."""

    rendered: list[str]
    failed: dict[str, str]
    pending: list[str] = field(metadata={"doc": "Changed shots still not rendered (the video waits for them)."})
    video: Path | None = field(metadata={"doc": "The reassembled video; None when pending shots remain or not asked."})


def rerender(
    run: str | Path,
    shots: Sequence[ShotRef] | None = None,
    *,
    new_seed: bool = False,
    assemble: bool = True,
    progress: ProgressCallback | PipelineProgress = no_progress,
) -> RerenderResult:
    """Render ``shots`` again (default: every changed shot), keeping each shot's previous take.

    A shot whose clip is up to date is left alone unless ``new_seed``, which gives it the next
    seed first (a new variation of the same entry). Each new clip is recorded in ``takes.json``
    beside the earlier ones; :func:`keep_take` goes back to any of them. When the shots asked
    for are all the changed shots, the pipeline renders them as ``music2video SONG`` would
    (stages before render included, keyframes where the run makes them) and, with
    ``assemble``, joins the video again; otherwise only those shots are rendered and the video
    waits for the others (``pending``). A shot that fails is named in ``failed``.
    ``progress`` is a callback for the render stage, or a pipeline progress for every stage.
    """
    from music2video.render import render_storyboard

    if new_seed:
        state = open_run(run)
        for ref in shots or []:
            entry = state.entry(ref)
            update_shot(run, entry.id, seed=(entry.seed + 1) % (MAX_SEED + 1))
    state = open_run(run)
    if state.storyboard is None:
        raise EditError(f"{state.root} has no storyboard.json yet; write one first (music2video storyboard SONG)")
    pending = changed_shots(state.root)
    asked = pending if shots is None else [state.entry(ref).id for ref in shots]
    todo = [shot_id for shot_id in dict.fromkeys(asked) if shot_id in pending]
    entries = {entry.id: entry for entry in state.storyboard.shots}
    video = None
    if not todo:
        return RerenderResult([], {}, pending, None)
    if set(todo) == set(pending):
        # 1. Everything that changed: the pipeline's own path, as the CLI takes it.
        result = _run_pipeline(state, "assemble" if assemble else "render", progress)
        failed = dict(result.render.failed_shots)
        video = Path(result.video.video_path) if result.video is not None else None
    else:
        # 2. Some of the changed shots: render just those; the video waits for the rest.
        with _editing(state.root) as state:
            subset = state.storyboard.model_copy(update={"shots": [entries[shot_id] for shot_id in todo]})
            rendered = render_storyboard(
                _renderer(state), subset, state.analysis, RunFolder(state.root), state.fps,
                state.settings.width, state.settings.height, _render_progress(progress),
            )  # fmt: skip
        failed = dict(rendered.failed_shots)
    # 3. The new clips join the shots' takes.
    with _editing(state.root) as state:
        fingerprint = _renderer(state).settings_fingerprint()
        history = _takes(state.root)
        for shot_id in todo:
            if shot_id not in failed:
                _record_take(history, state, entries[shot_id], fingerprint)
        _save_takes(state.root, history)
    return RerenderResult([i for i in todo if i not in failed], failed, changed_shots(state.root), video)


def takes(run: str | Path, shot: ShotRef) -> list[Take]:
    """Every recorded take of a shot, oldest first (the current clip is the one whose entry
    equals the shot's entry now: see :func:`current_take`)."""
    state = open_run(run)
    return list(_takes(state.root).shots.get(state.plan.shots[state.index(shot)].id, []))


def current_take(run: str | Path, shot: ShotRef) -> Take | None:
    """The take whose entry is the shot's entry now (its clip is the one the video uses), or None."""
    state = open_run(run)
    entry = state.entry(shot)
    return next((take for take in takes(run, shot) if take.entry == entry), None)


def keep_take(run: str | Path, shot: ShotRef, number: int, *, assemble: bool = True) -> RunState:
    """Make take ``number`` the shot's clip again: its entry goes back into the storyboard (so
    the clip, still on disk under its hash, is reused by every later run), then the video is
    joined again if nothing else is pending. The take must have been made for the shot's
    current times. Returns the edited run."""
    with _editing(run) as state:
        index = state.index(shot)
        entry = state.entry(index)
        history = _takes(state.root).shots.get(entry.id, [])
        take = next((t for t in history if t.number == number), None)
        if take is None:
            numbers = ", ".join(str(t.number) for t in history) or "none yet"
            raise EditError(f"{entry.id} has no take {number} (takes: {numbers})")
        if abs(take.entry.start_s - entry.start_s) > _SAME_TIME_S or abs(take.entry.end_s - entry.end_s) > _SAME_TIME_S:
            raise EditError(
                f"take {number} of {entry.id} was made for {take.entry.start_s:.2f}-{take.entry.end_s:.2f} s and the shot "
                f"is now {entry.start_s:.2f}-{entry.end_s:.2f} s; move its cuts back first"
            )
        if not (state.root / take.path).is_file():
            raise EditError(f"take {number} of {entry.id} is gone from {state.root / take.path}")
        entries = _entries(state)
        entries[index] = take.entry
        _save(state, list(state.plan.shots), entries)
    if assemble and not changed_shots(run):
        reassemble(run)
    return open_run(run)


def reassemble(run: str | Path, progress: ProgressCallback | PipelineProgress = no_progress) -> Path:
    """Run the pipeline on the run's song through ``assemble`` with the run's own settings:
    every finished stage and clip is reused, only what changed is made. Returns the video."""
    return Path(_run_pipeline(open_run(run), "assemble", progress).video.video_path)


def _run_pipeline(state: RunState, until: str, progress: ProgressCallback | PipelineProgress) -> Any:  # -> RunResult
    from music2video.pipeline import make_video

    song = Path(state.summary.song)
    if not song.is_file():
        raise InputError(f"{song}, the song of {state.root}, is gone; put it back to make the video again")
    output = Path(state.summary.output) if state.summary.output else None
    pipeline_progress = progress if hasattr(progress, "stage") else _RenderOnly(progress)
    return make_video(song, output, workdir=state.root, settings=state.settings, until=until, progress=pipeline_progress)


class _RenderOnly:
    """A pipeline progress that reports the render stage to one callback."""

    def __init__(self, callback: ProgressCallback):
        self.callback = callback

    def stage(self, name: str) -> ProgressCallback:
        return self.callback if name == "render" else no_progress


def _render_progress(progress: ProgressCallback | PipelineProgress) -> ProgressCallback:
    return progress.stage("render") if hasattr(progress, "stage") else progress  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def _editing(run: str | Path) -> Iterator[RunState]:
    """The run, read again under its lock: one writer at a time (a render in progress makes
    edits wait for nothing: they fail at once with RunFolderBusy naming the owner)."""
    root = open_run(run).root
    folder = RunFolder(root)
    with folder.locked():
        yield open_run(root)


def _refuse_locked(*shots: Shot, action: str) -> None:
    locked = [shot.id for shot in shots if shot.locked]
    if locked:
        raise EditError(f"{' and '.join(locked)} {'is' if len(locked) == 1 else 'are'} locked; unlock to {action}")


def _entries(state: RunState) -> list[StoryboardShot] | None:
    return list(state.storyboard.shots) if state.storyboard is not None else None


def _snap(state: RunState, time_s: float, low_s: float, high_s: float, snap: str, what: str) -> tuple[float, str]:
    """The snapping point nearest ``time_s`` strictly between ``low_s`` and ``high_s``, and what
    it sits on (``downbeat``, ``beat`` or ``grid``)."""
    if snap not in SNAPS:
        raise EditError(f"unknown snap {snap!r}; choose {', '.join(SNAPS)}")
    downbeats = state.analysis.downbeats_s
    if snap == "frame":
        frame = round(time_s * state.fps)
        candidates = [frame / state.fps]
    else:
        candidates = downbeats if snap == "downbeat" else state.analysis.beats_s
    inside = [t for t in candidates if low_s + _SAME_TIME_S < t < high_s - _SAME_TIME_S]
    if not inside:
        raise EditError(
            f"no {snap} between {low_s:.2f} and {high_s:.2f} s for {what}; "
            + ("try snap='beat' or snap='frame'" if snap != "frame" else "pick a time inside the shot")
        )
    best = min(inside, key=lambda t: (abs(t - time_s), t))
    if _contains(downbeats, best):
        return best, "downbeat"
    return best, "beat" if _contains(state.analysis.beats_s, best) else "grid"


def _contains(sorted_times: list[float], time_s: float) -> bool:
    at = bisect.bisect_left(sorted_times, time_s - _SAME_TIME_S)
    return at < len(sorted_times) and abs(sorted_times[at] - time_s) <= _SAME_TIME_S


def _new_id(base: str, taken: set[str]) -> str:
    """``shot-007`` -> ``shot-007b`` (``c``, ``d`` ... if taken): a new shot keeps every other id."""
    stem = base.rstrip("abcdefghijklmnopqrstuvwxyz") or base
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if stem + letter not in taken:
            return stem + letter
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _save(state: RunState, shots: list[Shot], entries: list[StoryboardShot] | None) -> None:
    """Write the edited plan and storyboard as a person's edits (see the module docstring),
    recording the takes of rendered entries the edit replaces first."""
    shots = [shot.model_copy(update={"index": index}) for index, shot in enumerate(shots)]
    plan = state.plan.model_copy(update={"shots": shots})
    # The tiling the pipeline relies on: no gap, no overlap, song start to song end.
    for a, b in zip(shots, shots[1:]):
        if abs(a.end_s - b.start_s) > _SAME_TIME_S:
            raise Music2VideoError(f"edit left a gap between {a.id} and {b.id} (a bug in music2video.edit)")
    if entries is not None and state.storyboard is not None:
        storyboard = state.storyboard.model_copy(update={"shots": _with_lyrics(state, plan, entries)})
        replaced = [old for old in state.storyboard.shots if old not in storyboard.shots]
        if replaced:
            fingerprint = _renderer(state).settings_fingerprint()
            history = _takes(state.root)
            for old in replaced:
                if _clip_path(state, old, fingerprint)[1].exists():
                    _record_take(history, state, old, fingerprint)
            _save_takes(state.root, history)
        write_json_atomic(state.root / "storyboard.json", storyboard)
    write_json_atomic(state.root / "shots.json", plan)


def _with_lyrics(state: RunState, plan: ShotPlan, entries: list[StoryboardShot]) -> list[StoryboardShot]:
    """The words sung during each shot whose times changed, from lyrics.json when there is one."""
    path = state.root / "lyrics.json"
    if not path.is_file():
        return entries
    from music2video.lyrics import Lyrics, lyrics_by_shot

    try:
        sung = lyrics_by_shot(Lyrics.model_validate_json(path.read_text(encoding="utf-8")), plan)
    except (OSError, ValueError):
        return entries
    old = {entry.id: (entry.start_s, entry.end_s) for entry in state.storyboard.shots} if state.storyboard else {}
    return [
        entry if old.get(entry.id) == (entry.start_s, entry.end_s) else entry.model_copy(update={"lyrics": sung.get(entry.id, "")})
        for entry in entries
    ]


def _renderer(state: RunState) -> Any:  # -> ShotRenderer
    from music2video.render import open_renderer

    name = state.summary.backends.get("renderer") or state.settings.backends(has_gpu=False)["renderer"]
    settings = state.settings
    return open_renderer(name, settings.width, settings.height, settings.fps, settings.video)


def _clip_path(state: RunState, entry: StoryboardShot, fingerprint: object) -> tuple[str, Path]:
    """The hash and path of the clip ``entry`` makes, as the render stage names it."""
    from music2video.render import CLIPS_FOLDER, shot_hash

    assert state.storyboard is not None
    frames = round(entry.end_s * state.fps) - round(entry.start_s * state.fps)
    digest = shot_hash(entry, state.storyboard, frames, fingerprint)
    return digest, state.root / CLIPS_FOLDER / f"{entry.id}-{digest}.mp4"


def _takes(root: Path) -> TakeHistory:
    path = root / TAKES_ARTIFACT
    if not path.is_file():
        return TakeHistory()
    return _read(path, TakeHistory)


def _record_take(history: TakeHistory, state: RunState, entry: StoryboardShot, fingerprint: object) -> None:
    digest, path = _clip_path(state, entry, fingerprint)
    shot_takes = history.shots.setdefault(entry.id, [])
    if any(take.shot_hash == digest for take in shot_takes):
        return
    shot_takes.append(
        Take(
            number=max((take.number for take in shot_takes), default=0) + 1,
            path=str(path.relative_to(state.root)),
            shot_hash=digest,
            entry=entry,
            recorded=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
    )


def _save_takes(root: Path, history: TakeHistory) -> None:
    RunFolder(root).save(TAKES_ARTIFACT, history)


def keep_locked_entries(storyboard: Storyboard, plan: ShotPlan, previous: Storyboard | None) -> Storyboard:
    """``storyboard`` with the entries of the plan's locked shots taken from ``previous`` (the
    storyboard a newly written one replaces), where they were written for the same shot and
    times: what the writer says about a locked shot never replaces the person's version."""
    if previous is None:
        return storyboard
    locked = {shot.id for shot in plan.shots if shot.locked}
    old = {entry.id: entry for entry in previous.shots if entry.id in locked}
    kept = 0
    shots = []
    for entry in storyboard.shots:
        keep = old.get(entry.id)
        if keep is not None and abs(keep.start_s - entry.start_s) <= _SAME_TIME_S and abs(keep.end_s - entry.end_s) <= _SAME_TIME_S:
            entry, kept = keep, kept + 1
        shots.append(entry)
    if kept:
        log.info("kept the storyboard entries of %d locked shots", kept)
    return storyboard.model_copy(update={"shots": shots})
