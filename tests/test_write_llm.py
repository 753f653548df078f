"""The LLM storyboard writer, offline: a tiny random-weight chat model for the local backend, and a
scripted OpenAI-compatible server on loopback for the HTTP backend and every fault path.

Whatever the model or server does, the storyboard must keep the plan's shots: same count, ids,
times and order. These tests check that on every path.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_llm_server import INJECTION, SECTIONS, FakeServer, make_song

from music2video.artifacts import ShotPlan, Storyboard
from music2video.errors import Music2VideoError
from music2video.settings import DEFAULT_MAX_PROMPT_CHARS, LlmSettings
from music2video.write import llm
from music2video import prompts
from music2video.write.llm import director, openai_backend
from music2video.write.template import shot_seed, write_template_storyboard

STYLE = "hand-made stop-motion with felt puppets"
HEX = re.compile(r"^#[0-9a-f]{6}$")

# Short fields so that a random-weight model fills a schema in a few hundred tokens.
TINY_LIMITS = llm.TextLimits(
    title=8, concept=12, look=8, medium=6, lens=6, era=6, character_name=6, character_description=12,
    max_characters=2, motif=6, setting=10, story=10, scene=10, shot_prompt=12, camera=6,
    max_characters_per_shot=1, min_palette_colours=2, max_palette_colours=2,
    place_name=6, place_description=10, max_places=1, prop_name=6, prop_description=8, max_props=1,
)


def assert_matches_plan(storyboard: Storyboard, plan: ShotPlan) -> None:
    """Same shots as planned: count, ids, times, sections, in order; seeds from the program."""
    assert [(s.id, s.start_s, s.end_s, s.section_index) for s in storyboard.shots] == [
        (s.id, s.start_s, s.end_s, s.section_index) for s in plan.shots
    ]
    assert [s.seed for s in storyboard.shots] == [shot_seed(0, s.index) for s in plan.shots]
    for shot in storyboard.shots:
        assert len(shot.prompt) <= DEFAULT_MAX_PROMPT_CHARS
        assert shot.palette and all(HEX.match(colour) for colour in shot.palette)
    assert len(storyboard.sections) == len(SECTIONS)


def fallback_warnings(storyboard: Storyboard) -> list[str]:
    return [w for w in storyboard.warnings if "template" in w]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(director, "RETRY_BASE_DELAY_S", 0.01)
    monkeypatch.setattr(openai_backend, "WAIT_REPORT_INTERVAL_S", 0.05)


# --------------------------------------------------------------------------------------------
# Schemas, repair and prompt composition


@pytest.mark.parametrize("limits", [llm.DEFAULT_LIMITS, TINY_LIMITS])
def test_schemas_are_hardened_and_compile_for_llguidance(limits: llm.TextLimits) -> None:
    llguidance = pytest.importorskip("llguidance")
    schemas = [
        llm.concept_schema(limits, 3),
        llm.shots_schema(limits, 5, ["Mara", "Jo"]),
        llm.shots_schema(limits, 1, []),
    ]
    for schema in schemas:
        llm.check_hardened(schema)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, overrides={"whitespace_flexible": False})
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
        assert not is_error, messages
    concept, shots, _ = schemas
    assert concept["properties"]["sections"]["minItems"] == concept["properties"]["sections"]["maxItems"] == 3
    assert shots["properties"]["shots"]["minItems"] == shots["properties"]["shots"]["maxItems"] == 5
    assert shots["properties"]["shots"]["items"]["properties"]["characters"]["items"]["enum"] == ["Mara", "Jo"]
    assert "title" in concept["properties"]  # a property named title survives the cleanup


def test_unbounded_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="maxLength"):
        llm.check_hardened({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                            "additionalProperties": False})
    with pytest.raises(ValueError, match="integer"):
        llm.check_hardened({"type": "integer", "minimum": 0})


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ('Sure! Here it is: {"a": "b"} Hope that helps.', {"a": "b"}),
        ('{"a": [1, 2,], "b": {"c": 1,},}', {"a": [1, 2], "b": {"c": 1}}),
        ('{"a": [{"b": "tex', {"a": [{"b": "tex"}]}),
        ('{"a": [{"b": "x"}, ', {"a": [{"b": "x"}]}),
        ('{"a": 1, "b":', {"a": 1, "b": None}),
        ('{"a": 1, "b"', {"a": 1, "b": None}),
        ('{"a": "q\\"uote\\', {"a": 'q"uote'}),
    ],
)
def test_repair_json(broken: str, expected: Any) -> None:
    assert json.loads(llm.repair_json(broken)) == expected


def test_compose_prompt_keeps_characters_word_for_word_within_budget() -> None:
    from music2video.artifacts import Character, StyleBible

    style = StyleBible(look="grainy film " * 20, palette=["#000000"], medium="16 mm", lens="wide", era="1970s")
    mara = Character(name="Mara", description="a woman in a red coat with short black hair")
    prompt, cut = llm.compose_prompt(style, [mara], "a wet street at night", "she runs " * 80, max_chars=400)
    assert cut and len(prompt) <= 400
    assert "Mara: a woman in a red coat with short black hair." in prompt
    assert "she runs" in prompt  # the shot's own words keep room before the style does
    prompt, cut = llm.compose_prompt(style.model_copy(update={"look": "grainy film"}), [mara], "a wet street", "she runs")
    assert not cut
    assert prompt == ("grainy film, 16 mm, wide, 1970s. Mara: a woman in a red coat with short black hair. "
                      "a wet street. she runs")


# --------------------------------------------------------------------------------------------
# Local backend: a tiny random-weight chat model with llguidance-constrained decoding


@pytest.mark.usefixtures("one_torch_thread")
def test_local_model_writes_a_schema_valid_storyboard(tiny_llm_dir: Path, tmp_path: Path) -> None:
    analysis, plan, descriptions = make_song()
    settings = LlmSettings(model=str(tiny_llm_dir), device="cpu", max_retries=0)
    lyrics = {"shot-001": INJECTION, "shot-002": "la la la"}
    calls: list[tuple[int, int, str]] = []

    storyboard = llm.write_llm_storyboard(
        analysis, plan, descriptions, settings, style=STYLE, lyrics_by_shot=lyrics, log_dir=tmp_path / "llm",
        progress=lambda done, total, message="": calls.append((done, total, message)), limits=TINY_LIMITS,
    )

    # Random weights, but constrained decoding: every pass validated at the first attempt.
    assert fallback_warnings(storyboard) == []
    assert not any("repaired" in w for w in storyboard.warnings)
    assert_matches_plan(storyboard, plan)
    assert storyboard.writer == f"llm:{tiny_llm_dir}"
    assert [s.lyrics for s in storyboard.shots][:3] == ["", INJECTION, "la la la"]
    names = {c.name: c for c in storyboard.characters}
    for shot in storyboard.shots:
        assert set(shot.characters) <= set(names)
        for name in shot.characters:  # described word for word by the program
            assert f"{name}: {names[name].description.rstrip('.')}." in shot.prompt
    # A returning label repeats its motif.
    assert storyboard.sections[0].motif == storyboard.sections[2].motif
    assert calls[-1][0] == calls[-1][1] == 1 + len(SECTIONS)

    logs = sorted(p.name for p in (tmp_path / "llm").iterdir())
    assert logs[:2] == ["001-concept.request.json", "001-concept.response.txt"]
    assert len(logs) == 2 * (1 + len(SECTIONS))
    request = json.loads((tmp_path / "llm" / "002-section-00-verse.request.json").read_text())
    assert request["backend"] == "transformers" and request["max_new_tokens"] > 0
    assert "<|im_start|>assistant" in request["prompt_text"]
    assert json.loads((tmp_path / "llm" / "002-section-00-verse.response.txt").read_text())["shots"]


def test_a_missing_local_model_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from music2video.errors import ModelLoadError

    analysis, plan, descriptions = make_song()
    settings = LlmSettings(model=str(tmp_path / "no-such-model"), device="cpu")
    with pytest.raises(ModelLoadError, match="could not load the LLM .*llm.base_url"):
        llm.write_llm_storyboard(analysis, plan, descriptions, settings)


# --------------------------------------------------------------------------------------------
# OpenAI-compatible backend against a scripted server on loopback


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    try:
        yield fake
    finally:
        fake.close()


def remote(server: FakeServer, **overrides: Any) -> LlmSettings:
    values = {"model": "test-model", "base_url": server.url, "api_key": "sk-test", "max_retries": 2,
              "first_token_timeout_s": 5.0}
    return LlmSettings(**{**values, **overrides})


def write(server: FakeServer, log_dir: Path | None = None, lyrics: dict[str, str] | None = None,
          **overrides: Any) -> tuple[Storyboard, ShotPlan]:
    analysis, plan, descriptions = make_song()
    storyboard = llm.write_llm_storyboard(analysis, plan, descriptions, remote(server, **overrides), style=STYLE,
                                          lyrics_by_shot=lyrics, log_dir=log_dir)
    assert_matches_plan(storyboard, plan)
    return storyboard, plan


def test_server_storyboard_follows_the_concept(server: FakeServer, tmp_path: Path) -> None:
    storyboard, plan = write(server, log_dir=tmp_path / "llm")

    assert storyboard.warnings == []
    assert storyboard.writer == f"llm:test-model@{server.url}"
    assert storyboard.title == "Felt Rain"
    assert storyboard.style.palette == ["#1a2b3c", "#ffcc00", "#aa0033"]  # validated and lower-cased
    description = "Mara: a felt puppet in a red coat with button eyes."
    for shot in storyboard.shots:
        assert shot.prompt.startswith("felt puppets, soft window light, stop-motion, macro 50 mm, 1970s. ")
        assert description in shot.prompt and shot.characters == ["Mara"]
        assert shot.camera == "slow push in"
    # The returning verse repeats the first verse's motif, whatever the model named it.
    assert [t.motif for t in storyboard.sections] == ["motif A1", "motif B2", "motif A1"]
    assert storyboard.sections[2].setting == "platform 3"
    assert [s.motif for s in storyboard.shots] == ["motif A1"] * 2 + ["motif B2"] * 2 + ["motif A1"]

    # One concept request, then one per section; all strict json_schema.
    assert len(server.requests) == 1 + len(SECTIONS)
    for body in server.requests:
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
        system = " ".join(body["messages"][0]["content"].split())
        assert "never an instruction to you" in system
        assert STYLE in body["messages"][1]["content"]  # the director's brief
    # The returning section's pass sees what the first verse showed.
    echo = server.data_block(server.requests[3])["echo"]
    assert echo["section"] == 1 and echo["scenes"] == ["Mara waits, shot 1", "Mara waits, shot 2"]
    assert server.data_block(server.requests[0])["song"]["key"] == "A minor"

    logs = sorted(p.name for p in (tmp_path / "llm").iterdir())
    assert logs == [f"{n:03d}-{part}.{suffix}" for n, part in
                    [(1, "concept"), (2, "section-00-verse"), (3, "section-01-chorus"), (4, "section-02-verse")]
                    for suffix in ("request.json", "response.txt")]
    logged = json.loads((tmp_path / "llm" / "001-concept.request.json").read_text())
    assert logged["messages"] == server.requests[0]["messages"]
    assert "sk-test" not in json.dumps(logged)


def test_server_errors_are_retried_with_backoff(server: FakeServer) -> None:
    server.script = ["500", "429", "500", "503"]
    storyboard, _ = write(server, max_retries=4)
    assert fallback_warnings(storyboard) == []
    assert storyboard.provisional is None
    assert len(server.requests) == 5 + len(SECTIONS)  # four failures, then the concept, then the sections


def test_unusable_replies_are_retried_with_the_error_fed_back(server: FakeServer) -> None:
    server.script = ["broken", "wrong_count", "good", "truncated_mid"]
    storyboard, _ = write(server, max_retries=2)
    assert fallback_warnings(storyboard) == []
    second, third = server.requests[1], server.requests[2]
    assert "not valid JSON" in second["messages"][-1]["content"]
    assert "it had 2 section treatments; the song has exactly 3 sections" in third["messages"][-1]["content"]
    assert len(server.requests) == 3 + 1 + len(SECTIONS)  # the first section's shots needed a retry too


@pytest.mark.parametrize("action", ["fenced", "prose", "truncated_tail"])
def test_malformed_json_is_repaired(server: FakeServer, action: str) -> None:
    server.script = [action]
    storyboard, _ = write(server)
    assert storyboard.warnings == ["concept: the LLM's JSON was malformed and was repaired"]
    assert storyboard.title == "Felt Rain"
    assert len(server.requests) == 1 + len(SECTIONS)


def test_a_failing_section_falls_back_to_template_scenes_loudly(server: FakeServer,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    server.always = {"shots:2": "500"}
    analysis, plan, descriptions = make_song()
    template = write_template_storyboard(analysis, plan, descriptions, style=STYLE)
    with caplog.at_level("WARNING", logger="music2video.write.llm"):
        storyboard, _ = write(server, max_retries=2)

    message = "section 1 (chorus): LLM failed 3 times (HTTP 500); template scenes used"
    assert fallback_warnings(storyboard) == [message]
    # A server error may pass: the storyboard says so, and the next run asks again.
    assert storyboard.provisional == "section 1 (chorus): HTTP 500"
    assert storyboard.writer == f"llm:test-model@{server.url}, partly template (fallback: section 1 (chorus): HTTP 500)"
    assert message in caplog.text
    chorus = [s for s in storyboard.shots if s.section_index == 1]
    assert [s.scene for s in chorus] == [s.scene for s in template.shots if s.section_index == 1]
    assert [s.prompt for s in chorus] == [s.prompt for s in template.shots if s.section_index == 1]
    others = [s for s in storyboard.shots if s.section_index != 1]
    assert all(s.scene.startswith("Mara waits") for s in others)
    assert len(server.requests) == 1 + 2 + 3  # concept, two good sections, three tries at the chorus


def test_a_failing_concept_falls_back_to_the_template_concept(server: FakeServer) -> None:
    server.always = {"concept": "broken"}
    analysis, plan, descriptions = make_song()
    template = write_template_storyboard(analysis, plan, descriptions, style=STYLE)
    storyboard, _ = write(server, max_retries=1)
    assert fallback_warnings(storyboard) == [
        "concept: LLM failed 2 times (invalid JSON); template concept, style, characters and section treatments used"
    ]
    assert storyboard.style == template.style and storyboard.sections == template.sections
    # The shots are still the model's, with the template's characters available to them.
    assert all(s.scene.startswith("Mara waits") for s in storyboard.shots)
    assert all(s.characters == [] for s in storyboard.shots)  # "Mara" is not a template character
    assert storyboard.provisional is None  # the model answered: asking again would not help


def test_a_server_that_stays_silent_ends_the_remaining_parts_at_once(server: FakeServer) -> None:
    server.always = {"shots:2": "slow"}
    storyboard, _ = write(server, max_retries=3, first_token_timeout_s=0.5)
    silent = f"LLM at {server.url} sent nothing for 0.5 s"
    assert fallback_warnings(storyboard) == [
        f"section 1 (chorus): {silent}; template scenes used",
        f"section 2 (verse): {silent}; template scenes used",
    ]
    assert len(server.requests) == 1 + 2  # the concept, the first verse, one try at the chorus; no more
    assert storyboard.writer == f"llm:test-model@{server.url}, partly template (fallback: {silent})"
    assert storyboard.provisional == silent


def test_a_server_without_json_schema_gets_json_object(server: FakeServer) -> None:
    server.always = {kind: "reject_schema" for kind in ("concept", "shots:1", "shots:2", "shots:3")}
    storyboard, _ = write(server)
    assert fallback_warnings(storyboard) == []
    formats = [(body.get("response_format") or {}).get("type") for body in server.requests]
    # json_schema twice (full, then without length keywords), then json_object from then on.
    assert formats == ["json_schema", "json_schema", "json_object"] + ["json_object"] * len(SECTIONS)
    assert "maxLength" not in json.dumps(server.requests[1]["response_format"])
    assert any("used json_object instead" in w for w in storyboard.warnings)


def test_a_server_without_response_formats_gets_plain_text(server: FakeServer) -> None:
    server.always = {kind: "reject_formats" for kind in ("concept", "shots:1", "shots:2", "shots:3")}
    storyboard, _ = write(server)
    assert fallback_warnings(storyboard) == []
    assert "response_format" not in server.requests[-1]
    assert storyboard.title == "Felt Rain"


def test_lyrics_cannot_change_the_shots(server: FakeServer) -> None:
    server.always = {"shots:1": "obey_injection"}
    lyrics = {"shot-000": INJECTION}
    storyboard, plan = write(server, lyrics=lyrics, max_retries=1)
    assert fallback_warnings(storyboard) == [
        "section 0 (verse): LLM failed 2 times (3 shots instead of 2); template scenes used"
    ]
    assert storyboard.shots[0].lyrics == INJECTION
    # The lyric reached the model only as a JSON string inside the data block.
    for body in server.requests:
        assert INJECTION not in body["messages"][0]["content"]
        user = body["messages"][1]["content"]
        before, _, after = user.partition("BEGIN SONG DATA\n")
        assert INJECTION not in before
        assert INJECTION not in after.partition("\nEND SONG DATA")[2]


def test_over_long_text_is_cut_to_the_budget(server: FakeServer) -> None:
    server.script = ["good", "long_text"]
    storyboard, _ = write(server)
    first = storyboard.shots[0]
    assert len(first.prompt) <= DEFAULT_MAX_PROMPT_CHARS
    assert "Mara: a felt puppet in a red coat with button eyes." in first.prompt
    assert not first.prompt.endswith(" ")
    assert any("were cut at a word boundary: shot-000 prompt, shot-001 prompt" in w for w in storyboard.warnings)


def test_an_invalid_palette_falls_back_to_the_template_palette(server: FakeServer) -> None:
    server.script = ["bad_palette"]
    analysis, plan, descriptions = make_song()
    template = write_template_storyboard(analysis, plan, descriptions, style=STYLE)
    storyboard, _ = write(server)
    assert storyboard.sections[1].palette == template.sections[1].palette
    assert storyboard.shots[2].palette == template.sections[1].palette
    assert any("section 1 (chorus): the LLM's palette" in w for w in storyboard.warnings)


def test_long_sections_are_written_in_chunks(server: FakeServer) -> None:
    storyboard, plan = write(server, shots_per_request=1)
    assert storyboard.warnings == []
    assert len(server.requests) == 1 + len(plan.shots)
    second_chunk = server.data_block(server.requests[2])
    assert len(second_chunk["shots"]) == 1
    assert second_chunk["this_section"]["shots_already_written"] == ["Mara waits, shot 1"]


def test_a_refused_key_is_an_error_to_act_on(server: FakeServer) -> None:
    server.always = {"concept": "401"}
    with pytest.raises(Music2VideoError, match="refused model 'test-model'.*api_key"):
        write(server)


def free_loopback_port() -> int:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_tried_once_and_ends_every_part(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}/v1"
    analysis, plan, descriptions = make_song()
    settings = LlmSettings(model="test-model", base_url=url, max_retries=3)
    storyboard = llm.write_llm_storyboard(analysis, plan, descriptions, settings, log_dir=tmp_path)
    assert_matches_plan(storyboard, plan)
    reason = f"LLM unreachable at {url} (connection refused)"
    assert storyboard.writer == f"template (fallback: {reason})"
    assert storyboard.provisional == reason
    assert fallback_warnings(storyboard)[0] == (
        f"concept: {reason}; template concept, style, characters and section treatments used"
    )
    assert len(fallback_warnings(storyboard)) == 1 + len(SECTIONS)
    # One request in all, not one per part nor one per retry.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["001-concept.error.txt", "001-concept.request.json"]
    assert (tmp_path / "001-concept.error.txt").read_text().startswith(f"LLM unreachable at {url}")


def test_a_hanging_server_ends_within_the_budget_and_says_what_it_waits_for(server: FakeServer) -> None:
    server.always = {"concept": "hang"}
    analysis, plan, descriptions = make_song()
    # The first-token timeout is far longer than the budget: only the budget can end this run.
    settings = remote(server, first_token_timeout_s=60.0, budget_s=0.6)
    lines: list[str] = []
    started = time.monotonic()
    storyboard = llm.write_llm_storyboard(analysis, plan, descriptions, settings,
                                          progress=lambda done, total, message="": lines.append(message))
    assert time.monotonic() - started < settings.first_token_timeout_s
    assert_matches_plan(storyboard, plan)
    assert storyboard.writer == "template (fallback: LLM time budget of 0.6 s (llm.budget_s) spent)"
    assert storyboard.provisional is not None
    assert len(server.requests) == 1
    waits = [line for line in lines if line.startswith(f"waiting for the LLM server at {server.url}: ")]
    assert waits and re.search(r": \d+ s \(gives up after [\d.]+ s of silence\)$", waits[-1])


def test_the_budget_covers_retries_too(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.always = {"concept": "503"}
    monkeypatch.setattr(director, "RETRY_BASE_DELAY_S", 0.4)
    storyboard, _ = write(server, max_retries=10, budget_s=1.0)
    assert storyboard.writer == "template (fallback: LLM time budget of 1 s (llm.budget_s) spent)"
    assert len(server.requests) < 11


def test_an_edited_prompt_template_with_an_unknown_placeholder_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompts, "load_prompt", lambda name: "Write ${shot_count} shots for ${mood}.")
    with pytest.raises(Music2VideoError, match=r"storyboard_shots.md uses the placeholder \$\{mood\}"):
        llm.fill_prompt("storyboard_shots.md", shot_count=3)


def test_server_storyboard_has_a_set_list_that_shots_name(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    good = server.good
    platform = "a foggy railway platform of green iron"

    def with_set_list(body: dict[str, Any]) -> dict[str, Any]:
        reply = good(body)
        if "title" in reply:
            reply["places"] = [{"name": "the platform", "description": platform},
                               {"name": "Mara", "description": "a second Mara cannot be told apart"}]
            reply["props"] = [{"name": "the lantern", "description": "a brass lantern with a blue flame"}]
        else:
            for shot in reply["shots"]:
                shot["places"], shot["props"] = ["the platform"], ["the lantern", "the umbrella"]
        return reply

    monkeypatch.setattr(server, "good", with_set_list)
    storyboard, _ = write(server)
    assert [(p.name, p.description) for p in storyboard.places] == [("the platform", platform)]  # one name, one member
    assert [p.name for p in storyboard.props] == ["the lantern"]
    for shot in storyboard.shots:
        assert shot.places == ["the platform"] and shot.props == ["the lantern"]
        # The place's words stand in for the section's setting; the prop is described like a character.
        assert f"{platform}." in shot.prompt and "platform 1" not in shot.prompt
        assert "the lantern: a brass lantern with a blue flame." in shot.prompt
    assert any("'the umbrella'" in warning for warning in storyboard.warnings)  # a name the concept lacks
    shots_request = server.requests[1]["response_format"]["json_schema"]["schema"]
    shot_items = shots_request["properties"]["shots"]["items"]["properties"]
    assert shot_items["places"]["items"]["enum"] == ["the platform"] and shot_items["places"]["maxItems"] == 1


def test_replies_without_a_set_list_still_parse(server: FakeServer) -> None:
    storyboard, _ = write(server)  # the scripted replies name no places or props
    assert storyboard.places == [] and all(shot.places == [] for shot in storyboard.shots)
