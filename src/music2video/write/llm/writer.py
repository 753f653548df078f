"""The public function of the LLM writer: ``write_llm_storyboard``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from music2video.artifacts import Analysis, Descriptions, ShotPlan, Storyboard
from music2video.progress import ProgressCallback, no_progress
from music2video.settings import DEFAULT_MAX_PROMPT_CHARS, LlmSettings
from music2video.write.llm.data import chunks, section_plans
from music2video.write.llm.director import Director
from music2video.write.llm.requestlog import RequestLog
from music2video.write.llm.schema import DEFAULT_LIMITS, TextLimits
from music2video.write.template import write_template_storyboard


def write_llm_storyboard(
    analysis: Analysis,
    plan: ShotPlan,
    descriptions: Descriptions,
    settings: LlmSettings,
    style: str = "",
    seed: int = 0,
    lyrics_by_shot: dict[str, str] | None = None,
    log_dir: Path | None = None,
    progress: ProgressCallback = no_progress,
    *,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    limits: TextLimits | None = None,
) -> Storyboard:
    """Write the storyboard with a language model; one entry per planned shot, cuts untouched.

    Inputs: the song's ``analysis`` (times in seconds), the shot ``plan``, the listener's
    ``descriptions``, the LLM ``settings`` (``base_url`` set: an OpenAI-compatible server;
    unset: ``model`` loaded locally through transformers), the user's ``style`` instruction
    (the director's brief), the run ``seed`` (shot seeds derive from it and the shot index),
    the lyrics sung during each shot keyed by shot id, a folder for the request/response logs,
    a progress callback (units: passes; while a request waits, the message names the server
    and the time waited), and the longest final prompt in characters. ``limits`` overrides
    the field lengths (``DEFAULT_LIMITS``).

    Returns a ``Storyboard`` whose ``writer`` is ``llm:<model>`` (``llm:<model>@<base_url>`` for
    a server) and whose ``warnings`` list every part the template writer had to write, every
    repair and every cut. When the model could not be reached, stopped answering, ran out of
    ``settings.budget_s`` or kept failing with server errors, the template's parts are a
    fallback: ``writer`` says so (``template (fallback: LLM unreachable at ...)`` when the
    model wrote nothing) and the storyboard is marked provisional, so the next run asks again.
    """
    # 1. Check inputs
    if not plan.shots:
        raise ValueError("the shot plan has no shots; nothing to write")
    lyrics = {key: str(value) for key, value in (lyrics_by_shot or {}).items()}
    limits = limits or DEFAULT_LIMITS

    # 2. The template storyboard: cheap, deterministic, and the stand-in for any part that fails.
    template = write_template_storyboard(analysis, plan, descriptions, style=style, seed=seed,
                                         max_prompt_chars=max_prompt_chars)
    if len(template.shots) != len(plan.shots):
        raise RuntimeError(f"the template writer wrote {len(template.shots)} shots for {len(plan.shots)} planned")

    sections = section_plans(analysis, plan)
    total = 1 + sum(len(chunks(sp.shot_indices, settings.shots_per_request)) for sp in sections)

    request_log = RequestLog(Path(log_dir) if log_dir is not None else None)
    backend = _open_backend(settings, request_log)
    # The budget starts once the backend is open: loading a local model is not waiting on anyone.
    deadline = time.monotonic() + settings.budget_s
    director = Director(analysis, plan, descriptions, settings, style, seed, lyrics, limits, max_prompt_chars,
                        backend, template, deadline, progress)
    try:
        # 3. Pass 1: the concept
        progress(0, total, "writing the concept")
        director.position = (0, total)
        concept = director.write_concept(sections)
        progress(1, total, "wrote the concept")
        # 4. Passes 2..n: the shots, section by section
        shots = director.write_shots(sections, concept, progress, 1, total)
    finally:
        # 5. Free the model before the next stage loads its own.
        backend.close()
    warnings = list(director.warnings) + director.cut_warnings() + list(backend.notes)
    if director.used_template:  # the template's own caveats apply to the parts it wrote
        warnings += [w for w in template.warnings if w not in warnings]
    writer = backend.describe()
    fallback = director.fallback_reason()
    if fallback is not None:
        # 6. Say so, and keep it only until the model can be asked again.
        writer = f"template (fallback: {fallback})" if director.parts_written == 0 else (
            f"{writer}, partly template (fallback: {fallback})")
    storyboard = Storyboard(
        writer=writer,
        title=concept.title,
        concept=concept.concept,
        style=concept.style,
        characters=concept.characters,
        places=concept.places,
        props=concept.props,
        sections=concept.treatments,
        shots=shots,
        warnings=warnings,
    )
    if fallback is not None:
        storyboard.mark_provisional(fallback)
    return storyboard


def _open_backend(settings: LlmSettings, request_log: RequestLog) -> Any:
    """The OpenAI-compatible backend when ``base_url`` is set, else the local model."""
    if settings.base_url:
        from music2video.write.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(settings, request_log)
    from music2video.write.llm.local_backend import LocalBackend

    return LocalBackend(settings, request_log)
