"""The lalm listener: answer parsing and judging, windows, prompts, and the real loading code
run on tiny random-weight models of every supported family.

A random model answers gibberish, so the end-to-end tests check the mechanics (one retry with
the stricter prompt, then the dsp fallback with a warning); the happy path is checked by
replacing only the generation step with hand-written answers.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).parent))

from tiny_lalm import BUILDERS, build_tiny_lalm  # noqa: E402

from music2video.artifacts import Analysis, Descriptions, ScoredLabel, Section, SegmentDescription, Shot, ShotPlan  # noqa: E402
from music2video.errors import MissingDependencyError, ModelLoadError, Music2VideoError  # noqa: E402
from music2video.listen import lalm  # noqa: E402
from music2video.listen.lalm import describe, prompts  # noqa: E402
from music2video.listen.lalm import (  # noqa: E402
    Window,
    answer_paragraph,
    answer_tags,
    check_answer,
    describe_lalm,
    parse_answer,
    plan_windows,
    resolve_family,
    window_facts,
)
from music2video.listen.lalm.families import DEFAULT_FAMILY, FAMILIES  # noqa: E402
from music2video.settings import LalmSettings  # noqa: E402

RATE_HZ = 48_000
SONG_S = 24.0
WINDOW_S = 8.0  # splits the 12 s verse into two windows: 4 windows in all
SECTIONS = [(0.0, 6.0, "A", "intro"), (6.0, 18.0, "B", "verse"), (18.0, 24.0, "A", "chorus")]
SHOT_S = 3.0

GOOD_ANSWER = """Mood: wistful, hopeful
Mood change: builds from quiet to bright
Instruments: piano, warm synth pads, soft drums
Genre: indie pop
Voice: breathy female vocal
Imagery: rain on a window, neon street, empty train
Story: A woman rides the last train home and smiles at her reflection."""


# --------------------------------------------------------------------------------------------
# Fixtures: a synthetic song, its analysis and shots, and the tiny models


@pytest.fixture(scope="session")
def song(tmp_path_factory) -> Path:
    """A 24 s stereo 48 kHz WAV: a quiet chord, then a louder, busier one, then the first again."""
    import soundfile

    t = np.arange(int(SONG_S * RATE_HZ)) / RATE_HZ
    quiet = 0.15 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277.2 * t) + np.sin(2 * np.pi * 329.6 * t)) / 3
    pulse = (np.sin(2 * np.pi * 2 * t) > 0.6).astype(float)  # 120 BPM clicks
    loud = 0.3 * (np.sin(2 * np.pi * 196 * t) + np.sin(2 * np.pi * 246.9 * t)) / 2 + 0.2 * pulse * np.random.default_rng(
        0
    ).standard_normal(t.size)
    mono = np.where((t >= 6.0) & (t < 18.0), loud, quiet).astype(np.float32)
    path = tmp_path_factory.mktemp("song") / "audio.wav"
    soundfile.write(path, np.stack([mono, 0.9 * mono], axis=1), RATE_HZ, subtype="FLOAT")
    return path


@pytest.fixture(scope="session")
def analysis() -> Analysis:
    curve_rate_hz = 10.0
    frames = int(SONG_S * curve_rate_hz)
    energy = [0.8 if 6.0 <= i / curve_rate_hz < 18.0 else 0.3 for i in range(frames)]
    return Analysis(
        duration_s=SONG_S,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=[round(b, 3) for b in np.arange(0.0, SONG_S, 0.5)],
        downbeats_s=[round(b, 3) for b in np.arange(0.0, SONG_S, 2.0)],
        sections=[
            Section(index=i, start_s=start, end_s=end, label=label, role=role, energy=0.8 if label == "B" else 0.3)
            for i, (start, end, label, role) in enumerate(SECTIONS)
        ],
        curve_rate_hz=curve_rate_hz,
        energy=energy,
        brightness=[0.5] * frames,
        onset_strength=[0.4] * frames,
    )


@pytest.fixture(scope="session")
def plan(analysis: Analysis) -> ShotPlan:
    shots = []
    for i, start in enumerate(np.arange(0.0, SONG_S, SHOT_S)):
        section = next(s for s in analysis.sections if s.start_s <= start < s.end_s)
        shots.append(
            Shot(
                index=i,
                id=f"shot-{i:03d}",
                start_s=float(start),
                end_s=float(start + SHOT_S),
                section_index=section.index,
                cut="beat",
            )
        )
    return ShotPlan(duration_s=SONG_S, shots=shots)


_TINY: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``tiny_model(family)``: the folder of that family's tiny model, built once per session."""

    def get(family: str) -> Path:
        if family not in _TINY:
            _TINY[family] = build_tiny_lalm(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return _TINY[family]

    return get


def settings_for(folder: Path, **overrides) -> LalmSettings:
    return LalmSettings(model=str(folder), device="cpu", dtype="float32", max_new_tokens=16, **overrides)


# --------------------------------------------------------------------------------------------
# Answers: parsing and judging


def test_parse_answer_reads_the_seven_line_layout():
    parsed = parse_answer(GOOD_ANSWER)
    assert set(parsed.fields) == {"mood", "mood_change", "instruments", "genre", "voice", "imagery", "story"}
    tags = answer_tags(parsed)
    assert [t.label for t in tags["instruments"]] == ["piano", "warm synth pads", "soft drums"]
    assert [t.score for t in tags["mood"]] == [1.0, 0.9]
    assert tags["voice"][0].label == "breathy female vocal"
    text = answer_paragraph(parsed)
    assert text.startswith("Wistful, hopeful indie pop with piano, warm synth pads, soft drums; breathy female vocal.")
    assert "Evokes rain on a window" in text and "Story idea: A woman rides" in text


def test_parse_answer_accepts_json_and_markdown():
    parsed = parse_answer('Sure! {"mood": ["calm", "dreamy"], "genre": "ambient", "vocals": "none, instrumental"}')
    assert parsed.fields == {"mood": "calm, dreamy", "genre": "ambient", "voice": "none, instrumental"}
    assert answer_tags(parsed)["voice"][0].label == "instrumental"

    parsed = parse_answer("- **Mood:** dark, tense\n- **Instrumentation**: distorted guitar and drums\n* Genre: metal")
    assert parsed.fields["mood"] == "dark, tense"
    assert [t.label for t in answer_tags(parsed)["instruments"]] == ["distorted guitar", "drums"]
    assert parsed.fields["genre"] == "metal"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (GOOD_ANSWER, None),
        ("A slow, dreamy piano ballad with soft strings and a gentle female vocal.", None),  # free text, on topic
        ("", "empty"),
        ("   \n  ", "empty"),
        ("ok sure", "empty"),
        ("I'm sorry, but I cannot listen to audio files.", "a refusal"),
        ("There is no audio provided in your message.", "a refusal"),
        ("The capital of France is Paris, and the Eiffel Tower was finished in 1889 for a fair.", "off-topic"),
        ("x\x02cal in$stGen`\x11H\ufffd qq zz", "off-topic"),
        ("Mood: calm\n" * 5, "rambling"),
        ("the piano plays the piano plays " * 12, "rambling"),
        ("Mood: calm. " + "Lovely music with a piano and strings, very calm and soft. " * 30, "rambling"),
    ],
)
def test_check_answer(answer: str, problem: str | None):
    assert check_answer(answer).problem == problem


