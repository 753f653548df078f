"""The "clap" listener: zero-shot labels for every shot, every section and the whole song.

A CLAP model (contrastive language-audio pretraining) embeds audio and text in one space;
the cosine between a stretch of music and a sentence such as "This piece of music sounds
melancholic." says how well the sentence fits. ``describe_clap`` scores each span of the song
against label vocabularies (emotion, mood, genre, instruments, timbre, energy, colour, setting;
JSON files in ``music2video/data/vocabularies``, plus any the user adds) and returns a
:class:`~music2video.artifacts.Descriptions` with tags, numbers and a sentence per span.

How it works, top to bottom:

1. Read the run folder's WAV, downmix to mono and resample once to the model's rate (48 kHz).
2. Cut every shot into windows of at most the model's input length (10 s), deterministically:
   a span is split into ``ceil(length / 10 s)`` equal, contiguous windows, so every sample is
   heard and nothing is cropped at random. Stretches of the song that no shot covers get
   windows too. Short windows are repeat-padded by the feature extractor, as in CLAP training.
3. Embed the windows in batches of ``settings.batch_size``; each embedding is L2-normalised.
   A shot's embedding is the mean of its windows' embeddings weighted by window length.
   Sections and the song reuse those same windows instead of running the model again: their
   embedding is the mean of the windows they overlap, weighted by the overlap in samples.
4. Embed each vocabulary's prompts once (cached on disk, keyed by model, template and labels).
5. Score: ``logits = logit_scale * cosine`` (the model's own audio-to-text scale). Per label,
   the *relative* score is the logit minus its duration-weighted mean over all shots of the
   song, so a rock song's shots are not all just "rock". Tags are ranked by
   ``softmax(logit + CONTRAST_WEIGHT * relative)``: labels that fit the span well *and* fit it
   better than the rest of the song rise. The song itself is ranked by the plain softmax.
6. Features: valence and arousal (probability-weighted means of the emotion labels' numbers),
   a confidence per vocabulary, the relative score of each vocabulary's top label, and the
   analysis' energy and brightness; a sentence built from the top labels.

The model is loaded once per call and freed before returning, so the next model (the LLM,
the video model) finds the GPU empty.
"""

from __future__ import annotations

import json
import logging
import math
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from music2video.artifacts import Analysis, Descriptions, ScoredLabel, SegmentDescription, ShotPlan
from music2video.errors import InputError, Music2VideoError
from music2video.model_source import load_error, model_source
from music2video.optional import require
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import atomic_path, file_sha256, stable_hash
from music2video.settings import ClapSettings
from music2video.torch_device import free_memory, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Constants

CLAP_WINDOW_S = 10.0  # what CLAP hears at once; the real value is read from the feature extractor
MIN_SPAN_S = 0.1  # a shot shorter than this (or past the end of the audio) is widened to it
MIN_GAP_S = 0.05  # uncovered stretches between shots shorter than this are not worth a window
TOP_K = 3  # labels kept per vocabulary and span
CONTRAST_WEIGHT = 1.0  # how much "fits better than the rest of the song" counts in the ranking
TEXT_BATCH = 64  # prompts per text-encoder forward pass
DURATION_MISMATCH_S = 0.5  # audio and plan lengths further apart than this earn a warning

VOCABULARY_PACKAGE_DIR = ("data", "vocabularies")

# Vocabularies the sentence builder knows how to phrase; others are appended as "name: a, b".
SENTENCE_VOCABULARIES = ("mood", "genre", "instruments", "timbre", "energy", "emotion", "colour", "setting")


def fingerprint(settings: ClapSettings) -> list[Any]:
    """What besides the shot plan decides clap's descriptions, for the listen stage's key: the
    settings with the user's vocabulary files by content (not path), and the text of the
    shipped vocabularies (people edit them)."""
    user_files = [file_sha256(Path(path)) for path in settings.vocabularies if Path(path).is_file()]
    shipped = sorted(Path(__file__).parents[1].joinpath(*VOCABULARY_PACKAGE_DIR).glob("*.json"))
    return [[settings, user_files], stable_hash(*[(path.name, path.read_text(encoding="utf-8")) for path in shipped])]


