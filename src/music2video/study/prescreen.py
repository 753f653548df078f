"""``music2video study prescreen``: a vision-language model scores a study's videos on its
criteria, as a first look before people do. It is NOT a substitute for people: a model that
sees a handful of still frames and a sentence about the audio cannot judge sync, motion or
emotion as a viewer does. ``study results`` reports how far it agrees with the participants
(Spearman's rho per criterion) when a study has both.

How a video is scored: ``frames`` frames sampled evenly through it (PyAV), the audio
description of its music2video run when there is one (the listener's whole-song sentence from
``descriptions.json``), and one question per criterion asking for a single digit on the
study's scale. The answer is read from the model's next-token probabilities over the digits
``1..scale_points`` (no free text to parse, so no answer is ever unreadable), each digit
counted with and without a leading space (chat templates that end in ``Assistant:`` are
answered with `` 4``): the score is their expectation, and the probabilities are kept, with
the share of the model's next-token probability that went to a digit at all (``answer_mass``:
a model that does not follow the instruction shows here). The model id, the prompt template and its
sha256, and the frames used are recorded in ``prescreen.json``.

Models: any Hugging Face image-text-to-text chat model that ``AutoModelForImageTextToText``
loads without remote code and whose tokenizer spells each digit as one token. The default,
``HuggingFaceTB/SmolVLM-Instruct`` (2.2B, Apache-2.0, Idefics3 classes), needs nothing beyond
transformers and Pillow; ``HuggingFaceTB/SmolVLM-256M-Instruct`` is the small one.
``Qwen/Qwen2-VL-2B-Instruct`` and ``Qwen/Qwen2.5-VL-7B-Instruct`` (Apache-2.0) also load, but
their processors need torchvision; the 3B Qwen2.5-VL is under Qwen's research licence
(non-commercial).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from music2video.errors import InputError, MissingDependencyError, Music2VideoError
from music2video.runfolder import write_json_atomic
from music2video.study import DEFAULT_PRESCREEN_FRAMES, DEFAULT_PRESCREEN_MODEL
from music2video.study.design import StudyVideo, load_study

log = logging.getLogger(__name__)

FRAME_SIZE_PX = 448  # longest side of each frame handed to the model
PRESCREEN_FILE = "prescreen.json"
NOT_A_SUBSTITUTE = (
    "Automatic pre-screen by a vision-language model from still frames and a text description of the audio: "
    "not a substitute for people. Use it to spot problems before a study, never as its result."
)

PROMPT_TEMPLATE = (
    "These {frames} images are frames taken evenly from the start to the end of a music video.\n"
    "The music: {audio}\n"
    "Rate the music video on one criterion.\n"
    "Criterion: {label}. {question}\n"
    "Answer with a single digit from 1 (very poor) to {points} (excellent)."
)
NO_AUDIO_DESCRIPTION = "(no description of the music is available)"


class VideoScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: str = Field(description="The blinded code.")
    scores: dict[str, float] = Field(description="Per dimension: expected rating under the model's digit probabilities.")
    probabilities: dict[str, list[float]] = Field(description="Per dimension: probability of 1, 2, ... scale_points.")
    answer_mass: dict[str, float] = Field(description="Per dimension: the model's next-token probability of any digit answer (low: it did not answer).")
    audio_description: str | None
    frame_times_s: list[float]


class Prescreen(BaseModel):
    """``prescreen.json`` in the study folder."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    note: str = NOT_A_SUBSTITUTE
    model: str
    prompt_template: str
    prompt_sha256: str
    frames: int
    frame_size_px: int
    scale_points: int
    device: str
    seconds: float
    videos: list[VideoScore]


def sample_frames(path: Path, count: int, size_px: int = FRAME_SIZE_PX) -> tuple[list, list[float]]:
    """``count`` RGB PIL images at evenly spaced times through the video (the middle of
    ``count`` equal spans), longest side at most ``size_px``, and their times in seconds."""
    import av
    from PIL import Image

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            decoded = [(float(frame.time or 0.0), frame.to_ndarray(format="rgb24")) for frame in container.decode(stream)]
    except (av.FFmpegError, IndexError, OSError) as error:
        raise InputError(f"cannot read frames from {path.name} ({' '.join(str(error).split())[:120]})") from None
    if not decoded:
        raise InputError(f"{path.name} has no video frames")
    times = np.array([t for t, _ in decoded])
    duration = times[-1] + (times[-1] - times[-2] if len(times) > 1 else 0.0)
    wanted = (np.arange(count) + 0.5) * duration / count
    images, chosen = [], []
    for t in wanted:
        index = int(np.argmin(np.abs(times - t)))
        image = Image.fromarray(decoded[index][1])
        image.thumbnail((size_px, size_px))
        images.append(image)
        chosen.append(round(float(times[index]), 3))
    return images, chosen


