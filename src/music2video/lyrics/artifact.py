"""``lyrics.json``: the typed artifact of the lyrics stage, and the settings that produce it.

Times are seconds from the start of the song. ``confidence`` values are 0..1: for Whisper's words
the mean probability of their tokens, for aligned user lyrics the alignment's match quality;
``None`` where nothing measured it (LRC times, lines spread over the vocals by syllable count).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from music2video.artifacts import Artifact
from music2video.settings import LyricsSettings  # noqa: F401  (re-exported for the lyrics package)

LYRICS_SCHEMA_VERSION = 1

# How a line got its times; the report shows it, a person deciding what to trust reads it.
Timing = Literal[
    "whisper",  # transcribed: Whisper's timestamps (word times from cross-attention alignment)
    "lrc",  # the user's LRC file
    "ctc",  # user text force-aligned to the (separated) vocals by a CTC model, word by word
    "aligned",  # user text matched to Whisper's timed words
    "interpolated",  # user text that matched nothing: timed between its neighbours (low confidence)
    "distributed",  # user text without a transcription: spread over the vocals by syllable count
]


class LyricWord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    start_s: float
    end_s: float
    confidence: float | None = None


class LyricLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_s: float
    end_s: float
    text: str
    words: list[LyricWord] = Field(default_factory=list)
    confidence: float | None = None
    timing: Timing
    flags: list[str] = Field(default_factory=list, description="Doubts about this line, e.g. 'low_confidence'.")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class DroppedLine(BaseModel):
    """A transcribed line the hallucination filters removed, kept so a person can check them."""

    model_config = ConfigDict(extra="forbid")

    start_s: float
    end_s: float
    text: str
    reason: str = Field(description="no_speech, no_vocals, low_logprob, repetitive, known_hallucination, repeat_loop, no_words")


class Lyrics(Artifact):
    """``lyrics.json``: what is sung and when. Edit the text or times by hand and re-run; the
    subtitles and the storyboard's per-shot lyrics follow your edit."""

    schema_version: int = LYRICS_SCHEMA_VERSION
    source: Literal["whisper", "user", "none"] = Field(
        description="whisper: transcribed; user: your lyrics file (LRC times or aligned text); none: no lyrics."
    )
    model: str | None = Field(None, description="Whisper or CTC aligner model id or folder, when one ran.")
    language: str | None = Field(None, description="Language code, e.g. 'en'; detected by Whisper or given.")
    has_vocals: bool
    vocal_spans_s: list[tuple[float, float]] = Field(
        default_factory=list, description="(start, end) of the stretches where a voice was detected."
    )
    duration_s: float
    lines: list[LyricLine] = Field(default_factory=list)
    dropped: list[DroppedLine] = Field(default_factory=list)


