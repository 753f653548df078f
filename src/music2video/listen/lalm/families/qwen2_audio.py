"""Qwen2-Audio (Alibaba, Apache-2.0): a Whisper-large-v3 audio encoder feeding Qwen-7B.

* Classes: ``Qwen2AudioForConditionalGeneration`` with ``Qwen2AudioProcessor`` (a Whisper
  feature extractor, 128 mel bins, plus the tokenizer).
* Audio: 16 kHz mono; at most 30 s per request. The encoder insists on exactly 3000 mel frames
  (30 s at a 10 ms hop), so the processor pads every clip to 30 s and longer clips are cut.
* Chat: ChatML with the audio before the question (``Audio 1: <|audio_bos|><|AUDIO|>
  <|audio_eos|>``, the ``<|AUDIO|>`` token expanded by the processor to one token per 40 ms).
* MMAU test-mini music accuracy 50.98 (Qwen2.5-Omni card), below Qwen2.5-Omni's 69.16.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from music2video.listen.lalm.families import AudioRequest, LalmFamily, chat_messages

WINDOW_S = 30.0  # the encoder's fixed input: 3000 mel frames at a 10 ms hop


class Qwen2AudioFamily(LalmFamily):
    name = "qwen2_audio"
    title = "Qwen2-Audio"
    default_model = "Qwen/Qwen2-Audio-7B-Instruct"
    known_models = ("Qwen/Qwen2-Audio-7B-Instruct", "Qwen/Qwen2-Audio-7B")
    model_types = ("qwen2_audio",)
    licence = "Apache-2.0"
    commercial_use = True
    max_window_s = WINDOW_S

    def load(self, source: str, *, dtype: Any, device_map: Any = None) -> tuple[Any, Any]:
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        processor = AutoProcessor.from_pretrained(source)
        processor.tokenizer.padding_side = "left"  # generation appends on the right
        model = Qwen2AudioForConditionalGeneration.from_pretrained(
            source, dtype=dtype, device_map=device_map, use_safetensors=True
        )
        return model, processor

    def window_limit_s(self, processor: Any) -> float:
        extractor = processor.feature_extractor
        return float(extractor.n_samples / extractor.sampling_rate)

    def build_inputs(self, processor: Any, requests: Sequence[AudioRequest]) -> Any:
        texts = [
            processor.apply_chat_template(chat_messages(r, audio_first=True), add_generation_prompt=True, tokenize=False)
            for r in requests
        ]
        return processor(
            text=texts,
            audio=[r.audio for r in requests],
            sampling_rate=self.sample_rate_hz,
            return_tensors="pt",
            padding=True,
        )


FAMILY = Qwen2AudioFamily()
