"""Real productions for the beat-grid dev set: LMMS demo projects and Hydrogen demo songs.

Both programs keep a constant tempo unless the project automates it, and place every note on
a tick grid of 48 ticks per quarter note, so the beats and bar lines are exact: beat ``k`` of a
project at ``bpm`` sounds at ``k * 60 / bpm`` seconds (checked on the rendered audio by
``check_truth.py``: the onsets sit within a few ms of those beats). A project whose tempo or time signature is
automated, or whose meter is not ``n/4``, raises ``Unsupported`` instead of getting a truth we
cannot model.

* LMMS (Debian ``lmms`` + ``lmms-common``, demo projects in ``/usr/share/lmms/projects``):
  ``.mmpz`` is Qt's ``qCompress`` (a 4-byte big-endian length, then zlib) of the ``.mmp`` XML.
  Tempo and time signature sit on ``<head bpm timesig_numerator timesig_denominator>``; the
  song's clips (``pattern``, ``bbtco``, ``sampletco``) sit at ``pos`` ticks, 192 ticks per
  4/4 bar. Rendered with ``lmms render`` (offline, faster than real time).
* Hydrogen (Debian ``hydrogen`` + ``hydrogen-data``, songs in
  ``/usr/share/hydrogen/data/demo_songs``): ``<bpm>``, patterns of ``<size>`` ticks (48 per
  quarter; ``<denominator>`` is the written beat), and ``<patternSequence>`` columns played in
  order, each as long as its longest pattern. ``<BPMTimeLine>`` markers change the tempo: such
  songs are refused. Rendered with ``h2cli`` (in real time: a 40 s song takes 40 s of wall clock).

A piece that goes on more than ``max_s`` after its first sounding bar is cut at the last bar
line before that: the project is shortened before rendering (clips starting after the cut are
dropped, so the render is short too) and the audio is cut at that bar line.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_QUARTER = 48
"""LMMS's and Hydrogen's tick: both count 48 ticks per quarter note (192 per 4/4 bar)."""
LMMS_PROJECTS = Path("/usr/share/lmms/projects")
HYDROGEN_SONGS = Path("/usr/share/hydrogen/data/demo_songs")
LMMS_CLIPS = ("pattern", "bbtco", "sampletco")
LMMS_AUTOMATED_HEAD = ("bpm", "timesig_numerator", "timesig_denominator")
"""Song-wide settings that move the beats when automated (master volume and pitch do not)."""
RENDER_TIMEOUT_S = 600


class Unsupported(ValueError):
    """The project's beats cannot be modelled exactly (tempo automation, an odd meter...)."""


@dataclass
class Timeline:
    """The truth of a production, in its own ticks (48 per quarter note)."""

    bpm: float
    """Quarter notes per minute (both programs count the tempo in quarters)."""
    beats_per_bar: int
    beat_ticks: int
    start_ticks: int
    """The bar line where the music starts (bars before the first sounding clip are skipped)."""
    end_ticks: int
    """Where the last clip ends, or the cut."""
    cut: bool
    """Whether the song was cut at ``end_ticks`` (the audio is then cut there too)."""

    def seconds(self, ticks: float) -> float:
        return ticks * 60.0 / (self.bpm * TICKS_PER_QUARTER)

    def beats_s(self) -> list[float]:
        return [self.seconds(t) for t in range(self.start_ticks, self.end_ticks, self.beat_ticks)]

    def downbeats_s(self) -> list[float]:
        return [self.seconds(t) for t in range(self.start_ticks, self.end_ticks, self.beat_ticks * self.beats_per_bar)]

    @property
    def beat_bpm(self) -> float:
        return self.bpm * TICKS_PER_QUARTER / self.beat_ticks


def _meter(numerator: int, denominator: int) -> tuple[int, int]:
    """(beats per bar, ticks per beat) of an ``n/4`` meter; other meters are refused."""
    if denominator != 4 or not 2 <= numerator <= 7:
        raise Unsupported(f"time signature {numerator}/{denominator} is not modelled (n/4, n from 2 to 7)")
    return numerator, TICKS_PER_QUARTER


def _cut_ticks(start: int, end: int, bar_ticks: int, bpm: float, max_s: float | None) -> tuple[int, bool]:
    if max_s is None:
        return end, False
    bars = math.floor(max_s * bpm * TICKS_PER_QUARTER / 60.0 / bar_ticks)
    cut = start + bars * bar_ticks
    return (cut, True) if cut < end else (end, False)


# ------------------------------------------------------------------------------------------
# LMMS


