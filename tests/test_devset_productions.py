"""The beat truth the dev set reads from LMMS projects and Hydrogen songs
(benchmarks/devset/productions.py), on tiny projects written here."""

from __future__ import annotations

import struct
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "devset"))
import productions  # noqa: E402

LMMS_SONG = """<?xml version="1.0"?>
<lmms-project version="1.0" creatorversion="1.2.2" type="song">
 <head bpm="{bpm}" timesig_numerator="{numerator}" timesig_denominator="4" mastervol="100" masterpitch="0"/>
 <song>
  <trackcontainer type="song">
   <track type="0" name="lead" muted="0">
    <instrumenttrack/>
    <pattern pos="{first_pos}" steps="16" muted="0" type="1" name="a">
     <note pos="0" len="48" key="57" vol="100" pan="0"/>
     <note pos="96" len="48" key="60" vol="100" pan="0"/>
    </pattern>
   </track>
   <track type="1" name="beat" muted="0">
    <bbtrack><trackcontainer type="bbtrackcontainer"/></bbtrack>
    <bbtco pos="{bb_pos}" len="{bb_len}" name="" muted="0"/>
   </track>
   <track type="0" name="muted" muted="1">
    <pattern pos="50000" steps="16" muted="0" type="1" name="b"><note pos="0" len="48" key="57"/></pattern>
   </track>
   {automation}
  </trackcontainer>
 </song>
</lmms-project>
"""


def lmms_project(tmp_path: Path, bpm=120, numerator=4, first_pos=0, bb_pos=192, bb_len=576, automation="") -> Path:
    """An .mmpz file as LMMS writes it (Qt's qCompress: a 4-byte big-endian length, then zlib)."""
    xml = LMMS_SONG.format(bpm=bpm, numerator=numerator, first_pos=first_pos, bb_pos=bb_pos, bb_len=bb_len, automation=automation)
    path = tmp_path / "song.mmpz"
    path.write_bytes(struct.pack(">I", len(xml)) + zlib.compress(xml.encode()))
    return path


def test_lmms_beats_come_from_the_tempo_and_the_last_clip(tmp_path):
    timeline = productions.lmms_timeline(productions.read_lmms(lmms_project(tmp_path, bpm=120, numerator=3, bb_pos=144, bb_len=432)))
    # 3/4 at 120 bpm: a beat every 0.5 s, a bar every 1.5 s; the beat clip ends at tick 576 =
    # 12 quarters = 6 s (the muted track's clip at tick 50000 is not heard and does not count).
    assert timeline.beats_per_bar == 3
    assert timeline.beats_s() == pytest.approx([0.5 * k for k in range(12)])
    assert timeline.downbeats_s() == pytest.approx([0.0, 1.5, 3.0, 4.5])


def test_lmms_silent_first_bars_carry_no_beats_and_long_songs_are_cut_on_a_bar_line(tmp_path):
    root = productions.read_lmms(lmms_project(tmp_path, bpm=100, first_pos=400, bb_pos=384, bb_len=192 * 40))
    timeline = productions.lmms_timeline(root, max_s=10.0)
    # The first sound is at tick 384 (bar 3): the beats start there, 2 bars * 2.4 s = 4.8 s in;
    # four 2.4 s bars fit in 10 s, so the song is cut at bar 7 (tick 1152 + 384).
    assert timeline.beats_s()[0] == pytest.approx(4.8)
    assert timeline.cut and timeline.end_ticks == 384 + 4 * 192
    assert len(timeline.beats_s()) == 16
    shortened = productions.lmms_shortened(root, timeline.end_ticks)
    assert [c.get("pos") for _, c in productions._lmms_clips(shortened)] == ["400", "384"]


