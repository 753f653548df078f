"""Audio-language model families the lalm listener can drive, one small file each.

A *family* is everything that differs between audio-language models of one architecture:
the Hugging Face classes, the default model id, the licence, the audio rate and window limit,
how a chat turn with audio is written, and how the answer is decoded. The listener
(:mod:`music2video.listen.lalm`) does the rest (windows, prompts, retries, fallbacks) the same
way for all of them.

Adding a family = one self-contained file in this folder that defines a :class:`LalmFamily`
subclass instance called ``FAMILY``, plus one line in :data:`FAMILIES` below. Family files
import transformers only inside their methods, so importing this package stays light.

Which family is the default, and why (music-understanding results, then licence):

* MMAU test-mini, music subset (multiple-choice accuracy), as published in the Qwen2.5-Omni
  model card / README: Qwen2.5-Omni-7B **69.16**, Qwen2-Audio-7B-Instruct **50.98**
  (Gemini-Pro-V1.5: 49.40).
* MuChoMusic: Music Flamingo reports **74.6 %** against **52.1 %** for the best earlier model
  it compares with (Music Flamingo paper, arXiv 2511.10289); Audio Flamingo 3 (arXiv
  2507.08128) reports results ahead of Qwen2.5-Omni on most of its audio benchmarks.
* Licences: Qwen2-Audio-7B-Instruct and Qwen2.5-Omni-7B are Apache-2.0; Audio Flamingo 3 and
  Music Flamingo are released under NVIDIA non-commercial licences (research use only).

So the NVIDIA models are the strongest music listeners but may not be used commercially; the
default is the strongest commercially usable one, **Qwen2.5-Omni-7B** (its "thinker", the
text-generating half, without the speech-generating "talker"). The NVIDIA families work when
asked for by name or model folder, and the listener logs a WARNING about their licence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

SAMPLE_RATE_HZ = 16_000  # every family here hears 16 kHz mono (Whisper-style log-mel front ends)


@dataclass(frozen=True)
class AudioRequest:
    """One question about one stretch of audio.

    ``audio`` is mono float32 at the family's ``sample_rate_hz``; ``system`` and ``prompt`` are
    the system and user texts of a single chat turn.
    """

    system: str
    prompt: str
    audio: np.ndarray


class LalmFamily:
    """What differs between audio-language model architectures. Subclasses set the class
    attributes and implement :meth:`load`, :meth:`window_limit_s` and :meth:`build_inputs`."""

    name: ClassVar[str]  # registry key and the value of the ``family`` setting, e.g. "qwen2_audio"
    title: ClassVar[str]  # for people, e.g. "Qwen2-Audio"
    default_model: ClassVar[str]  # Hugging Face id used when this family is asked for by name
    known_models: ClassVar[tuple[str, ...]] = ()  # ids recognised without reading their config
    model_types: ClassVar[tuple[str, ...]]  # ``model_type`` values in config.json that mean this family
    licence: ClassVar[str]
    commercial_use: ClassVar[bool]  # False: the listener warns that the licence is non-commercial
    sample_rate_hz: ClassVar[int] = SAMPLE_RATE_HZ
    max_window_s: ClassVar[float]  # documented audio limit per request; the real one comes from the processor

    def load(self, source: str, *, dtype: Any, device_map: Any = None) -> tuple[Any, Any]:
        """``(model, processor)`` from a Hugging Face id or a local folder (safetensors only,
        never remote code). Raises whatever transformers raises; the listener turns it into a
        :class:`~music2video.errors.ModelLoadError`."""
        raise NotImplementedError

    def window_limit_s(self, processor: Any) -> float:
        """The longest audio, in seconds, that one request may carry without being cut."""
        raise NotImplementedError

    def build_inputs(self, processor: Any, requests: Sequence[AudioRequest]) -> Any:
        """Tokenised, left-padded model inputs (a ``BatchFeature`` of torch tensors) for a batch."""
        raise NotImplementedError

    def decode(self, processor: Any, sequences: Any, prompt_length: int) -> list[str]:
        """The generated answers: everything after the prompt, special tokens removed."""
        return list(processor.batch_decode(sequences[:, prompt_length:], skip_special_tokens=True))

    def generation_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``model.generate``."""
        return {}


def chat_messages(request: AudioRequest, *, audio_first: bool) -> list[dict[str, Any]]:
    """A system turn and a user turn holding the audio and the prompt, in the order the family
    was trained with (Qwen: audio then text; Audio Flamingo: text then audio)."""
    audio_part = {"type": "audio", "audio": "window"}  # a placeholder: samples go to the processor
    text_part = {"type": "text", "text": request.prompt}
    content = [audio_part, text_part] if audio_first else [text_part, audio_part]
    return [{"role": "system", "content": request.system}, {"role": "user", "content": content}]


def _registry() -> dict[str, LalmFamily]:
    from music2video.listen.lalm.families import audio_flamingo3, music_flamingo, qwen2_5_omni, qwen2_audio

    families = [
        qwen2_5_omni.FAMILY,  # the default: see the module docstring
        qwen2_audio.FAMILY,
        audio_flamingo3.FAMILY,
        music_flamingo.FAMILY,
    ]
    return {family.name: family for family in families}


FAMILIES: dict[str, LalmFamily] = _registry()
DEFAULT_FAMILY = "qwen2_5_omni"
DEFAULT_MODEL = FAMILIES[DEFAULT_FAMILY].default_model


def family_for_model_type(model_type: str) -> LalmFamily | None:
    """The family whose architecture ``model_type`` (from config.json) names, or None."""
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    return None


def family_for_known_model(model_id: str) -> LalmFamily | None:
    """The family of a well-known Hugging Face id, without reading its config; None otherwise."""
    for family in FAMILIES.values():
        if model_id == family.default_model or model_id in family.known_models:
            return family
    return None


def family_choices() -> str:
    """``"qwen2_5_omni (Qwen2.5-Omni), ..."``: for error messages."""
    return ", ".join(f"{name} ({family.title})" for name, family in FAMILIES.items())


__all__ = [
    "DEFAULT_FAMILY",
    "DEFAULT_MODEL",
    "FAMILIES",
    "SAMPLE_RATE_HZ",
    "AudioRequest",
    "LalmFamily",
    "chat_messages",
    "family_choices",
    "family_for_known_model",
    "family_for_model_type",
]
