"""One typed settings model, merged from (highest first) CLI flags / API keyword arguments,
environment variables (``MUSIC2VIDEO_FPS=30``, nested with ``__``: ``MUSIC2VIDEO_CLAP__MODEL``),
a TOML config file (``music2video.toml`` in the working directory, or ``--config``), and the
defaults below.

Each backend owns a nested section (``[clap]``, ``[llm]``, ``[video]`` ... in the config file).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from music2video.errors import Music2VideoError

DEFAULT_CONFIG_FILE = "music2video.toml"
CONFIG_ENV_VAR = "MUSIC2VIDEO_CONFIG"

PipelineName = Literal["auto", "preview", "clap", "lalm"]
ListenerName = Literal["dsp", "clap", "lalm"]
WriterName = Literal["template", "llm"]
RendererName = Literal["animatic", "diffusers"]

# Each pipeline is a preset of per-stage backends; any of them can be overridden on its own.
# Lyrics: "whisper" transcribes sung words; "vocals" only finds where the voice is and times
# the user's lyrics file, if any, without a model (the preview pipeline downloads nothing).
PIPELINES: dict[str, dict[str, str]] = {
    "preview": {"listener": "dsp", "lyrics": "vocals", "writer": "template", "renderer": "animatic"},
    "clap": {"listener": "clap", "lyrics": "whisper", "writer": "llm", "renderer": "diffusers"},
    "lalm": {"listener": "lalm", "lyrics": "whisper", "writer": "llm", "renderer": "diffusers"},
}


class SettingsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShotSettings(SettingsSection):
    min_shot_s: float = Field(1.5, gt=0, description="Shortest shot, seconds.")
    max_shot_s: float = Field(
        5.0,
        gt=0,
        description="Longest shot, seconds; by default what Wan 2.1 makes in one generation (81 frames at 16 fps). "
        "The last shot also holds through the song's ending, where the music has stopped (see music2video.shots).",
    )
    calm_shot_bars: float = Field(2.0, gt=0, description="Shot length in bars where the music is calm.")
    intense_shot_bars: float = Field(1.0, gt=0, description="Shot length in bars where the music is intense.")

    @model_validator(mode="after")
    def _ordered(self) -> ShotSettings:
        if self.min_shot_s > self.max_shot_s:
            raise ValueError(f"min_shot_s ({self.min_shot_s}) is longer than max_shot_s ({self.max_shot_s})")
        return self


class GridSettings(SettingsSection):
    """The beat grid: which tracker, or your own tempo, meter, bar phase or beats (TOML ``[grid]``).

    Each given value replaces or constrains the analysis, and every later stage is re-planned
    from it."""

    tracker: Literal["hybrid", "dsp", "beatnet", "madmom", "beat_this"] = Field(
        "hybrid",
        description="hybrid (built in, the default: dsp's onset tracker with BeatNet's beat activation leading beat "
        "sequences of its own and judging the metrical level and phase; weights CC BY 4.0, usable commercially with attribution); dsp (built in, onsets "
        "only, no network, usable commercially); beatnet (built in: BeatNet's network, weights CC BY 4.0, "
        "usable commercially with attribution, adds its beat activation to dsp's onsets); madmom (needs madmom installed; its models are "
        "CC BY-NC-SA: non-commercial use only); beat_this (needs beat_this and beat_this_checkpoint; MIT).",
    )
    bpm: float | None = Field(None, ge=20, le=400, description="Your tempo in beats per minute: a steady grid at it.")
    meter: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Beats per bar (e.g. 3 for a waltz, 4 for most songs), or a time signature: 2/4, 3/4, 4/4; "
        "6/8, 9/8 and 12/8 count dotted quarters (2, 3 and 4 beats per bar).",
    )
    first_downbeat_s: float | None = Field(None, ge=0, description="Time of a bar's first beat, seconds: fixes the bar phase.")
    beats_file: Path | None = Field(
        None,
        description="Your beats: one time (s) per line, a CSV column of times, or a MIDI file whose tempo map "
        "gives the beats (a DAW's export). Replaces the tracker.",
    )
    beat_this_checkpoint: Path | None = Field(None, description="Local Beat This! checkpoint file (.ckpt) for tracker=beat_this.")

    @field_validator("meter", mode="before")
    @classmethod
    def _time_signature(cls, value: Any) -> Any:
        return beats_per_bar(value) if isinstance(value, str) else value


def beats_per_bar(meter: str) -> int:
    """Beats per bar of ``meter``: a number ("3") or a time signature ("3/4", "6/8").

    A compound signature (6/8, 9/8, 12/8: eighths in threes) counts its dotted quarters, as
    the dev set's ground truth and most listeners do: 6/8 is two beats per bar.
    """
    text = meter.strip()
    match = re.fullmatch(r"(\d+)(?:\s*/\s*(\d+))?", text)
    if match is None or (match.group(2) is not None and int(match.group(2)) not in (1, 2, 4, 8, 16, 32)):
        raise ValueError("not a number of beats per bar or a time signature such as 3/4 or 6/8")
    count, unit = int(match.group(1)), int(match.group(2) or 4)
    compound = unit >= 8 and count > 3 and count % 3 == 0
    return count // 3 if compound else count


def meter_label(beats_per_bar: int) -> str:
    """How a grid's meter reads to a musician. Two beats a bar is 2/4 or 6/8 (6/8 counted in
    dotted quarters, as :func:`beats_per_bar` does): the tracker cannot tell them apart."""
    return {2: "2/4 or 6/8", 3: "3/4", 4: "4/4"}.get(beats_per_bar, f"{beats_per_bar} beats a bar")


class ModelSettings(SettingsSection):
    """Where and how a neural model runs. ``auto`` picks CUDA, then MPS, then CPU."""

    device: str = Field("auto", description="auto, cuda, cuda:1, mps or cpu.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: bfloat16 on CUDA, float32 elsewhere."
    )


class ClapSettings(ModelSettings):
    model: str = Field("laion/larger_clap_music", description="Hugging Face id or local folder of a CLAP model.")
    batch_size: int = Field(8, ge=1, description="Audio windows per forward pass.")
    vocabularies: list[Path] = Field(default_factory=list, description="Extra vocabulary files to score against.")


class LalmSettings(ModelSettings):
    model: str = Field("Qwen/Qwen2.5-Omni-7B", description="Hugging Face id or local folder of an audio-language model.")
    family: Literal["auto", "qwen2_5_omni", "qwen2_audio", "audio_flamingo3", "music_flamingo"] = Field(
        "auto", description="Model family; auto reads it from the model id or its config.json."
    )
    window_s: float | None = Field(None, gt=0, description="Longest audio per request, seconds; None: the model's own limit.")
    batch_size: int = Field(4, ge=1, description="Audio windows per generate call.")
    device_map: str | None = Field(None, description="'auto' lets accelerate place layers and offload what does not fit.")
    max_new_tokens: int = Field(256, ge=16)


DEFAULT_MAX_PROMPT_CHARS = 800
"""Longest text-to-video prompt, in characters, that either writer composes by default. Wan's UMT5
encoder reads 512 tokens; 800 characters of English (about 200 tokens) stay well inside that, and
hold the LLM writer's longest style, two characters, a setting and the shot's own words."""


class WriteSettings(SettingsSection):
    """The ``[write]`` section: what every storyboard writer (template or llm) follows."""

    max_prompt_chars: int = Field(
        DEFAULT_MAX_PROMPT_CHARS,
        ge=200,
        le=4000,
        description="Longest text-to-video prompt in characters; lower it for a text encoder that reads less.",
    )


class LlmSettings(ModelSettings):
    # Qwen3-4B-Instruct-2507: Apache-2.0 (Qwen2.5-3B is under a research licence), no thinking
    # mode, about 8 GB in bf16, and loaded only while the storyboard is written.
    model: str = Field("Qwen/Qwen3-4B-Instruct-2507", description="Hugging Face id or local folder of a chat model.")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; when set, the local model is not used.")
    api_key: str | None = Field(None, description="Key for base_url (many local servers accept any).")
    max_retries: int = Field(3, ge=0, description="Retries of a part whose answer was unusable or hit a server error.")
    temperature: float = Field(
        0.7, ge=0, le=2, description="Sampling temperature: varied enough to be vivid, low enough to follow the schema."
    )
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass.")
    shots_per_request: int = Field(
        16, ge=1, le=64, description="Most shots asked for in one request; longer sections are written in chunks."
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to connect to base_url; a server that cannot be reached ends all requests at once."
    )
    first_token_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a server may stay silent before its first token (and between tokens); then it counts as down.",
    )
    budget_s: float = Field(
        1800.0, gt=0, description="Seconds for the whole storyboard; what is not written by then is the template's."
    )

    @model_validator(mode="before")
    @classmethod
    def _replaced_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timeout_s" in data:
            raise ValueError(
                "llm.timeout_s was replaced by llm.connect_timeout_s, llm.first_token_timeout_s and llm.budget_s"
            )
        return data


class VideoModelSettings(ModelSettings):
    model: str = Field(
        "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
        description="Registry name, Hugging Face id or local folder; the default renders from text or from keyframes.",
    )
    steps: int | None = Field(None, ge=1, description="Denoising steps; None uses the model's default.")
    guidance: float | None = Field(None, ge=0, description="Classifier-free guidance; None uses the model's default.")
    offload: Literal["none", "model", "sequential"] = Field(
        "none", description="Move idle components to the CPU: model-level or layer by layer (least memory, slowest)."
    )
    vae_tiling: bool = Field(False, description="Decode the video latents in tiles: less memory for large frames.")
    generation_size: str | None = Field(
        None, description="Generate at WIDTHxHEIGHT (multiples of 16); None: the model's size nearest the output's shape."
    )
    cache: Literal["none", "first-block", "taylorseer", "pab"] = Field(
        "none", description="Step-caching accelerator from diffusers: reuse work between denoising steps."
    )
    compile: bool = Field(False, description="torch.compile the transformer blocks (slow first shot, faster after).")
    attention_backend: str | None = Field(None, description="diffusers attention backend, e.g. flash, _native_cudnn.")
    retime: Literal["nearest", "blend"] = Field(
        "nearest", description="From the model's frame rate to the output's: nearest frame (sharp) or blend neighbours."
    )
    extend: Literal["auto", "crossfade"] = Field(
        "auto", description="Shots longer than one generation: image-to-video from the last frame where the model has it, else crossfade."
    )
    vae_float32: bool = Field(
        True, description="Run the VAE in float32 where the pipeline allows it (Wan: the diffusers guidance; truer colours)."
    )
    image_conditioning: Literal["first-frame", "reference"] = Field(
        "first-frame",
        description="Wan VACE: the keyframe is the shot's exact first frame, or a reference image (its look, freer motion).",
    )
    colour_match: Literal["lab", "none"] = Field(
        "lab", description="Match each clip's colours to its scene's first keyframe (Lab mean and spread per frame), or not."
    )
    speed: Literal["full", "distilled"] = Field(
        "full",
        description="distilled: fuse the model's few-step distillation LoRA (render/video_models.py) and sample "
        "with its steps and guidance 1 (no negative pass); full: the model's own sampling.",
    )
    distill_lora: str | None = Field(
        None,
        description="For speed = distilled: a LoRA .safetensors file, or a Hugging Face id (id/file.safetensors) "
        "in place of the model's registry LoRA.",
    )

    @field_validator("generation_size")
    @classmethod
    def _generation_size(cls, value: str | None) -> str | None:
        if value is not None:
            width, height = parse_resolution(value)
            if width % 16 or height % 16:
                raise ValueError(f"{value}: text-to-video models need sides that are multiples of 16")
        return value


class KeyframeSettings(ModelSettings):
    """The ``[keyframes]`` section: one reference image per character, place and prop, and one
    first frame per shot composed from them (see :mod:`music2video.keyframes`)."""

    enabled: Literal["auto", "on", "off"] = Field(
        "auto",
        description="auto: where the renderer animates images (diffusers with an image-conditioned video model); "
        "off: text-to-video only; on: always make them.",
    )
    reference_model: str = Field(
        "qwen-image", description="Text-to-image model for references (and shots that show no one): registry name, id or folder."
    )
    keyframe_model: str = Field(
        "qwen-image-edit-2509", description="Image-editing model that composes keyframes from 1-3 references: name, id or folder."
    )
    speed: Literal["full", "lightning-8", "lightning-4"] = Field(
        "full",
        description="full: each model's own steps and guidance; lightning-8 / lightning-4: lightx2v's few-step "
        "Qwen-Image-Lightning LoRAs (Apache-2.0, downloaded once) fused into the Qwen models, 8 or 4 steps without "
        "guidance (one transformer pass a step); other models keep their own.",
    )
    steps: int | None = Field(None, ge=1, description="Denoising steps; None: each model's default (or the speed LoRA's).")
    guidance: float | None = Field(None, ge=0, description="Guidance scale; None: each model's default (or the speed LoRA's).")
    reference_pixels: int | None = Field(
        None,
        ge=32 * 32,  # the pipeline rounds each side to a multiple of 32
        description="Pixels each reference is encoded at by the edit model (aspect kept); None: the pipeline's "
        "(Qwen-Image-Edit-2509: 1048576, 1024x1024). Fewer: faster keyframes, less detail taken from the references.",
    )
    reference_size: str = Field("1024x1024", description="WIDTHxHEIGHT of reference images (multiples of 16).")
    size: str | None = Field(
        None, description="WIDTHxHEIGHT of keyframes (multiples of 16); None: the video model's generation size."
    )
    offload: Literal["none", "model", "sequential"] = Field(
        "none", description="Move idle components to the CPU: model-level or layer by layer (least memory, slowest)."
    )
    vae_tiling: bool = Field(False, description="Decode images in tiles: less memory for large images.")
    references: dict[str, Path] = Field(
        default_factory=dict, description="Your images by cast or set name (\"the singer\" = \"photo.jpg\"): used as given."
    )

    @field_validator("reference_size", "size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            width, height = parse_resolution(value)
            if width % 16 or height % 16:
                raise ValueError(f"{value}: image models need sides that are multiples of 16")
        return value


class LyricsSettings(ModelSettings):
    """The ``[lyrics]`` section: vocal detection, Whisper transcription, user lyrics."""

    enabled: bool = Field(True, description="Run the lyrics stage at all (instrumentals cost only the vocal detector).")
    user_lyrics: Path | None = Field(None, description="Your lyrics: plain text (aligned to the song) or LRC (times kept).")
    model: str = Field("openai/whisper-large-v3-turbo", description="Whisper: Hugging Face id or local folder.")
    aligner_model: str | None = Field(
        "facebook/wav2vec2-base-960h",
        description=(
            "CTC model that times each word of plain-text lyrics on the voice (clap and lalm pipelines): Hugging Face "
            "id or local folder. The default is English, Apache-2.0; MahmoudAshraf/mms-300m-1130-forced-aligner covers "
            "158 languages but is CC BY-NC (non-commercial). None: align to Whisper's words instead."
        ),
    )
    transcribe: bool = Field(True, description="Use Whisper; off: lyrics only from a user file, timed by the vocals.")
    language: str | None = Field(None, description="Language code (en, de, ja ...); None: Whisper detects it once per song.")
    separation: Literal["auto", "none", "foreground", "demucs"] = Field(
        "auto",
        description=(
            "What the vocal detector, the aligner and Whisper hear: auto (Demucs' vocal stem where demucs is "
            "installed and the pipeline uses models, else the mix), the mix, the REPET foreground (no download), or "
            "Demucs' vocal stem (pip install demucs; better on dense mixes, one more model)."
        ),
    )
    offset: Literal["warn", "auto"] | float = Field(
        "warn",
        description=(
            "LRC times against the detected voice: warn reports a consistent offset, auto shifts the lines by it, "
            "a number of seconds shifts them by that much (negative: earlier)."
        ),
    )
    demucs_model: str = Field("htdemucs", description="Demucs model name (e.g. htdemucs, htdemucs_ft) or 'demucs_unittest'.")
    vocal_gate: bool = Field(
        True, description="Let Whisper hear only where the vocal detector found a voice; off: the whole song."
    )
    vocal_detector: Literal["timbre", "repet"] = Field(
        "timbre",
        description=(
            "Where the voice is: timbre (the foreground's spectral envelope changes as a voice's does; ignores a "
            "lead instrument) or repet (the foreground's share of the voice band, above vocal_threshold)."
        ),
    )
    vocal_threshold: float = Field(
        0.12, gt=0, lt=1, description="repet detector: foreground share of the voice band that counts as singing."
    )
    max_new_tokens: int = Field(224, ge=8, le=440, description="Tokens per 30 s window (Whisper's own limit is 224).")
    temperatures: list[float] = Field(
        default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        description="Decoding temperatures tried in turn while a window fails the thresholds (openai/whisper).",
    )
    no_speech_threshold: float = Field(
        0.6, ge=0, le=1, description="Whisper's no-speech probability above which a window is silent."
    )
    logprob_threshold: float = Field(-1.0, description="Mean token log-probability below which text is unreliable.")
    compression_ratio_threshold: float = Field(2.4, gt=0, description="gzip ratio above which text is a repetition loop.")
    seed: int = Field(0, description="Seed of the sampling at temperatures above 0.")

    @field_validator("aligner_model", mode="before")
    @classmethod
    def _no_aligner(cls, value: object) -> object:
        # "none" on the command line or in a config file turns the aligner off.
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value


class EvaluateSettings(SettingsSection):
    """The sync and quality metrics every run computes on its own video (evaluation.json)."""

    enabled: bool = Field(True, description="Evaluate the finished video and write report.html.")
    motion: Literal["auto", "flow", "difference"] = Field(
        "difference", description="Motion for AV-Align: optical flow (OpenCV, slower) or frame difference."
    )
    sigma_s: float = Field(0.1, gt=0, description="Beat Alignment Score tolerance, seconds.")
    clip_model: str | None = Field(None, description="CLIP model for prompt similarity and consistency; None skips them.")
    clap_model: str | None = Field(None, description="CLAP model for audio-to-scene similarity; None skips it.")
    identity_model: str | None = Field(
        "auto",
        description=(
            "CLIP or DINOv2 model (id or folder) for identity consistency of recurring characters and keyframe "
            "fidelity; auto: facebook/dinov2-small where the run has keyframes; None skips them."
        ),
    )


class RaySettings(SettingsSection):
    """Rendering on Ray (``executor = "ray"``, TOML ``[ray]``): one actor per GPU (or CPU), each
    holding one loaded renderer for many shots. Needs the ``ray`` extra."""

    address: str | None = Field(
        None,
        description="A running Ray cluster ('auto', 'HOST:6379', 'ray://HOST:10001'); None starts one on this machine, "
        "on loopback only. On a cluster, the run folder must be on a file system every node mounts at the same path.",
    )
    workers: int | None = Field(None, ge=1, description="Render actors; None: as many as the cluster's GPUs (or CPUs) hold, at most one per shot.")
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per actor; fractions share a GPU (0.5: two small models on one). None: 1 for the diffusers renderer when the cluster has GPUs, else 0."
    )
    num_cpus: float = Field(1.0, gt=0, description="CPUs per actor.")
    max_restarts: int = Field(3, ge=-1, description="Times Ray restarts a dead actor (it reloads its model); -1: always.")
    max_task_retries: int = Field(2, ge=-1, description="Times Ray retries the shot of an actor that died rendering it; -1: always.")


class Settings(BaseSettings):
    """Everything a run can be told. Field names equal the CLI flag and API keyword names."""

    model_config = SettingsConfigDict(
        env_prefix="MUSIC2VIDEO_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    pipeline: PipelineName = Field("auto", description="Preset of backends: auto picks preview without a GPU.")
    listener: ListenerName | None = Field(None, description="Override the pipeline's listener.")
    writer: WriterName | None = Field(None, description="Override the pipeline's storyboard writer.")
    renderer: RendererName | None = Field(None, description="Override the pipeline's renderer.")

    seed: int = Field(0, description="Seed of the storyboard's per-shot seeds and of every random choice.")
    width: int = Field(640, ge=16, le=7680, description="Output width in pixels (even).")
    height: int = Field(360, ge=16, le=4320, description="Output height in pixels (even).")
    fps: float = Field(24.0, gt=0, le=120, description="Output frame rate.")
    style: str = Field("", max_length=2000, description="Your instruction for the look or story, e.g. 'stop-motion, 1970s'.")

    grid: GridSettings = Field(default_factory=GridSettings)
    shots: ShotSettings = Field(default_factory=ShotSettings)
    clap: ClapSettings = Field(default_factory=ClapSettings)
    lalm: LalmSettings = Field(default_factory=LalmSettings)
    write: WriteSettings = Field(default_factory=WriteSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    keyframes: KeyframeSettings = Field(default_factory=KeyframeSettings)
    video: VideoModelSettings = Field(default_factory=VideoModelSettings)
    lyrics: LyricsSettings = Field(default_factory=LyricsSettings)
    subtitles: Literal["none", "soft", "burned", "karaoke"] = Field(
        "none",
        description=(
            "Lyrics in the video: none, soft (a track players can switch on), burned into the frames, or karaoke "
            "(burned with the current word highlighted, plus a soft track whose cues follow the words)."
        ),
    )
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    executor: Literal["local", "ray"] = Field("local", description="Who renders the shots: local (this process) or ray (actors on a Ray cluster).")
    ray: RaySettings = Field(default_factory=RaySettings)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        # H.264 in yuv420p needs even sides; say so rather than pad silently.
        if value % 2:
            raise ValueError(f"{value} is odd; H.264 video needs an even width and height")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = _config_file_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def backends(self, has_gpu: bool | None = None) -> dict[str, str]:
        """The listener, writer and renderer this run uses, after presets and overrides."""
        pipeline = self.resolved_pipeline(has_gpu)
        chosen = dict(PIPELINES[pipeline])
        for stage in ("listener", "writer", "renderer"):
            override = getattr(self, stage)
            if override is not None:
                chosen[stage] = override
        return chosen

    def resolved_pipeline(self, has_gpu: bool | None = None) -> str:
        if self.pipeline != "auto":
            return self.pipeline
        if has_gpu is None:
            has_gpu = cuda_available()
        return "clap" if has_gpu else "preview"


def _config_file_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise Music2VideoError(f"config file {path} does not exist")
        return path
    default = Path.cwd() / DEFAULT_CONFIG_FILE
    return default if default.is_file() else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config`` (or the default config file), the environment and ``overrides``.

    ``overrides`` use field names; nested sections are dicts (``clap={"model": "..."}``) and
    ``None`` values are ignored, so a CLI can pass every flag through unchanged.
    """
    overrides = {name: value for name, value in overrides.items() if value is not None}
    previous = os.environ.get(CONFIG_ENV_VAR)
    try:
        if config is not None:
            os.environ[CONFIG_ENV_VAR] = str(config)
        return Settings(**overrides)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise SettingsError(_problems(error)) from None
    finally:
        if config is not None:
            if previous is None:
                os.environ.pop(CONFIG_ENV_VAR, None)
            else:
                os.environ[CONFIG_ENV_VAR] = previous


def parse_resolution(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise Music2VideoError(f"resolution {text!r} is not WIDTHxHEIGHT, e.g. 640x360")
    return int(match.group(1)), int(match.group(2))


GPU_DEVICE_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")
"""Linux device files of an NVIDIA driver, WSL's GPU bridge and ROCm: without one, no torch
build can see a GPU."""


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA GPU. Never imports torch if it is absent, nor
    on a Linux machine without any GPU device file or on macOS (no CUDA there): importing torch
    takes 1-10 s on two cores, longer than the whole analysis of a song."""
    if sys.platform == "darwin" or (sys.platform.startswith("linux") and not any(os.path.exists(node) for node in GPU_DEVICE_NODES)):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class SettingsError(Music2VideoError):
    """Settings that do not validate; ``problems`` pairs each field's dotted path with what is wrong."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("invalid settings: " + "; ".join(f"{where}: {what}" for where, what in problems))


def _problems(error: ValueError) -> list[tuple[str, str]]:
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return [("settings", str(error))]
    # pydantic prefixes a validator's own message with "Value error, ": the message says enough.
    return [
        (".".join(str(p) for p in item.get("loc", ())) or "settings", item.get("msg", "").removeprefix("Value error, "))
        for item in errors()
    ]
