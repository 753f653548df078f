"""``describe_lalm``: the listener's steps in order (see :mod:`music2video.listen.lalm`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from music2video.artifacts import Analysis, Descriptions, SegmentDescription, Shot, ShotPlan
from music2video.errors import InputError
from music2video.listen.lalm.answers import FIELDS, INSTRUMENTAL_RE, answer_paragraph, answer_tags, check_answer, parse_answer
from music2video.listen.lalm.assemble import section_description, shot_description, song_description
from music2video.listen.lalm.families import DEFAULT_MODEL, AudioRequest, LalmFamily
from music2video.listen.lalm.model import ask_model, load_lalm, require_backend, resolve_family
from music2video.listen.lalm.prompts import (
    clock,
    describe_prompt,
    layout_instructions,
    retry_prompt,
    system_prompt,
    window_facts,
)
from music2video.listen.lalm.windows import Window, WindowResult, plan_windows
from music2video.progress import ProgressCallback, no_progress
from music2video.prompts import prompt_files_hash
from music2video.settings import LalmSettings
from music2video.torch_device import free_memory, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

MIN_WINDOW_AUDIO_S = 0.5  # shorter windows (or windows past the end of the audio) are zero-padded to this
REPETITION_PENALTY = 1.05  # first pass: mild, the layout itself repeats words like "Mood"
RETRY_REPETITION_PENALTY = 1.2  # the retry pushes harder against loops
RETRY_CONFIDENCE_FACTOR = 0.8  # an answer that needed the stricter prompt is trusted a little less
MIN_ANSWER_CONFIDENCE = 0.3  # a usable free-text answer that filled no layout field


def fingerprint(settings: LalmSettings) -> list[Any]:
    """What besides the shot plan decides lalm's descriptions, for the listen stage's key: the
    settings and the text of the ``lalm_*`` prompt templates (people edit them)."""
    return [settings, prompt_files_hash("lalm_*")]


def describe_lalm(
    audio_wav: Path,
    analysis: Analysis,
    plan: ShotPlan,
    settings: LalmSettings,
    progress: ProgressCallback = no_progress,
) -> Descriptions:
    """Describe the song, each section and each shot with an audio-language model.

    Args:
        audio_wav: the run folder's canonical WAV (48 kHz; any rate and channel count works).
        analysis: tempo, beats and sections; the sections are what the model hears.
        plan: the shots to describe; each gets its section's (window's) words.
        settings: ``model`` (Hugging Face id or local folder), ``family`` (``auto``: from the
            model id or its config; or a name in :data:`~music2video.listen.lalm.families.FAMILIES`),
            ``window_s`` (longest audio per request, capped at the model's own limit),
            ``batch_size`` (windows per generate call), ``device_map`` (passed to
            ``from_pretrained``; ``"auto"``: accelerate places the layers and offloads what does
            not fit to the CPU), ``device``, ``dtype`` and ``max_new_tokens``.
        progress: called as ``progress(done, total, message)``.

    Returns:
        ``Descriptions(listener="lalm", model=settings.model)`` with ``sections`` aligned to
        ``analysis.sections`` and ``shots`` aligned to ``plan.shots`` (times copied). ``features``
        hold the dsp listener's numbers for the same span plus ``lalm_answered`` (share of the
        span's windows the model described, 0..1) and, when the model said, ``lalm_vocals``
        (1 sung, 0 instrumental).

    Raises:
        ModelLoadError: the model cannot be loaded (the message says how to use a local folder).
        MissingDependencyError: torch or transformers is not installed.
        InputError: the WAV cannot be read, or the analysis has no sections.
    """
    from music2video.decode import ANALYSIS_RATE_HZ, load_audio
    from music2video.listen.dsp import describe_dsp

    # 1. Check inputs, pick the family
    window_cap_s = settings.window_s
    batch = settings.batch_size
    if window_cap_s is not None and window_cap_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_cap_s}")
    if batch < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch}")
    if not analysis.sections:
        raise InputError("the analysis has no sections, so the lalm listener has nothing to play to the model")
    require_backend()
    chosen = resolve_family(settings.model, settings.family)
    warnings: list[str] = []
    if not chosen.commercial_use:
        message = (
            f"lalm: the {chosen.title} weights ({settings.model}) are under the {chosen.licence}: "
            f"fine for research, not for commercial use; {DEFAULT_MODEL} (Apache-2.0) is the default for that"
        )
        log.warning(message)
        warnings.append(message)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)

    # 2. Read the audio: once at the model's rate, once at the dsp listener's (InputError if unreadable)
    samples = load_audio(audio_wav, chosen.sample_rate_hz)
    dsp_samples = load_audio(audio_wav, ANALYSIS_RATE_HZ)

    model = processor = None
    try:
        # 3. Load the model once; windows follow from its audio limit
        progress(0, 1, f"lalm: loading {settings.model}")
        model, processor = load_lalm(settings.model, chosen, device, dtype, settings.device_map)
        limit_s = chosen.window_limit_s(processor)
        if window_cap_s is not None:
            limit_s = min(limit_s, window_cap_s)
        windows = plan_windows(analysis.sections, limit_s)
        total = 2 + len(windows)
        done = 1
        progress(done, total, "lalm: signal descriptors")

        # 4. Grounding: dsp descriptions of the sections, the shots and the windows in one pass
        dsp = _dsp_descriptions(describe_dsp, dsp_samples, ANALYSIS_RATE_HZ, analysis, plan, windows)
        warnings.extend(dsp.warnings)
        done += 1
        progress(done, total, f"lalm: listening to {len(windows)} window(s)")

        # 5. Ask, judge, retry once, fall back to dsp
        results = _describe_windows(
            chosen,
            model,
            processor,
            windows,
            samples,
            analysis,
            dsp.windows,
            max_new_tokens=settings.max_new_tokens,
            batch_size=batch,
            progress=lambda count, message: progress(min(done + count, total), total, message),
        )
    finally:
        # 6. Free the model before the next one loads (the only references are these two)
        del model, processor
        free_memory()

    for result in results:
        if result.problems:
            warnings.append(_fallback_warning(result, analysis))
    progress(total, total, "lalm: done")

    # 7. Assemble sections, shots and the song
    sections = [
        section_description(section, [r for r in results if r.window.section_position == position], dsp.sections[position])
        for position, section in enumerate(analysis.sections)
    ]
    shots = [shot_description(shot, analysis, results, dsp.shots[i]) for i, shot in enumerate(plan.shots)]
    song = song_description(analysis, sections, dsp.song, sum(r.from_model for r in results) / len(results))
    return Descriptions(listener="lalm", model=settings.model, song=song, sections=sections, shots=shots, warnings=warnings)


@dataclass
class _DspSpans:
    song: SegmentDescription
    sections: list[SegmentDescription]
    shots: list[SegmentDescription]
    windows: list[SegmentDescription]
    warnings: list[str]


def _dsp_descriptions(
    describe_dsp: Callable[..., Descriptions],
    samples: np.ndarray,
    rate_hz: int,
    analysis: Analysis,
    plan: ShotPlan,
    windows: Sequence[Window],
) -> _DspSpans:
    """The dsp listener's descriptions of the song, sections, shots and windows. The windows
    ride along as extra shots of one plan, so the song's features are computed once."""
    window_shots = [
        Shot(
            index=len(plan.shots) + w.index,
            id=f"lalm-window-{w.index:03d}",
            start_s=w.start_s,
            end_s=w.end_s,
            section_index=w.section_position,
            cut="grid",
        )
        for w in windows
    ]
    extended = ShotPlan(duration_s=plan.duration_s, shots=[*plan.shots, *window_shots])
    described = describe_dsp(samples, rate_hz, analysis, extended)
    count = len(plan.shots)
    return _DspSpans(
        described.song, described.sections, described.shots[:count], described.shots[count:], list(described.warnings)
    )


def _describe_windows(
    family: LalmFamily,
    model: Any,
    processor: Any,
    windows: Sequence[Window],
    samples: np.ndarray,
    analysis: Analysis,
    dsp_windows: Sequence[SegmentDescription],
    *,
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int, str], None],
) -> list[WindowResult]:
    """Ask about every window; retry the unusable answers once with the stricter prompt; fall
    back to the dsp description where the retry fails too. ``progress(windows_asked, message)``
    follows the first pass; the retries are announced with a message."""
    system = system_prompt()
    facts = [window_facts(w, analysis, dsp_windows[w.index]) for w in windows]
    audio = [_window_audio(samples, family.sample_rate_hz, w) for w in windows]
    asked = 0

    def tick(count: int) -> None:
        nonlocal asked
        asked += count
        progress(asked, f"lalm: listened to {asked} of {len(windows)} window(s)")

    first = ask_model(
        family,
        model,
        processor,
        [AudioRequest(system, describe_prompt(facts[w.index]), audio[w.index]) for w in windows],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        repetition_penalty=REPETITION_PENALTY,
        on_batch=tick,
    )
    instructions = layout_instructions()
    checks = [check_answer(answer, instructions) for answer in first]
    results: dict[int, WindowResult] = {}
    retry: list[Window] = []
    for window, answer, check in zip(windows, first, checks):
        if check.ok:
            results[window.index] = _model_result(window, answer, dsp_windows[window.index], retried=False)
        else:
            log.info("lalm: window %d answer was %s; retrying with the stricter prompt", window.index, check.problem)
            retry.append(window)

    if retry:
        progress(asked, f"lalm: asking again about {len(retry)} window(s) with the stricter prompt")
        second = ask_model(
            family,
            model,
            processor,
            [AudioRequest(system, retry_prompt(facts[w.index], checks[w.index].problem or ""), audio[w.index]) for w in retry],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            repetition_penalty=RETRY_REPETITION_PENALTY,
        )
        for window, answer in zip(retry, second):
            check = check_answer(answer, instructions)
            if check.ok:
                results[window.index] = _model_result(window, answer, dsp_windows[window.index], retried=True)
            else:
                fallback = dsp_windows[window.index].model_copy(deep=True)
                fallback.features["lalm_answered"] = 0.0
                results[window.index] = WindowResult(
                    window, fallback, from_model=False, problems=[checks[window.index].problem or "", check.problem or ""]
                )
    return [results[w.index] for w in windows]