def read_lmms(path: Path) -> ET.Element:
    data = path.read_bytes()
    if path.suffix == ".mmpz":
        data = zlib.decompress(data[4:])  # qCompress: 4-byte length, then a zlib stream
    return ET.fromstring(data)


def _lmms_clips(root: ET.Element):
    """(track, clip) of every clip placed on the song's own tracks (not inside beat patterns)."""
    container = root.find("song/trackcontainer")
    if container is None:
        raise Unsupported("no song track container")
    for track in container.findall("track"):
        for clip in track:
            if clip.tag in LMMS_CLIPS:
                yield track, clip


def _lmms_clip_span(clip: ET.Element) -> tuple[int, int] | None:
    """(start, end) ticks of a clip, or None when it holds nothing to hear."""
    start = int(clip.get("pos", 0))
    if clip.tag == "pattern":
        notes = clip.findall("note")
        if not notes:
            return None
        # Step notes of a beat pattern have a negative length (one-shot): they end where they start.
        return start + min(int(n.get("pos", 0)) for n in notes), start + max(int(n.get("pos", 0)) + max(int(n.get("len", 0)), 0) for n in notes)
    return start, start + int(clip.get("len", 0))


def lmms_timeline(root: ET.Element, max_s: float | None = None) -> Timeline:
    """Beats of an LMMS project (see the module's docstring); raises ``Unsupported``."""
    head = root.find("head")
    if head is None:
        raise Unsupported("no <head> element")
    automated = {o.get("id") for pattern in root.iter("automationpattern") for o in pattern.findall("object")}
    settings = {**head.attrib, **{e.tag: e.get("value") for e in head}}
    for name in LMMS_AUTOMATED_HEAD:
        element = head.find(name)
        if element is not None and (element.get("id") in automated or element.find("connection") is not None):
            raise Unsupported(f"the song's {name} is automated or follows a controller")
    bpm = float(settings["bpm"])
    beats_per_bar, beat_ticks = _meter(int(settings.get("timesig_numerator", 4)), int(settings.get("timesig_denominator", 4)))
    bar_ticks = beats_per_bar * beat_ticks
    spans = []
    for track, clip in _lmms_clips(root):
        if track.get("muted") == "1" or clip.get("muted") == "1":
            continue
        span = _lmms_clip_span(clip)
        if span is not None:
            spans.append(span)
    if not spans:
        raise Unsupported("no clip to hear")
    start = min(s for s, _ in spans) // bar_ticks * bar_ticks
    end, cut = _cut_ticks(start, max(e for _, e in spans), bar_ticks, bpm, max_s)
    return Timeline(bpm, beats_per_bar, beat_ticks, start, end, cut)


def lmms_shortened(root: ET.Element, end_ticks: int) -> ET.Element:
    """A copy of the project without the song's clips that start at or after ``end_ticks``."""
    root = copy.deepcopy(root)
    container = root.find("song/trackcontainer")
    for track in container.findall("track"):
        for clip in list(track):
            if clip.tag in LMMS_CLIPS + ("automationpattern",) and int(clip.get("pos", 0)) >= end_ticks:
                track.remove(clip)
    return root


LMMS_RENDER_ATTEMPTS = 3
"""LMMS 1.2's headless render now and then dies partway on a loaded machine (seen once in CI,
at 43 %, on a 14 s demo that renders every time on an idle one): each render is tried again."""


def render_lmms(root: ET.Element, stereo_path: Path) -> None:
    project = stereo_path.with_suffix(".mmp")
    ET.ElementTree(root).write(project, encoding="utf-8", xml_declaration=True)
    command = ["lmms"] + (["--allowroot"] if os.geteuid() == 0 else []) + [
        "render", str(project), "-o", str(stereo_path), "-f", "wav", "-s", "44100",
    ]  # fmt: skip
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}  # no display needed
    errors = []
    for _ in range(LMMS_RENDER_ATTEMPTS):
        stereo_path.unlink(missing_ok=True)
        result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=RENDER_TIMEOUT_S)
        if result.returncode == 0 and stereo_path.exists():
            return
        errors.append(f"exit {result.returncode}: {result.stderr[-300:].strip()}")
    raise RuntimeError(f"lmms render failed {LMMS_RENDER_ATTEMPTS} times: " + " | ".join(errors))


# ------------------------------------------------------------------------------------------
# Hydrogen


