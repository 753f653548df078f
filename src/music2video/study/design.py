"""A study's design: its videos and their conditions, the rating dimensions and scale, and the
blinded, counterbalanced order in which each participant sees the videos.

``study.json`` in the study folder is the whole design (:class:`Study`); the videos are copied
beside it under blinded names (``videos/<code>.mp4``), so that neither the page nor the file
names tell a participant which pipeline made a video.

Orders come from a balanced Latin square (Williams design): over ``n`` videos (``2n`` rows when
``n`` is odd) every video appears equally often at every position and directly after every
other video, so order and carry-over effects cancel out across participants. Participant ``i``
gets row ``i`` (mod the number of rows) of a square over the videos shuffled once with the
study's seed.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from music2video.errors import InputError, Music2VideoError
from music2video.runfolder import file_sha256, write_json_atomic

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
DATABASE_FILE = "answers.sqlite"
VIDEO_FOLDER = "videos"
PRESETS = ("default", "automv")
SCALE_POINTS = (5, 7)
Design = Literal["within", "between"]
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".m4v", ".ogv")


class Dimension(BaseModel):
    """One question every video is rated on."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Short name used in the database, CSV and plots (letters, digits, _).")
    label: str
    question: str = Field(description="What the participant reads above the scale.")
    group: str | None = Field(None, description="A group of dimensions (AutoMV's four modules).")


class Reference(BaseModel):
    """Published means to read a study against (AutoMV's table)."""

    model_config = ConfigDict(extra="forbid")

    description: str
    scale_points: int
    means: dict[str, float]


class Preset(BaseModel):
    """A named set of dimensions shipped in ``music2video/data/study/<name>.json``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    title: str
    source: str
    wording_note: str | None = None
    scale_points: int
    scale_anchors: tuple[str, str]
    reference: Reference | None = None
    dimensions: list[Dimension]


class StudyVideo(BaseModel):
    """One video of the study. ``code`` is all a participant ever sees of it."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Blinded name: random letters, no order or condition in it.")
    file: str = Field(description="The copy in the study folder, relative to it.")
    source: str = Field(description="Where the video was copied from (for the researcher only).")
    sha256: str
    condition: str = Field(description="What is compared: a pipeline, model or setting.")
    song: str = Field(description="The song (stimulus) the video is made for.")
    details: dict = Field(default_factory=dict, description="Pipeline, backends and settings from the run folder, if any.")