def test_an_answer_that_copies_the_instructions_is_rejected():
    instructions = prompts.layout_instructions()
    echo = "Mood: two to four words for the mood of this clip\nGenre: one to three words\nInstruments: piano"
    assert check_answer(echo, instructions).problem == "a copy of the instructions"
    assert check_answer(GOOD_ANSWER, instructions).ok


# --------------------------------------------------------------------------------------------
# Windows and prompts


def test_plan_windows_splits_long_sections_into_equal_windows(analysis: Analysis):
    windows = plan_windows(analysis.sections, WINDOW_S)
    assert [(w.section_position, w.part, w.parts) for w in windows] == [(0, 1, 1), (1, 1, 2), (1, 2, 2), (2, 1, 1)]
    assert [(w.start_s, w.end_s) for w in windows] == [(0.0, 6.0), (6.0, 12.0), (12.0, 18.0), (18.0, 24.0)]
    assert all(w.duration_s <= WINDOW_S for w in windows)
    three = plan_windows([Section(index=0, start_s=10.0, end_s=40.0, label="A", role="verse", energy=0.5)], 10.0)
    assert [(w.start_s, w.end_s) for w in three] == [(10.0, 20.0), (20.0, 30.0), (30.0, 40.0)]
    with pytest.raises(ValueError):
        plan_windows(analysis.sections, 0.0)