def _window_audio(samples: np.ndarray, rate_hz: int, window: Window) -> np.ndarray:
    """The window's samples, zero-padded to ``MIN_WINDOW_AUDIO_S`` when shorter."""
    start = min(max(int(round(window.start_s * rate_hz)), 0), len(samples))
    end = min(max(int(round(window.end_s * rate_hz)), start), len(samples))
    clip = samples[start:end]
    minimum = int(MIN_WINDOW_AUDIO_S * rate_hz)
    if len(clip) < minimum:
        clip = np.pad(clip, (0, minimum - len(clip)))
    return np.ascontiguousarray(clip, dtype=np.float32)


def _model_result(window: Window, answer: str, dsp: SegmentDescription, *, retried: bool) -> WindowResult:
    parsed = parse_answer(answer)
    features = dict(dsp.features)
    features["lalm_answered"] = 1.0
    voice = parsed.fields.get("voice")
    if voice:
        features["lalm_vocals"] = 0.0 if INSTRUMENTAL_RE.search(voice) else 1.0
    filled = sum(1 for name in FIELDS if name in parsed.fields) / len(FIELDS)
    confidence = max(filled, MIN_ANSWER_CONFIDENCE) * (RETRY_CONFIDENCE_FACTOR if retried else 1.0)
    description = SegmentDescription(
        start_s=window.start_s,
        end_s=window.end_s,
        text=answer_paragraph(parsed),
        features=features,
        tags=answer_tags(parsed),
        confidence=round(confidence, 3),
    )
    return WindowResult(window, description, from_model=True)


def _fallback_warning(result: WindowResult, analysis: Analysis) -> str:
    window = result.window
    section = analysis.sections[window.section_position]
    where = f"section {section.index}"
    if window.parts > 1:
        where += f" (part {window.part} of {window.parts}, {clock(window.start_s)}-{clock(window.end_s)})"
    first, second = result.problems
    said = f"was {first} twice" if first == second else f"was {first}, then {second}"
    message = f"{where}: the audio-language model's answer {said}; DSP description used"
    log.warning("lalm: %s", message)
    return message

