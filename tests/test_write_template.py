"""The deterministic template writer, on hand-made analyses and descriptions (no audio needed).

Descriptions in three dialects are used: dsp (numbers and ordinal words), clap (scored labels
only) and lalm (sentences only), since the writer must read all of them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from music2video.artifacts import (
    Analysis,
    Descriptions,
    ScoredLabel,
    Section,
    SegmentDescription,
    Shot,
    ShotPlan,
    Storyboard,
)
from music2video.write import write_template_storyboard
from music2video.settings import DEFAULT_MAX_PROMPT_CHARS as MAX_PROMPT_CHARS
from music2video.write.template import MOTIFS, shot_seed

HEX_COLOUR = re.compile(r"^#[0-9a-f]{6}$")
STYLE = "hand-made stop-motion with felt puppets, 1970s"

# label, role, energy, valence, arousal of each section (A and B come back: a chorus callback)
SECTIONS = [
    ("A", "intro", 0.2, 0.3, -0.5),
    ("B", "chorus", 0.9, 0.6, 0.7),
    ("A", "verse", 0.3, 0.2, -0.3),
    ("C", "bridge", 0.5, -0.4, 0.2),
    ("B", "chorus", 0.95, 0.7, 0.8),
]
SECTION_S = 8.0
SHOT_S = 2.0


def make_song() -> tuple[Analysis, ShotPlan]:
    sections, shots = [], []
    for index, (label, role, energy, _, _) in enumerate(SECTIONS):
        start = index * SECTION_S
        sections.append(Section(index=index, start_s=start, end_s=start + SECTION_S, label=label, role=role, energy=energy))
        for k in range(int(SECTION_S / SHOT_S)):
            shots.append(
                Shot(
                    index=len(shots),
                    id=f"shot-{len(shots):03d}",
                    start_s=start + k * SHOT_S,
                    end_s=start + (k + 1) * SHOT_S,
                    section_index=index,
                    cut="section" if k == 0 else "downbeat",
                )
            )
    # One very short shot at the very end, as a beat-snapped plan can produce.
    last = shots[-1]
    shots[-1] = last.model_copy(update={"end_s": last.end_s - 0.3})
    shots.append(Shot(index=len(shots), id=f"shot-{len(shots):03d}", start_s=last.end_s - 0.3, end_s=last.end_s, section_index=4, cut="beat"))
    duration = len(SECTIONS) * SECTION_S
    analysis = Analysis(
        duration_s=duration,
        tempo_bpm=118.0,
        beats_per_bar=4,
        beats_s=[i * 0.5 for i in range(int(duration / 0.5))],
        downbeats_s=[i * 2.0 for i in range(int(duration / 2.0))],
        sections=sections,
        curve_rate_hz=1.0,
        energy=[SECTIONS[int(t // SECTION_S)][2] for t in range(int(duration))],
        brightness=[0.5] * int(duration),
        onset_strength=[0.5] * int(duration),
    )
    return analysis, ShotPlan(duration_s=duration, shots=shots)


def dsp_descriptions(analysis: Analysis, plan: ShotPlan) -> Descriptions:
    def describe(start: float, end: float, energy: float, valence: float, arousal: float) -> SegmentDescription:
        return SegmentDescription(
            start_s=start,
            end_s=end,
            text=f"Passage with energy {energy:.1f}.",
            features={"energy": energy, "valence": valence, "arousal": arousal, "brightness": 0.6,
                      "key_tonic": 9.0, "key_mode_major": 0.0},
            tags={"mood": [ScoredLabel(label="hopeful", score=0.9), ScoredLabel(label="driving", score=0.5)]},
            confidence=0.9,
        )

    sections = [describe(s.start_s, s.end_s, *SECTIONS[s.index][2:]) for s in analysis.sections]
    shots = [describe(s.start_s, s.end_s, *SECTIONS[s.section_index][2:]) for s in plan.shots]
    song = describe(0.0, analysis.duration_s, 0.6, 0.3, 0.2)
    return Descriptions(listener="dsp", song=song, sections=sections, shots=shots)


def clap_descriptions(analysis: Analysis, plan: ShotPlan) -> Descriptions:
    """Scores only, in another vocabulary; no numeric features at all."""

    def describe(start: float, end: float) -> SegmentDescription:
        return SegmentDescription(
            start_s=start,
            end_s=end,
            text="",
            tags={
                "emotion": [ScoredLabel(label="sad", score=0.31), ScoredLabel(label="calm", score=0.2)],
                "genre": [ScoredLabel(label="ambient", score=0.4)],
                "instruments": [ScoredLabel(label="piano", score=0.3), ScoredLabel(label="strings", score=0.2)],
            },
        )

    return Descriptions(
        listener="clap",
        model="tiny-clap",
        song=describe(0.0, analysis.duration_s),
        sections=[describe(s.start_s, s.end_s) for s in analysis.sections],
        shots=[describe(s.start_s, s.end_s) for s in plan.shots],
    )


def lalm_descriptions(analysis: Analysis, plan: ShotPlan) -> Descriptions:
    """Sentences only; shots deliberately missing, as a listener that failed on them might leave."""

    def describe(start: float, end: float) -> SegmentDescription:
        return SegmentDescription(start_s=start, end_s=end, text="A tense, aggressive rock passage with distorted guitars.")

    return Descriptions(
        listener="lalm",
        model="tiny-lalm",
        song=describe(0.0, analysis.duration_s),
        sections=[describe(s.start_s, s.end_s) for s in analysis.sections],
        shots=[],
    )


@pytest.fixture(scope="module")
def song():
    analysis, plan = make_song()
    return analysis, plan, dsp_descriptions(analysis, plan)


@pytest.fixture(scope="module")
def storyboard(song) -> Storyboard:
    analysis, plan, descriptions = song
    return write_template_storyboard(analysis, plan, descriptions, style=STYLE, seed=7)


def test_one_storyboard_shot_per_planned_shot_with_identical_times(song, storyboard):
    _, plan, _ = song
    assert storyboard.writer == "template"
    assert [(s.id, s.start_s, s.end_s, s.section_index) for s in storyboard.shots] == [
        (s.id, s.start_s, s.end_s, s.section_index) for s in plan.shots
    ]
    assert Storyboard.model_validate_json(storyboard.model_dump_json()) == storyboard


def test_output_is_deterministic_even_across_processes(song, storyboard):
    analysis, plan, descriptions = song
    again = write_template_storyboard(analysis, plan, descriptions, style=STYLE, seed=7)
    assert again.model_dump_json() == storyboard.model_dump_json()

    # Python randomises str hashes per process; nothing in the writer may depend on them.
    script = (
        "import sys; sys.path.insert(0, {tests!r}); import test_write_template as t; "
        "a, p = t.make_song(); d = t.dsp_descriptions(a, p); "
        "print(t.write_template_storyboard(a, p, d, style=t.STYLE, seed=7).model_dump_json())"
    ).format(tests=str(Path(__file__).parent))
    outputs = set()
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True,
            # PYTHONPATH kept: a worktree's source must be the one the subprocess imports.
            env={"PYTHONHASHSEED": hash_seed, "PATH": "", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}},
        )
        outputs.add(done.stdout.strip())
    assert outputs == {storyboard.model_dump_json()}


def test_repeated_labels_share_motif_palette_and_setting(storyboard):
    by_label: dict[str, set] = {}
    for treatment in storyboard.sections:
        by_label.setdefault(treatment.label, set()).add((treatment.motif, tuple(treatment.palette), treatment.setting))
    assert all(len(looks) == 1 for looks in by_label.values())
    motifs = [next(iter(looks))[0] for looks in by_label.values()]
    assert len(set(motifs)) == len(motifs)  # different labels, different motifs
    assert all(treatment.motif in MOTIFS for treatment in storyboard.sections)
    for shot in storyboard.shots:
        treatment = storyboard.sections[shot.section_index]
        assert shot.motif == treatment.motif and shot.palette == treatment.palette


def test_characters_are_repeated_word_for_word(storyboard):
    assert 1 <= len(storyboard.characters) <= 2
    described = {character.name: character.description for character in storyboard.characters}
    shown = [shot for shot in storyboard.shots if shot.characters]
    assert shown, "the protagonist should appear somewhere"
    for shot in storyboard.shots:
        for name in shot.characters:
            assert described[name] in shot.prompt
        for name, description in described.items():
            if name not in shot.characters:
                assert description not in shot.prompt
    # The companion appears where the refrain plays: A and B both return, B is louder.
    if len(storyboard.characters) == 2:
        companion = storyboard.characters[1].name
        sections_with_companion = {shot.section_index for shot in storyboard.shots if companion in shot.characters}
        assert sections_with_companion == {1, 4}


def test_prompts_fit_and_carry_style_palette_and_seeds(song, storyboard):
    analysis, plan, descriptions = song
    assert STYLE in storyboard.concept and STYLE in storyboard.style.look
    for shot in storyboard.shots:
        assert 0 < len(shot.prompt) <= MAX_PROMPT_CHARS
        assert STYLE in shot.prompt
        assert shot.negative_prompt
        assert 0.0 <= shot.energy <= 1.0
        assert shot.camera
        assert 0 <= shot.seed < 2**31
    for palette in [storyboard.style.palette, *(t.palette for t in storyboard.sections), *(s.palette for s in storyboard.shots)]:
        assert palette and all(HEX_COLOUR.match(colour) for colour in palette)

    seeds = [shot.seed for shot in storyboard.shots]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [shot_seed(7, shot.index) for shot in plan.shots]
    other = write_template_storyboard(analysis, plan, descriptions, style=STYLE, seed=8)
    assert all(a != b for a, b in zip(seeds, (shot.seed for shot in other.shots)))


def test_camera_and_energy_follow_the_music(storyboard):
    calm = [shot for shot in storyboard.shots if shot.section_index == 0]
    loud = [shot for shot in storyboard.shots if shot.section_index == 4]
    assert max(shot.energy for shot in calm) < min(shot.energy for shot in loud)
    assert {shot.camera for shot in calm} <= {"static", "slow push in", "crane up"}
    assert {shot.camera for shot in loud} <= {"whip pan", "handheld", "orbit right"}


def test_a_style_too_long_for_a_prompt_is_shortened_with_a_warning(song):
    analysis, plan, descriptions = song
    long_style = " ".join(["painted in thick gouache strokes"] * 60)
    board = write_template_storyboard(analysis, plan, descriptions, style=long_style)
    assert long_style in board.concept
    assert all(len(shot.prompt) <= MAX_PROMPT_CHARS for shot in board.shots)
    assert any("style instruction" in warning for warning in board.warnings)


@pytest.mark.parametrize("dialect", [clap_descriptions, lalm_descriptions])
def test_works_with_other_listeners_vocabularies(dialect):
    analysis, plan = make_song()
    descriptions = dialect(analysis, plan)
    board = write_template_storyboard(analysis, plan, descriptions, seed=1)
    assert len(board.shots) == len(plan.shots)
    assert board.title and board.concept
    assert all(len(shot.prompt) <= MAX_PROMPT_CHARS for shot in board.shots)
    assert all(0.0 <= shot.energy <= 1.0 for shot in board.shots)
    if descriptions.listener == "clap":
        # Sad and calm words put the film in the sad world; genre and instruments are named.
        assert "sad" in board.concept and "ambient" in board.concept and "piano" in board.concept
        assert "16mm" in board.style.medium
    else:
        # The text's mood words set the world; missing shot descriptions fall back to the analysis.
        assert board.style.era == "near-future city at night"
        loud = [shot.energy for shot in board.shots if shot.section_index == 4]
        calm = [shot.energy for shot in board.shots if shot.section_index == 0]
        assert min(loud) > max(calm)


def test_empty_descriptions_fall_back_to_neutral_with_a_warning():
    analysis, plan = make_song()
    blank = SegmentDescription(start_s=0.0, end_s=analysis.duration_s, text="")
    board = write_template_storyboard(
        analysis, plan, Descriptions(listener="dsp", song=blank, sections=[], shots=[])
    )
    assert len(board.shots) == len(plan.shots)
    assert any("neutral valence" in warning for warning in board.warnings)


def test_every_setting_is_a_place_of_the_set_list_that_its_shots_name(storyboard):
    places = {place.name: place for place in storyboard.places}
    assert places and len(places) == len({t.setting for t in storyboard.sections})
    setting_of = {t.section_index: t.setting for t in storyboard.sections}
    for shot in storyboard.shots:
        assert len(shot.places) == 1 and places[shot.places[0]].description == setting_of[shot.section_index]
    assert all(len(name) <= 40 and not name.startswith(("a ", "an ", "the ")) for name in places)
    assert storyboard.props == []
