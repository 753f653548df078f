"""Shots stage: where the cuts fall, from the structure analysis.

Rules, in order of priority:

1. A cut at every section boundary; shots tile ``[0, duration_s]`` with no gap, the last one
   ending exactly at the song's end.
2. Every shot lasts between ``min_shot_s`` and ``max_shot_s``. The exceptions: a section
   shorter than ``min_shot_s`` is one shot; a section that cannot be divided into pieces
   within both bounds (e.g. 6 s with bounds 4-5 s) is split evenly into pieces no longer than
   ``max_shot_s`` (with a warning); and the last shot holds through the song's *ending*.
3. The ending is what follows the last beat (or the last section's start, or a locked shot,
   if later) once the music has stopped: the last chord ringing out, a fade, the silence a
   render leaves at the end. No cut falls in it, because there is no beat to cut on: the
   last shot's length within the bounds counts up to the ending, and the shot then runs on
   to the song's end (the renderer extends a shot longer than one generation); where a
   section starts or a locked shot ends at the ending, the ending is a held shot of its own.
   An ending longer than ``ENDING_HOLD_SHOTS`` longest shots is cut on the pulse continued
   instead, as any beatless stretch is.
4. Cuts fall on downbeats where possible, on beats otherwise, and on a grid only where the
   beats cannot meet the bounds: where the music has no beats for longer than the bounds
   allow (the song's pulse continued from the nearest beat), or where whole beats do not add
   up to allowed lengths (an even grid).
5. Shot length follows the music: ``calm_shot_bars`` bars in the calmest section,
   ``intense_shot_bars`` in the most energetic one, interpolated by section energy.

Within each section, a dynamic programme picks the cuts that best fit the target length while
preferring downbeats; it is exact and deterministic (ties go to the earlier cut).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from music2video.artifacts import Analysis, Section, Shot, ShotPlan
from music2video.settings import ShotSettings

log = logging.getLogger(__name__)

CUT_PENALTY = {"downbeat": 0.0, "beat": 0.25, "grid": 1.0}
"""Cost added per cut by what it sits on, in the units of the length cost (see ``_shot_cost``)."""

_SAME_TIME_S = 1e-3
"""Two candidate cut times closer than this are the same cut."""

ENDING_HOLD_SHOTS = 3.0
"""The longest ending the last shot holds through, in longest shots (``max_shot_s``): 15 s by
default, which covers a final chord ringing out and the silence a render leaves after it (3-11 s
on the dev set). The renderer makes such a shot by extending one generation, which costs the
same as the shots it replaces; a longer beatless ending (a hidden track after a minute of
silence) is cut on the pulse instead, so that no one shot drifts for a minute."""


def plan_shots(analysis: Analysis, settings: ShotSettings, locked: Sequence[Shot] = ()) -> ShotPlan:
    """Cut the song into shots.

    Args:
        analysis: the structure analysis (beats, downbeats, sections, energy), times in seconds.
        settings: shot length bounds (seconds) and target lengths (bars) for calm and intense music.
        locked: shots a person locked in an earlier plan (``Shot.locked``): they are kept as they
            are (id, times, section) and the rest of the song is planned around them. Locks that
            overlap an earlier lock or lie outside the song are dropped with a warning.

    Returns:
        ``ShotPlan`` whose shots tile ``[0, analysis.duration_s]``; each shot names its section
        and what its first cut sits on (``start``, ``section``, ``downbeat``, ``beat``, ``grid``).
    """
    warnings: list[str] = []
    kept = _usable_locks(locked, analysis.duration_s, warnings)
    sections = analysis.sections or [
        Section(index=0, start_s=0.0, end_s=analysis.duration_s, label="A", role="verse", energy=1.0)
    ]
    downbeats = np.asarray(analysis.downbeats_s, dtype=float)
    beats = np.asarray(analysis.beats_s, dtype=float)
    relative_energy = _relative_energies(sections)
    ending_s = ending_start_s(analysis, settings, kept)

    planned: list[Shot] = []
    for whole_section, energy in zip(sections, relative_energy):
        if ending_s is not None:
            if whole_section.start_s >= ending_s - _SAME_TIME_S:
                continue  # a section that starts the ending (the last one): see 4.
            # The section the music stops in is planned up to the stop.
            whole_section = whole_section.model_copy(update={"end_s": min(whole_section.end_s, ending_s)})
        # 1. How long shots should be here.
        bar_s = _bar_duration_s(analysis, beats, whole_section)
        target_bars = settings.calm_shot_bars + (settings.intense_shot_bars - settings.calm_shot_bars) * energy
        target_s = min(max(target_bars * bar_s, settings.min_shot_s), settings.max_shot_s)
        beat_s = bar_s / max(1, analysis.beats_per_bar)
        # Locked shots are kept as they are: plan the pieces of the section around them.
        for section in _free_pieces(whole_section, kept):
            # 2. Where they may be cut, then the best cuts.
            candidates = _candidates(section, beats, downbeats, beat_s, settings)
            cuts = _best_cuts(section, candidates, target_s, settings)
            if cuts is None:
                # The beats cannot be combined into lengths within the bounds (e.g. beats of 1.05 s
                # with shots of 1.1-2.3 s leave an odd beat over): allow a few grid cuts too.
                cuts = _best_cuts(section, _with_fine_grid(section, candidates, settings), target_s, settings)
            if cuts is None:
                cuts = _even_cuts(section, settings)
                if section.duration_s / (len(cuts) + 1) < settings.min_shot_s:
                    warnings.append(
                        f"section {section.index} ({section.duration_s:.2f} s) cannot be cut into shots of "
                        f"{settings.min_shot_s:g}-{settings.max_shot_s:g} s; split it evenly into "
                        f"{len(cuts) + 1} shots of {section.duration_s / (len(cuts) + 1):.2f} s"
                    )

            # 3. Shots between the piece's bounds and the chosen cuts.
            first_kind = "section" if section.start_s == whole_section.start_s else _kind_at(section.start_s, beats, downbeats)
            edges = [(section.start_s, first_kind), *cuts, (section.end_s, "")]
            for (start_s, kind), (end_s, _) in zip(edges, edges[1:]):
                planned.append(
                    Shot(index=0, id="", start_s=start_s, end_s=end_s, section_index=section.index, cut=kind)
                )

    # 4. The ending: the last shot runs on through it (the tiling below), unless a cut must
    #    stay where it begins (a section starts there, or a locked shot ends there); then it
    #    is one held shot of its own.
    pieces = sorted([*planned, *kept], key=lambda shot: shot.start_s)
    if ending_s is not None:
        section = max((s for s in sections if s.start_s <= ending_s + _SAME_TIME_S), key=lambda s: s.start_s)
        starts_section = abs(section.start_s - ending_s) <= _SAME_TIME_S
        if starts_section or pieces[-1].locked:
            cut = "section" if starts_section else _kind_at(ending_s, beats, downbeats)
            pieces.append(
                Shot(index=0, id="", start_s=ending_s, end_s=analysis.duration_s, section_index=section.index, cut=cut)
            )

    # 5. Number the shots in time order; locked shots keep their ids.
    shots = _numbered(pieces)
    # The sections tile the song; make the tiling exact even if they were edited by hand.
    shots[0] = shots[0].model_copy(update={"start_s": 0.0, "cut": "start"})
    shots[-1] = shots[-1].model_copy(update={"end_s": analysis.duration_s})
    if kept:
        log.info("kept %d locked shots: %s", len(kept), ", ".join(shot.id for shot in kept))
    for message in warnings:
        log.warning(message)
    return ShotPlan(warnings=warnings, duration_s=analysis.duration_s, shots=shots, ending_s=ending_s)


def ending_start_s(analysis: Analysis, settings: ShotSettings, locked: Sequence[Shot] = ()) -> float | None:
    """Where the song's ending begins (see rule 3 of the module docstring): the last beat, or
    the last section's start or a locked shot's end if later, when more than a beat passes
    after it and at most ``ENDING_HOLD_SHOTS`` longest shots; None when the song has no such
    ending (its beats run to the end, it has no beats, or the ending is too long to hold)."""
    beats = np.asarray(analysis.beats_s, dtype=float)
    if len(beats) < 2:
        return None
    start_s = max(float(beats[-1]), *(s.start_s for s in analysis.sections[-1:]), *(s.end_s for s in locked))
    length_s = analysis.duration_s - start_s
    if length_s <= float(np.median(np.diff(beats))) or length_s > ENDING_HOLD_SHOTS * settings.max_shot_s:
        return None
    return start_s


def _usable_locks(locked: Sequence[Shot], duration_s: float, warnings: list[str]) -> list[Shot]:
    """The locked shots that fit the song, in time order; overlapping or outside ones dropped."""
    kept: list[Shot] = []
    for shot in sorted(locked, key=lambda shot: shot.start_s):
        if shot.start_s < -_SAME_TIME_S or shot.end_s > duration_s + _SAME_TIME_S or shot.end_s <= shot.start_s:
            warnings.append(f"locked {shot.id} ({shot.start_s:.2f}-{shot.end_s:.2f} s) lies outside the song; it was dropped")
        elif kept and shot.start_s < kept[-1].end_s - _SAME_TIME_S:
            warnings.append(f"locked {shot.id} overlaps locked {kept[-1].id}; it was dropped")
        elif any(shot.id == other.id for other in kept):
            warnings.append(f"two locked shots are called {shot.id}; the later one was dropped")
        else:
            kept.append(shot.model_copy(update={"locked": True}))
    return kept


def _free_pieces(section: Section, locked: list[Shot]) -> list[Section]:
    """The parts of ``section`` that no locked shot covers, as sections of their own
    (same index, label and energy); the whole section when nothing is locked in it."""
    pieces: list[Section] = []
    start_s = section.start_s
    for shot in locked:
        if shot.end_s <= start_s + _SAME_TIME_S or shot.start_s >= section.end_s - _SAME_TIME_S:
            continue
        if shot.start_s > start_s + _SAME_TIME_S:
            pieces.append(section.model_copy(update={"start_s": start_s, "end_s": shot.start_s}))
        start_s = max(start_s, shot.end_s)
    if section.end_s > start_s + _SAME_TIME_S:
        pieces.append(section.model_copy(update={"start_s": start_s, "end_s": section.end_s}))
    return pieces


def _kind_at(time_s: float, beats: np.ndarray, downbeats: np.ndarray) -> str:
    """What a cut at ``time_s`` sits on: ``downbeat``, ``beat`` or ``grid``."""
    for kind, times in (("downbeat", downbeats), ("beat", beats)):
        if len(times) and float(np.min(np.abs(times - time_s))) <= _SAME_TIME_S:
            return kind
    return "grid"


def _numbered(shots: list[Shot]) -> list[Shot]:
    """Indices in time order and ids ``shot-001`` ...; a locked shot keeps its id, and a new
    id that a locked shot already has gets a letter (``shot-004b``)."""
    taken = {shot.id for shot in shots if shot.locked}
    numbered = []
    for index, shot in enumerate(shots):
        shot_id = shot.id
        if not shot.locked:
            shot_id = f"shot-{index + 1:03d}"
            for letter in "bcdefghijklmnopqrstuvwxyz":
                if shot_id not in taken:
                    break
                shot_id = f"shot-{index + 1:03d}{letter}"
            taken.add(shot_id)
        numbered.append(shot.model_copy(update={"index": index, "id": shot_id}))
    return numbered


def _relative_energies(sections: list[Section]) -> list[float]:
    """Section energies rescaled so the calmest section is 0 and the most intense is 1 (all
    0.5 when they are equal)."""
    energies = [s.energy for s in sections]
    low, high = min(energies), max(energies)
    if high - low < 1e-6:
        return [0.5] * len(sections)
    return [(e - low) / (high - low) for e in energies]


def _bar_duration_s(analysis: Analysis, beats: np.ndarray, section: Section) -> float:
    """Bar length in seconds inside ``section`` (the local beat period × beats per bar)."""
    inside = beats[(beats >= section.start_s) & (beats <= section.end_s)]
    if len(inside) >= 2:
        beat_s = _beat_period_s(inside)
    elif len(beats) >= 2:
        beat_s = _beat_period_s(beats)
    else:
        beat_s = 60.0 / analysis.tempo_bpm if analysis.tempo_bpm > 0 else 0.5
    return beat_s * max(1, analysis.beats_per_bar)


def _beat_period_s(beats: np.ndarray) -> float:
    """The beat period: the mean of the intervals within 10 % of their median. Beats sit on
    analysis frames (23 ms), so the median interval alone is off by up to half a frame, and a
    pulse continued from it through a 10 s tail drifts by a beat's fraction (80 ms at 170 bpm)."""
    intervals = np.diff(beats)
    median = float(np.median(intervals))
    steady = intervals[np.abs(intervals - median) <= 0.1 * median]
    return float(np.mean(steady)) if steady.size else median


