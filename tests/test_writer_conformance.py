"""One contract for every storyboard writer, run over each backend (as diffusers'
``PipelineTesterMixin`` runs one suite over every pipeline): for the same song and plan, each
writer, called through the stage's public function ``write.write_storyboard``, returns a valid
Storyboard whose shots are the plan's (ids, times, sections, in order), with every prompt within
the prompt budget and every seed set from the run's seed.

Backends: ``template``; ``llm`` with a tiny random-weight local model (constrained decoding);
``llm`` through a scripted OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_llm_server import FakeServer, make_song

from music2video.artifacts import Storyboard
from music2video.settings import LlmSettings, WriteSettings
from music2video.write import storyboard_fingerprint, write_storyboard
from music2video.write.template import shot_seed

HEX = re.compile(r"^#[0-9a-f]{6}$")
SEED = 11
STYLE = "paper cut-outs in a shoebox theatre"
SMALL_BUDGET_CHARS = 240  # well under every writer's natural prompt length: the budget must bite


class WriterTesterMixin:
    """The contract. A subclass names its ``writer`` and gives ``llm_settings`` for it."""

    writer: str

    @pytest.fixture
    def llm_settings(self) -> LlmSettings:
        return LlmSettings()

    def write(self, llm_settings: LlmSettings, max_prompt_chars: int | None = None, **kwargs: Any) -> Storyboard:
        analysis, plan, descriptions = make_song()
        settings = WriteSettings() if max_prompt_chars is None else WriteSettings(max_prompt_chars=max_prompt_chars)
        return write_storyboard(analysis, plan, descriptions, writer=self.writer, settings=settings, llm=llm_settings,
                                style=STYLE, seed=SEED, **kwargs)

    def test_storyboard_follows_the_plan(self, llm_settings: LlmSettings) -> None:
        _, plan, _ = make_song()
        storyboard = self.write(llm_settings, lyrics_by_shot={"shot-001": "la la la"})
        Storyboard.model_validate_json(storyboard.model_dump_json())  # what is saved reads back
        assert [(s.id, s.start_s, s.end_s, s.section_index) for s in storyboard.shots] == [
            (s.id, s.start_s, s.end_s, s.section_index) for s in plan.shots
        ]
        assert [s.seed for s in storyboard.shots] == [shot_seed(SEED, s.index) for s in plan.shots]
        assert storyboard.shots[1].lyrics == "la la la"
        assert [t.section_index for t in storyboard.sections] == [0, 1, 2]
        for shot in storyboard.shots:
            assert shot.prompt.strip() and shot.negative_prompt.strip()
            assert len(shot.prompt) <= WriteSettings().max_prompt_chars
            assert shot.palette and all(HEX.match(colour) for colour in shot.palette)
            assert 0.0 <= shot.energy <= 1.0
            assert set(shot.characters) <= {c.name for c in storyboard.characters}
            assert set(shot.places) <= {p.name for p in storyboard.places}  # the set list names them
            assert set(shot.props) <= {p.name for p in storyboard.props}
        names = [m.name for m in (*storyboard.characters, *storyboard.places, *storyboard.props)]
        assert len(names) == len(set(names))  # one name, one reference picture
        assert storyboard.writer.startswith(self.writer) and storyboard.provisional is None

    def test_prompts_keep_within_a_smaller_budget(self, llm_settings: LlmSettings) -> None:
        storyboard = self.write(llm_settings, max_prompt_chars=SMALL_BUDGET_CHARS)
        assert all(0 < len(shot.prompt) <= SMALL_BUDGET_CHARS for shot in storyboard.shots)

    def test_the_same_inputs_give_the_same_storyboard(self, llm_settings: LlmSettings) -> None:
        assert self.write(llm_settings).model_dump_json() == self.write(llm_settings).model_dump_json()

    def test_the_budget_is_in_the_key_only_when_changed(self, llm_settings: LlmSettings) -> None:
        # Run folders made before the setting existed keep their keys; a changed budget rewrites.
        default = storyboard_fingerprint(self.writer, WriteSettings(), llm_settings, STYLE, SEED)
        smaller = storyboard_fingerprint(self.writer, WriteSettings(max_prompt_chars=400), llm_settings, STYLE, SEED)
        assert default != smaller
        assert "max_prompt_chars" not in str(default) and "max_prompt_chars" in str(smaller)


class TestTemplateWriter(WriterTesterMixin):
    writer = "template"


@pytest.mark.slow  # three storyboards from a random-weight model: about 20 s on 2 cores
@pytest.mark.usefixtures("one_torch_thread")
class TestLocalLlmWriter(WriterTesterMixin):
    writer = "llm"

    @pytest.fixture
    def llm_settings(self, tiny_llm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> LlmSettings:
        from test_write_llm import TINY_LIMITS

        from music2video.write.llm import writer

        # Dummy components, as diffusers' tests shrink theirs: short fields for a random model.
        monkeypatch.setattr(writer, "DEFAULT_LIMITS", TINY_LIMITS)
        return LlmSettings(model=str(tiny_llm_dir), device="cpu", max_retries=0)


class TestServerLlmWriter(WriterTesterMixin):
    writer = "llm"

    @pytest.fixture
    def llm_settings(self) -> Iterator[LlmSettings]:
        server = FakeServer()
        try:
            yield LlmSettings(model="test-model", base_url=server.url, first_token_timeout_s=5.0)
        finally:
            server.close()


def test_storyboard_keys_of_earlier_run_folders_stay_valid() -> None:
    """What earlier versions hashed, field for field: a run folder made before resumes."""
    from music2video.prompts import prompt_files_hash

    assert storyboard_fingerprint("template", WriteSettings(), LlmSettings(), STYLE, SEED) == (
        "template", None, STYLE, SEED, 1)
    server = LlmSettings(model="m", base_url="http://localhost:8000/v1", api_key="sk-secret", budget_s=60.0)
    assert storyboard_fingerprint("llm", WriteSettings(), server, STYLE, SEED) == (
        "llm",
        [{"device": "auto", "dtype": "auto", "model": "m", "base_url": "http://localhost:8000/v1", "max_retries": 3,
          "timeout_s": 120.0}, prompt_files_hash("storyboard_*")],
        STYLE, SEED, 1,
    )
    hotter = storyboard_fingerprint("llm", WriteSettings(), server.model_copy(update={"temperature": 1.0}), STYLE, SEED)
    assert hotter[1][0]["temperature"] == 1.0  # a changed knob rewrites the storyboard
