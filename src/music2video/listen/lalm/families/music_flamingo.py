"""Music Flamingo (NVIDIA): Audio Flamingo 3 tuned for music. NON-COMMERCIAL.

The strongest music listener here: 74.6 % on MuChoMusic against 52.1 % for the best earlier
model in its paper (arXiv 2511.10289), with theory-aware captions (harmony, structure, timbre,
lyrics). Its weights are for non-commercial research only, so it is not the default; the
listener works with it and logs a WARNING about the licence.

* Classes: ``MusicFlamingoForConditionalGeneration`` with ``MusicFlamingoProcessor``
  (``model_type`` ``musicflamingo``; rotary time embeddings give each audio token its time).
* Audio: 16 kHz mono, 30 s windows cut by the processor, up to ``max_audio_len`` seconds per
  request.
* Chat: as Audio Flamingo 3, question then audio (``<sound>``, wrapped in
  ``<|sound_bos|>``/``<|sound_eos|>`` by the processor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from music2video.listen.lalm.families import AudioRequest, LalmFamily, chat_messages
from music2video.listen.lalm.families.audio_flamingo3 import NON_COMMERCIAL_LICENCE


class MusicFlamingoFamily(LalmFamily):
    name = "music_flamingo"
    title = "Music Flamingo"
    default_model = "nvidia/music-flamingo-2601-hf"
    known_models = ("nvidia/music-flamingo-2601-hf",)
    model_types = ("musicflamingo",)
    licence = NON_COMMERCIAL_LICENCE
    commercial_use = False
    max_window_s = 1200.0  # MusicFlamingoProcessor.max_audio_len

    def load(self, source: str, *, dtype: Any, device_map: Any = None) -> tuple[Any, Any]:
        from transformers import AutoProcessor, MusicFlamingoForConditionalGeneration

        processor = AutoProcessor.from_pretrained(source)
        model = MusicFlamingoForConditionalGeneration.from_pretrained(
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
        return processor(text=texts, audio=[r.audio for r in requests])


FAMILY = MusicFlamingoFamily()