def _candidates(
    section: Section, beats: np.ndarray, downbeats: np.ndarray, beat_s: float, settings: ShotSettings
) -> list[tuple[float, str]]:
    """Possible cut times strictly inside the section, with what each sits on, in time order.

    Where beats are missing for longer than the shot bounds can bridge (a beatless intro, a
    final chord ringing out), the gap is filled with the pulse continued from the beat at its
    edge ("grid" cuts), or with an even grid where no beat borders it or the beat is too long.
    """
    lo, hi = section.start_s + _SAME_TIME_S, section.end_s - _SAME_TIME_S
    points = {round(float(t), 6): "beat" for t in beats if lo < t < hi}
    points.update({round(float(t), 6): "downbeat" for t in downbeats if lo < t < hi})
    timed = sorted(points.items())

    # Gaps wider than max - min can make the bounds impossible to meet; fill them. Where the
    # beat period fits, the fill continues the pulse from the beat at the gap's edge (a final
    # chord ringing out, a fade, a silent intro keep the song's beat), else it is an even grid.
    widest_gap_s = max(settings.max_shot_s - settings.min_shot_s, 0.1 * settings.max_shot_s)
    pulse = 0 < beat_s <= widest_gap_s
    grid_step_s = beat_s if pulse else widest_gap_s
    filled: list[tuple[float, str]] = []
    previous, previous_is_beat = section.start_s, bool(len(beats)) and float(np.min(np.abs(beats - section.start_s))) < _SAME_TIME_S
    for time_s, kind in [*timed, (section.end_s, "")]:
        gap_s = time_s - previous
        if gap_s > widest_gap_s:
            if pulse and (previous_is_beat or kind):
                # Forward from the beat before the gap, or back from the beat after a gap that
                # opens the section; stop half a beat short of the other edge.
                steps = np.arange(1, math.ceil(gap_s / beat_s)) * beat_s
                steps = steps[steps < gap_s - beat_s / 2]
                points = previous + steps if previous_is_beat else time_s - steps[::-1]
                filled.extend((float(t), "grid") for t in points)
            else:
                pieces = math.ceil(gap_s / grid_step_s)
                filled.extend((previous + gap_s * k / pieces, "grid") for k in range(1, pieces))
        if kind:
            filled.append((time_s, kind))
        previous, previous_is_beat = time_s, bool(kind)
    return filled


