"""The local backend: a chat model run through transformers, its decoding constrained to the
pass's JSON schema with llguidance, so that even a weak model returns parseable JSON of the right shape."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from music2video.errors import ModelLoadError
from music2video.optional import require
from music2video.settings import LlmSettings
from music2video.torch_device import free_memory, resolve_device, resolve_dtype
from music2video.write.llm.data import first_line
from music2video.write.llm.faults import budget_spent
from music2video.write.llm.requestlog import RequestLog
from music2video.write.llm.schema import max_json_bytes

log = logging.getLogger(__name__)

JSON_ALLOWED_ESCAPES = '"\\'
"""Escapes llguidance lets the local model write inside strings: quote and backslash only, so a weak
model cannot fill a scene with control characters or \\u escapes."""


class GrammarMask:
    """A transformers logits processor that lets only the tokens the JSON grammar allows through.

    ``generate`` calls it once per new token with the whole sequence so far; from the second
    call on, the last token of ``input_ids`` is the one just chosen, which the matcher consumes
    before it computes the next mask. Batch size 1.
    """

    def __init__(self, matcher: Any, eos_token_id: int):
        self.matcher = matcher
        self.eos_token_id = eos_token_id
        self.prompt_length: int | None = None
        self.error: str | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np
        import torch

        if self.prompt_length is None:
            self.prompt_length = int(input_ids.shape[1])
        elif not self.matcher.consume_token(int(input_ids[0, -1])):
            self.error = self.matcher.get_error()
        vocab = int(scores.shape[-1])
        allowed = torch.zeros(vocab, dtype=torch.bool)
        if self.matcher.is_error() or self.matcher.is_stopped():
            # Nothing more may follow: end the generation (a broken result is caught by validation).
            allowed[self.eos_token_id] = True
        else:
            bits = np.unpackbits(np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
            n = min(vocab, bits.shape[0])
            allowed[:n] = torch.from_numpy(bits[:n].astype(bool))
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))


class LocalBackend:
    """A chat model run through transformers, loaded once for all passes and freed by ``close``."""

    def __init__(self, settings: LlmSettings, request_log: RequestLog):
        require("torch", "transformers", "llguidance", extra="llm", purpose="the local llm writer")
        import llguidance
        import llguidance.hf
        import torch
        import transformers

        self.torch = torch
        self.transformers = transformers
        self.llguidance = llguidance
        self.settings = settings
        self.log = request_log
        self.notes: list[str] = []
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(settings.model)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(settings.model, dtype=self.dtype)
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"could not load the LLM {settings.model!r} ({first_line(error)}); give a Hugging Face id or a "
                "local folder with a chat model as llm.model, or an OpenAI-compatible server as llm.base_url "
                "(offline: set HF_HUB_OFFLINE=1 to use the local cache only)"
            ) from None
        self.model.to(self.device).eval()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(f"the LLM {settings.model!r} has no chat template; choose an instruct/chat model")
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ModelLoadError(f"the LLM {settings.model!r} has no end-of-sequence token")
        self.eos_token_id = int(eos)
        try:
            self.ll_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer)
        except ValueError as error:
            raise ModelLoadError(f"constrained decoding needs a fast tokenizer; {settings.model!r}: {error}") from None

    def describe(self) -> str:
        return f"llm:{self.settings.model}"

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any], part: str, seed: int,
                 deadline: float, waiting: Callable[[str], None]) -> str:
        """The model's answer, decoded under ``schema``; generation stops at ``deadline`` (a
        ``time.monotonic()`` value). ``waiting`` is unused: nothing here waits on anyone else."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise budget_spent(self.settings.budget_s)
        torch = self.torch
        llguidance = self.llguidance
        prompt = self._chat_text(messages)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, overrides={"whitespace_flexible": False, "json_allowed_escapes": JSON_ALLOWED_ESCAPES}
        )
        matcher = llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise RuntimeError(f"llguidance rejected the {part} schema: {matcher.get_error()}")
        # Every token is at least one byte, so this many tokens always finish a valid document.
        max_new_tokens = max_json_bytes(schema) + 8
        stem = self.log.request(part, {"backend": "transformers", "model": self.settings.model, "messages": messages,
                                       "prompt_text": prompt, "schema": schema, "max_new_tokens": max_new_tokens,
                                       "temperature": self.settings.temperature,
                                       "top_p": self.settings.top_p, "seed": seed})
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        mask = GrammarMask(matcher, self.eos_token_id)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_id
        # Seed a private copy of the RNG so generation is reproducible and the caller's RNG untouched.
        cuda_devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():
            torch.manual_seed(seed)
            output = self.model.generate(
                **inputs,
                logits_processor=self.transformers.LogitsProcessorList([mask]),
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=self.settings.temperature,
                top_p=self.settings.top_p,
                max_time=remaining,
                eos_token_id=self.eos_token_id,
                pad_token_id=pad,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1]:].tolist()
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        self.log.response(stem, text)
        if time.monotonic() >= deadline and not matcher.is_stopped():
            raise budget_spent(self.settings.budget_s)  # cut off mid-answer by max_time
        if mask.error:
            log.debug("%s: grammar error during generation: %s", part, mask.error)
        return text

    def _chat_text(self, messages: list[dict[str, str]]) -> str:
        """The prompt text in the model's chat format; a template that refuses a system turn
        (Gemma's, for one) gets the system prompt at the top of the first user turn instead."""
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError:
            merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]},
                      *messages[2:]]
            return self.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)

    def close(self) -> None:
        del self.model
        free_memory()

