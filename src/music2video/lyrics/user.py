"""Lyrics the user gives: LRC files keep their times; plain text is aligned to the song.

* **LRC** (``[mm:ss.xx] line``): several time tags on one line repeat it (a chorus written once),
  ``[offset:±ms]`` shifts everything (positive: lyrics earlier, as the format says), enhanced-LRC
  word tags (``<mm:ss.xx>word``) give word times. A line ends where the next begins (an empty
  tagged line ends the one before it), at most ``LRC_MAX_LINE_S`` later. Tags out of time order
  are sorted with a warning; lines past the end of the song are dropped with a warning.
* **Plain text**: one lyric line per line. Section headers (``[Chorus]``, ``[Verse 2: Artist]``)
  are not sung; a header whose section was written before and has no lines of its own now
  (``[Chorus]`` alone, ``(Repeat chorus)``) repeats those lines; ``[Chorus x2]`` and a line
  ending in ``(x2)`` repeat the section or the line. The expanded lines are then either
  **aligned** to Whisper's timed words (:func:`align_lines`: a monotonic Needleman-Wunsch
  alignment of normalised words, so a chorus sung three times matches three written copies in
  order; lines that match nothing are timed between their neighbours and flagged) or, without
  a transcription, **distributed** over the detected vocals in proportion to their syllables.
"""

from __future__ import annotations

import codecs
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from music2video.errors import InputError
from music2video.lyrics.artifact import LyricLine, LyricWord
from music2video.lyrics.whisper import normalise

LRC_MAX_LINE_S = 10.0  # an LRC line followed by a long instrumental stops showing after this
MIN_LINE_S = 0.2  # lines squeezed into too little time still get this much each
# Slowest singing a line is spread at (held notes included): a long span with few syllables keeps
# its lines at its start instead of stretching them over what may be an instrumental break.
SLOWEST_SYLLABLES_PER_S = 1.0
MAX_LYRICS_BYTES = 2_000_000  # a lyrics sheet is a few kB; a bigger file is the wrong file
# Alignment scores: a matched word earns up to MATCH; leaving a written word unmatched costs
# GAP_LYRIC; skipping a transcribed word (an ad-lib, a repeat the text does not write, a
# hallucination) costs only GAP_TRANSCRIPT.
MATCH = 2.0
MISMATCH = -1.0
GAP_LYRIC = -1.0
GAP_TRANSCRIPT = -0.5
SIMILAR = 0.6  # character-bigram Dice similarity from which two words count as the same word
MIN_LINE_MATCH_SHARE = 0.25  # a line needs this share of its words matched to trust its times