def hydrogen_timeline(root: ET.Element, max_s: float | None = None) -> Timeline:
    """Beats of a Hydrogen song (see the module's docstring); raises ``Unsupported``."""
    timeline = root.find("BPMTimeLine")
    if timeline is not None and len(timeline):
        raise Unsupported("the song has tempo markers (BPMTimeLine)")
    if (root.findtext("mode") or "song") != "song":
        raise Unsupported("the song is saved in pattern mode")
    bpm = float(root.findtext("bpm"))
    patterns = {}
    for pattern in root.find("patternList").findall("pattern"):
        size = int(pattern.findtext("size"))
        patterns[pattern.findtext("name")] = (size, int(pattern.findtext("denominator") or 4))
    columns = [[p.text for p in group.findall("patternID")] for group in root.find("patternSequence").findall("group")]
    if not columns or any(not column for column in columns):
        raise Unsupported("an empty column in the pattern sequence")
    sizes = [max(patterns[name][0] for name in column) for column in columns]
    denominators = {patterns[name][1] for column in columns for name in column}
    if len(set(sizes)) != 1 or len(denominators) != 1:
        raise Unsupported(f"bars of several lengths ({sorted(set(sizes))} ticks): the meter changes")
    beat_ticks = 4 * TICKS_PER_QUARTER // denominators.pop()
    if sizes[0] % beat_ticks:
        raise Unsupported(f"a bar of {sizes[0]} ticks is not a whole number of beats")
    beats_per_bar, _ = _meter(sizes[0] // beat_ticks, 4 * TICKS_PER_QUARTER // beat_ticks)
    end, cut = _cut_ticks(0, sum(sizes), sizes[0], bpm, max_s)
    return Timeline(bpm, beats_per_bar, beat_ticks, 0, end, cut)


def hydrogen_shortened(root: ET.Element, end_ticks: int) -> ET.Element:
    """A copy of the song whose pattern sequence stops at ``end_ticks`` (a bar line)."""
    root = copy.deepcopy(root)
    sequence = root.find("patternSequence")
    sizes = {p.findtext("name"): int(p.findtext("size")) for p in root.find("patternList").findall("pattern")}
    position = 0
    for group in list(sequence.findall("group")):
        if position >= end_ticks:
            sequence.remove(group)
        else:
            position += max(sizes[p.text] for p in group.findall("patternID"))
    return root


def render_hydrogen(root: ET.Element, stereo_path: Path) -> None:
    song = stereo_path.with_suffix(".h2song")
    ET.ElementTree(root).write(song, encoding="utf-8", xml_declaration=True)
    command = ["h2cli", "-s", str(song), "-o", str(stereo_path), "-r", "44100", "-b", "16"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
    if result.returncode != 0 or not stereo_path.exists():
        raise RuntimeError(f"h2cli failed: {result.stderr[-500:]}")


# ------------------------------------------------------------------------------------------
# One piece


SOURCES = {
    "lmms": (LMMS_PROJECTS, read_lmms, lmms_timeline, lmms_shortened, render_lmms, "lmms"),
    "hydrogen": (HYDROGEN_SONGS, lambda path: ET.parse(path).getroot(), hydrogen_timeline, hydrogen_shortened, render_hydrogen, "h2cli"),
}


def missing_tools(source: str) -> list[str]:
    folder, *_, program = SOURCES[source]
    missing = [program] if shutil.which(program) is None else []
    if not folder.is_dir():
        missing.append({"lmms": "lmms-common", "hydrogen": "hydrogen-data"}[source])
    return missing


def render_piece(piece: dict, workdir: Path, max_s: float | None) -> tuple[Path, Timeline]:
    """Render a manifest piece (``source`` lmms or hydrogen, ``project`` relative to the demo
    folder) to a stereo WAV in ``workdir``; returns its path and the truth's timeline. The
    entry's ``tempo_bpm`` and ``beats_per_bar``, when given, must be the project's."""
    folder, read, timeline_of, shortened, render, _ = SOURCES[piece["source"]]
    root = read(folder / piece["project"])
    timeline = timeline_of(root, max_s)
    if "tempo_bpm" in piece and (timeline.beats_per_bar != piece["beats_per_bar"] or abs(timeline.beat_bpm - piece["tempo_bpm"]) > 1e-6):
        raise RuntimeError(f"{piece['project']} says {timeline.beat_bpm:g} bpm, {timeline.beats_per_bar} beats a bar; the manifest disagrees")
    if timeline.cut:
        root = shortened(root, timeline.end_ticks)
    stereo_path = workdir / f"{piece['id']}.stereo.wav"
    render(root, stereo_path)
    return stereo_path, timeline
