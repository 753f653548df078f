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
* A clip is named by the hash of its storyboard entry and of the pictures it is animated from
  (``clips/<shot>-<hash>.mp4``, named by :func:`music2video.render.shot_jobs`), so a shot whose
  entry, times or keyframe changed is rendered again and every other clip is reused. Cuts
  keep the ids of the shots around them: a split adds ``shot-007b`` after ``shot-007``
  instead of renumbering every later shot (which would re-render them all).
* Shot lengths stay inside the run's limits (``shots.min_shot_s`` .. ``shots.max_shot_s``,
  and at least one video frame); an edit that breaks them raises :class:`EditError` naming
  the shot, the length and the limit.
* A locked shot (``"locked": true`` in ``shots.json``) keeps its cuts when the shot plan is
  made again (:func:`music2video.shots.plan_shots` plans around it) and keeps its storyboard
  entry when the storyboard is written again; its cuts cannot be moved until it is unlocked.
* Takes: the clip an entry made is never deleted. Before an edit changes a rendered shot, the
  entry (and keyframe) that made its clip is recorded in ``takes.json``; :func:`rerender`
  records the new clip, and :func:`keep_take` puts a take's entry (and keyframe) back, which
  makes that clip the shot's clip again without rendering anything.
* Pictures: :func:`replace_keyframe` and :func:`replace_reference` write the files the
  keyframes stage takes as yours (``keyframes/<shot>.png``, ``references/<name>.png``).
* Edits take the run folder's lock: while a run renders there, they fail at once with
  :class:`~music2video.errors.RunFolderBusy` naming the owner.

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
    keyframe: str | None = Field(None, description="The keyframe the clip was animated from, relative to the run folder.")
    recorded: str = Field(description="When the take was recorded, ISO 8601 UTC.")


class TakeHistory(Artifact):
    """``takes.json``: every clip each shot has had, by shot id (see :func:`takes`)."""

    shots: dict[str, list[Take]] = Field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# the run as the editor sees it