def audio_description(video: StudyVideo) -> str | None:
    """The whole-song description of the music2video run the video came from, if any."""
    from music2video.artifacts import Descriptions
    from music2video.preflight import default_run_folder

    path = default_run_folder(Path(video.source)) / "descriptions.json"
    if not path.is_file():
        return None
    try:
        return Descriptions.model_validate_json(path.read_text(encoding="utf-8")).song.text
    except (OSError, ValueError) as error:
        log.warning("cannot read %s (%s): scoring without an audio description", path, error)
        return None


def prescreen_study(
    folder: Path,
    *,
    model: str = DEFAULT_PRESCREEN_MODEL,
    frames: int = DEFAULT_PRESCREEN_FRAMES,
    device: str = "auto",
    dtype: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> Prescreen:
    """Score every video of the study in ``folder`` on every dimension; write ``prescreen.json``.

    ``model``: a Hugging Face id or a folder saved with ``save_pretrained``. ``progress`` is
    called with (videos done, videos in all).
    """
    # 1. Check inputs
    folder = Path(folder)
    study = load_study(folder)
    if not 1 <= frames <= 64:
        raise InputError(f"frames {frames} is not from 1 to 64")
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(error.name or "transformers", "llm", "The automatic pre-screen") from None
    from music2video.model_source import load_error, model_source
    from music2video.torch_device import free_memory, resolve_device, resolve_dtype

    # 2. Load the model
    started = time.perf_counter()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = model_source(model, "vision-language", "--model")
    try:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(source)
        vlm = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype, use_safetensors=True).to(torch_device).eval()
    except (OSError, ValueError, KeyError) as error:
        raise load_error(model, "vision-language", "--model", error) from error
    digits = _digit_tokens(processor, study.scale_points, model)

    # 3. Score each video on each dimension
    scored = []
    try:
        for done, video in enumerate(study.videos):
            images, times = sample_frames(folder / video.file, frames)
            audio = audio_description(video)
            scores, probabilities, mass = {}, {}, {}
            for dimension in study.dimensions:
                prompt = PROMPT_TEMPLATE.format(frames=len(images), audio=audio or NO_AUDIO_DESCRIPTION, label=dimension.label, question=dimension.question, points=study.scale_points)
                p, mass[dimension.id] = _digit_probabilities(vlm, processor, images, prompt, digits, torch_device)
                probabilities[dimension.id] = [round(float(x), 6) for x in p]
                scores[dimension.id] = float(np.dot(p, np.arange(1, study.scale_points + 1)))
            scored.append(VideoScore(video=video.code, scores=scores, probabilities=probabilities, answer_mass=mass, audio_description=audio, frame_times_s=times))
            if progress is not None:
                progress(done + 1, len(study.videos))
    finally:
        del vlm
        free_memory()

    # 4. Record
    result = Prescreen(
        model=model,
        prompt_template=PROMPT_TEMPLATE,
        prompt_sha256=hashlib.sha256(PROMPT_TEMPLATE.encode()).hexdigest(),
        frames=frames,
        frame_size_px=FRAME_SIZE_PX,
        scale_points=study.scale_points,
        device=str(torch_device),
        seconds=round(time.perf_counter() - started, 2),
        videos=scored,
    )
    write_json_atomic(folder / PRESCREEN_FILE, result)
    return result


def _digit_tokens(processor, points: int, model: str) -> list[list[int]]:
    """Per digit 1..points, the ids of its one-token spellings: ``"4"`` and ``" 4"``."""
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = []
    for digit in range(1, points + 1):
        spellings = {tuple(tokenizer.encode(text, add_special_tokens=False)) for text in (str(digit), f" {digit}")}
        single = sorted({spelling[0] for spelling in spellings if len(spelling) == 1})
        if not single:
            raise Music2VideoError(f"the model {model} does not spell the digit {digit} as one token; choose another --model")
        ids.append(single)
    return ids


def _digit_probabilities(vlm, processor, images: list, prompt: str, digits: list[list[int]], device) -> tuple[np.ndarray, float]:
    """The model's probabilities of answering each digit, renormalised over the digits, and the
    share of its next-token probability that the digits hold."""
    import torch

    messages = [{"role": "user", "content": [*({"type": "image"} for _ in images), {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[images], return_tensors="pt").to(device)
    with torch.inference_mode():
        log_p = torch.log_softmax(vlm(**inputs).logits[0, -1].double(), dim=0)
    # in log space: a confident model can leave the digits far below float precision
    per_digit = torch.stack([torch.logsumexp(log_p[ids], dim=0) for ids in digits])
    return torch.softmax(per_digit, dim=0).cpu().numpy(), round(float(torch.logsumexp(per_digit, dim=0).exp()), 6)
