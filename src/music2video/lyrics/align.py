"""Forced alignment of the user's lyrics to the sung words with a CTC model (wav2vec2 / MMS).

A CTC acoustic model gives, every ``frame_s`` (20 ms for wav2vec2), a log-probability for each
character of its vocabulary and for a blank. Knowing the text, the most likely path through
those frames that spells it (Viterbi over the CTC states: blank, character, blank, ...) puts
every character, hence every word, on the frames where it is heard. The path is computed here
with numpy (:func:`ctc_viterbi`), so no torchaudio is needed.

Models load through transformers by Hugging Face id or local folder
(``AutoModelForCTC`` + ``AutoProcessor``, safetensors only, no remote code). Licences:
``facebook/wav2vec2-base-960h`` (the default, English) is Apache-2.0;
``MahmoudAshraf/mms-300m-1130-forced-aligner`` (158 languages, romanised text) is CC BY-NC 4.0,
non-commercial only.

The model hears the separated vocals when Demucs ran, else what Whisper would hear.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from music2video.errors import MissingDependencyError, ModelLoadError
from music2video.lyrics.artifact import LyricLine, LyricWord
from music2video.lyrics.vocals import SAMPLE_RATE_HZ
from music2video.model_source import load_error, model_source

CHUNK_S = 30.0  # the model hears the song in pieces this long (memory grows with the square in attention)
LOW_CONFIDENCE = 0.3  # mean probability of a word's frames below which a line is flagged
FLAG = "--aligner-model"


@dataclass
class CtcAligner:
    model: Any
    processor: Any
    device: Any
    source: str
    vocabulary: dict[str, int]
    blank_id: int
    delimiter_id: int | None  # the word separator ("|" in wav2vec2 vocabularies), if the model has one
    frame_s: float  # seconds per output frame
    upper_case: bool  # the vocabulary spells in capitals (wav2vec2-base-960h)

    def free(self) -> None:
        self.model = None


def load_aligner(model_id: str, device_name: str = "auto") -> CtcAligner:
    """A CTC model and its processor from a Hugging Face id or a local folder."""
    try:
        import torch  # noqa: F401
        from transformers import AutoModelForCTC, AutoProcessor
    except ImportError as error:
        raise MissingDependencyError(error.name or "transformers", "lyrics", "Aligning lyrics with a CTC model") from None
    from music2video.torch_device import resolve_device

    device = resolve_device(device_name)
    source = model_source(model_id, "CTC aligner", FLAG)
    try:
        processor = AutoProcessor.from_pretrained(source)
        model = AutoModelForCTC.from_pretrained(source, use_safetensors=True)
    except (OSError, ValueError, KeyError) as error:
        raise load_error(model_id, "CTC aligner", FLAG, error) from None
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        raise ModelLoadError(f"the aligner '{model_id}' has no character tokenizer; use a wav2vec2 or MMS CTC model")
    model.to(device)
    model.eval()
    vocabulary = dict(tokenizer.get_vocab())
    blank_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else model.config.pad_token_id)
    delimiter = getattr(tokenizer, "word_delimiter_token", None)
    stride = int(np.prod(model.config.conv_stride))
    letters = [token for token in vocabulary if len(token) == 1 and token.isalpha()]
    return CtcAligner(
        model=model,
        processor=processor,
        device=device,
        source=model_id,
        vocabulary=vocabulary,
        blank_id=blank_id,
        delimiter_id=vocabulary.get(delimiter) if delimiter else None,
        frame_s=stride / SAMPLE_RATE_HZ,
        upper_case=bool(letters) and sum(t.isupper() for t in letters) > len(letters) / 2,
    )


def emissions(aligner: CtcAligner, samples: np.ndarray) -> np.ndarray:
    """Log-probabilities ``(frames, vocabulary)`` of 16 kHz mono ``samples``, in ``CHUNK_S`` pieces."""
    import torch

    chunk = int(CHUNK_S * SAMPLE_RATE_HZ)
    pieces = []
    for start in range(0, max(1, samples.size), chunk):
        audio = samples[start : start + chunk]
        if audio.size < 400:  # shorter than the first convolution's receptive field
            continue
        features = aligner.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE_HZ, return_tensors="pt")
        with torch.inference_mode():
            logits = aligner.model(features.input_values.to(aligner.device)).logits[0]
        pieces.append(torch.log_softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(pieces) if pieces else np.zeros((0, len(aligner.vocabulary)), np.float32)


def ctc_viterbi(log_probs: np.ndarray, tokens: Sequence[int], blank: int) -> np.ndarray | None:
    """The most likely CTC path spelling ``tokens`` through ``log_probs`` ``(frames, vocabulary)``.

    Returns, for each token, ``(first frame, last frame)`` as an ``(len(tokens), 2)`` array; None
    when the frames are too few to spell the tokens (each token needs a frame, and a repeated
    token a blank between). States alternate blank / token; a state is reached by staying, by
    the previous state, or by skipping a blank between two different tokens.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    frames, count = log_probs.shape[0], tokens.size
    if count == 0:
        return np.zeros((0, 2), np.int64)
    repeats = int(np.sum(tokens[1:] == tokens[:-1]))
    if frames < count + repeats:
        return None
    states = 2 * count + 1
    labels = np.full(states, blank, dtype=np.int64)
    labels[1::2] = tokens
    can_skip = np.zeros(states, bool)
    can_skip[3::2] = tokens[1:] != tokens[:-1]
    score = np.full(states, -np.inf)
    score[0] = log_probs[0, blank]
    score[1] = log_probs[0, tokens[0]]
    moves = np.zeros((frames, states), dtype=np.int8)  # 0 stay, 1 from the previous state, 2 skip a blank
    for t in range(1, frames):
        step = np.concatenate([[-np.inf], score[:-1]])
        skip = np.concatenate([[-np.inf, -np.inf], score[:-2]])
        skip[~can_skip] = -np.inf
        best = score.copy()
        move = np.zeros(states, dtype=np.int8)
        better = step > best
        best[better], move[better] = step[better], 1
        better = skip > best
        best[better], move[better] = skip[better], 2
        score = best + log_probs[t, labels]
        moves[t] = move
    state = states - 1 if score[states - 1] >= score[states - 2] else states - 2
    spans = np.full((count, 2), -1, dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        if state % 2 == 1:
            token = state // 2
            spans[token, 0] = t
            if spans[token, 1] < 0:
                spans[token, 1] = t
        state -= int(moves[t, state])
    return spans


def align_with_ctc(aligner: CtcAligner, samples: np.ndarray, texts: list[str], duration_s: float) -> list[LyricLine]:
    """Time every word of ``texts`` (the user's lines, in order) in 16 kHz mono ``samples``.

    Words the model cannot spell (no character of its vocabulary) are placed between their
    aligned neighbours with confidence 0. Lines get ``timing="ctc"``; a line whose words the
    model heard poorly (mean probability under ``LOW_CONFIDENCE``) is flagged ``low_confidence``.
    The whole song is aligned at once: the blank absorbs the instrumental parts.
    """
    log_probs = emissions(aligner, samples)
    # 1. Text to tokens, remembering which word each token spells.
    tokens: list[int] = []
    owner: list[int] = []  # word index per token; -1 for word delimiters
    words: list[tuple[int, str]] = []  # (line index, word as written)
    for line_index, text in enumerate(texts):
        for word in text.split():
            spelled = _spell(aligner, word)
            if spelled and tokens and aligner.delimiter_id is not None:
                tokens.append(aligner.delimiter_id)
                owner.append(-1)
            tokens.extend(spelled)
            owner.extend([len(words)] * len(spelled))
            words.append((line_index, word))
    # 2. The path.
    path = ctc_viterbi(log_probs, tokens, aligner.blank_id) if tokens else None
    times: list[tuple[float, float, float] | None] = [None] * len(words)
    if path is not None:
        owner_array = np.asarray(owner)
        for w in range(len(words)):
            mine = np.flatnonzero(owner_array == w)
            if mine.size == 0:
                continue
            first, last = int(path[mine[0], 0]), int(path[mine[-1], 1])
            probs = [
                float(np.mean(log_probs[path[k, 0] : path[k, 1] + 1, tokens[k]])) for k in mine
            ]
            times[w] = (first * aligner.frame_s, (last + 1) * aligner.frame_s, math.exp(float(np.mean(probs))))
    # 3. Words the model could not spell sit between their neighbours.
    filled = _fill_gaps(times, duration_s)
    lines: list[LyricLine] = []
    for line_index, text in enumerate(texts):
        mine = [k for k, (owner_line, _) in enumerate(words) if owner_line == line_index]
        line_words = [
            LyricWord(
                text=words[k][1],
                start_s=round(min(filled[k][0], duration_s), 3),
                end_s=round(min(max(filled[k][1], filled[k][0]), duration_s), 3),
                confidence=round(filled[k][2], 4),
            )
            for k in mine
        ]
        if not line_words:
            continue
        confidence = float(np.mean([w.confidence or 0.0 for w in line_words]))
        lines.append(
            LyricLine(
                start_s=line_words[0].start_s, end_s=line_words[-1].end_s, text=text, words=line_words,
                confidence=round(confidence, 4), timing="ctc",
                flags=["low_confidence"] if confidence < LOW_CONFIDENCE else [],
            )  # fmt: skip
        )
    return lines


def _spell(aligner: CtcAligner, word: str) -> list[int]:
    """Token ids of the characters of ``word`` the vocabulary knows (in its letter case)."""
    text = word.upper() if aligner.upper_case else word.lower()
    return [aligner.vocabulary[ch] for ch in text if ch in aligner.vocabulary and ch not in ("|", " ")]


def _fill_gaps(times: list[tuple[float, float, float] | None], duration_s: float) -> list[tuple[float, float, float]]:
    """Untimed words share the time between their timed neighbours evenly (confidence 0)."""
    result: list[tuple[float, float, float]] = []
    k = 0
    while k < len(times):
        timed = times[k]
        if timed is not None:
            result.append(timed)
            k += 1
            continue
        end = k
        while end < len(times) and times[end] is None:
            end += 1
        lo = result[-1][1] if result else 0.0
        following = times[end] if end < len(times) else None
        hi = following[0] if following is not None else min(duration_s, lo + 0.3 * (end - k))
        slot = max(0.0, hi - lo) / (end - k)
        result.extend((lo + slot * i, lo + slot * (i + 1), 0.0) for i in range(end - k))
        k = end
    return result