@dataclass(frozen=True)
class ShotLimits:
    """How long a shot of this run may be: at least ``min_s`` and one video frame, at most
    ``max_s``, not counting what lies in the song's ending (``ShotPlan.ending_s``), which
    the last shot holds through."""

    min_s: float
    max_s: float
    fps: float
    max_note: str = field(default="", metadata={"doc": "Why max_s, in words (the video model's one generation)."})
    ending_s: float | None = None

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
        held_end_s = end_s if self.ending_s is None else min(end_s, max(start_s, self.ending_s))
        held_frames = round(held_end_s * self.fps) - round(start_s * self.fps)
        if held_frames > round(self.max_s * self.fps):
            length = f"{length_s:.2f} s" if held_end_s == end_s else f"{held_frames / self.fps:.2f} s before the song's ending"
            raise EditError(
                f"{what} would last {length}, longer than this run's longest shot "
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
    return RunState(root, settings, summary, analysis, plan, storyboard, shot_limits(settings, summary, plan))


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


def shot_limits(settings: Settings, summary: RunSummary | None = None, plan: ShotPlan | None = None) -> ShotLimits:
    """The run's shot length limits; the note names the video model's one generation for
    the diffusers renderer (longer shots are extended, which costs quality). With ``plan``,
    what its last shot holds through (its ending) does not count towards the longest shot."""
    note = ""
    renderer = (summary.backends.get("renderer") if summary else None) or settings.backends(has_gpu=False)["renderer"]
    if renderer == "diffusers":
        from music2video.render.video_models import resolve_video_model

        with contextlib.suppress(Music2VideoError):
            model = resolve_video_model(settings.video.model)
            note = f"; {model.name} makes {model.max_seconds:g} s in one generation"
    ending_s = plan.ending_s if plan is not None else None
    return ShotLimits(settings.shots.min_shot_s, settings.shots.max_shot_s, settings.fps, note, ending_s)


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
        picture = _load_picture(image, f"the keyframe of {entry.id}")  # checked before anything moves
        history = _takes(state.root)
        _record_current_clip(history, state, entry.id)  # the take made from the keyframe replaced now
        moved = _keep_previous(state.root / KEYFRAMES_FOLDER, entry.id)
        _follow_moved_keyframes(history, state.root, moved)
        _save_takes(state.root, history)
        _write_png(picture, path)
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
        picture = _load_picture(image, f"the reference of {name!r}")
        for other in (name.lower(), stem):  # whichever spelling the stage would find first
            _keep_previous(folder, other)
        path = folder / f"{stem}.png"
        _write_png(picture, path)
        return path


def _keep_previous(folder: Path, stem: str) -> dict[Path, Path]:
    """Move a picture of yours called ``<stem>.<suffix>`` aside, so that no replaced picture is
    lost; returns {old path: new path}."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    moved = {}
    for suffix in IMAGE_SUFFIXES:
        old = folder / f"{stem}{suffix}"
        if old.is_file():
            moved[old] = old.replace(folder / f"{stem}.replaced-{stamp}{suffix}")
    return moved


def _load_picture(image: str | Path | bytes, what: str) -> Any:  # -> PIL.Image.Image
    """``image`` (a file or its bytes) as an RGB picture; :class:`EditError` if it is none."""
    import io

    import PIL.Image

    source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else Path(image)
    if isinstance(source, Path) and not source.is_file():
        raise EditError(f"{what}: {source} does not exist")
    try:
        with PIL.Image.open(source) as opened:
            if opened.format not in ("PNG", "JPEG", "WEBP"):
                raise EditError(f"{what} must be a PNG, JPEG or WebP picture, not {opened.format or 'this file'}")
            return opened.convert("RGB")
    except (OSError, PIL.Image.DecompressionBombError) as error:
        raise EditError(f"{what}: not a picture PIL can read ({' '.join(str(error).split())[:120]})") from None


def _write_png(picture: Any, path: Path) -> None:
    from music2video.runfolder import atomic_path

    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def _record_current_clip(history: TakeHistory, state: RunState, shot_id: str) -> None:
    """Record the shot's clip as it is now, if it was rendered (before its pictures change)."""
    if state.storyboard is None:
        return
    job = _jobs(state).get(shot_id)
    if job is not None and job.path.exists():
        _record_take(history, state, job)


def _restore_keyframe(state: RunState, index: int, shot_id: str, source: Path) -> None:
    """Make ``source`` (a take's keyframe) the shot's keyframe again, as a keyframe of yours,
    unless the shot's keyframe already has those bytes."""
    from music2video.runfolder import atomic_path, file_sha256

    if state.storyboard is None:
        return
    current = _keyframes(state, state.storyboard) or {}
    if index in current and file_sha256(current[index]) == file_sha256(source):
        return
    folder = state.root / KEYFRAMES_FOLDER
    data = source.read_bytes()
    history = _takes(state.root)
    _follow_moved_keyframes(history, state.root, _keep_previous(folder, shot_id))
    _save_takes(state.root, history)
    target = folder / f"{shot_id}.png"
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    _name_keyframe(state, index, shot_id, target)


def _follow_moved_keyframes(history: TakeHistory, root: Path, moved: dict[Path, Path]) -> None:
    """Takes whose keyframe was just moved aside name its new place."""
    renamed = {str(old.relative_to(root)): str(new.relative_to(root)) for old, new in moved.items()}
    for shot_takes in history.shots.values():
        for take in shot_takes:
            if take.keyframe in renamed:
                take.keyframe = renamed[take.keyframe]


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
    return [shot_id for shot_id, job in _jobs(state).items() if not job.path.exists()]


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

    Without ``shots`` the pipeline runs as ``music2video SONG`` would: the stages before render
    (keyframes of edited shots, where the run makes them), every clip that is out of date, and
    with ``assemble`` the video. With ``shots``, the stages before render run the same way and
    then just those shots render; the video is joined again only when no changed shot is left
    (``pending``). A shot whose clip is up to date is left alone unless ``new_seed``, which
    gives it the next seed first (a new variation of the same entry). Every new clip joins the
    shot's takes in ``takes.json``; :func:`keep_take` goes back to any of them. A shot that
    fails is named in ``failed``. ``progress`` is a callback for the render stage, or a
    pipeline progress for every stage.
    """
    from music2video.render import render_storyboard
    from music2video.render.executors import executor_for

    state = open_run(run)
    if state.storyboard is None:
        raise EditError(f"{state.root} has no storyboard.json yet; write one first (music2video storyboard SONG)")
    asked = None if shots is None else list(dict.fromkeys(state.entry(ref).id for ref in shots))
    if new_seed:
        for shot_id in asked or []:
            update_shot(run, shot_id, seed=(state.entry(shot_id).seed + 1) % (MAX_SEED + 1))
    clips_before = {path.name for path in (state.root / "clips").glob("*.mp4")}
    video = None
    if asked is None:
        # 1. Everything that changed, by the pipeline's own path.
        result = _run_pipeline(state, "assemble" if assemble else "render", progress)
        failed = dict(result.render.failed_shots)
        video = Path(result.video.video_path) if result.video is not None else None
    else:
        # 2. The stages before render (keyframes for edited shots), then the shots asked for.
        result = _run_pipeline(state, "keyframes", progress)
        keyframes = result.keyframes.paths(state.root) if getattr(result, "keyframes", None) is not None else None
        with _editing(state.root) as state, executor_for(state.settings) as executor:
            rendered = render_storyboard(
                _renderer(state), state.storyboard, state.analysis, RunFolder(state.root), state.fps,
                state.settings.width, state.settings.height, _render_progress(progress),
                executor=executor, keyframes=keyframes, only=set(asked),
            )  # fmt: skip
        failed = dict(rendered.failed_shots)
    # 3. The new clips join their shots' takes.
    with _editing(state.root) as state:
        jobs = _jobs(state)
        history = _takes(state.root)
        made = [
            shot_id for shot_id, job in jobs.items()
            if job.path.exists() and job.path.name not in clips_before and shot_id not in failed
        ]  # fmt: skip
        for shot_id in made:
            _record_take(history, state, jobs[shot_id])
        _save_takes(state.root, history)
    pending = changed_shots(state.root)
    if asked is not None and assemble and made and not pending:
        video = reassemble(state.root, progress)
    return RerenderResult(made, failed, pending, video)


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
        if take.keyframe is not None and not (state.root / take.keyframe).is_file():
            raise EditError(f"the keyframe of take {number} of {entry.id} is gone from {state.root / take.keyframe}")
        history = _takes(state.root)
        _record_current_clip(history, state, entry.id)  # so that the clip now in use stays a take
        _save_takes(state.root, history)
        entries = _entries(state)
        entries[index] = take.entry
        _save(state, list(state.plan.shots), entries)
        if take.keyframe is not None:
            _restore_keyframe(state, index, entry.id, state.root / take.keyframe)
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
            jobs = _jobs(state)
            history = _takes(state.root)
            for old in replaced:
                if jobs[old.id].path.exists():
                    _record_take(history, state, jobs[old.id])
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


def _jobs(state: RunState, storyboard: Storyboard | None = None) -> dict[str, Any]:  # shot id -> ShotJob
    """The clip each shot of ``storyboard`` (default: the run's) needs, named as the render stage
    names it (:func:`music2video.render.shot_jobs`), with the keyframes ``keyframes.json`` lists."""
    from music2video.render import shot_jobs

    storyboard = storyboard or state.storyboard
    assert storyboard is not None
    renderer = _renderer(state)
    keyframes = _keyframes(state, storyboard)
    if keyframes is not None and getattr(renderer, "needs_images", False) and len(keyframes) < len(storyboard.shots):
        # A picture-only model refuses to render shots without a keyframe; for naming clips,
        # those shots (new ones, their keyframe not made yet) are simply out of date.
        renderer = _Naming(renderer)
    jobs = shot_jobs(renderer, storyboard, RunFolder(state.root), state.fps, keyframes)
    return {job.shot.id: job for job in jobs}


class _Naming:
    """A renderer as :func:`~music2video.render.shot_jobs` sees it, without the refusal of shots
    that have no keyframe (used to name clips, never to render)."""

    needs_images = False

    def __init__(self, renderer: Any):
        self._renderer = renderer
        self.takes_images = getattr(renderer, "takes_images", False)
        self.takes_last_frame = getattr(renderer, "takes_last_frame", False)
        self.model, self.name = renderer.model, renderer.name

    def settings_fingerprint(self) -> object:
        return self._renderer.settings_fingerprint()


def _keyframes(state: RunState, storyboard: Storyboard) -> dict[int, Path] | None:
    """Storyboard index -> keyframe PNG, from keyframes.json by shot id (indices move when
    shots are split or merged); None where the run makes no keyframes."""
    from music2video.artifacts import KeyframeSet

    listing = state.root / "keyframes.json"
    if not keyframes_wanted(state.settings)[0] or not listing.is_file():
        return None
    position = {entry.id: index for index, entry in enumerate(storyboard.shots)}
    frames = _read(listing, KeyframeSet).shots
    return {
        position[frame.shot_id]: state.root / frame.path
        for frame in frames
        if frame.shot_id in position and (state.root / frame.path).is_file()
    }


def _takes(root: Path) -> TakeHistory:
    path = root / TAKES_ARTIFACT
    if not path.is_file():
        return TakeHistory()
    return _read(path, TakeHistory)


def _record_take(history: TakeHistory, state: RunState, job: Any) -> Take:  # job: ShotJob
    """Add the clip ``job`` names to the shot's takes (once per clip); returns its take."""
    shot_takes = history.shots.setdefault(job.shot.id, [])
    for take in shot_takes:
        if take.shot_hash == job.digest:
            return take
    keyframe = job.images.first if job.images is not None else None
    take = Take(
        number=max((take.number for take in shot_takes), default=0) + 1,
        path=str(job.path.relative_to(state.root)),
        shot_hash=job.digest,
        entry=job.shot,
        keyframe=str(Path(keyframe).relative_to(state.root)) if keyframe is not None else None,
        recorded=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    shot_takes.append(take)
    return take


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