def test_prompts_carry_the_measured_facts(analysis: Analysis):
    window = Window(index=3, section_position=2, part=1, parts=1, start_s=18.0, end_s=24.0)
    dsp = SegmentDescription(
        start_s=18.0,
        end_s=24.0,
        text="",
        features={"tempo_bpm": 121.4, "energy": 0.31, "key_tonic": 9.0, "key_mode_major": 0.0},
        tags={"energy": [ScoredLabel(label="moderate", score=1.0)], "brightness": [ScoredLabel(label="warm", score=1.0)]},
    )
    facts = window_facts(window, analysis, dsp)
    prompt = prompts.describe_prompt(facts)
    assert "section 3 of 3 (chorus; repetition label A; the same music is heard in section 1)" in prompt
    assert "0:18-0:24 of a 0:24 song" in prompt
    assert "about 121 BPM, 4 beats per bar" in prompt
    assert "Key: probably A minor." in prompt
    assert "Energy: moderate (0.31" in prompt and "timbre warm" in prompt
    assert "Mood:" in prompt and "Story:" in prompt
    retry = prompts.retry_prompt(facts, "empty")
    assert "could not be used (it was empty)" in retry and "121 BPM" in retry


# --------------------------------------------------------------------------------------------
# Families and loading


def test_default_family_is_the_strongest_commercially_usable_one():
    default = FAMILIES[DEFAULT_FAMILY]
    assert default.commercial_use and default.default_model == "Qwen/Qwen2.5-Omni-7B"
    assert {name for name, family in FAMILIES.items() if not family.commercial_use} == {"audio_flamingo3", "music_flamingo"}
    assert resolve_family("Qwen/Qwen2-Audio-7B-Instruct").name == "qwen2_audio"  # known id: no config read


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_family_comes_from_the_model_type(tiny_model, family: str):
    assert resolve_family(str(tiny_model(family))).name == family
    assert resolve_family(str(tiny_model(family)), family).name == family


def test_family_errors_name_the_choices(tmp_path: Path):
    with pytest.raises(Music2VideoError, match="qwen2_5_omni"):
        resolve_family("Qwen/Qwen2.5-Omni-7B", "nonsense")
    with pytest.raises(Music2VideoError, match="is a Qwen2-Audio model but family 'audio_flamingo3'"):
        resolve_family("Qwen/Qwen2-Audio-7B-Instruct", "audio_flamingo3")
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelLoadError, match="model_type 'llama' is not a family"):
        resolve_family(str(tmp_path))


def test_unloadable_model_raises_model_load_error(song, analysis, plan, tmp_path: Path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="--lalm-model") as caught:
        describe_lalm(song, analysis, plan, settings_for(missing))
    assert str(missing) in str(caught.value) and "\n" not in str(caught.value)

    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text('{"model_type": "qwen2_audio"}')
    with pytest.raises(ModelLoadError, match="cannot load the audio-language model in the folder .*--lalm-model"):
        describe_lalm(song, analysis, plan, settings_for(weightless))


