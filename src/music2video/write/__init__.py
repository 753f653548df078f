"""Storyboard writers: from the song's structure and a listener's descriptions to ``storyboard.json``.

Every writer returns the same :class:`~music2video.artifacts.Storyboard` (one concept, a style
bible, recurring characters, one treatment per section and one shot per planned shot, with the
shot plan's ids and times copied exactly):

* ``template`` (:mod:`music2video.write.template`): deterministic, offline, no model.
* ``llm`` (:mod:`music2video.write.llm`): a language model writes the treatment under a JSON
  schema; parts it cannot write are the template's, and a storyboard written that way because
  the model was unreachable is provisional (the next run asks the model again).

:func:`write_storyboard` picks the writer; :func:`storyboard_fingerprint` states what, besides
the stage's inputs, decides the storyboard (the pipeline puts it in the artifact's key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from music2video.artifacts import Analysis, Descriptions, ShotPlan, Storyboard
from music2video.errors import Music2VideoError
from music2video.progress import ProgressCallback, no_progress
from music2video.settings import LlmSettings, WriteSettings
from music2video.write.template import write_template_storyboard

WRITERS = ("template", "llm")

# Bump when a writer's algorithm changes, so that storyboards written before are not reused.
WRITE_VERSION = 1

# What run folders made before a setting existed hashed in its place. llm.timeout_s was one
# request timeout (120 s by default); the timeouts that replaced it do not change what is
# written, so they are not in the key, and its old default stays so those keys do not change.
_LEGACY_LLM_FINGERPRINT = {"timeout_s": 120.0}
# llm settings that change nothing written: where to send requests, and how long to wait.
_LLM_NOT_IN_KEY = {"api_key", "connect_timeout_s", "first_token_timeout_s", "budget_s"}
# llm settings that came after the first run folders: they enter the key only when set away
# from their default (then they do change what is written), so older keys stay valid.
_LLM_ADDED_LATER = {"temperature", "top_p", "shots_per_request"}


def storyboard_fingerprint(writer: str, settings: WriteSettings, llm: LlmSettings, style: str, seed: int) -> tuple:
    """Everything besides the descriptions and lyrics that decides the storyboard: the writer,
    its settings (never the API key), the prompt templates' text, the user's style and the
    seed. The pipeline hashes it into ``storyboard.json``'s key."""
    _check_writer(writer)
    shared = _changed(settings, WriteSettings())
    if writer == "template":
        writer_settings: Any = shared or None
    else:
        from music2video.prompts import prompt_files_hash

        fields = llm.model_dump(exclude=_LLM_NOT_IN_KEY | _LLM_ADDED_LATER)
        fields.update(_LEGACY_LLM_FINGERPRINT)
        fields.update(_changed(llm, LlmSettings(), only=_LLM_ADDED_LATER))
        fields.update(shared)
        writer_settings = [fields, prompt_files_hash("storyboard_*")]
    return writer, writer_settings, style, seed, WRITE_VERSION


def write_storyboard(
    analysis: Analysis,
    plan: ShotPlan,
    descriptions: Descriptions,
    *,
    writer: str,
    settings: WriteSettings,
    llm: LlmSettings,
    style: str = "",
    seed: int = 0,
    lyrics_by_shot: dict[str, str] | None = None,
    log_dir: Path | None = None,
    progress: ProgressCallback = no_progress,
) -> Storyboard:
    """The storyboard of ``writer`` (``template`` or ``llm``) for the planned shots.

    ``settings`` is the ``[write]`` section every writer follows, ``llm`` the ``[llm]`` section
    (used by the llm writer only); ``style`` is the user's instruction and ``seed`` the run's
    seed; ``lyrics_by_shot`` the words sung during each shot; ``log_dir`` where the llm writer
    saves its requests; ``progress`` receives passes done. A storyboard made by a fallback is
    marked provisional (:meth:`~music2video.artifacts.Artifact.mark_provisional`).
    """
    _check_writer(writer)
    if writer == "template":
        return write_template_storyboard(
            analysis, plan, descriptions, style=style, seed=seed, lyrics_by_shot=lyrics_by_shot,
            max_prompt_chars=settings.max_prompt_chars,
        )
    from music2video.write.llm import write_llm_storyboard

    return write_llm_storyboard(
        analysis, plan, descriptions, llm, style=style, seed=seed, lyrics_by_shot=lyrics_by_shot, log_dir=log_dir,
        progress=progress, max_prompt_chars=settings.max_prompt_chars,
    )


def _check_writer(writer: str) -> None:
    if writer not in WRITERS:
        raise Music2VideoError(f"unknown writer {writer!r}; choose {' or '.join(WRITERS)}")


def _changed(settings: Any, defaults: Any, only: set[str] | None = None) -> dict[str, Any]:
    """The fields of ``settings`` that differ from ``defaults`` (optionally among ``only``)."""
    now, then = settings.model_dump(mode="json"), defaults.model_dump(mode="json")
    return {name: value for name, value in now.items() if (only is None or name in only) and value != then[name]}


__all__ = ["WRITERS", "storyboard_fingerprint", "write_storyboard", "write_template_storyboard"]
