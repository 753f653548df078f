"""Typed models of every artifact the pipeline writes into the run folder.

Each stage reads and writes these models and nothing else, so this file is the contract between
stages: a listener, writer or renderer backend is interchangeable as long as it produces the
same model. Every artifact carries a ``schema_version`` and the ``key`` (hash of the inputs and
settings that produced it) that the run folder uses to decide whether it can be reused.

Times are in seconds from the start of the song (``*_s``); colours are ``#rrggbb`` strings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SerializerFunctionWrapHandler, model_serializer

from music2video.music import Key, Mood


class Artifact(BaseModel):
    """Base of every JSON artifact: versioned, keyed, strict about unknown fields."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    key: str = Field("", description="Hash of the inputs and settings that produced this artifact.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Fallbacks and roundings applied while producing this artifact (shown in the report).",
    )
    # Set by a stage whose intended backend failed for a reason that may pass (a server down,
    # out of time) and whose fallback made this artifact instead. Not serialised: the run
    # folder records it in the key (see music2video.runfolder.provisional_key), so that the
    # JSON and every hash of it stay what they were.
    _provisional: str | None = PrivateAttr(default=None)

    def mark_provisional(self, reason: str) -> None:
        """Say that a fallback made this artifact because of ``reason``; the next run retries."""
        self._provisional = reason

    @property
    def provisional(self) -> str | None:
        """Why a fallback made this artifact (as marked by the stage that made it), else None."""
        return self._provisional


# --------------------------------------------------------------------------------------------
# decode


class AudioInfo(Artifact):
    """``audio.json``: what was decoded from the input file."""

    source_path: str
    source_sha256: str
    container: str = Field(description="Container format as FFmpeg names it, e.g. 'mp3', 'mov,mp4,m4a,3gp,3g2,mj2'.")
    codec: str
    source_sample_rate_hz: int
    source_channels: int
    duration_s: float
    sample_rate_hz: int = Field(description="Rate of the canonical audio.wav written to the run folder.")
    channels: int = Field(description="Channels of audio.wav (1 or 2; more are downmixed).")
    peak_dbfs: float
    rms_dbfs: float
    loudness_lufs: float | None = Field(None, description="ITU-R BS.1770 integrated loudness; None when silent.")
    is_silent: bool = False