_TIME_TAG = re.compile(r"\[(\d+):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_WORD_TAG = re.compile(r"<(\d+):(\d{1,2}(?:[.:]\d{1,3})?)>")
_META_TAG = re.compile(r"^\[([A-Za-z#]+):(.*)\]$")
_REPEAT_SUFFIX = re.compile(r"\s*[\(\[]?\s*[x×]\s*(\d+)\s*[\)\]]?\s*$", re.I)
_SECTION_WORDS = (
    "verse", "chorus", "pre-chorus", "prechorus", "post-chorus", "bridge", "hook", "intro", "outro", "refrain",
    "interlude", "instrumental", "solo", "break", "breakdown", "drop", "tag", "coda", "repeat", "strophe",
    "estribillo", "coro", "ritornello", "couplet",
)  # fmt: skip
_UNSUNG_SECTIONS = ("instrumental", "solo", "break", "interlude")
_SPACELESS_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")
_VOWELS = re.compile(r"[aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœаеёиоуыэюяαεηιουωάέήίόύώ]+", re.I)


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class UserLyrics:
    kind: str  # "lrc" or "text"
    lines: list[LyricLine]  # LRC: timed; text: empty (see ``texts``)
    texts: list[str]  # text: the expanded lines to align or distribute
    warnings: list[str]


def read_user_lyrics(path: Path, duration_s: float) -> UserLyrics:
    """Read a lyrics file: LRC when most of its non-empty lines start with a time tag.

    Checked before any analysis (:func:`decode_lyrics_text`, then the line count), each failure
    an :class:`InputError` of one line: not text, empty, only headers, or more lines than a song
    of ``duration_s`` seconds holds at ``MIN_LINE_S`` each.
    """
    path = Path(path)
    text = decode_lyrics_text(path)
    if is_lrc(text):
        lines, warnings = parse_lrc(text, duration_s)
        _check_line_count(path, len(lines), duration_s)
        return UserLyrics("lrc", lines, [], warnings)
    texts, warnings = parse_plain(text)
    if not texts:
        raise InputError(f"the lyrics file {path} holds section headers but no lyric lines")
    _check_line_count(path, len(texts), duration_s)
    return UserLyrics("text", [], texts, warnings)


def decode_lyrics_text(path: Path) -> str:
    """The text of a lyrics file: UTF-8 (BOM optional) or UTF-16 with a BOM.

    Refused with one line each: a file over ``MAX_LYRICS_BYTES`` (checked from its size, before
    reading), bytes that are not UTF-8 (a binary file, or a legacy encoding: save it as UTF-8),
    control characters other than tabs and line breaks (a binary file that happens to decode),
    and a file with nothing but white space.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_LYRICS_BYTES:
            raise InputError(
                f"the lyrics file {path} is {size / 1e6:.1f} MB; lyrics are text of a few kB (at most "
                f"{MAX_LYRICS_BYTES // 1_000_000} MB): is it the right file?"
            )
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read the lyrics file {path} ({error.strerror or error})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # the BOM says which byte order; Python's utf-16 codec reads it
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InputError(
            f"the lyrics file {path} is not UTF-8 text (undecodable byte at offset {error.start}); save it as "
            "UTF-8 (or UTF-16 with a byte-order mark)"
        ) from None
    bad = [ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v"]
    if bad:
        raise InputError(
            f"the lyrics file {path} is not text: it holds {len(bad)} control character(s) such as "
            f"U+{ord(bad[0]):04X}; give a plain-text or LRC file"
        )
    if not text.strip():
        raise InputError(f"the lyrics file {path} is empty")
    return text


def _check_line_count(path: Path, count: int, duration_s: float) -> None:
    most = max(1, math.floor(duration_s / MIN_LINE_S))
    if count > most:
        raise InputError(
            f"the lyrics file {path} has {count} lines (repeats expanded), more than a {duration_s:.1f} s song can "
            f"hold at {MIN_LINE_S:g} s a line ({most}); is it the lyrics of this song?"
        )


def is_lrc(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _META_TAG.match(line.strip())]
    tagged = sum(1 for line in lines if _TIME_TAG.match(line))
    return bool(lines) and tagged >= max(1, len(lines) // 2)


def parse_lrc(text: str, duration_s: float) -> tuple[list[LyricLine], list[str]]:
    """Timed lines from LRC ``text``; times clamped to ``[0, duration_s]``. Returns (lines, warnings)."""
    warnings: list[str] = []
    offset_s = 0.0
    entries: list[tuple[float, str]] = []  # (start, text); empty text ends the line before
    file_order: list[float] = []
    untagged = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        meta = _META_TAG.match(line)
        if meta and not _TIME_TAG.match(line):
            if meta.group(1).lower() == "offset":
                try:
                    offset_s = float(meta.group(2).strip()) / 1000.0
                except ValueError:
                    warnings.append(f"lyrics: ignored the LRC offset {meta.group(2).strip()!r}: not milliseconds")
            continue
        stamps = []
        while match := _TIME_TAG.match(line):
            stamps.append(_lrc_seconds(match.group(1), match.group(2)))
            line = line[match.end() :].lstrip()
        if not stamps:
            untagged += 1
            continue
        file_order.append(stamps[0])
        entries.extend((stamp, line) for stamp in stamps)
    if untagged:
        warnings.append(f"lyrics: {untagged} LRC line(s) without a time tag were ignored")
    if any(b < a for a, b in zip(file_order, file_order[1:], strict=False)):
        warnings.append("lyrics: the LRC time tags are not in time order; the lines were sorted by time")
    if offset_s:
        warnings.append(f"lyrics: applied the LRC offset of {offset_s * 1000:+.0f} ms")
    entries = sorted(((max(0.0, t - offset_s), body) for t, body in entries), key=lambda e: e[0])

    # Lines sharing a start time are shown together.
    merged: list[tuple[float, str]] = []
    for start, body in entries:
        if merged and abs(merged[-1][0] - start) < 1e-6 and body and merged[-1][1]:
            merged[-1] = (start, f"{merged[-1][1]} / {body}")
        elif merged and abs(merged[-1][0] - start) < 1e-6 and not merged[-1][1]:
            merged[-1] = (start, body)
        else:
            merged.append((start, body))

    lines: list[LyricLine] = []
    late = 0
    for index, (start, body) in enumerate(merged):
        if not body:
            continue
        if start >= duration_s:
            late += 1
            continue
        following = merged[index + 1][0] if index + 1 < len(merged) else duration_s
        end = min(following, start + LRC_MAX_LINE_S, duration_s)
        end = max(end, min(duration_s, start + MIN_LINE_S))
        words, plain = _lrc_words(body, start, end, offset_s)
        lines.append(LyricLine(start_s=round(start, 3), end_s=round(end, 3), text=plain, words=words, timing="lrc"))
    if late:
        warnings.append(f"lyrics: {late} LRC line(s) start after the song ends ({duration_s:.1f} s) and were dropped")
    return lines, warnings


def _lrc_seconds(minutes: str, seconds: str) -> float:
    return int(minutes) * 60 + float(seconds.replace(":", "."))


def _lrc_words(body: str, start: float, end: float, offset_s: float) -> tuple[list[LyricWord], str]:
    """Words of an LRC line: from enhanced-LRC ``<mm:ss.xx>`` tags when present, else spread by syllables."""
    parts = _WORD_TAG.split(body)
    plain = " ".join(_WORD_TAG.sub(" ", body).split())
    if len(parts) < 4:  # no word tags
        return spread_words(plain, start, end, confidence=None), plain
    timed: list[tuple[float, str]] = []
    if parts[0].strip():
        timed.append((start, parts[0].strip()))
    for k in range(1, len(parts) - 2, 3):
        t = max(0.0, _lrc_seconds(parts[k], parts[k + 1]) - offset_s)
        timed.append((t, parts[k + 2].strip()))
    words: list[LyricWord] = []
    for k, (t, chunk) in enumerate(timed):
        if not chunk:
            continue
        chunk_end = timed[k + 1][0] if k + 1 < len(timed) else end
        words.extend(spread_words(chunk, min(max(t, start), end), min(max(chunk_end, t), end), confidence=None))
    return words, plain


def parse_plain(text: str) -> tuple[list[str], list[str]]:
    """The sung lines of a plain-text lyrics sheet, repeats expanded. Returns (lines, warnings)."""
    warnings: list[str] = []
    sections: dict[str, list[str]] = {}
    out: list[str] = []
    # Parse into (header, count, body lines) blocks; lines before any header form a block too.
    blocks: list[tuple[str | None, int, list[str]]] = [(None, 1, [])]
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        header = _section_header(line)
        if header is not None:
            blocks.append((header[0], header[1], []))
            continue
        count = 1
        repeat = _REPEAT_SUFFIX.search(line)
        if repeat and repeat.start() > 0:
            count, line = max(1, int(repeat.group(1))), line[: repeat.start()].rstrip()
        blocks[-1][2].extend([line] * count)
    for name, count, body in blocks:
        key = _section_key(name) if name else None
        if key and any(word in key for word in _UNSUNG_SECTIONS) and not body:
            continue
        if body:
            if key:
                sections[key] = body
            out.extend(body * count)
        elif key:
            # An empty header repeats the section of that name written before; "Repeat" alone
            # means the chorus. Other empty headers ([Intro], [Outro]) mark unsung parts.
            wanted = key.replace("repeat", "").strip() or "chorus"
            if wanted in sections:
                out.extend(sections[wanted] * count)
            elif key.startswith("repeat"):
                warnings.append(f"lyrics: [{name}] repeats a section that was not written before; ignored")
    return out, warnings


def _section_header(line: str) -> tuple[str, int] | None:
    """``(name, repeat count)`` if the line is a section header, else None."""
    stripped = line.strip()
    bracketed = re.fullmatch(r"[\[\(\{]\s*(.+?)\s*[\]\)\}](?:\s*[x×]\s*(\d+))?", stripped, re.I)
    if bracketed:
        name, count = bracketed.group(1), int(bracketed.group(2) or 1)
        inner = re.search(r"\s*[x×]\s*(\d+)\s*$", name, re.I)
        if inner:
            name, count = name[: inner.start()], int(inner.group(1))
        # Square brackets are headers by convention; parentheses only when they name a section.
        if stripped.startswith("[") or _is_section_name(name):
            return name.strip(), max(1, count)
        return None
    plain = re.fullmatch(r"(repeat\s+\w+|(?:chorus|refrain|hook))\s*:?\s*(?:[x×]\s*(\d+))?", stripped, re.I)
    if plain:
        return plain.group(1), int(plain.group(2) or 1)
    return None


def _is_section_name(name: str) -> bool:
    key = _section_key(name)
    return any(key.startswith(word) or key == word for word in _SECTION_WORDS)


def _section_key(name: str) -> str:
    """'Chorus 2: Artist' -> 'chorus'; 'Repeat Chorus' -> 'repeat chorus'."""
    key = name.split(":")[0].casefold()
    key = re.sub(r"[\d#]+", " ", key)
    return " ".join(key.replace("-", "").split())


# --------------------------------------------------------------------------------------------
# Syllables and spreading


def syllables(text: str) -> int:
    """A rough syllable count: vowel groups per word (Latin, Cyrillic, Greek), one per CJK/Thai
    character, a third of the letters for other scripts; at least 1 per word."""
    total = 0
    for word in text.split():
        spaceless = len(_SPACELESS_SCRIPT.findall(word))
        if spaceless:
            total += spaceless
            continue
        groups = len(_VOWELS.findall(word))
        letters = sum(ch.isalpha() for ch in word)
        total += max(1, groups if groups else math.ceil(letters / 3))
    return max(1, total)


def spread_words(text: str, start: float, end: float, confidence: float | None) -> list[LyricWord]:
    """Words of ``text`` laid over ``[start, end]`` in proportion to their syllables."""
    words = text.split()
    if not words:
        return []
    weights = np.array([syllables(w) for w in words], dtype=float)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [
        LyricWord(text=w, start_s=round(float(a), 3), end_s=round(float(b), 3), confidence=confidence)
        for w, a, b in zip(words, edges[:-1], edges[1:], strict=True)
    ]


def distribute_lines(
    texts: list[str], spans: list[tuple[float, float]], lo: float, hi: float
) -> list[tuple[float, float]]:
    """Times for ``texts`` spread over the vocal ``spans`` inside ``[lo, hi]``, by syllable count.

    The spans are used honestly:

    * every line goes whole into one span, in order, so no line sits in a gap between spans;
    * no span is left empty while lines remain: with at least as many lines as spans every span
      gets one or more lines; with fewer lines, each line gets a span of its own;
    * which lines share a span (or, with fewer lines, which spans are used) is chosen by dynamic
      programming so that each span's singing rate is as close as possible to the song's
      (squared log ratio of the syllables a span gets to those its length holds at that rate);
    * inside a span the lines follow each other in proportion to their syllables, but never
      slower than ``SLOWEST_SYLLABLES_PER_S``: a span the detector stretched over an
      instrumental break does not stretch the line with it.

    Without spans inside ``[lo, hi]`` the lines share ``[lo, hi]`` itself.
    """
    if not texts:
        return []
    if hi - lo < MIN_LINE_S * len(texts):
        hi = lo + MIN_LINE_S * len(texts)
    region = [(max(a, lo), min(b, hi)) for a, b in sorted(spans) if min(b, hi) - max(a, lo) > 0.05]
    slowest = SLOWEST_SYLLABLES_PER_S
    if not region:
        region, slowest = [(lo, hi)], 1e-9  # no voice to follow: the lines fill the whole stretch
    weights = np.array([syllables(t) for t in texts], dtype=float)
    lengths = np.array([b - a for a, b in region])
    groups = _group_lines(weights, lengths)
    times: list[tuple[float, float]] = [(lo, lo)] * len(texts)
    for (a, b), members in zip(region, groups, strict=True):
        if not members:
            continue
        w = weights[members]
        used = min(b - a, max(w.sum() / slowest, MIN_LINE_S * len(members)))
        edges = a + used * np.concatenate([[0.0], np.cumsum(w) / w.sum()])
        for k, line in enumerate(members):
            times[line] = (round(float(edges[k]), 3), round(float(edges[k + 1]), 3))
    return times


def _group_lines(weights: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    """Consecutive lines per span (see :func:`distribute_lines`): ``weights`` are syllables per
    line, ``lengths`` seconds per span. Returns one list of line indices per span."""
    n, m = len(weights), len(lengths)
    rate = weights.sum() / max(lengths.sum(), 1e-6)  # the song's syllables per second of voice
    held = np.maximum(lengths * rate, 1e-6)  # syllables each span holds at that rate
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    cost = np.full((n + 1, m + 1), np.inf)
    back = np.zeros((n + 1, m + 1), dtype=np.int64)  # first line of span j-1's group (== i: empty span)
    cost[0, 0] = 0.0
    if n <= m:
        # One line per used span; the spans to leave empty are the ones that fit worst.
        cost[0, :] = 0.0
        for i in range(1, n + 1):
            for j in range(i, m + 1):
                skip = cost[i, j - 1]
                take = cost[i - 1, j - 1] + math.log(weights[i - 1] / held[j - 1]) ** 2
                cost[i, j], back[i, j] = (take, i - 1) if take <= skip else (skip, i)
    else:
        for j in range(1, m + 1):
            # Span j-1 takes lines k..i-1 for some k < i; every span takes at least one line.
            for i in range(j, n - (m - j) + 1):
                k = np.arange(j - 1, i)
                total = cost[k, j - 1] + np.log((cumulative[i] - cumulative[k]) / held[j - 1]) ** 2
                best = int(np.argmin(total))
                cost[i, j], back[i, j] = total[best], k[best]
    groups: list[list[int]] = [[] for _ in range(m)]
    i = n
    for j in range(m, 0, -1):
        k = int(back[i, j])
        groups[j - 1] = list(range(k, i))
        i = k
    return groups


def distributed_lines(texts: list[str], spans: list[tuple[float, float]], duration_s: float) -> list[LyricLine]:
    """Lines without any transcription: spread over the vocal spans (the whole song if none)."""
    times = distribute_lines(texts, spans, 0.0, duration_s)
    return [
        LyricLine(
            start_s=a, end_s=b, text=t, words=spread_words(t, a, b, None), timing="distributed", flags=["low_confidence"]
        )
        for t, (a, b) in zip(texts, times, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# Alignment to a transcription


def align_lines(
    texts: list[str], heard: list[LyricWord], spans: list[tuple[float, float]], duration_s: float
) -> tuple[list[LyricLine], list[str]]:
    """Time the user's ``texts`` with Whisper's ``heard`` words (song order). Returns (lines, warnings).

    A global alignment (Needleman-Wunsch) of the written words against the heard words, free
    at both ends of the transcription; each written word takes the time of the heard word it is
    aligned with. A line with fewer than ``MIN_LINE_MATCH_SHARE`` of its words matched is timed
    between its neighbours instead (``interpolated``, confidence 0, flagged).
    """
    written: list[tuple[int, str, str]] = []  # (line index, word as written, normalised key)
    for index, text in enumerate(texts):
        for word in text.split():
            for key in _word_keys(word):
                written.append((index, word, key))
    if not heard or not written:
        lines = distributed_lines(texts, spans, duration_s)
        return lines, ["lyrics: no words were heard to align the lyrics to; they were spread over the vocals by syllables"]

    heard_keys = [" ".join(_word_keys(w.text)) for w in heard]
    pairs = _needleman_wunsch([k for _, _, k in written], heard_keys)

    # Per line: its written words with the heard word each was aligned to (if any).
    per_line: dict[int, list[tuple[str, int | None, float]]] = {i: [] for i in range(len(texts))}
    for w_index, (line, word, _) in enumerate(written):
        h_index, sim = pairs.get(w_index, (None, 0.0))
        # A written word split into several keys (CJK characters) is one entry per key.
        per_line[line].append((word, h_index, sim))

    lines: list[LyricLine | None] = []
    for index, text in enumerate(texts):
        entries = per_line[index]
        matched = [(h, sim) for _, h, sim in entries if h is not None and sim >= SIMILAR]
        if len(matched) < max(1, math.ceil(MIN_LINE_MATCH_SHARE * len(entries))):
            lines.append(None)
            continue
        lines.append(_aligned_line(text, entries, heard))

    warnings: list[str] = []
    unmatched = [i for i, line in enumerate(lines) if line is None]
    if unmatched:
        warnings.append(
            f"lyrics: {len(unmatched)} of {len(texts)} line(s) matched nothing that was heard and were timed "
            "between their neighbours (low confidence)"
        )
    # Fill runs of unmatched lines between the matched lines around them.
    k = 0
    while k < len(lines):
        if lines[k] is not None:
            k += 1
            continue
        run_end = k
        while run_end < len(lines) and lines[run_end] is None:
            run_end += 1
        previous = lines[k - 1] if k > 0 else None
        following = lines[run_end] if run_end < len(lines) else None
        lo = previous.end_s if previous is not None else (spans[0][0] if spans else 0.0)
        hi = following.start_s if following is not None else (spans[-1][1] if spans else duration_s)
        lo, hi = min(lo, duration_s), min(max(hi, lo), duration_s)
        times = distribute_lines(texts[k:run_end], spans, lo, hi)
        for offset, (a, b) in enumerate(times):
            text = texts[k + offset]
            lines[k + offset] = LyricLine(
                start_s=a, end_s=min(b, duration_s), text=text, words=spread_words(text, a, min(b, duration_s), 0.0),
                confidence=0.0, timing="interpolated", flags=["low_confidence"],
            )  # fmt: skip
        k = run_end
    return _tidy([line for line in lines if line is not None], duration_s), warnings


def _aligned_line(text: str, entries: list[tuple[str, int | None, float]], heard: list[LyricWord]) -> LyricLine:
    """A line whose words are (partly) aligned: aligned words take the heard times, the others are
    spread between their timed neighbours."""
    # Collapse per-key entries back to written words (CJK words have one entry per character).
    words: list[tuple[str, list[tuple[int, float]]]] = []
    for word, h, sim in entries:
        if not words or words[-1][0] != word or not _SPACELESS_SCRIPT.search(word):
            words.append((word, []))
        if h is not None:
            words[-1][1].append((h, sim))
    timed: list[tuple[float, float, float] | None] = []
    for _, hits in words:
        if not hits:
            timed.append(None)
            continue
        start = heard[hits[0][0]].start_s
        end = heard[hits[-1][0]].end_s
        good = [sim * (heard[h].confidence if heard[h].confidence is not None else 1.0) for h, sim in hits if sim >= SIMILAR]
        timed.append((start, max(end, start), float(np.mean(good)) if good else 0.0))
    known = [i for i, t in enumerate(timed) if t is not None]
    result: list[LyricWord] = []
    for i, (word, _) in enumerate(words):
        t = timed[i]
        if t is not None:
            result.append(LyricWord(text=word, start_s=round(t[0], 3), end_s=round(t[1], 3), confidence=round(t[2], 4)))
            continue
        before = max((j for j in known if j < i), default=None)
        after = min((j for j in known if j > i), default=None)
        lo = timed[before][1] if before is not None else timed[after][0] - 0.3  # type: ignore[index]
        hi = timed[after][0] if after is not None else timed[before][1] + 0.3  # type: ignore[index]
        # Untimed words between the same neighbours share that gap evenly.
        group = [
            j
            for j in range(len(words))
            if timed[j] is None and (before is None or j > before) and (after is None or j < after)
        ]
        slot = (max(hi, lo) - lo) / len(group)
        a = lo + slot * group.index(i)
        result.append(LyricWord(text=word, start_s=round(max(0.0, a), 3), end_s=round(max(0.0, a + slot), 3), confidence=0.0))
    confidences = [w.confidence or 0.0 for w in result]
    return LyricLine(
        start_s=min(w.start_s for w in result),
        end_s=max(w.end_s for w in result),
        text=text,
        words=result,
        confidence=round(float(np.mean(confidences)), 4),
        timing="aligned",
        flags=["low_confidence"] if np.mean(confidences) < 0.3 else [],
    )


def _tidy(lines: list[LyricLine], duration_s: float) -> list[LyricLine]:
    """Lines in order, inside the song, none ending after the next one starts."""
    lines = sorted(lines, key=lambda line: line.start_s)
    for k, line in enumerate(lines):
        line.start_s = round(min(max(0.0, line.start_s), duration_s), 3)
        limit = lines[k + 1].start_s if k + 1 < len(lines) else duration_s
        line.end_s = round(min(max(line.end_s, line.start_s), max(limit, line.start_s), duration_s), 3)
        for word in line.words:
            word.start_s = round(min(max(word.start_s, line.start_s), line.end_s), 3)
            word.end_s = round(min(max(word.end_s, word.start_s), line.end_s), 3)
    return lines


def _word_keys(word: str) -> list[str]:
    """Normalised comparison keys of a written or heard word: one per word, or one per character
    in scripts written without spaces."""
    key = normalise(word).replace(" ", "")
    if not key:
        return []
    if _SPACELESS_SCRIPT.search(key):
        return list(key)
    return [key]


def _similarity(a: str, b: str, cache: dict[tuple[str, str], float]) -> float:
    """1 for equal words, else the Dice coefficient of their character bigrams (0..1)."""
    if a == b:
        return 1.0
    if (a, b) in cache:
        return cache[(a, b)]
    grams_a = {f"^{a}$"[i : i + 2] for i in range(len(a) + 1)}
    grams_b = {f"^{b}$"[i : i + 2] for i in range(len(b) + 1)}
    value = 2 * len(grams_a & grams_b) / (len(grams_a) + len(grams_b))
    cache[(a, b)] = value
    return value


def _needleman_wunsch(written: list[str], heard: list[str]) -> dict[int, tuple[int, float]]:
    """Global alignment of ``written`` to ``heard`` words, free end gaps on ``heard``.

    Returns written index -> (heard index, similarity) for every aligned pair (matches and
    substitutions). Rows are vectorised with numpy: the best "skip heard words" path into cell
    ``j`` is a running maximum, so the cost is O(len(written) * len(heard)) array operations.
    """
    n, m = len(written), len(heard)
    cache: dict[tuple[str, str], float] = {}
    unique_w, w_index = np.unique(np.array(written, dtype=object), return_inverse=True)
    unique_h, h_index = np.unique(np.array(heard, dtype=object), return_inverse=True)
    table = np.array([[_similarity(a, b, cache) for b in unique_h] for a in unique_w])
    similarity = table[w_index][:, h_index]  # (n, m)
    gain = np.where(similarity >= SIMILAR, MATCH * similarity, MISMATCH)

    score = np.zeros((n + 1, m + 1))
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 up (written word unmatched), 2 left
    score[1:, 0] = GAP_LYRIC * np.arange(1, n + 1)
    move[1:, 0] = 1
    move[0, 1:] = 2  # leading heard words are free (score stays 0)
    steps = np.arange(m + 1) * GAP_TRANSCRIPT
    for i in range(1, n + 1):
        diagonal = np.full(m + 1, -np.inf)
        diagonal[1:] = score[i - 1, :-1] + gain[i - 1]
        up = score[i - 1] + GAP_LYRIC
        base = np.maximum(diagonal, up)
        best = steps + np.maximum.accumulate(base - steps)  # best of base[k] + GAP_TRANSCRIPT * (j - k), k <= j
        score[i] = best
        move[i] = np.where(best > base + 1e-9, 2, np.where(diagonal >= up, 0, 1))
    i, j = n, int(np.argmax(score[n]))  # trailing heard words are free
    pairs: dict[int, tuple[int, float]] = {}
    while i > 0:
        step = move[i, j] if j > 0 else 1
        if step == 0:
            pairs[i - 1] = (j - 1, float(similarity[i - 1, j - 1]))
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return pairs
