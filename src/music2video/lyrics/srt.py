"""SubRip (``.srt``) subtitles from the lyrics, and reading them back.

Each cue is ``index``, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, one or two text lines, a blank line.
The lyrics keep their true times; the subtitles are for reading, so a cue shorter than
``MIN_CUE_S`` is held longer when the next line leaves room, and long lines are wrapped at
``MAX_CHARS_PER_LINE`` (the usual broadcast limit).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from music2video.lyrics.artifact import Lyrics
from music2video.runfolder import write_text_atomic

MIN_CUE_S = 0.8  # shortest time a subtitle stays up, when the next one leaves room
MAX_CHARS_PER_LINE = 42

_TIMING = re.compile(r"(\d+):(\d{2}):(\d{2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{1,3})")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # may hold newlines


def srt_timestamp(seconds: float) -> str:
    """12.3456 -> '00:00:12,346' (rounded to the millisecond; negative times clamp to 0)."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def lyrics_cues(lyrics: Lyrics) -> list[Cue]:
    """The subtitle cues of ``lyrics``: one per line, in time order, none overlapping the next."""
    lines = sorted((line for line in lyrics.lines if line.text.strip()), key=lambda line: line.start_s)
    cues = []
    for k, line in enumerate(lines):
        next_start = lines[k + 1].start_s if k + 1 < len(lines) else lyrics.duration_s
        end = max(line.end_s, min(line.start_s + MIN_CUE_S, next_start))
        end = min(end, max(next_start, line.start_s + 0.001))
        end = max(end, line.start_s + 0.001)  # SRT players skip cues that end where they start
        wrapped = "\n".join(textwrap.wrap(line.text.strip(), MAX_CHARS_PER_LINE)) or line.text.strip()
        cues.append(Cue(line.start_s, end, wrapped))
    return cues


def srt_text(cues: list[Cue]) -> str:
    blocks = [f"{k}\n{srt_timestamp(c.start_s)} --> {srt_timestamp(c.end_s)}\n{c.text}\n" for k, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def write_srt(lyrics: Lyrics, path: Path) -> Path:
    """Write ``lyrics`` as SubRip to ``path`` atomically (UTF-8); an empty file when there are no lines."""
    path = Path(path)
    write_text_atomic(path, srt_text(lyrics_cues(lyrics)))
    return path


def read_srt(path: Path) -> list[Cue]:
    """Cues of a SubRip file (UTF-8, with or without BOM); malformed blocks are skipped."""
    text = Path(path).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    cues = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.split("\n")
        for k, line in enumerate(lines):
            match = _TIMING.search(line)
            if match:
                g = [int(x) for x in match.groups()]
                start = g[0] * 3600 + g[1] * 60 + g[2] + int(match.group(4).ljust(3, "0")) / 1000
                end = g[4] * 3600 + g[5] * 60 + g[6] + int(match.group(8).ljust(3, "0")) / 1000
                body = "\n".join(lines[k + 1 :]).strip()
                if body and end > start:
                    cues.append(Cue(start, end, body))
                break
    return sorted(cues, key=lambda c: c.start_s)
