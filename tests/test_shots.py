"""Shots stage: cuts on the music, lengths within the renderer's bounds, the song tiled exactly."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from music2video.artifacts import Analysis, Section, ShotPlan
from music2video.settings import ShotSettings
from music2video.shots import plan_shots

TIME_TOLERANCE_S = 1e-6


def _analysis(
    duration_s: float,
    tempo_bpm: float,
    section_bars: list[int],
    energies: list[float] | None = None,
    beats_per_bar: int = 4,
    first_beat_s: float = 0.0,
) -> Analysis:
    """A steady-tempo analysis whose sections are whole bars (the last one runs to the end)."""
    beat_s = 60.0 / tempo_bpm
    beats = [round(t, 4) for t in np.arange(first_beat_s, duration_s - 1e-9, beat_s)]
    downbeats = beats[::beats_per_bar]
    energies = energies or [0.5] * len(section_bars)
    sections, bar = [], 0
    for index, (bars, energy) in enumerate(zip(section_bars, energies)):
        start = 0.0 if index == 0 else downbeats[bar]
        bar += bars
        end = duration_s if index == len(section_bars) - 1 else downbeats[bar]
        sections.append(Section(index=index, start_s=start, end_s=end, label="ABCDEFGH"[index], role="verse", energy=energy))
    curve_samples = int(np.ceil(duration_s * 10))
    return Analysis(
        duration_s=duration_s,
        tempo_bpm=tempo_bpm,
        beats_per_bar=beats_per_bar,
        beats_s=beats,
        downbeats_s=downbeats,
        sections=sections,
        curve_rate_hz=10.0,
        energy=[0.5] * curve_samples,
        brightness=[0.5] * curve_samples,
        onset_strength=[0.5] * curve_samples,
    )


def _assert_valid_plan(plan: ShotPlan, analysis: Analysis, settings: ShotSettings) -> None:
    """The promises every plan keeps: exact tiling, ids, section membership, bounds, cut kinds."""
    shots = plan.shots
    assert plan.duration_s == analysis.duration_s
    assert shots[0].start_s == 0.0 and shots[-1].end_s == analysis.duration_s
    for previous, shot in zip(shots, shots[1:]):
        assert shot.start_s == previous.end_s
    assert [s.index for s in shots] == list(range(len(shots)))
    assert [s.id for s in shots] == [f"shot-{i:03d}" for i in range(1, len(shots) + 1)]
    assert shots[0].cut == "start"

    beats = set(analysis.beats_s)
    downbeats = set(analysis.downbeats_s)
    section_starts = {s.start_s for s in analysis.sections[1:]}
    for shot in shots:
        section = analysis.sections[shot.section_index]
        assert section.start_s - TIME_TOLERANCE_S <= shot.start_s and shot.end_s <= section.end_s + TIME_TOLERANCE_S
        if section.duration_s >= settings.min_shot_s and not plan.warnings:
            assert shot.duration_s >= settings.min_shot_s - TIME_TOLERANCE_S, shot
        # What the last shot holds through after the music stops does not count.
        held_end_s = shot.end_s if plan.ending_s is None else min(shot.end_s, max(shot.start_s, plan.ending_s))
        assert held_end_s - shot.start_s <= settings.max_shot_s + TIME_TOLERANCE_S or plan.warnings, shot
        assert plan.ending_s is None or shot.start_s <= plan.ending_s + TIME_TOLERANCE_S, "a cut in the ending"
        if shot.index == 0:
            continue
        # Every cut sits on what it claims to sit on.
        if shot.cut == "section":
            assert shot.start_s in section_starts
        elif shot.cut == "downbeat":
            assert shot.start_s in downbeats
        elif shot.cut == "beat":
            assert shot.start_s in beats
        else:
            assert shot.cut == "grid"
    # A cut at every section boundary.
    assert section_starts <= {s.start_s for s in shots}


# --------------------------------------------------------------------------------------------
# The demo song


def test_demo_song_shots_follow_the_music(demo_analysis):
    settings = ShotSettings()
    plan = plan_shots(demo_analysis, settings)

    _assert_valid_plan(plan, demo_analysis, settings)
    assert plan.warnings == []
    inner_cuts = [s for s in plan.shots[1:] if s.cut != "section"]
    on_downbeats = [s for s in inner_cuts if s.cut == "downbeat"]
    assert len(on_downbeats) >= 0.7 * len(inner_cuts)
    assert all(s.cut in ("downbeat", "beat") for s in inner_cuts)  # the demo song has beats everywhere


def test_intense_sections_get_shorter_shots_than_calm_ones(demo_analysis):
    plan = plan_shots(demo_analysis, ShotSettings())

    def median_length(role):
        return statistics.median(
            shot.duration_s for shot in plan.shots if demo_analysis.sections[shot.section_index].role == role
        )

    assert median_length("chorus") < median_length("verse")
    assert median_length("chorus") < median_length("intro")
    # With the default settings: one bar (2 s) in the loudest section, two (4 s) in the calmest.
    assert median_length("chorus") == pytest.approx(2.0, abs=0.1)
    assert median_length("intro") >= 3.9


def test_planning_is_deterministic(demo_analysis):
    settings = ShotSettings()
    assert plan_shots(demo_analysis, settings) == plan_shots(demo_analysis, settings)


# --------------------------------------------------------------------------------------------
# Hard cases


def test_bars_longer_than_the_longest_shot_are_cut_on_beats():
    # 40 bpm: a bar lasts 6 s, more than max_shot_s (5 s).
    analysis = _analysis(48.0, 40.0, [4, 4])
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    assert any(s.cut == "beat" for s in plan.shots)


def _tail_without_beats(analysis: Analysis, last_beat_s: float) -> list:
    """The shots of the second section of ``analysis`` (which starts at a downbeat at 20 s)
    when no beat follows ``last_beat_s``; checks they are grid cuts."""
    sparse = analysis.model_copy(
        update={
            "beats_s": [b for b in analysis.beats_s if b <= last_beat_s],
            "downbeats_s": [b for b in analysis.downbeats_s if b <= 20.0],
        }
    )
    settings = ShotSettings()
    plan = plan_shots(sparse, settings)
    _assert_valid_plan(plan, sparse, settings)
    tail = [s for s in plan.shots if s.section_index == 1]
    assert len(tail) >= 4 and all(s.cut == "grid" for s in tail[1:])
    return tail


def test_a_stretch_without_beats_is_cut_on_the_pulse_continued():
    # Beats only in the first section; the second (from a downbeat at 20 s) is 19.7 s without
    # any, like a final chord ringing out: its cuts keep the song's 0.5 s pulse.
    tail = _tail_without_beats(_analysis(39.7, 120.0, [10, 1]), last_beat_s=20.0)
    for shot in tail[1:]:
        assert (shot.start_s - 20.0) / 0.5 == pytest.approx(round((shot.start_s - 20.0) / 0.5), abs=1e-6)


def test_the_pulse_continued_through_a_long_tail_does_not_drift():
    # 170 bpm beats on 23 ms analysis frames (the median interval is a whole number of frames,
    # 1.3 % short), then a 16 s final chord, longer than the last shot holds: tail cuts stay
    # within 20 ms of the true pulse.
    frame_s = 512 / 22050
    period_s = 60.0 / 170.0
    true_beats = np.arange(0.0, 40.0, period_s)
    analysis = _analysis(56.0, 170.0, [14, 1])
    framed = [round(round(b / frame_s) * frame_s, 4) for b in true_beats]
    analysis = analysis.model_copy(update={"beats_s": framed, "downbeats_s": framed[::4]})
    analysis.sections[1] = analysis.sections[1].model_copy(update={"start_s": framed[56]})
    analysis.sections[0] = analysis.sections[0].model_copy(update={"end_s": framed[56]})
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    tail_cuts = [s.start_s for s in plan.shots if s.start_s > 41.0]
    assert len(tail_cuts) >= 3
    pulse = np.arange(0.0, 60.0, period_s)
    assert max(float(np.min(np.abs(pulse - t))) for t in tail_cuts) < 0.02


def _rings_out(analysis: Analysis, last_beat_s: float, duration_s: float) -> Analysis:
    """``analysis`` with no beat after ``last_beat_s`` and the song lasting ``duration_s``: the
    music stops and a last chord rings out, then silence, as a render leaves it."""
    sections = list(analysis.sections)
    sections[-1] = sections[-1].model_copy(update={"end_s": duration_s})
    return analysis.model_copy(
        update={
            "duration_s": duration_s,
            "beats_s": [b for b in analysis.beats_s if b <= last_beat_s],
            "downbeats_s": [b for b in analysis.downbeats_s if b <= last_beat_s],
            "sections": sections,
        }
    )


@pytest.mark.parametrize("ending_s", [2.5, 9.0, 14.0])
def test_no_cut_falls_after_the_music_stops_the_last_shot_holds_through_the_ending(ending_s):
    # 120 bpm to a last downbeat at 40 s, then a chord ringing out and silence for ending_s.
    analysis = _rings_out(_analysis(60.0, 120.0, [8, 12]), last_beat_s=40.0, duration_s=40.0 + ending_s)
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    assert plan.ending_s == pytest.approx(40.0)
    last = plan.shots[-1]
    assert last.end_s == analysis.duration_s and last.start_s <= 40.0
    assert last.cut in ("downbeat", "beat")  # the last cut is on the music, not in the silence
    assert 40.0 - last.start_s >= settings.min_shot_s - TIME_TOLERANCE_S


def test_an_ending_longer_than_three_longest_shots_is_cut_on_the_pulse():
    analysis = _rings_out(_analysis(60.0, 120.0, [8, 12]), last_beat_s=40.0, duration_s=56.0)
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    assert plan.ending_s is None
    tail = [s for s in plan.shots if s.start_s > 40.0]
    assert tail and all(s.cut == "grid" for s in tail)
    assert all(s.duration_s <= settings.max_shot_s + TIME_TOLERANCE_S for s in plan.shots)


def test_beats_to_the_end_leave_no_ending():
    analysis = _analysis(40.2, 120.0, [8, 12])
    plan = plan_shots(analysis, ShotSettings())
    assert plan.ending_s is None and plan.shots[-1].duration_s <= ShotSettings().max_shot_s


def test_a_section_that_starts_after_the_music_stops_is_one_held_shot():
    # The analysis marks a last section in the ring-out (at 42 s, after the last beat at 40 s).
    analysis = _rings_out(_analysis(60.0, 120.0, [8, 12]), last_beat_s=40.0, duration_s=50.0)
    sections = list(analysis.sections)
    sections[-1] = sections[-1].model_copy(update={"end_s": 42.0})
    sections.append(Section(index=2, start_s=42.0, end_s=50.0, label="C", role="outro", energy=0.1))
    analysis = analysis.model_copy(update={"sections": sections})
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    assert plan.ending_s == 42.0
    assert (plan.shots[-1].start_s, plan.shots[-1].end_s, plan.shots[-1].cut) == (42.0, 50.0, "section")
    assert not [s for s in plan.shots if 40.0 < s.start_s < 42.0]  # 2 s after the music: no cut there either


def test_a_locked_shot_that_ends_in_the_ending_keeps_its_times_and_the_rest_is_one_held_shot():
    analysis = _rings_out(_analysis(60.0, 120.0, [8, 12]), last_beat_s=40.0, duration_s=50.0)
    settings = ShotSettings()
    last = plan_shots(analysis, settings).shots[-1]  # 36 s to the end
    lock = last.model_copy(update={"end_s": 44.0, "locked": True})
    plan = plan_shots(analysis, settings, [lock])
    kept = next(s for s in plan.shots if s.locked)
    assert (kept.id, kept.start_s, kept.end_s) == (lock.id, lock.start_s, 44.0)
    assert plan.ending_s == 44.0
    assert (plan.shots[-1].start_s, plan.shots[-1].end_s) == (44.0, 50.0) and not plan.shots[-1].locked


def test_a_silent_intro_is_cut_on_the_pulse_counted_back_from_the_first_beat():
    # The first beat comes at 9.1 s: cuts before it sit whole beats (0.5 s) before it.
    analysis = _analysis(30.0, 120.0, [8, 6], first_beat_s=9.1)
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    intro = [s for s in plan.shots[1:] if s.start_s < 9.1 - 1e-6]
    assert intro and all(s.cut == "grid" for s in intro)
    for shot in intro:
        assert (9.1 - shot.start_s) / 0.5 == pytest.approx(round((9.1 - shot.start_s) / 0.5), abs=1e-6)


def test_music_without_beats_is_cut_on_an_even_grid():
    # Beats only in the first section; the second is 20 s without any (and its start is no beat).
    tail = _tail_without_beats(_analysis(40.0, 120.0, [10, 1]), last_beat_s=19.5)
    lengths = [s.duration_s for s in tail]
    assert max(lengths) - min(lengths) < 1e-6  # even


def test_a_section_shorter_than_the_shortest_shot_is_one_shot():
    # The song ends 1 s after the last section's downbeat.
    analysis = _analysis(21.0, 120.0, [10, 1])
    assert analysis.sections[-1].duration_s == pytest.approx(1.0)
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    last = [s for s in plan.shots if s.section_index == 1]
    assert len(last) == 1 and last[0].duration_s == pytest.approx(1.0)


def test_no_short_leftover_at_a_section_end():
    # A section of 4.5 bars at 120 bpm (9 s): one-bar shots would leave a 1 s stub.
    analysis = _analysis(30.0, 120.0, [4, 4, 1], energies=[0.0, 1.0, 0.0])
    section = analysis.sections[1].model_copy(update={"end_s": analysis.sections[1].end_s + 1.0})
    sections = [analysis.sections[0], section, analysis.sections[2].model_copy(update={"start_s": section.end_s})]
    analysis = analysis.model_copy(update={"sections": sections})
    settings = ShotSettings()
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
    assert min(s.duration_s for s in plan.shots if s.section_index == 1) >= settings.min_shot_s


def test_impossible_bounds_split_evenly_with_a_warning():
    # Shots must be 4-5 s, but a 6 s section cannot be split into such pieces.
    analysis = _analysis(14.0, 120.0, [4, 3], energies=[0.5, 0.5])
    settings = ShotSettings(min_shot_s=4.0, max_shot_s=5.0)
    plan = plan_shots(analysis, settings)
    last = [s for s in plan.shots if s.section_index == 1]
    assert analysis.sections[1].duration_s == pytest.approx(6.0)
    assert len(last) == 2 and all(s.duration_s <= settings.max_shot_s for s in last)
    assert any("cannot be cut" in w for w in plan.warnings)
    _assert_valid_plan(plan, analysis, settings)


def test_a_very_short_song_is_one_shot():
    analysis = _analysis(1.2, 120.0, [1])
    plan = plan_shots(analysis, ShotSettings())
    assert len(plan.shots) == 1 and plan.shots[0].end_s == 1.2 and plan.shots[0].cut == "start"


@pytest.mark.parametrize("seed", range(12))
def test_random_songs_always_give_valid_plans(seed):
    rng = np.random.default_rng(seed)
    tempo = float(rng.uniform(50, 200))
    meter = int(rng.choice([3, 4]))
    bars = [int(b) for b in rng.integers(1, 12, size=int(rng.integers(1, 7)))]
    bar_s = meter * 60 / tempo
    duration = sum(bars) * bar_s + float(rng.uniform(0.1, 3.0))
    analysis = _analysis(duration, tempo, bars, list(rng.uniform(0, 1, len(bars))), meter, float(rng.uniform(0, 0.5)))
    min_shot = float(rng.uniform(0.5, 2.5))
    settings = ShotSettings(
        min_shot_s=min_shot,
        max_shot_s=min_shot + float(rng.uniform(1.0, 6.0)),
        calm_shot_bars=float(rng.uniform(1, 4)),
        intense_shot_bars=float(rng.uniform(0.5, 2)),
    )
    plan = plan_shots(analysis, settings)
    _assert_valid_plan(plan, analysis, settings)