# --------------------------------------------------------------------------------------------
# structure


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    start_s: float
    end_s: float
    label: str = Field(description="Repetition label: sections that sound alike share a letter (A, B, A, C, B ...).")
    role: str = Field(description="Guessed role: intro, verse, chorus, bridge, outro, ...")
    energy: float = Field(description="Mean RMS energy of the section relative to the song, 0..1.")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class GridCheck(BaseModel):
    """The beat grid against an independent reference (see ``beat_grid.check_grid``)."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(description="The reference tracker: its family and what it uses.")
    reference_tempo_bpm: float
    relation: Literal["same", "double", "half", "3:2", "2:3", "other"] = Field(
        description="The grid's tempo relative to the reference's."
    )
    agreement: float = Field(description="Beat F-measure (±70 ms) of the grid against the reference pulse, 0..1.")
    support: float | None = Field(
        None,
        description="Onset strength under the reference's beats over that under the grid's (1 = equal); a disagreement "
        "warns only where this reaches beat_grid.SLOWER_REFERENCE_SUPPORT (reference at the grid's tempo or slower) or "
        "beat_grid.FASTER_REFERENCE_SUPPORT (faster or unrelated). "
        "None in analyses written before it was recorded.",
    )
    reference_beats_s: list[float] = Field(description="The reference pulse, seconds (evaluate grades cuts against it too).")


class Analysis(Artifact):
    """``analysis.json``: tempo, beats, bars, sections, key, mood and feature curves.

    Version 2 added ``musical_key`` and ``mood``; a version-1 file still loads (both None), and the
    structure stage's version makes a run re-analyse it.
    """

    schema_version: int = 2
    duration_s: float
    tempo_bpm: float
    beats_per_bar: int
    beats_s: list[float]
    downbeats_s: list[float]
    sections: list[Section]
    musical_key: Key | None = Field(
        None, description="The song's key (``key`` is the artifact's hash); None in silence and in analyses before version 2."
    )
    mood: Mood | None = Field(None, description="The song's valence and arousal (-1..1) with mood words and the cues measured.")
    curve_rate_hz: float = Field(description="Sample rate of the feature curves below.")
    energy: list[float] = Field(description="RMS energy, normalised to 0..1 over the song.")
    brightness: list[float] = Field(description="Spectral centroid, normalised to 0..1 over the song.")
    onset_strength: list[float] = Field(description="Onset strength envelope, normalised to 0..1.")
    grid_source: str = Field(
        "tracker:dsp",
        description="Where the beat grid came from: tracker:hybrid (the default), tracker:dsp, tracker:beatnet, tracker:madmom, tracker:beat_this, user:bpm, "
        "user:beats_file, fallback:steady; '+user:meter' / '+user:first_downbeat' when those were given.",
    )
    grid_check: GridCheck | None = Field(
        None, description="The grid compared with an independent tracker of another family (None for a user's grid)."
    )

    def curve_mean(self, curve: list[float], start_s: float, end_s: float) -> float:
        """Mean of a feature curve between two times (the nearest sample if the span is tiny)."""
        lo = int(start_s * self.curve_rate_hz)
        hi = max(lo + 1, int(math.ceil(end_s * self.curve_rate_hz)))
        window = curve[lo:hi] or curve[-1:]
        return float(sum(window) / len(window)) if window else 0.0


# --------------------------------------------------------------------------------------------
# shots


class Shot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    id: str = Field(description="Stable name, e.g. 'shot-007'.")
    start_s: float
    end_s: float
    section_index: int
    cut: Literal["start", "section", "downbeat", "beat", "grid"] = Field(
        description="What the cut at start_s sits on."
    )
    locked: bool = Field(
        False, description="Set by a person (music2video.edit.lock_shot): a new shot plan keeps this shot's cuts."
    )

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def frame_range(self, fps: float) -> tuple[int, int]:
        """First frame and one past the last frame of this shot in the finished video.

        Every cut sits on the video frame nearest its time, so consecutive shots tile the
        video's frames exactly.
        """
        return round(self.start_s * fps), round(self.end_s * fps)

    def frame_count(self, fps: float) -> int:
        first, end = self.frame_range(fps)
        return end - first


class ShotPlan(Artifact):
    """``shots.json``: where the cuts fall."""

    duration_s: float
    shots: list[Shot]
    ending_s: float | None = Field(
        None,
        description="Where the song's ending begins (the music has stopped: a last chord ringing out, "
        "silence); the last shot holds through it, so its length past this time is not held to "
        "shots.max_shot_s. None: no ending.",
    )


# --------------------------------------------------------------------------------------------
# listen


class ScoredLabel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    score: float = Field(description="Backend-specific score; higher is a better fit.")


class SegmentDescription(BaseModel):
    """What a listener heard in one span of the song (a shot, a section or the whole song)."""

    model_config = ConfigDict(extra="forbid")

    start_s: float
    end_s: float
    text: str = Field(description="A sentence or two in plain words, for people and for the writer.")
    features: dict[str, float] = Field(
        default_factory=dict,
        description="Numeric descriptors, e.g. energy, brightness, onset_density_hz, valence, arousal (-1..1).",
    )
    tags: dict[str, list[ScoredLabel]] = Field(
        default_factory=dict,
        description="Best labels per vocabulary (mood, genre, instruments, ...), best first.",
    )
    confidence: float | None = None


class Descriptions(Artifact):
    """``descriptions.json``: the listener's account of the song, per shot, per section and overall."""

    listener: str = Field(description="Backend that wrote this: dsp, clap or lalm.")
    model: str | None = Field(None, description="Model id or folder, for neural listeners.")
    song: SegmentDescription
    sections: list[SegmentDescription]
    shots: list[SegmentDescription]


