"""Audio Flamingo 3 (NVIDIA): AF-Whisper audio encoder feeding Qwen2.5-7B. NON-COMMERCIAL.

* Classes: ``AudioFlamingo3ForConditionalGeneration`` with ``AudioFlamingo3Processor``.
* Audio: 16 kHz mono; the processor cuts a clip into 30 s windows itself and accepts up to
  ``max_audio_len`` seconds (600 s for AF3) per request, so a whole section fits in one request.
* Chat: ChatML with the question before the audio (``question<sound>``; the ``<sound>`` token is
  expanded by the processor), the order of the model card's examples.
* Licence: the weights are released for non-commercial research only (NVIDIA licence on the
  model card); the listener works with them but logs a WARNING. The first Music Flamingo
  checkpoint (``nvidia/music-flamingo-hf``) has this architecture too and loads through here.
* Results: the AF3 paper (arXiv 2507.08128) reports new state-of-the-art results on 20+ audio
  understanding benchmarks, music among them, ahead of Qwen2.5-Omni-7B on most (its Figure 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from music2video.listen.lalm.families import AudioRequest, LalmFamily, chat_messages

NON_COMMERCIAL_LICENCE = "NVIDIA non-commercial licence (research use only)"


class AudioFlamingo3Family(LalmFamily):
    name = "audio_flamingo3"
    title = "Audio Flamingo 3"
    default_model = "nvidia/audio-flamingo-3-hf"
    known_models = ("nvidia/audio-flamingo-3-hf", "nvidia/music-flamingo-hf")
    model_types = ("audioflamingo3",)
    licence = NON_COMMERCIAL_LICENCE
    commercial_use = False
    max_window_s = 600.0  # AudioFlamingo3Processor.max_audio_len

    def load(self, source: str, *, dtype: Any, device_map: Any = None) -> tuple[Any, Any]:
        from transformers import AudioFlamingo3ForConditionalGeneration, AutoProcessor

        processor = AutoProcessor.from_pretrained(source)
        model = AudioFlamingo3ForConditionalGeneration.from_pretrained(
            source, dtype=dtype, device_map=device_map, use_safetensors=True
        )
        return model, processor

    def window_limit_s(self, processor: Any) -> float:
        return float(processor.max_audio_len)

    def build_inputs(self, processor: Any, requests: Sequence[AudioRequest]) -> Any:
        texts = [
            processor.apply_chat_template(chat_messages(r, audio_first=False), add_generation_prompt=True, tokenize=False)
            for r in requests
        ]
        # The processor pads text on the left by default (what generation needs).
        return processor(text=texts, audio=[r.audio for r in requests])


FAMILY = AudioFlamingo3Family()
