"""Qwen2.5-Omni (Alibaba, Apache-2.0), thinker only: the default audio-language model.

Qwen2.5-Omni is a "thinker" (audio, image and video encoders feeding a Qwen2.5-7B that writes
text) plus a "talker" that turns the text into speech. The listener needs text only, so it
loads ``Qwen2_5OmniThinkerForConditionalGeneration`` straight from the full checkpoint
(``model_type`` ``qwen2_5_omni``; the talker's weights are left on disk) or from a thinker-only
folder (``qwen2_5_omni_thinker``).

* Audio: 16 kHz mono through a Whisper feature extractor (128 mel bins); the encoder works in
  2 s chunks, so the limit per request is the feature extractor's ``chunk_length`` (read at
  run time) rather than a fixed 30 s.
* Inputs: built here from the tokenizer and the feature extractor instead of
  ``Qwen2_5OmniProcessor``. That processor also carries a video processor, which needs
  torchvision; the listener never sends images or video, so it does what the processor does
  for audio (pad to ``chunk_length``, expand ``<|AUDIO|>`` to one token per 40 ms) and nothing
  more.
* Chat: ChatML, audio before the question: ``<|audio_bos|><|AUDIO|><|audio_eos|>question``.
* MMAU test-mini music accuracy 69.16 (Qwen2.5-Omni card), the best Apache-2.0 result here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from music2video.listen.lalm.families import AudioRequest, LalmFamily, chat_messages

AUDIO_TOKEN = "<|AUDIO|>"

# The published template for audio and text turns (ChatML); used only when the checkpoint's
# tokenizer carries no chat template of its own.
CHATML_AUDIO_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class OmniAudioProcessor:
    """The audio half of ``Qwen2_5OmniProcessor``: a tokenizer and a Whisper feature extractor."""

    tokenizer: Any
    feature_extractor: Any

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)


def audio_token_count(feature_frames: int) -> int:
    """Tokens the encoder makes from ``feature_frames`` mel frames (10 ms each): a stride-2
    convolution then a stride-2 pooling, so one token per 40 ms (the processor's formula)."""
    after_conv = (feature_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


class Qwen2_5OmniFamily(LalmFamily):
    name = "qwen2_5_omni"
    title = "Qwen2.5-Omni"
    default_model = "Qwen/Qwen2.5-Omni-7B"
    known_models = ("Qwen/Qwen2.5-Omni-7B", "Qwen/Qwen2.5-Omni-3B")
    model_types = ("qwen2_5_omni", "qwen2_5_omni_thinker")
    licence = "Apache-2.0"
    commercial_use = True
    max_window_s = 30.0  # a safe floor; window_limit_s reads the checkpoint's own limit

    def load(self, source: str, *, dtype: Any, device_map: Any = None) -> tuple[Any, Any]:
        from transformers import AutoTokenizer, Qwen2_5OmniThinkerForConditionalGeneration, WhisperFeatureExtractor

        tokenizer = AutoTokenizer.from_pretrained(source)
        tokenizer.padding_side = "left"  # generation appends on the right
        if tokenizer.chat_template is None:
            tokenizer.chat_template = CHATML_AUDIO_TEMPLATE
        feature_extractor = WhisperFeatureExtractor.from_pretrained(source)
        model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
            source, dtype=dtype, device_map=device_map, use_safetensors=True
        )
        return model, OmniAudioProcessor(tokenizer=tokenizer, feature_extractor=feature_extractor)

    def window_limit_s(self, processor: Any) -> float:
        extractor = processor.feature_extractor
        return float(extractor.n_samples / extractor.sampling_rate)

    def build_inputs(self, processor: Any, requests: Sequence[AudioRequest]) -> Any:
        from transformers import BatchFeature

        tokenizer = processor.tokenizer
        # Padding to chunk_length mirrors Qwen2_5OmniProcessor; the mask tells the encoder
        # which frames are real, so the padding costs feature extraction only.
        features = processor.feature_extractor(
            [r.audio for r in requests],
            sampling_rate=self.sample_rate_hz,
            padding="max_length",
            return_attention_mask=True,
            return_tensors="pt",
        )
        frames = features["attention_mask"].sum(-1).tolist()
        texts = []
        for request, frame_count in zip(requests, frames):
            text = tokenizer.apply_chat_template(
                chat_messages(request, audio_first=True), add_generation_prompt=True, tokenize=False
            )
            texts.append(text.replace(AUDIO_TOKEN, AUDIO_TOKEN * audio_token_count(int(frame_count)), 1))
        encoded = tokenizer(texts, return_tensors="pt", padding=True)
        return BatchFeature(
            {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "input_features": features["input_features"],
                "feature_attention_mask": features["attention_mask"],
            }
        )


FAMILY = Qwen2_5OmniFamily()
