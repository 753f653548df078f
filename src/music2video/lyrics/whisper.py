"""Transcribing sung vocals with Whisper through transformers, and the filters that keep Whisper
from inventing lyrics over music.

``transcribe_windows`` decodes each window of at most 30 s (Whisper's input) on its own, the way
openai/whisper's ``transcribe.py`` decodes one 30 s stretch:

1. Log-mel features (the model's own ``WhisperFeatureExtractor``); the encoder runs once.
2. One decoder step from ``<|startoftranscript|>`` gives the window's **no-speech probability**
   (the ``<|nospeech|>`` token) and, when no language is set, the language probabilities.
3. ``generate`` with timestamps (segment boundaries) and cross-attention DTW word times
   (``return_token_timestamps``; needs the checkpoint's ``alignment_heads``). Temperature
   fallback: while the window's text is a repetition loop (gzip compression ratio above
   ``compression_ratio_threshold``) or unlikely (mean token log-probability below
   ``logprob_threshold``), decode again at the next temperature, unless the window is silent.
4. Segments (Whisper's lines) with words: a word is the tokens from one leading space to the
   next (or one character group for languages written without spaces); its start is its first
   token's DTW time, its end the next token's; its confidence the mean token probability.

``filter_hallucinations`` then drops, and records, lines that are not sung lyrics: windows that
Whisper itself calls silent (no-speech probability above the threshold *and* low log-probability,
openai's rule), lines outside the detected vocals, low-probability lines, repetition loops,
phrases Whisper is known to invent on music ("Thank you for watching", subtitle credits), lines
with no words ("♪", "[Music]") and the same line looping more than ``MAX_REPEATS_IN_A_ROW`` times.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from music2video.errors import MissingDependencyError, ModelLoadError, Music2VideoError
from music2video.model_source import load_error, model_source
from music2video.lyrics.artifact import DroppedLine, LyricsSettings, LyricWord
from music2video.lyrics.vocals import SAMPLE_RATE_HZ, VocalActivity
from music2video.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

WINDOW_S = 30.0  # Whisper hears 30 s at a time
WINDOW_PAD_S = 0.3  # context kept before and after a vocal span, so first and last words are whole
MIN_WINDOW_S = 1.0  # shorter stretches are widened: Whisper needs some context
TIME_PRECISION_S = 0.02  # one timestamp token
SPACELESS_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}  # words are character groups (openai/whisper)
MIN_VOCAL_SHARE = 0.5  # a line must be sung inside the detected vocals for at least this share of its time
MAX_REPEATS_IN_A_ROW = 3  # the same line more often than this in a row is a decoding loop
# Phrases Whisper writes over music and silence because its training subtitles had them.
KNOWN_HALLUCINATIONS = (
    "thank you for watching",
    "thanks for watching",
    "please subscribe",
    "like and subscribe",
    "subtitles by",
    "subtitled by",
    "transcribed by",
    "translated by",
    "captions by",
    "amara.org",
    "www.",
    ".com",
    "copyright",
    "untertitel",
    "sous-titres",
    "ご視聴ありがとうございました",
)
MUSIC_MARKERS = re.compile(r"[♪♫♬🎵🎶]|\[(music|instrumental|applause|laughter)\]|\((music|instrumental)\)", re.I)


@dataclass
class Segment:
    """One line as Whisper wrote it, in song time."""

    start_s: float
    end_s: float
    text: str
    words: list[LyricWord]
    avg_logprob: float
    compression_ratio: float


@dataclass
class WindowTranscript:
    """What Whisper made of one window of the song."""

    start_s: float
    end_s: float
    language: str | None
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    temperature: float
    segments: list[Segment] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# 1. Windows


def plan_windows(spans: Sequence[tuple[float, float]], duration_s: float, max_s: float = WINDOW_S) -> list[tuple[float, float]]:
    """Cut the song into windows of at most ``max_s`` seconds around the vocal ``spans``.

    Spans are padded by ``WINDOW_PAD_S`` and packed greedily (as WhisperX packs VAD segments):
    a window grows span by span while it stays within ``max_s``; a span longer than ``max_s`` is
    cut into equal pieces. Stretches without vocals are never heard, which is most of what keeps
    Whisper from inventing lyrics over instrumental parts. Without spans, returns ``[]``.
    """
    padded = [(max(0.0, a - WINDOW_PAD_S), min(duration_s, b + WINDOW_PAD_S)) for a, b in spans if b > a]
    pieces: list[tuple[float, float]] = []
    for a, b in padded:
        count = max(1, math.ceil((b - a) / max_s - 1e-9))
        step = (b - a) / count
        pieces.extend((a + k * step, a + (k + 1) * step) for k in range(count))
    windows: list[list[float]] = []
    for a, b in pieces:
        if windows and b - windows[-1][0] <= max_s:
            windows[-1][1] = max(windows[-1][1], b)
        else:
            windows.append([a, b])
    result = []
    for a, b in windows:
        if b - a < MIN_WINDOW_S:  # widen around the middle, within the song
            middle = (a + b) / 2
            a, b = max(0.0, middle - MIN_WINDOW_S / 2), min(duration_s, middle + MIN_WINDOW_S / 2)
        result.append((round(a, 3), round(b, 3)))
    return result


# --------------------------------------------------------------------------------------------
# 2. Model


@dataclass
class WhisperModel:
    """A loaded Whisper and the ids the transcription needs."""

    model: Any
    processor: Any
    device: Any
    dtype: Any
    source: str
    sot_id: int
    eot_id: int
    no_speech_id: int | None
    timestamp_begin: int
    language_ids: dict[str, int]  # "en" -> token id

    def free(self) -> None:
        from music2video.torch_device import free_memory

        self.model = None
        free_memory()


def load_whisper(model_id: str, device_name: str = "auto", dtype_name: str = "auto") -> WhisperModel:
    """Whisper from a Hugging Face id or a local folder saved with ``save_pretrained``.

    Weights come from safetensors only; remote code is never run. Raises
    :class:`ModelLoadError` naming the model and how to work offline.
    """
    try:
        import torch  # noqa: F401
        from transformers import WhisperForConditionalGeneration, WhisperProcessor
    except ImportError as error:
        raise MissingDependencyError(error.name or "transformers", "lyrics", "Transcribing lyrics with Whisper") from None
    from music2video.torch_device import resolve_device, resolve_dtype

    device = resolve_device(device_name)
    dtype = resolve_dtype(dtype_name, device)
    source = model_source(model_id, "Whisper", "--whisper-model")
    try:
        processor = WhisperProcessor.from_pretrained(source)
        model = WhisperForConditionalGeneration.from_pretrained(source, dtype=dtype, use_safetensors=True)
    except (OSError, ValueError, KeyError) as error:
        raise load_error(model_id, "Whisper", "--whisper-model", error) from None
    model.to(device)
    model.eval()

    config = model.generation_config
    tokenizer = processor.tokenizer
    if not getattr(config, "alignment_heads", None):
        raise ModelLoadError(
            f"the Whisper model '{model_id}' has no alignment_heads in its generation_config.json, so it cannot "
            "time words; use an openai/whisper-* checkpoint or add its alignment heads"
        )
    no_timestamps = int(config.no_timestamps_token_id)
    # <|nospeech|> in large-v3 and turbo, <|nocaptions|> in the older checkpoints.
    candidates = [tokenizer.convert_tokens_to_ids(token) for token in ("<|nospeech|>", "<|nocaptions|>")]
    no_speech = next((i for i in candidates if i is not None and i != tokenizer.unk_token_id), None)
    languages = {token.strip("<|>"): int(i) for token, i in (getattr(config, "lang_to_id", None) or {}).items()}
    return WhisperModel(
        model=model,
        processor=processor,
        device=device,
        dtype=dtype,
        source=model_id,
        sot_id=int(config.decoder_start_token_id),
        eot_id=int(config.eos_token_id if not isinstance(config.eos_token_id, list) else config.eos_token_id[0]),
        no_speech_id=no_speech,
        timestamp_begin=no_timestamps + 1,  # timestamps follow <|notimestamps|> in every Whisper vocabulary
        language_ids=languages,
    )


# --------------------------------------------------------------------------------------------
# 3. Transcription


def transcribe_windows(
    whisper: WhisperModel,
    samples: np.ndarray,
    windows: Sequence[tuple[float, float]],
    settings: LyricsSettings,
    progress: ProgressCallback = no_progress,
) -> list[WindowTranscript]:
    """Transcribe each window of 16 kHz mono ``samples``; times in the results are song times.

    The language is ``settings.language`` or, when None, detected once on the longest window and
    kept for the whole song (a song that switches language mid-line is rare; a detector that
    flips between windows on instrumental noise is not).
    """
    import torch

    language = settings.language
    if language is not None and whisper.language_ids and language not in whisper.language_ids:
        known = ", ".join(sorted(whisper.language_ids)[:12])
        raise Music2VideoError(
            f"language {language!r} is not one of the Whisper model's language codes ({known}, ...); "
            "use a code such as 'en', or leave it unset to detect it"
        )
    if language is None and windows and whisper.language_ids:
        longest = max(range(len(windows)), key=lambda k: windows[k][1] - windows[k][0])
        encoder_out = _encode(whisper, _cut(samples, *windows[longest]))
        language, _ = _first_step(whisper, encoder_out)
    results = []
    for index, (start_s, end_s) in enumerate(windows):
        progress(index, len(windows), f"transcribing {start_s:.0f}-{end_s:.0f} s")
        encoder_out = _encode(whisper, _cut(samples, start_s, end_s))
        _, no_speech_prob = _first_step(whisper, encoder_out)
        transcript = None
        for temperature in settings.temperatures or [0.0]:
            if temperature > 0:
                torch.manual_seed(settings.seed + index)  # sampling is reproducible per window
            transcript = _decode(whisper, encoder_out, start_s, end_s, language, temperature, settings)
            transcript.no_speech_prob = no_speech_prob
            failed = (
                transcript.compression_ratio > settings.compression_ratio_threshold
                or transcript.avg_logprob < settings.logprob_threshold
            )
            silent = no_speech_prob > settings.no_speech_threshold
            if not failed or silent:
                break
        assert transcript is not None
        results.append(transcript)
    progress(len(windows), len(windows), "transcribed")
    return results


def _cut(samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return samples[int(start_s * SAMPLE_RATE_HZ) : int(math.ceil(end_s * SAMPLE_RATE_HZ))]


def _encode(whisper: WhisperModel, audio: np.ndarray) -> Any:
    import torch

    features = whisper.processor.feature_extractor(
        audio, sampling_rate=SAMPLE_RATE_HZ, return_tensors="pt", return_attention_mask=True
    )
    input_features = features.input_features.to(whisper.device, whisper.dtype)
    with torch.inference_mode():
        encoder_out = whisper.model.get_encoder()(input_features)
    encoder_out.attention_mask = features.attention_mask.to(whisper.device)  # for DTW: where the audio ends
    return encoder_out


def _first_step(whisper: WhisperModel, encoder_out: Any) -> tuple[str | None, float]:
    """(most likely language, no-speech probability) from the logits after ``<|startoftranscript|>``."""
    import torch

    start = torch.tensor([[whisper.sot_id]], device=whisper.device)
    with torch.inference_mode():
        logits = whisper.model(encoder_outputs=(encoder_out.last_hidden_state,), decoder_input_ids=start).logits[0, -1]
    probs = logits.float().softmax(-1)
    no_speech = float(probs[whisper.no_speech_id]) if whisper.no_speech_id is not None else 0.0
    language = None
    if whisper.language_ids:
        codes = list(whisper.language_ids)
        ids = torch.tensor([whisper.language_ids[c] for c in codes], device=probs.device)
        language = codes[int(probs[ids].argmax())]
    return language, no_speech


def _decode(
    whisper: WhisperModel,
    encoder_out: Any,
    start_s: float,
    end_s: float,
    language: str | None,
    temperature: float,
    settings: LyricsSettings,
) -> WindowTranscript:
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    generate_kwargs: dict[str, Any] = {}
    if language is not None and whisper.language_ids:
        generate_kwargs.update(language=language, task="transcribe")
    with torch.inference_mode():
        output = whisper.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_out.last_hidden_state),
            attention_mask=encoder_out.attention_mask,
            return_timestamps=True,
            return_token_timestamps=True,
            return_dict_in_generate=True,
            output_scores=True,
            force_unique_generate_call=True,  # one 30 s window: no long-form seeking inside it
            temperature=temperature,
            max_new_tokens=settings.max_new_tokens,
            **generate_kwargs,
        )
    sequence = output["sequences"][0].tolist()
    scores = output["scores"]
    token_times = output["token_timestamps"][0].float().tolist()
    generated = sequence[len(sequence) - len(scores) :]
    times = token_times[len(sequence) - len(scores) :]
    # Log-probabilities of the chosen tokens under the processed logits (suppressions and
    # timestamp rules applied), temperature undone: what openai/whisper averages.
    scale = temperature if temperature > 0 else 1.0
    logprobs = [
        float(torch.log_softmax(step[0].float() * scale, dim=-1)[token]) for step, token in zip(scores, generated, strict=False)
    ]
    while generated and generated[-1] == whisper.eot_id:  # the end token is not text
        generated, times, logprobs = generated[:-1], times[:-1], logprobs[:-1]

    segments = _segments(whisper, generated, times, logprobs, start_s, end_s, language)
    text = "".join(s.text for s in segments)
    finite = [lp for lp in logprobs if math.isfinite(lp)]
    return WindowTranscript(
        start_s=start_s,
        end_s=end_s,
        language=language,
        no_speech_prob=0.0,
        avg_logprob=float(np.mean(finite)) if finite else -math.inf,
        compression_ratio=compression_ratio(text),
        temperature=temperature,
        segments=segments,
    )


def _segments(
    whisper: WhisperModel,
    tokens: list[int],
    times: list[float],
    logprobs: list[float],
    offset_s: float,
    window_end_s: float,
    language: str | None,
) -> list[Segment]:
    """Split decoded tokens at timestamp tokens into segments of words, in song time."""
    tokenizer = whisper.processor.tokenizer
    segments: list[Segment] = []
    current: list[int] = []  # indices into tokens of the current segment's text tokens
    seg_start: float | None = None

    def close(end_stamp: float | None, closing_logprob: float | None) -> None:
        nonlocal current, seg_start
        if current:
            words = _words(tokenizer, tokens, times, logprobs, current, offset_s, window_end_s, language)
            text = tokenizer.decode([tokens[i] for i in current], skip_special_tokens=True).strip()
            if words and text:
                first = seg_start if seg_start is not None else words[0].start_s - offset_s
                last = end_stamp if end_stamp is not None else words[-1].end_s - offset_s
                lps = [logprobs[i] for i in current] + ([closing_logprob] if closing_logprob is not None else [])
                lps = [lp for lp in lps if math.isfinite(lp)]
                # A weak model can stamp times past the audio it heard: keep them inside the window.
                start = min(max(offset_s + first, offset_s), window_end_s - TIME_PRECISION_S)
                end = min(max(offset_s + last, start + TIME_PRECISION_S), window_end_s)
                segments.append(
                    Segment(
                        start_s=round(start, 3),
                        end_s=round(end, 3),
                        text=text,
                        words=words,
                        avg_logprob=float(np.mean(lps)) if lps else -math.inf,
                        compression_ratio=compression_ratio(text),
                    )
                )
        current, seg_start = [], None

    for index, token in enumerate(tokens):
        if token >= whisper.timestamp_begin:
            stamp = (token - whisper.timestamp_begin) * TIME_PRECISION_S
            if current:
                close(stamp, logprobs[index])
            else:
                seg_start = stamp
        elif token < whisper.eot_id:  # text, not a special token
            current.append(index)
    close(None, None)
    return segments


def _words(
    tokenizer: Any,
    tokens: list[int],
    times: list[float],
    logprobs: list[float],
    indices: list[int],
    offset_s: float,
    window_end_s: float,
    language: str | None,
) -> list[LyricWord]:
    """Group text tokens into words with DTW times and mean token probability."""
    groups: list[list[int]] = []
    spaceless = language in SPACELESS_LANGUAGES
    for i in indices:
        piece = tokenizer.decode([tokens[i]])
        starts_word = piece.startswith(" ") or not groups or spaceless
        # A token that ends inside a multi-byte character cannot end a word (openai/whisper).
        if groups and "\ufffd" in tokenizer.decode([tokens[j] for j in groups[-1]]):
            starts_word = False
        if starts_word:
            groups.append([i])
        else:
            groups[-1].append(i)
    words = []
    for group in groups:
        text = tokenizer.decode([tokens[j] for j in group]).strip()
        if not text:
            continue
        start = times[group[0]]
        end = times[group[-1] + 1] if group[-1] + 1 < len(times) else max(start, times[group[-1]]) + TIME_PRECISION_S
        probs = [math.exp(logprobs[j]) for j in group if math.isfinite(logprobs[j])]
        words.append(
            LyricWord(
                text=text,
                start_s=round(min(window_end_s, offset_s + start), 3),
                end_s=round(min(window_end_s, offset_s + max(end, start)), 3),
                confidence=round(float(np.mean(probs)), 4) if probs else 0.0,
            )
        )
    return words


def compression_ratio(text: str) -> float:
    """gzip-style compression ratio of ``text`` (openai/whisper): loops of one phrase compress well."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