def test_missing_transformers_is_a_missing_dependency(song, analysis, plan, monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"'transformers'.*music2video\[lalm\]"):
        describe_lalm(song, analysis, plan, settings_for(tmp_path))


# --------------------------------------------------------------------------------------------
# End to end through the real loading code


def _assert_aligned(descriptions: Descriptions, analysis: Analysis, plan: ShotPlan) -> None:
    assert descriptions.listener == "lalm"
    assert [(s.start_s, s.end_s) for s in descriptions.sections] == [(s.start_s, s.end_s) for s in analysis.sections]
    assert [(s.start_s, s.end_s) for s in descriptions.shots] == [(s.start_s, s.end_s) for s in plan.shots]
    assert (descriptions.song.start_s, descriptions.song.end_s) == (0.0, SONG_S)
    for description in [descriptions.song, *descriptions.sections, *descriptions.shots]:
        assert description.text
        assert "energy" in description.features and "lalm_answered" in description.features


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_random_weights_retry_once_then_fall_back_to_dsp(tiny_model, song, analysis, plan, family, monkeypatch, caplog):
    calls: list[tuple[int, float, str]] = []
    real_ask = describe.ask_model

    def spy(family_, model, processor, requests, **kwargs):
        calls.append((len(requests), kwargs["repetition_penalty"], requests[0].prompt))
        return real_ask(family_, model, processor, requests, **kwargs)

    batches: list[int] = []
    chosen = FAMILIES[family]
    real_build = chosen.build_inputs
    monkeypatch.setattr(
        chosen, "build_inputs", lambda processor, requests: (batches.append(len(requests)), real_build(processor, requests))[1]
    )
    freed: list[bool] = []
    real_free = describe.free_memory
    monkeypatch.setattr(describe, "ask_model", spy)
    monkeypatch.setattr(describe, "free_memory", lambda: (freed.append(True), real_free()))
    settings = settings_for(tiny_model(family), window_s=WINDOW_S, batch_size=3)
    with caplog.at_level(logging.WARNING, logger="music2video.listen.lalm"):
        descriptions = describe_lalm(song, analysis, plan, settings)

    _assert_aligned(descriptions, analysis, plan)
    assert descriptions.model == settings.model
    # Four windows asked in batches of 3 + 1, all four gibberish, all four asked again, then dsp.
    assert [c[0] for c in calls] == [4, 4] and batches == [3, 1, 3, 1]
    assert calls[0][1] == describe.REPETITION_PENALTY and calls[1][1] == describe.RETRY_REPETITION_PENALTY
    assert "could not be used" in calls[1][2] and "could not be used" not in calls[0][2]
    fallbacks = [w for w in descriptions.warnings if w.endswith("DSP description used")]
    assert len(fallbacks) == 4
    assert fallbacks[0].startswith("section 0: the audio-language model's answer was ")
    assert fallbacks[1].startswith("section 1 (part 1 of 2, 0:06-0:12): ")
    assert all(s.features["lalm_answered"] == 0.0 for s in [*descriptions.sections, *descriptions.shots])
    assert sum("DSP description used" in r.getMessage() for r in caplog.records) == 4
    assert freed, "the model must be freed before returning"

    non_commercial = not FAMILIES[family].commercial_use
    licence_warnings = [w for w in descriptions.warnings if "not for commercial use" in w]
    assert bool(licence_warnings) == non_commercial
    assert any("not for commercial use" in r.getMessage() for r in caplog.records) == non_commercial