class Study(BaseModel):
    """``study.json``: everything needed to serve and analyse a study."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    name: str
    created_utc: str
    design: Design = Field(description="within: everyone rates every video; between: each participant rates one condition's videos.")
    preset: str
    scale_points: int
    scale_anchors: tuple[str, str]
    dimensions: list[Dimension]
    videos: list[StudyVideo]
    seed: int
    attention_check: bool = True
    reference: Reference | None = None
    instructions: str = (
        "You will watch a few short music videos. Watch each one to the end with the sound on, "
        "then rate it on every question. There are no right answers: give your own impression."
    )

    @property
    def conditions(self) -> list[str]:
        """Conditions in the order their first video was given."""
        return list(dict.fromkeys(video.condition for video in self.videos))

    def video(self, code: str) -> StudyVideo:
        for video in self.videos:
            if video.code == code:
                return video
        raise KeyError(code)


# --------------------------------------------------------------------------------------------
# presets


def load_preset(name: str) -> Preset:
    """A shipped preset by name (``default`` or ``automv``)."""
    if name not in PRESETS:
        raise InputError(f"unknown study preset {name!r}; choose one of {', '.join(PRESETS)}")
    text = resources.files("music2video").joinpath("data", "study", f"{name}.json").read_text(encoding="utf-8")
    return Preset.model_validate_json(text)


def parse_dimension(text: str) -> Dimension:
    """``"Label"`` or ``"Label=Question"`` (as typed after ``--dimension``)."""
    label, _, question = text.partition("=")
    label, question = label.strip(), question.strip()
    identifier = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    if not identifier:
        raise InputError(f"dimension {text!r} has no name; write it as 'Label' or 'Label=Question'")
    return Dimension(id=identifier, label=label, question=question or f"{label}?")


# --------------------------------------------------------------------------------------------
# counterbalancing


def balanced_latin_square_row(n: int, row: int) -> list[int]:
    """Row ``row`` of a balanced Latin square over ``0..n-1`` (Williams 1949).

    For even ``n`` the ``n`` rows are balanced for position and first-order carry-over; for odd
    ``n`` the ``2n`` rows are (rows ``n..2n-1`` are rows ``0..n-1`` reversed).
    """
    if n < 1:
        return []
    sequence, low, high = [], 0, 0
    for position in range(n):
        if position < 2 or position % 2:
            value, low = low, low + 1
        else:
            value, high = n - high - 1, high + 1
        sequence.append((value + row) % n)
    if n % 2 and row % 2:  # rows r and r + n share a sequence; one of them runs backwards
        sequence.reverse()
    return sequence


def square_rows(n: int) -> int:
    """How many rows a balanced Latin square over ``n`` items has."""
    return n if n % 2 == 0 else 2 * n


def presentation(study: Study, participant_index: int) -> list[str]:
    """The codes participant number ``participant_index`` (0, 1, ...) sees, in order.

    within: every video, in Latin-square row ``participant_index``. between: participants are
    dealt to conditions in turn (0 -> first condition, 1 -> second ...), and see that
    condition's videos in a Latin-square row of their own.
    """
    rng = random.Random(study.seed)
    if study.design == "within":
        videos = [video.code for video in study.videos]
        rng.shuffle(videos)
        row = participant_index
    else:
        conditions = study.conditions
        condition = conditions[participant_index % len(conditions)]
        videos = [video.code for video in study.videos if video.condition == condition]
        rng.shuffle(videos)
        row = participant_index // len(conditions)
    return [videos[i] for i in balanced_latin_square_row(len(videos), row % square_rows(len(videos)))]


def attention_item(study: Study, participant_index: int) -> tuple[str, int] | None:
    """Where participant ``participant_index`` meets the attention check (the code of the video
    it comes with) and which answer it asks for; None when the study has none.

    An instructed-response item ("choose 2 here") among the questions of one video, never the
    first (the participant has seen the questions once by then); which video and which
    answer are seeded per participant.
    """
    if not study.attention_check:
        return None
    order = presentation(study, participant_index)
    rng = random.Random(f"{study.seed}-attention-{participant_index}")
    position = rng.randrange(1, len(order)) if len(order) > 1 else 0
    return order[position], rng.randint(1, study.scale_points)


# --------------------------------------------------------------------------------------------
# creating a study


def create_study(
    videos: list[Path],
    folder: Path,
    *,
    name: str,
    conditions: list[str] | None = None,
    songs: list[str] | None = None,
    preset: str = "default",
    dimensions: list[Dimension] | None = None,
    scale_points: int | None = None,
    design: Design = "within",
    seed: int = 0,
    attention_check: bool = True,
) -> Study:
    """Make a study folder: ``study.json`` and blinded copies of the videos.

    ``videos``: the video files, ours or any others. ``conditions``/``songs``: one per video,
    in the same order; where left out, read from the music2video run folder beside each video
    (``song.music2video/run.json``: the pipeline and its backends; the song's file name).
    ``dimensions`` replace the preset's. ``folder`` must not hold a study yet.
    """
    # 1. Check inputs
    if not videos:
        raise InputError("a study needs at least one video")
    for label, values in (("condition", conditions), ("song", songs)):
        if values and len(values) != len(videos):
            raise InputError(f"{len(values)} --{label} values for {len(videos)} videos: give one per video, in the same order, or none")
    resolved = [Path(video).expanduser().resolve() for video in videos]
    for video in resolved:
        if not video.is_file():
            raise InputError(f"{video} is not a file; give the video files to rate")
        if video.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"{video.name} does not look like a video ({', '.join(VIDEO_SUFFIXES)})")
    if len(set(resolved)) != len(resolved):
        raise InputError("the same video is given twice")
    chosen = load_preset(preset)
    points = scale_points or chosen.scale_points
    if points not in SCALE_POINTS:
        raise InputError(f"scale {points} is not one of {' or '.join(map(str, SCALE_POINTS))} points")
    dimensions = dimensions or chosen.dimensions
    ids = [dimension.id for dimension in dimensions]
    if len(set(ids)) != len(ids):
        raise InputError(f"two dimensions share a name: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    folder = Path(folder).expanduser()
    if (folder / STUDY_FILE).exists():
        raise InputError(f"{folder} already holds a study; choose another --name or --output")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder")

    # 2. Conditions and songs, from the user or the run folders
    entries = []
    for index, video in enumerate(resolved):
        run = _run_details(video)
        condition = conditions[index] if conditions else run.get("condition")
        if not condition:
            raise InputError(
                f"no condition for {video.name}: it has no music2video run folder beside it; "
                "give --condition once per video (e.g. --condition ours --condition baseline)"
            )
        song = songs[index] if songs else run.get("song") or video.stem
        entries.append((video, condition, song, run.get("details", {})))
    if design == "between" and len({entry[1] for entry in entries}) < 2:
        raise InputError("a between-subject study needs at least two conditions")

    # 3. Blinded copies
    rng = random.Random(f"{seed}-codes")
    codes: list[str] = []
    while len(codes) < len(entries):
        code = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(6))
        if code not in codes:
            codes.append(code)
    (folder / VIDEO_FOLDER).mkdir(parents=True, exist_ok=True)
    study_videos = []
    for code, (video, condition, song, details) in zip(codes, entries):
        copy = folder / VIDEO_FOLDER / f"{code}{video.suffix.lower()}"
        shutil.copyfile(video, copy)
        study_videos.append(
            StudyVideo(code=code, file=copy.relative_to(folder).as_posix(), source=str(video), sha256=file_sha256(copy),
                       condition=condition, song=song, details=details)
        )
    study = Study(
        name=name,
        created_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        design=design,
        preset=preset if dimensions is chosen.dimensions else "custom",
        scale_points=points,
        scale_anchors=chosen.scale_anchors,
        dimensions=dimensions,
        videos=study_videos,
        seed=seed,
        attention_check=attention_check,
        reference=chosen.reference if dimensions is chosen.dimensions and points == chosen.scale_points else None,
    )
    write_json_atomic(folder / STUDY_FILE, study)
    return study


def load_study(folder: Path) -> Study:
    """``study.json`` of a study folder, with a one-line error when it is not one."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise InputError(f"{folder} is not a study folder (no {STUDY_FILE}); make one with music2video study create")
    try:
        return Study.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise Music2VideoError(f"{path} is not a valid study file ({' '.join(str(error).split())[:200]})") from None


def _run_details(video: Path) -> dict:
    """What a music2video run folder beside ``video`` says about how it was made.

    The condition is the pipeline (``preview``, ``clap``, ``lalm``), plus the video model where
    a diffusion renderer made the clips: two runs that differ in anything else need --condition.
    """
    from music2video.preflight import default_run_folder

    run_json = default_run_folder(video) / "run.json"
    if not run_json.is_file():
        return {}
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        log.warning("cannot read %s (%s): the video's condition must be given", run_json, error)
        return {}
    backends = run.get("backends") or {}
    settings = run.get("settings") or {}
    pipeline = str(run.get("pipeline") or "music2video")
    model = (settings.get("video") or {}).get("model") if backends.get("renderer") not in (None, "animatic") else None
    return {
        "condition": f"{pipeline} ({model})" if model else pipeline,
        "song": Path(str(run.get("song") or video.stem)).stem,
        "details": {"pipeline": pipeline, "backends": backends, "settings": settings},
    }
