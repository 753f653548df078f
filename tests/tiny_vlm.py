"""A tiny random-weight vision-language model of Idefics3's classes (the family of the
pre-screen's default, ``HuggingFaceTB/SmolVLM-Instruct``), saved to a folder so the
pre-screen's real loading and scoring code runs offline.

It keeps the family's token plumbing (``<fake_token_around_image>``, ``<image>``,
``<global-img>``, ``<end_of_utterance>``, a chat template with image parts) and image front end
(the PIL image processor, one global image per frame, pixel shuffle by ``scale_factor`` 2) and
shrinks every width and depth: 32 px images in 8 px patches make 4 image tokens per frame.
Its scores are noise, which is all the plumbing test needs.
"""

from __future__ import annotations

from pathlib import Path

from tiny_lalm import build_tiny_tokenizer

TEXT_WIDTH = 32
IMAGE_PX = 32
PATCH_PX = 8
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (IMAGE_PX // PATCH_PX) ** 2 // SCALE_FACTOR**2

_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}"
    "{{ message['role'] | capitalize }}{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}{% elif line['type'] == 'image' %}<image>{% endif %}"
    "{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tiny_vlm(folder: Path, *, seed: int = 0) -> Path:
    """``Idefics3ForConditionalGeneration`` + ``Idefics3Processor`` in ``folder``."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor

    tokenizer = build_tiny_tokenizer()
    tokenizer.add_special_tokens({"extra_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]}, replace_extra_special_tokens=False)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            do_image_splitting=False, size={"longest_edge": IMAGE_PX}, max_image_size={"longest_edge": IMAGE_PX}
        ),
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=_CHAT_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=IMAGE_PX, patch_size=PATCH_PX),
        text_config=dict(
            model_type="llama",
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=2 * TEXT_WIDTH,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=4096,
            pad_token_id=0,
        ),
        scale_factor=SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    Idefics3ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