# --------------------------------------------------------------------------------------------
# 4. Filters


def filter_hallucinations(
    transcripts: Sequence[WindowTranscript], vocals: VocalActivity | None, settings: LyricsSettings
) -> tuple[list[Segment], list[DroppedLine], list[tuple[float, float]]]:
    """Keep the segments that look sung; return (kept, dropped with reasons, silent windows).

    ``vocals``: the detector's result; None skips the vocal-span check (``vocal_gate`` off).
    """
    kept: list[Segment] = []
    dropped: list[DroppedLine] = []
    silent_windows: list[tuple[float, float]] = []

    def drop(segment: Segment, reason: str) -> None:
        dropped.append(DroppedLine(start_s=segment.start_s, end_s=segment.end_s, text=segment.text, reason=reason))

    for window in transcripts:
        if window.no_speech_prob > settings.no_speech_threshold and window.avg_logprob < settings.logprob_threshold:
            silent_windows.append((window.start_s, window.end_s))
            for segment in window.segments:
                drop(segment, "no_speech")
            continue
        for segment in window.segments:
            normal = normalise(segment.text)
            if not normal or MUSIC_MARKERS.fullmatch(segment.text.strip()) or not any(ch.isalnum() for ch in normal):
                drop(segment, "no_words")
            elif any(phrase in segment.text.casefold() for phrase in KNOWN_HALLUCINATIONS):
                drop(segment, "known_hallucination")
            elif segment.compression_ratio > settings.compression_ratio_threshold:
                drop(segment, "repetitive")
            elif segment.avg_logprob < settings.logprob_threshold:
                drop(segment, "low_logprob")
            elif vocals is not None and vocals.share_in(segment.start_s, segment.end_s) < MIN_VOCAL_SHARE:
                drop(segment, "no_vocals")
            else:
                kept.append(segment)

    # Decoding loops: the same line over and over. Keep the first MAX_REPEATS_IN_A_ROW.
    result: list[Segment] = []
    run = 0
    for segment in kept:
        same = bool(result) and normalise(result[-1].text) == normalise(segment.text)
        run = run + 1 if same else 1
        if run > MAX_REPEATS_IN_A_ROW:
            drop(segment, "repeat_loop")
        else:
            result.append(segment)
    dropped.sort(key=lambda d: d.start_s)
    return result, dropped, silent_windows


def normalise(text: str) -> str:
    """Lower case, accents and punctuation removed, spaces collapsed: for comparing lyrics."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    kept = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in kept)
    return " ".join(kept.split())


# --------------------------------------------------------------------------------------------
# helpers