# --------------------------------------------------------------------------------------------
# 1. Vocabularies


class VocabularyLabel(BaseModel):
    """One label; emotion-like vocabularies also place it on the valence/arousal plane (-1..1)."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)
    valence: float | None = Field(None, ge=-1.0, le=1.0)
    arousal: float | None = Field(None, ge=-1.0, le=1.0)

    @field_validator("label")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a label is blank")
        return value


class Vocabulary(BaseModel):
    """A vocabulary file: ``{"name", "description", "prompt_template", "labels", ...}``.

    ``labels`` holds strings or ``{"label", "valence", "arousal"}`` objects (valence and
    arousal on all labels or on none). ``prompt_template`` must contain ``{label}`` and no
    other field; ``template_note`` says why this template was chosen and ``reference`` cites
    the model a vocabulary comes from, both for people.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    description: str
    prompt_template: str
    template_note: str = ""
    reference: str = ""
    labels: list[VocabularyLabel] = Field(min_length=1)

    @field_validator("labels", mode="before")
    @classmethod
    def _strings_to_labels(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"label": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("prompt_template")
    @classmethod
    def _one_label_field(cls, template: str) -> str:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        except ValueError as error:
            raise ValueError(f"prompt_template {template!r} is not a valid format string ({error})") from None
        if fields != ["label"]:
            raise ValueError(f"prompt_template {template!r} must contain {{label}} exactly once and no other {{field}}")
        return template

    @model_validator(mode="after")
    def _consistent(self) -> Vocabulary:
        seen: set[str] = set()
        for item in self.labels:
            key = item.label.casefold()
            if key in seen:
                raise ValueError(f"label {item.label!r} appears twice")
            seen.add(key)
        placed = [item.valence is not None and item.arousal is not None for item in self.labels]
        partial = [item.label for item in self.labels if (item.valence is None) != (item.arousal is None)]
        if partial:
            raise ValueError(f"label {partial[0]!r} has only one of valence and arousal")
        if any(placed) and not all(placed):
            missing = next(item.label for item, ok in zip(self.labels, placed, strict=True) if not ok)
            raise ValueError(f"some labels have valence/arousal and {missing!r} does not: give all or none")
        return self

    @property
    def label_names(self) -> list[str]:
        return [item.label for item in self.labels]

    @property
    def prompts(self) -> list[str]:
        return [self.prompt_template.format(label=item.label) for item in self.labels]

    @property
    def has_valence_arousal(self) -> bool:
        return all(item.valence is not None for item in self.labels)


def load_vocabulary(path: Path) -> Vocabulary:
    """Read and validate one vocabulary file; any problem is a one-line :class:`Music2VideoError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise Music2VideoError(f"vocabulary file {path} cannot be read ({error.strerror or error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise Music2VideoError(
            f"vocabulary file {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    if not isinstance(data, dict):
        raise Music2VideoError(f"vocabulary file {path} must hold a JSON object with name, description, prompt_template and labels")
    try:
        return Vocabulary.model_validate(data)
    except ValidationError as error:
        raise Music2VideoError(f"vocabulary file {path}: {_first_validation_problem(error)}") from None


def shipped_vocabulary_paths() -> list[Path]:
    """The vocabulary files that come with music2video, sorted by file name."""
    folder = resources.files("music2video").joinpath(*VOCABULARY_PACKAGE_DIR)
    return sorted((Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".json")), key=lambda p: p.name)


def load_vocabularies(extra: Sequence[Path] = ()) -> list[Vocabulary]:
    """The shipped vocabularies followed by ``extra`` files; an extra file whose ``name`` equals a
    shipped one replaces it (so a user can rewrite the mood list without forking the package)."""
    by_name: dict[str, Vocabulary] = {}
    for path in shipped_vocabulary_paths():
        vocabulary = load_vocabulary(path)
        by_name[vocabulary.name] = vocabulary
    for path in extra:
        vocabulary = load_vocabulary(Path(path).expanduser())
        if vocabulary.name in by_name:
            log.info("vocabulary %r from %s replaces the shipped one", vocabulary.name, path)
        by_name[vocabulary.name] = vocabulary
    return list(by_name.values())


def _first_validation_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem.get("loc", ()))
    message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


# --------------------------------------------------------------------------------------------
# 2. Windows


def split_windows(start: int, end: int, max_samples: int) -> list[tuple[int, int]]:
    """Cut the sample span ``[start, end)`` into ``ceil(length / max_samples)`` contiguous windows
    of (nearly) equal length, each at most ``max_samples`` long.

    Every sample belongs to exactly one window; no window is empty. An empty span gives ``[]``.
    """
    if max_samples < 1:
        raise ValueError(f"max_samples must be positive, got {max_samples}")
    length = end - start
    if length <= 0:
        return []
    count = -(-length // max_samples)  # ceiling division in integers: no float rounding at the edges
    bounds = [start + (i * length) // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclass(frozen=True)
class WindowPlan:
    """Which sample windows the model hears, and which of them make up each shot.

    ``windows``: ``(start, end)`` sample indices, sorted by start, not overlapping.
    ``shot_windows``: for each shot, the indices into ``windows`` that cover it.
    """

    windows: list[tuple[int, int]]
    shot_windows: list[list[int]]


def plan_windows(shot_spans: Sequence[tuple[int, int]], total_samples: int, max_samples: int, min_gap_samples: int) -> WindowPlan:
    """Windows for every shot span plus every uncovered stretch longer than ``min_gap_samples``.

    ``shot_spans`` are sample spans (clamped to the audio, non-empty, may overlap each other:
    an overlapping shot simply gets its own windows). Gap windows let sections and the song
    cover audio that no shot does, e.g. when a plan ends before the audio.
    """
    windows: list[tuple[int, int]] = []
    shot_windows: list[list[int]] = []
    for start, end in shot_spans:
        first = len(windows)
        windows.extend(split_windows(start, end, max_samples))
        shot_windows.append(list(range(first, len(windows))))

    covered = sorted(shot_spans)
    cursor = 0
    gaps: list[tuple[int, int]] = []
    for start, end in covered + [(total_samples, total_samples)]:
        if start - cursor > min_gap_samples:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    for start, end in gaps:
        windows.extend(split_windows(start, end, max_samples))
    if not windows and total_samples > 0:  # no shots and audio shorter than min_gap_samples
        windows.extend(split_windows(0, total_samples, max_samples))

    # Keep windows in time order (shot windows first would make overlap sums harder to read),
    # remapping the shot indices to the sorted positions.
    order = sorted(range(len(windows)), key=lambda i: windows[i])
    position = {old: new for new, old in enumerate(order)}
    return WindowPlan(
        windows=[windows[i] for i in order],
        shot_windows=[[position[i] for i in indices] for indices in shot_windows],
    )


def span_to_samples(start_s: float, end_s: float, rate_hz: int, total_samples: int) -> tuple[int, int]:
    """Sample span of ``[start_s, end_s)`` clamped to the audio, widened to at least
    ``MIN_SPAN_S`` (so a degenerate shot still has something to hear)."""
    min_samples = min(total_samples, max(1, round(MIN_SPAN_S * rate_hz)))
    start = min(max(0, round(start_s * rate_hz)), total_samples)
    end = min(max(0, round(end_s * rate_hz)), total_samples)
    if end - start < min_samples:
        end = min(total_samples, max(end, start + min_samples))
        start = max(0, end - min_samples)
    return start, end


def overlap_weights(windows: Sequence[tuple[int, int]], start: int, end: int) -> np.ndarray:
    """Samples each window shares with ``[start, end)``, as float64 weights."""
    bounds = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
    overlap = np.minimum(bounds[:, 1], end) - np.maximum(bounds[:, 0], start)
    return np.clip(overlap, 0, None).astype(np.float64)


def weighted_embedding(embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """L2-normalised weighted mean of unit embeddings ``(n, dim)``; all-zero weights fall back to
    the plain mean."""
    if weights.sum() <= 0:
        weights = np.ones(len(embeddings))
    mean = (weights[:, None] * embeddings).sum(axis=0) / weights.sum()
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0 else mean


# --------------------------------------------------------------------------------------------
# 3. Audio


def read_mono(path: Path, rate_hz: int) -> tuple[np.ndarray, int, list[str]]:
    """Samples of ``path`` as float32 mono at ``rate_hz``, the file's own rate, and warnings.

    Read by :func:`music2video.decode.load_audio` (channels averaged, resampled once with soxr
    when the file's rate differs); this adds the file's rate and the warning that says so.
    """
    import soundfile

    from music2video.decode import load_audio

    mono = load_audio(path, rate_hz)
    file_rate = int(soundfile.info(str(path)).samplerate)
    warnings: list[str] = []
    if file_rate != rate_hz:
        warnings.append(f"clap: resampled the audio from {file_rate} Hz to the model's {rate_hz} Hz")
    if mono.size == 0:
        raise InputError(f"the audio file {path} holds no samples")
    return np.ascontiguousarray(mono), file_rate, warnings


# --------------------------------------------------------------------------------------------
# 4. Model


def load_clap(model_id: str, device: Any, dtype: Any) -> tuple[Any, Any]:
    """``(ClapModel, ClapProcessor)`` from a Hugging Face id or a local folder, in eval mode on
    ``device`` in ``dtype``. Weights come from safetensors only; remote code is never run."""
    _require_backend()
    from transformers import ClapModel, ClapProcessor

    source = model_source(model_id, "CLAP", "--clap-model")
    try:
        # The model first: when files are missing, its error says why (offline, not found);
        # the processor's only says that it could not load a feature extractor.
        model = ClapModel.from_pretrained(source, dtype=dtype, use_safetensors=True)
        processor = ClapProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError) as error:
        raise load_error(model_id, "CLAP", "--clap-model", error) from None
    model.to(device)
    model.eval()
    return model, processor


def model_fingerprint(model_id: str) -> str:
    """What identifies the weights behind ``model_id``, for the text-embedding cache key.

    A hub id adds the commit of its cached snapshot; a local folder adds the size and
    modification time of its weight files, so rebuilding a folder in place invalidates the cache.
    """
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        stats = sorted(
            (item.name, item.stat().st_size, item.stat().st_mtime_ns) for item in folder.glob("*.safetensors")
        )
        return json.dumps({"folder": str(folder.resolve()), "weights": stats})
    return json.dumps({"hub": model_id, "revision": _hub_revision(model_id)})


def _hub_revision(model_id: str) -> str:
    """The commit of the cached snapshot a hub id resolved to (the snapshot folder's name)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # noqa: BLE001 - only a cache key: an unknown revision is acceptable
        return "unknown-revision"
    return Path(cached).parent.name if isinstance(cached, str) else "unknown-revision"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/music2video/clap-text`` (``~/.cache/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "music2video" / "clap-text"


def text_embeddings(
    model: Any, tokenizer: Any, vocabulary: Vocabulary, fingerprint: str, cache_dir: Path
) -> np.ndarray:
    """Unit text embeddings ``(labels, dim)`` float32 of a vocabulary's prompts.

    Cached in ``cache_dir`` as safetensors keyed by (model fingerprint, dtype, template,
    labels); the metadata repeats those so a cache file can be checked by eye. A cache file that cannot be
    read, or does not match, is recomputed and replaced.
    """
    from safetensors.numpy import load_file, save_file

    dtype = str(next(model.parameters()).dtype)  # half-precision embeddings differ slightly
    key = stable_hash(fingerprint, dtype, vocabulary.prompt_template, vocabulary.label_names)
    path = Path(cache_dir) / f"{vocabulary.name}-{key}.safetensors"
    if path.is_file():
        try:
            cached = load_file(str(path))["embeddings"]
            if cached.shape[0] == len(vocabulary.labels):
                return cached.astype(np.float32)
        except Exception as error:  # noqa: BLE001 - a cache is never trusted: any failure means recompute
            log.warning("ignoring unreadable text-embedding cache %s (%s)", path, error)

    import torch

    device = next(model.parameters()).device
    prompts = vocabulary.prompts
    chunks = []
    with torch.inference_mode():
        for first in range(0, len(prompts), TEXT_BATCH):
            tokens = tokenizer(prompts[first : first + TEXT_BATCH], padding=True, truncation=True, return_tensors="pt")
            tokens = {name: value.to(device) for name, value in tokens.items() if name in ("input_ids", "attention_mask")}
            output = model.get_text_features(**tokens)
            chunks.append(output.pooler_output.float().cpu().numpy())
    embeddings = _normalise_rows(np.concatenate(chunks, axis=0)).astype(np.float32)

    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "model": fingerprint,
        "dtype": dtype,
        "template": vocabulary.prompt_template,
        "labels": json.dumps(vocabulary.label_names),
    }
    with atomic_path(path) as tmp:
        save_file({"embeddings": embeddings}, str(tmp), metadata=metadata)
    return embeddings


def embed_windows(
    model: Any,
    feature_extractor: Any,
    audio: np.ndarray,
    windows: Sequence[tuple[int, int]],
    batch_size: int,
    progress: ProgressCallback = no_progress,
    progress_offset: int = 0,
    progress_total: int | None = None,
) -> np.ndarray:
    """Unit audio embeddings ``(len(windows), dim)`` float32 of ``audio[start:end]`` windows.

    Each window must be at most the feature extractor's input length, so the extractor only
    ever pads (repeat-padding, as in CLAP's training) and never crops at random. Fused models
    (``enable_fusion``) get ``is_longer`` all false: nothing is longer than the input length,
    and the extractor would otherwise flag one random window as "longer".
    """
    import torch

    limit = int(feature_extractor.nb_max_samples)
    rate = int(feature_extractor.sampling_rate)
    fused = bool(getattr(model.config.audio_config, "enable_fusion", False))
    truncation = "fusion" if fused else "rand_trunc"
    parameter = next(model.parameters())
    batches = math.ceil(len(windows) / batch_size)
    total = progress_total if progress_total is not None else batches

    chunks = []
    with torch.inference_mode():
        for batch_index, first in enumerate(range(0, len(windows), batch_size)):
            batch = windows[first : first + batch_size]
            pieces = []
            for start, end in batch:
                if not 0 < end - start <= limit:
                    raise ValueError(f"window {start}:{end} is empty or longer than the model's {limit} samples")
                pieces.append(audio[start:end])
            features = feature_extractor(
                pieces, sampling_rate=rate, truncation=truncation, padding="repeatpad", return_tensors="pt"
            )
            inputs = {"input_features": features["input_features"].to(parameter.device, parameter.dtype)}
            if fused:
                inputs["is_longer"] = torch.zeros((len(batch), 1), dtype=torch.bool, device=parameter.device)
            output = model.get_audio_features(**inputs)
            chunks.append(output.pooler_output.float().cpu().numpy())
            progress(progress_offset + batch_index + 1, total, f"clap: listened to {min(first + batch_size, len(windows))} of {len(windows)} windows")
    if not chunks:
        return np.zeros((0, int(model.config.projection_dim)), dtype=np.float32)
    return _normalise_rows(np.concatenate(chunks, axis=0)).astype(np.float32)


def _require_backend() -> None:
    require("torch", "transformers", extra="clap", purpose="The clap listener")


def _normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


# --------------------------------------------------------------------------------------------
# 5. Scores


@dataclass(frozen=True)
class VocabularyScores:
    """Scores of ``n`` segments against one vocabulary's ``labels``; every array is ``(n, labels)``.

    ``logits``: ``logit_scale * cosine``. ``probability``: softmax of the logits over the
    vocabulary (absolute fit). ``relative``: logits minus the song's shot-weighted mean logit
    per label (fit compared with the rest of the song). ``ranking``: softmax of
    ``logits + contrast * relative``, the score tags are sorted and reported by.
    """

    vocabulary: Vocabulary
    logits: np.ndarray
    probability: np.ndarray
    relative: np.ndarray
    ranking: np.ndarray

    def top(self, row: int, k: int = TOP_K) -> list[ScoredLabel]:
        order = np.argsort(-self.ranking[row], kind="stable")[:k]
        names = self.vocabulary.label_names
        return [ScoredLabel(label=names[i], score=round(float(self.ranking[row, i]), 4)) for i in order]

    def confidence(self, row: int) -> float:
        """Top-1 absolute probability rescaled so chance (1 / labels) is 0 and certainty is 1;
        comparable across vocabularies of different sizes."""
        count = self.probability.shape[1]
        if count < 2:
            return 1.0
        chance = 1.0 / count
        return float(np.clip((self.probability[row].max() - chance) / (1.0 - chance), 0.0, 1.0))

    def top_relative(self, row: int) -> float:
        """Relative logit of the best-ranked label: how much better it fits here than on average."""
        return float(self.relative[row, int(np.argmax(self.ranking[row]))])

    def valence_arousal(self, row: int) -> tuple[float, float] | None:
        """Probability-weighted mean valence and arousal (-1..1), or None without numbers."""
        if not self.vocabulary.has_valence_arousal:
            return None
        valence = np.array([item.valence for item in self.vocabulary.labels], dtype=np.float64)
        arousal = np.array([item.arousal for item in self.vocabulary.labels], dtype=np.float64)
        weights = self.probability[row]
        return float(weights @ valence), float(weights @ arousal)


def score_vocabulary(
    segment_embeddings: np.ndarray,
    label_embeddings: np.ndarray,
    vocabulary: Vocabulary,
    logit_scale: float,
    reference_weights: np.ndarray,
    contrast: np.ndarray,
) -> VocabularyScores:
    """Score unit ``segment_embeddings`` ``(n, dim)`` against unit ``label_embeddings`` ``(labels, dim)``.

    ``reference_weights`` ``(n,)``: each segment's weight in the song's baseline (the shots'
    durations, zero for sections and the song), whose weighted mean logit per label is
    subtracted to get the relative score. ``contrast`` ``(n,)``: weight of the relative score in
    each segment's ranking (0 ranks by absolute fit alone).
    """
    logits = logit_scale * (segment_embeddings.astype(np.float64) @ label_embeddings.astype(np.float64).T)
    if reference_weights.sum() <= 0:
        raise ValueError("reference_weights must have a positive sum")
    baseline = (reference_weights[:, None] * logits).sum(axis=0) / reference_weights.sum()
    relative = logits - baseline[None, :]
    return VocabularyScores(
        vocabulary=vocabulary,
        logits=logits,
        probability=_softmax(logits),
        relative=relative,
        ranking=_softmax(logits + contrast[:, None] * relative),
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def describe_tags(tags: dict[str, list[ScoredLabel]]) -> str:
    """A readable sentence from the top labels, e.g. "Melancholic, dreamy synth-pop with piano and
    synthesizer pads; warm, lush sound, feels driving; evokes nostalgia and tenderness; cool
    blue light, rain on a window." Vocabularies it does not know are appended as "name: a, b"."""

    def first(name: str, count: int = 1) -> list[str]:
        return [item.label for item in tags.get(name, [])[:count]]

    moods = first("mood", 2)
    genre = first("genre")
    head = ", ".join(moods)
    head = f"{head} {genre[0]}" if genre else (f"{head} music" if head else "music")
    instruments = first("instruments", 2)
    if instruments:
        head += " with " + " and ".join(instruments)
    parts = [head]

    sound = []
    if timbre := first("timbre", 2):
        sound.append(", ".join(timbre) + " sound")
    if energy := first("energy"):
        sound.append("feels " + energy[0])
    if sound:
        parts.append(", ".join(sound))
    if emotion := first("emotion", 2):
        parts.append("evokes " + " and ".join(emotion))
    if visual := first("colour") + first("setting"):
        parts.append(", ".join(visual))
    for name, labels in tags.items():
        if name not in SENTENCE_VOCABULARIES and labels:
            parts.append(f"{name}: " + ", ".join(item.label for item in labels[:2]))

    sentence = "; ".join(parts)
    return sentence[:1].upper() + sentence[1:] + "."


# --------------------------------------------------------------------------------------------
# 6. The listener


def describe_clap(
    audio_wav: Path,
    analysis: Analysis,
    plan: ShotPlan,
    settings: ClapSettings,
    progress: ProgressCallback = no_progress,
    *,
    cache_dir: Path | None = None,
) -> Descriptions:
    """Describe every shot of ``plan``, every section of ``analysis`` and the whole song with CLAP.

    ``audio_wav``: the run folder's canonical WAV (any rate and channel count; it is downmixed
    and resampled to the model's rate). ``cache_dir``: where text embeddings are cached
    (default :func:`default_cache_dir`). Returns ``Descriptions(listener="clap")`` with one
    :class:`SegmentDescription` per shot and per section, start and end copied from the plan
    and the analysis, plus ``song``. Raises :class:`ModelLoadError` when the model cannot be
    loaded, :class:`MissingDependencyError` without torch/transformers, and
    :class:`Music2VideoError` for a malformed vocabulary file.
    """
    # 1. Check inputs before anything heavy: vocabularies, dependencies, device.
    vocabularies = load_vocabularies(settings.vocabularies)
    _require_backend()
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    # 2. Load the model once for the whole song.
    log.info("clap: loading %s on %s in %s", settings.model, device, str(dtype).removeprefix("torch."))
    model, processor = load_clap(settings.model, device, dtype)
    try:
        feature_extractor = processor.feature_extractor
        rate = int(feature_extractor.sampling_rate)

        # 3. Audio and windows.
        audio, _, warnings = read_mono(Path(audio_wav), rate)
        total = len(audio)
        audio_duration_s = total / rate
        if abs(audio_duration_s - plan.duration_s) > DURATION_MISMATCH_S:
            warnings.append(
                f"clap: the audio lasts {audio_duration_s:.2f} s but the shot plan {plan.duration_s:.2f} s; spans were clamped to the audio"
            )
        shot_spans = [span_to_samples(shot.start_s, shot.end_s, rate, total) for shot in plan.shots]
        windows = plan_windows(
            shot_spans, total, int(feature_extractor.nb_max_samples), round(MIN_GAP_S * rate)
        )
        batches = math.ceil(len(windows.windows) / settings.batch_size)
        steps = len(vocabularies) + batches
        log.info("clap: %d windows for %d shots, %d vocabularies", len(windows.windows), len(plan.shots), len(vocabularies))

        # 4. Text embeddings, once per vocabulary (cached on disk across runs).
        fingerprint = model_fingerprint(settings.model)
        label_embeddings = []
        for index, vocabulary in enumerate(vocabularies):
            label_embeddings.append(text_embeddings(model, processor.tokenizer, vocabulary, fingerprint, cache_dir))
            progress(index + 1, steps, f"clap: embedded the {vocabulary.name} vocabulary")
        logit_scale = float(model.logit_scale_a.detach().float().exp().cpu())

        # 5. Audio embeddings, in batches.
        window_embeddings = embed_windows(
            model, feature_extractor, audio, windows.windows, settings.batch_size,
            progress, progress_offset=len(vocabularies), progress_total=steps,
        )
    finally:
        # Free the model before scoring so the next stage's model finds the memory empty.
        del model, processor
        free_memory()

    # 6. Segment embeddings: shots from their own windows, sections and song by overlap.
    window_lengths = np.array([end - start for start, end in windows.windows], dtype=np.float64)
    shot_embeddings = [
        weighted_embedding(window_embeddings[indices], window_lengths[indices]) for indices in windows.shot_windows
    ]
    section_embeddings = []
    for section in analysis.sections:
        start, end = span_to_samples(section.start_s, section.end_s, rate, total)
        section_embeddings.append(weighted_embedding(window_embeddings, overlap_weights(windows.windows, start, end)))
    song_embedding = weighted_embedding(window_embeddings, window_lengths)

    rows = np.stack(shot_embeddings + section_embeddings + [song_embedding])
    n_shots, n_sections = len(shot_embeddings), len(section_embeddings)
    song_row = n_shots + n_sections
    # The song is ranked by absolute fit: "better than the song's average" means nothing for it.
    contrast = np.full(len(rows), CONTRAST_WEIGHT)
    contrast[song_row] = 0.0
    # The song's baseline is the shots' mean logit, weighted by duration; a plan without shots
    # falls back to the song itself (then every relative score of the song is zero).
    reference = np.zeros(len(rows))
    reference[:n_shots] = [end - start for start, end in shot_spans]
    if n_shots == 0:
        reference[song_row] = 1.0

    # 7. Score every vocabulary and assemble the descriptions.
    scores = [
        score_vocabulary(rows, labels, vocabulary, logit_scale, reference, contrast)
        for vocabulary, labels in zip(vocabularies, label_embeddings, strict=True)
    ]

    def segment(row: int, start_s: float, end_s: float) -> SegmentDescription:
        return _segment_description(row, start_s, end_s, scores, analysis)

    shots = [segment(i, shot.start_s, shot.end_s) for i, shot in enumerate(plan.shots)]
    sections = [segment(n_shots + i, s.start_s, s.end_s) for i, s in enumerate(analysis.sections)]
    song = segment(song_row, 0.0, analysis.duration_s)
    return Descriptions(
        listener="clap", model=settings.model, song=song, sections=sections, shots=shots, warnings=warnings
    )


def _segment_description(
    row: int, start_s: float, end_s: float, scores: Sequence[VocabularyScores], analysis: Analysis
) -> SegmentDescription:
    tags = {score.vocabulary.name: score.top(row) for score in scores}
    features: dict[str, float] = {}
    valence_arousal = [va for score in scores if (va := score.valence_arousal(row)) is not None]
    if valence_arousal:
        features["valence"] = round(float(np.mean([va[0] for va in valence_arousal])), 4)
        features["arousal"] = round(float(np.mean([va[1] for va in valence_arousal])), 4)
    if analysis.energy:
        features["energy"] = round(analysis.curve_mean(analysis.energy, start_s, end_s), 4)
    if analysis.brightness:
        features["brightness"] = round(analysis.curve_mean(analysis.brightness, start_s, end_s), 4)
    confidences = []
    for score in scores:
        name = score.vocabulary.name
        confidence = score.confidence(row)
        confidences.append(confidence)
        features[f"confidence_{name}"] = round(confidence, 4)
        features[f"relative_{name}"] = round(score.top_relative(row), 4)
    return SegmentDescription(
        start_s=start_s,
        end_s=end_s,
        text=describe_tags(tags),
        features=features,
        tags=tags,
        confidence=round(float(np.mean(confidences)), 4) if confidences else None,
    )