def test_lmms_tempo_automation_and_odd_meters_are_refused(tmp_path):
    automated = """<track type="5" name="tempo"><automationtrack/>
     <automationpattern pos="0" len="192" name="bpm"><time pos="0" value="120"/><object id="777"/></automationpattern></track>"""
    project = lmms_project(tmp_path, automation=automated)
    xml = zlib.decompress(project.read_bytes()[4:]).decode().replace('bpm="120" ', "").replace("<head ", '<head bpm="120" ')
    root = ET.fromstring(xml)
    ET.SubElement(root.find("head"), "bpm", value="120", id="777")
    with pytest.raises(productions.Unsupported, match="bpm is automated"):
        productions.lmms_timeline(root)
    with pytest.raises(productions.Unsupported, match="8/4"):
        productions.lmms_timeline(productions.read_lmms(lmms_project(tmp_path, numerator=8)))


def hydrogen_song(sizes=(192, 192, 192), sequence=("a", "b", "a"), bpm=100, markers="") -> ET.Element:
    patterns = "".join(
        f"<pattern><name>{name}</name><size>{size}</size><denominator>4</denominator><noteList/></pattern>"
        for name, size in zip("abc", sizes)
    )
    groups = "".join(f"<group><patternID>{name}</patternID></group>" for name in sequence)
    return ET.fromstring(
        f"<song><bpm>{bpm}</bpm><mode>song</mode><patternList>{patterns}</patternList>"
        f"<patternSequence>{groups}</patternSequence><BPMTimeLine>{markers}</BPMTimeLine></song>"
    )


def test_hydrogen_beats_follow_the_pattern_sequence():
    timeline = productions.hydrogen_timeline(hydrogen_song(sizes=(144, 144), sequence=("a", "b", "a", "a"), bpm=90))
    # Four 3/4 bars (144 ticks = 3 quarters) at 90 bpm: 12 beats, 2/3 s apart.
    assert timeline.beats_per_bar == 3
    assert timeline.beats_s() == pytest.approx([k * 60 / 90 for k in range(12)])
    assert timeline.downbeats_s() == pytest.approx([k * 2.0 for k in range(4)])
    cut = productions.hydrogen_timeline(hydrogen_song(sizes=(144, 144), sequence=("a", "b", "a", "a"), bpm=90), max_s=5.0)
    assert cut.cut and cut.end_ticks == 2 * 144
    shortened = productions.hydrogen_shortened(hydrogen_song(sequence=("a", "b", "a", "a")), 2 * 192)
    assert len(shortened.find("patternSequence").findall("group")) == 2


def test_hydrogen_tempo_markers_and_meter_changes_are_refused():
    with pytest.raises(productions.Unsupported, match="tempo markers"):
        productions.hydrogen_timeline(hydrogen_song(markers="<newBPM><BAR>2</BAR><BPM>140</BPM></newBPM>"))
    with pytest.raises(productions.Unsupported, match="several lengths"):
        productions.hydrogen_timeline(hydrogen_song(sizes=(192, 144)))


@pytest.mark.skipif(
    productions.missing_tools("lmms") != [],
    reason="rendering an LMMS demo needs the Debian packages lmms and lmms-common: `make devset-tools`",
)
def test_an_lmms_render_puts_its_onsets_on_the_truth_beats(tmp_path):
    """The whole chain on a real 14 s demo: LMMS renders it with no pre-roll or latency, so its
    drum onsets sit within a few ms of beat k at k * 60 / bpm; a truth 1 % fast would not fit."""
    import check_truth
    import soundfile

    piece = {"id": "coolsnip", "source": "lmms", "project": "shorties/Greshz-CoolSnip.mmpz"}
    stereo_path, timeline = productions.render_piece(piece, tmp_path, max_s=None)
    samples, rate = soundfile.read(stereo_path, dtype="float32")
    beats_s = np.array(timeline.beats_s())
    assert timeline.bpm == 140 and len(beats_s) == 28
    lag_s, contrast = check_truth.beat_phase(samples.mean(axis=1), rate, beats_s)
    assert abs(lag_s - check_truth.method_bias_s()) <= 0.005
    assert contrast > 3.0
    _, contrast_fast = check_truth.beat_phase(samples.mean(axis=1), rate, beats_s / 1.01)
    assert contrast_fast < contrast / 2