# --------------------------------------------------------------------------------------------
# write


class Character(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field(description="Repeated word for word in every prompt that shows this character.")


class Place(BaseModel):
    """A place of the set list: where shots happen; its reference image is an establishing view."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field(description="Repeated word for word in every prompt that shows this place.")


class Prop(BaseModel):
    """A key prop of the set list: an object that must look the same wherever it appears."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = Field(description="Fixed appearance of the object in one sentence.")


class StyleBible(BaseModel):
    model_config = ConfigDict(extra="forbid")

    look: str
    palette: list[str] = Field(description="Main colours as #rrggbb.")
    lens: str = ""
    era: str = ""
    medium: str = ""


class SectionTreatment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    section_index: int
    label: str
    role: str
    palette: list[str]
    motif: str = Field(description="Visual motif of the section; a repeated label repeats its motif.")
    setting: str = ""


class StoryboardShot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    start_s: float = Field(description="Copied from the shot plan; the writer never moves a cut.")
    end_s: float
    section_index: int
    scene: str = Field(description="What happens in the shot, for people.")
    prompt: str = Field(description="Text-to-video prompt.")
    negative_prompt: str = ""
    seed: int
    palette: list[str]
    motif: str
    camera: str = Field("static", description="Camera movement, e.g. 'slow push in', 'orbit left'.")
    energy: float = Field(0.5, description="0..1; drives motion intensity in the renderer.")
    characters: list[str] = Field(default_factory=list, description="Names from the storyboard's characters.")
    places: list[str] = Field(default_factory=list, description="Names from the storyboard's places (the shot's place).")
    props: list[str] = Field(default_factory=list, description="Names from the storyboard's props seen in the shot.")
    lyrics: str = ""
    continues: bool = Field(
        False,
        description="Picks up the previous shot's action with no change of view: the previous shot then ends on "
        "this shot's keyframe where the video model takes a last frame. Set by hand; writers leave it off.",
    )

    @model_serializer(mode="wrap")
    def _without_an_empty_set_list(self, handler: SerializerFunctionWrapHandler) -> dict:
        # Empty places and props are left out, so a shot written before they existed dumps, and
        # hashes, as it did: its clip is not rendered again for a field it never had.
        data = handler(self)
        for name in ("places", "props"):
            if not data.get(name):
                data.pop(name, None)
        return data

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class Storyboard(Artifact):
    """``storyboard.json``: the concept and one entry per shot. Edit it by hand and re-run.

    Version 2 added the set list (``places``, ``props``) and each shot's ``places`` and
    ``props``; a version-1 file still loads, with all of them empty.
    """

    schema_version: int = 2
    writer: str
    title: str
    concept: str
    style: StyleBible
    characters: list[Character] = Field(default_factory=list)
    places: list[Place] = Field(default_factory=list, description="The set list: places shots happen in.")
    props: list[Prop] = Field(default_factory=list, description="Key props that recur across shots.")
    sections: list[SectionTreatment]
    shots: list[StoryboardShot]


# --------------------------------------------------------------------------------------------
# references and keyframes


class Reference(BaseModel):
    """One reference image: a character sheet, a place's establishing view or a prop."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The character's, place's or prop's name in the storyboard.")
    kind: Literal["character", "place", "prop"]
    path: str = Field(description="Relative to the run folder, or absolute for a user's file outside it.")
    sha256: str = Field(description="Of the image file's bytes.")
    source: Literal["generated", "user"] = Field(description="user: your image, used as given and never overwritten.")
    prompt: str = Field("", description="What the image model was asked for (empty for your own image).")


class ReferenceSet(Artifact):
    """``references.json``: one image per character, place and prop of the storyboard."""

    model: str | None = Field(None, description="Image model that generated the references (None: none was needed).")
    references: list[Reference] = Field(default_factory=list)
    failed: dict[str, str] = Field(
        default_factory=dict, description="Name -> why its reference could not be made (a rerun retries it)."
    )

    def by_name(self) -> dict[str, Reference]:
        return {reference.name: reference for reference in self.references}


class Keyframe(BaseModel):
    """The first frame of one shot, composed from its prompt and its references."""

    model_config = ConfigDict(extra="forbid")

    shot: int = Field(description="Index of the shot in the storyboard.")
    shot_id: str = Field("", description="The shot's id, e.g. 'shot-007', for people.")
    path: str = Field(description="Relative to the run folder: keyframes/<shot>-<hash>.png.")
    sha256: str = Field(description="Of the image file's bytes; the shot's clip is keyed by it.")
    user_edited: bool = Field(False, description="Edited, replaced or supplied by hand: kept, never regenerated.")
    references: list[str] = Field(default_factory=list, description="Names of the references it was composed from.")


class KeyframeSet(Artifact):
    """``keyframes.json``: one keyframe per shot, made before the video model loads."""

    model: str = Field(description="Image model(s) that made the keyframes.")
    shots: list[Keyframe] = Field(default_factory=list)
    failed: dict[str, str] = Field(
        default_factory=dict, description="Shot id -> why no keyframe could be made (that shot renders from text)."
    )

    def paths(self, root: Path) -> dict[int, Path]:
        """Shot index -> keyframe file, as ``render_storyboard(keyframes=...)`` takes it."""
        return {frame.shot: (root / frame.path) for frame in self.shots}


# --------------------------------------------------------------------------------------------
# render


class ClipColour(BaseModel):
    """How far a clip's colours were from its scene's first keyframe, before and after matching."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="Matching method, e.g. 'lab-mean-std' (Reinhard: Lab mean and spread per frame).")
    reference: str = Field(description="The keyframe matched to (relative to the run folder).")
    drift_before: float = Field(description="Mean CIE76 Delta E of each frame's mean Lab colour to the reference's.")
    drift_after: float = Field(description="The same after matching.")


class RenderedClip(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shot_id: str
    path: str = Field(description="Relative to the run folder.")
    frames: int
    fps: float
    width: int
    height: int
    shot_hash: str = Field(description="Hash of the storyboard entry and render settings this clip was made from.")
    keyframe: str | None = Field(None, description="Keyframe the clip starts from (relative to the run folder); None: text only.")
    colour: ClipColour | None = Field(None, description="Colour matching to the scene's first keyframe; None: not matched.")


class ShotTime(BaseModel):
    """How long one shot took to render, and where (``local``, or a Ray worker's name)."""

    model_config = ConfigDict(extra="forbid")

    shot_id: str
    worker: str
    seconds: float = Field(description="Wall-clock seconds from the shot's start to its clip on disk.")


class RenderResult(Artifact):
    """``clips.json``: one clip per storyboard shot, each exactly its shot's frame count."""

    renderer: str
    model: str | None = None
    fps: float
    width: int
    height: int
    clips: list[RenderedClip]
    failed_shots: dict[str, str] = Field(
        default_factory=dict, description="Shot id -> why it could not be rendered (a placeholder stands in)."
    )
    shot_times: list[ShotTime] = Field(
        default_factory=list, description="Per rendered shot: the worker and its seconds (kept for reused clips)."
    )


# --------------------------------------------------------------------------------------------
# assemble


class AssemblyResult(Artifact):
    """``video.json``: the finished video and where its cuts fell."""

    video_path: str
    duration_s: float
    fps: float
    frames: int
    width: int
    height: int
    cut_frames: list[int] = Field(description="First frame of every shot after the first.")
    cut_times_s: list[float] = Field(description="The planned cut times the frames stand for.")


# --------------------------------------------------------------------------------------------
# the run as a whole


class StageRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seconds: float
    reused: bool
    artifact: str | None = None


class RunSummary(Artifact):
    """``run.json``: what ran, with which backends and settings, how long each stage took."""

    song: str
    output: str | None
    pipeline: str
    backends: dict[str, str]
    settings: dict
    stages: list[StageRecord] = Field(default_factory=list)
    finished: bool = False