def test_good_answers_become_words_tags_and_a_song_summary(tiny_model, song, analysis, plan, monkeypatch):
    moods = iter(["calm, dreamy", "tense, driving", "driving, euphoric", "calm, hopeful"])

    def answer(family, model, processor, requests, **kwargs):
        assert model is not None and processor is not None  # the real model was loaded
        return [GOOD_ANSWER.replace("wistful, hopeful", next(moods)) for _ in requests]

    monkeypatch.setattr(describe, "ask_model", answer)
    descriptions = describe_lalm(song, analysis, plan, settings_for(tiny_model(DEFAULT_FAMILY), window_s=WINDOW_S))

    _assert_aligned(descriptions, analysis, plan)
    assert not descriptions.warnings
    intro, verse, chorus = descriptions.sections
    assert intro.text.startswith("Calm, dreamy indie pop with piano")
    assert verse.text.startswith("Part 1/2: Tense, driving") and "Part 2/2: Driving, euphoric" in verse.text
    assert [t.label for t in verse.tags["mood"]][:3] == ["driving", "tense", "euphoric"]  # merged over windows
    assert verse.features["lalm_answered"] == 1.0 and verse.features["lalm_vocals"] == 1.0
    assert "tempo_bpm" in verse.features  # the dsp numbers ride along

    first_verse_shot, last_verse_shot = descriptions.shots[2], descriptions.shots[5]
    assert first_verse_shot.text.startswith("Tense, driving") and last_verse_shot.text.startswith("Driving, euphoric")
    assert first_verse_shot.features["energy"] != intro.features["energy"]  # the shot's own numbers

    song_text = descriptions.song.text
    assert song_text.startswith("Indie pop song at about 120 BPM")
    assert "Mood arc: calm (intro) → driving (verse) → calm (chorus)." in song_text
    assert "Instruments: piano, warm synth pads, soft drums." in song_text
    assert descriptions.song.tags["genre"][0].label == "indie pop"


def test_a_good_retry_is_used_with_lower_confidence(tiny_model, song, analysis, plan, monkeypatch):
    answers = iter([["", GOOD_ANSWER, GOOD_ANSWER, GOOD_ANSWER], [GOOD_ANSWER]])
    monkeypatch.setattr(describe, "ask_model", lambda *args, **kwargs: next(answers))
    descriptions = describe_lalm(song, analysis, plan, settings_for(tiny_model("qwen2_audio"), window_s=WINDOW_S))
    assert not descriptions.warnings
    intro, verse, _ = descriptions.sections
    assert intro.features["lalm_answered"] == 1.0
    assert intro.confidence == pytest.approx(describe.RETRY_CONFIDENCE_FACTOR)
    assert verse.confidence == pytest.approx(1.0)


def test_one_failed_window_falls_back_alone(tiny_model, song, analysis, plan, monkeypatch):
    answers = iter([[GOOD_ANSWER, GOOD_ANSWER, "I'm sorry, I can't help with that.", GOOD_ANSWER], [""]])
    monkeypatch.setattr(describe, "ask_model", lambda *args, **kwargs: next(answers))
    reports: list[tuple[int, int, str]] = []
    descriptions = describe_lalm(
        song,
        analysis,
        plan,
        settings_for(tiny_model("qwen2_audio"), window_s=WINDOW_S),
        lambda done, total, message="": reports.append((done, total, message)),
    )
    assert descriptions.warnings == [
        "section 1 (part 2 of 2, 0:12-0:18): the audio-language model's answer was a refusal, then empty; DSP description used"
    ]
    verse = descriptions.sections[1]
    assert verse.features["lalm_answered"] == 0.5
    assert "Part 2/2: " in verse.text and "passage" in verse.text  # the dsp sentence stands in
    assert set(verse.tags) <= set(lalm.answers.TAG_FIELDS)  # no dsp vocabularies mixed into the model's tags
    # Shots 12-15 s and 15-18 s sit in the failed window and keep their own dsp descriptions.
    assert [shot.features["lalm_answered"] for shot in descriptions.shots[2:6]] == [1.0, 1.0, 0.0, 0.0]
    assert set(descriptions.song.tags) <= set(lalm.answers.TAG_FIELDS)
    assert descriptions.song.features["lalm_answered"] == 0.75
    dones = [done for done, _, _ in reports]
    assert dones == sorted(dones) and reports[-1][0] == reports[-1][1]