def _with_fine_grid(
    section: Section, candidates: list[tuple[float, str]], settings: ShotSettings
) -> list[tuple[float, str]]:
    """``candidates`` plus an even grid over the whole section, fine enough (half the spread
    between the shortest and the longest shot) that any length the bounds allow can be met."""
    step_s = max((settings.max_shot_s - settings.min_shot_s) / 2, 0.05)
    pieces = max(1, math.ceil(section.duration_s / step_s))
    grid = [section.start_s + section.duration_s * k / pieces for k in range(1, pieces)]
    taken = [t for t, _ in candidates]
    extra = [(t, "grid") for t in grid if not taken or min(abs(t - u) for u in taken) > _SAME_TIME_S]
    return sorted([*candidates, *extra])


def _shot_cost(length_s: float, target_s: float) -> float:
    """How far a shot is from the target length: squared relative error, weighted by the shot's
    length so that the total does not favour fewer or more shots for its own sake."""
    return (length_s / target_s) * ((length_s - target_s) / target_s) ** 2


def _best_cuts(
    section: Section, candidates: list[tuple[float, str]], target_s: float, settings: ShotSettings
) -> list[tuple[float, str]] | None:
    """The cheapest cuts inside the section with every shot within the bounds; None if none exist.

    Dynamic programme over the points [start, candidates..., end]: best[j] is the lowest cost
    of shots tiling start..point j.
    """
    if section.duration_s <= settings.max_shot_s and (
        section.duration_s < 2 * settings.min_shot_s or not candidates
    ):
        return []  # one shot: the section cannot (or need not) be split
    times = [section.start_s, *[t for t, _ in candidates], section.end_s]
    kinds = ["section", *[k for _, k in candidates], ""]
    n = len(times)
    best = [math.inf] * n
    previous = [-1] * n
    best[0] = 0.0
    first = 0  # earliest i that can still reach j within max_shot_s (two-pointer window)
    for j in range(1, n):
        while times[j] - times[first] > settings.max_shot_s + 1e-9:
            first += 1
        penalty = CUT_PENALTY.get(kinds[j], 0.0)
        for i in range(first, j):
            length_s = times[j] - times[i]
            if length_s < settings.min_shot_s - 1e-9:
                break
            if best[i] == math.inf:
                continue
            cost = best[i] + _shot_cost(length_s, target_s) + penalty
            if cost < best[j]:
                best[j], previous[j] = cost, i
    if best[-1] == math.inf:
        return None
    cuts = []
    j = previous[-1]
    while j > 0:
        cuts.append((times[j], kinds[j]))
        j = previous[j]
    return cuts[::-1]


def _even_cuts(section: Section, settings: ShotSettings) -> list[tuple[float, str]]:
    """Cuts dividing the section into equal shots no longer than ``max_shot_s``."""
    pieces = max(1, math.ceil(section.duration_s / settings.max_shot_s - 1e-9))
    return [(section.start_s + section.duration_s * k / pieces, "grid") for k in range(1, pieces)]
