"""Every flag of the commands that run the pipeline, each declared once (see the package docstring).

:func:`pipeline_command` gives a command the flags of the stages it runs; :func:`to_keywords`
turns the flags a user gave into keyword arguments named like the Settings fields and
``make_video`` keywords they set.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from music2video.errors import Music2VideoError
from music2video.settings import Settings, SettingsError, parse_resolution
from music2video.stages import STAGES

# Panels of --help, in the order they are shown.
INPUT_OUTPUT = "Input and output"
MUSIC = "Music"
LOOK = "Look"
MODELS = "Models"
SPEED = "Speed"
ADVANCED = "Advanced"
PANELS = (INPUT_OUTPUT, MUSIC, LOOK, MODELS, SPEED, ADVANCED)

_MODEL_SECTIONS = ("clap", "lalm", "llm", "keyframes", "video", "lyrics")  # sections with a device and a dtype


@dataclass(frozen=True)
class Flag:
    """One flag: ``--name`` (dashes for underscores), a value of ``type`` or None when not given."""

    name: str
    type: type
    help: str
    panel: str
    stage: str
    """The first stage that reads the value; commands that run it offer the flag."""
    to: tuple[str, ...] = ()
    """Settings field paths (``"shots.min_shot_s"``) or a ``make_video`` keyword; () means ``(name,)``."""
    parse: Callable[[Any], tuple] | None = None
    """Turns the value into one value per path of ``to`` (``--resolution``: width, height)."""
    metavar: str | None = None
    short: str | None = None
    default_text: str | None = None
    """Shown as the default in --help; None: the Settings default of the first path, if any."""
    partial_help: str | None = None
    """Help for commands that stop before the video is written, where ``help`` would mislead."""

    @property
    def targets(self) -> tuple[str, ...]:
        return self.to or (self.name,)

    @property
    def option_name(self) -> str:
        return f"--{self.name.replace('_', '-')}"

    def parameter(self, until: str) -> inspect.Parameter:
        """The typed parameter a Typer command declares for this flag."""
        names = [self.option_name, *([self.short] if self.short else [])]
        help_text = self.partial_help if self.partial_help and until != "assemble" else self.help
        default = self.default_text if self.default_text is not None else _settings_default(self.targets[0])
        if default:  # rich markup would read an unescaped [default: x] as a style tag
            help_text = f"{help_text} \\[default: {default}]"
        metavar = "" if self.type is bool else self.metavar  # a switch takes no value: no "<bool>"
        option = typer.Option(*names, help=help_text, rich_help_panel=self.panel, metavar=metavar, show_default=False)
        annotation = Annotated[self.type | None, option]
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def _settings_field(path: str) -> FieldInfo | None:
    """The Settings field at a dotted path; None for a make_video keyword."""
    model: type[BaseModel] = Settings
    field = None
    for part in path.split("."):
        if not isinstance(model, type) or not issubclass(model, BaseModel) or part not in model.model_fields:
            return None
        field = model.model_fields[part]
        model = field.annotation
    return field


def _settings_default(path: str) -> str | None:
    """The default of a Settings field as --help shows it; None for fields left unset."""
    field = _settings_field(path)
    value = field.get_default(call_default_factory=True) if field is not None else None
    if value in (None, "") or isinstance(value, BaseModel):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_references(given: list[str]) -> tuple[dict[str, str]]:
    """``["the singer=photo.jpg", ...]`` -> ``({"the singer": "photo.jpg"},)``; a name given twice keeps the last."""
    references: dict[str, str] = {}
    for item in given:
        name, equals, path = item.partition("=")
        if not equals or not name.strip() or not path.strip():
            raise Music2VideoError(f"{item!r} is not NAME=FILE, e.g. \"the singer=photo.jpg\"")
        references[name.strip()] = path.strip()
    return (references,)


def _model_paths(field: str) -> tuple[str, ...]:
    return tuple(f"{section}.{field}" for section in _MODEL_SECTIONS)


FLAGS: tuple[Flag, ...] = (
    # -- input and output
    Flag(
        "output", Path, "Video to write. Its run folder OUTPUT.music2video/ sits beside it.", INPUT_OUTPUT, "decode",
        short="-o", metavar="VIDEO", default_text="./SONG.mp4",
        partial_help="The video this run is for: picks its run folder, OUTPUT.music2video/. Nothing is written there yet.",
    ),
    Flag(
        "workdir", Path, "Run folder for the stage artifacts.", ADVANCED, "decode",
        metavar="FOLDER", default_text="beside the output, OUTPUT.music2video/",
    ),
    Flag(
        "overwrite", bool, "Replace an existing file at the output even if music2video did not make it (or it is the song).",
        INPUT_OUTPUT, "assemble",
    ),
    Flag("config", Path, "TOML config file.", ADVANCED, "decode", metavar="TOML", default_text="./music2video.toml if present"),
    Flag(
        "wait", bool, "When another run is working in the same run folder, wait for it to finish instead of stopping.", ADVANCED, "decode",
        default_text="stop at once, naming the other run",
    ),
    # -- music
    Flag(
        "bpm", float, "Your tempo in beats per minute: a steady grid at it replaces the tracked beats.", MUSIC, "structure",
        to=("grid.bpm",), metavar="BPM", default_text="tracked",
    ),
    Flag(
        "meter", str, "Beats per bar (3 for a waltz, 4 for most songs) or a time signature (2/4, 3/4, 6/8: two dotted-quarter beats).",
        MUSIC, "structure", to=("grid.meter",), metavar="N|N/D", default_text="detected",
    ),
    Flag(
        "first_downbeat", float, "Time of a bar's first beat, seconds: fixes where bars start.", MUSIC, "structure",
        to=("grid.first_downbeat_s",), metavar="SECONDS", default_text="detected",
    ),
    Flag(
        "beats", Path, "Your beats: one time (s) per line, a CSV column of times, or a MIDI file's tempo map (a DAW's export).",
        MUSIC, "structure", to=("grid.beats_file",), metavar="FILE", default_text="tracked",
    ),
    Flag(
        "beat_tracker", str, "hybrid (default, built in: onsets plus BeatNet's beat activation for the beats, level and "
        "phase; weights CC BY 4.0: commercial use with attribution), dsp (built in, onsets only, commercial use allowed), beatnet (built in, BeatNet's weights CC BY 4.0: "
        "commercial use with attribution), madmom (models CC BY-NC-SA: non-commercial only) "
        "or beat_this (MIT; set grid.beat_this_checkpoint in the config).",
        MUSIC, "structure", to=("grid.tracker",), metavar="hybrid|dsp|beatnet|madmom|beat_this",
    ),
    Flag("min_shot", float, "Shortest shot, seconds.", MUSIC, "shots", to=("shots.min_shot_s",), metavar="SECONDS"),
    Flag("max_shot", float, "Longest shot, seconds (the last one also holds through the song's ending).", MUSIC, "shots", to=("shots.max_shot_s",), metavar="SECONDS"),
    Flag("lyrics", Path, "Your lyrics: plain text (aligned to the song) or LRC (times kept).", MUSIC, "lyrics", to=("lyrics.user_lyrics",), metavar="FILE"),
    Flag("language", str, "Language of the lyrics (en, de, ja ...).", MUSIC, "lyrics", to=("lyrics.language",), metavar="CODE", default_text="detected"),
    Flag(
        "lyrics_offset", str, "LRC times against the voice: warn about a consistent offset, auto to shift by it, or SECONDS to shift by.",
        MUSIC, "lyrics", to=("lyrics.offset",), metavar="warn|auto|SECONDS",
    ),
    Flag(
        "vocal_separation", str, "What the detector, aligner and Whisper hear: auto (demucs where installed, in clap/lalm), none (the mix), foreground (REPET) or demucs.", MUSIC, "lyrics",
        to=("lyrics.separation",), metavar="MODE",
    ),
    # -- look
    Flag("style", str, "Your brief for the look or story, e.g. 'stop-motion, 1970s, a lighthouse keeper'.", LOOK, "write", metavar="TEXT"),
    Flag(
        "resolution", str, "Output size.", LOOK, "render", to=("width", "height"), parse=parse_resolution, metavar="WxH",
        default_text=f"{_settings_default('width')}x{_settings_default('height')}",
    ),
    Flag("fps", float, "Output frame rate.", LOOK, "render", metavar="FPS"),
    Flag(
        "subtitles", str, "Lyrics in the video: none, soft (a track players can switch on), burned, or karaoke (burned, the sung word highlighted).",
        LOOK, "assemble", metavar="none|soft|burned|karaoke",
    ),
    Flag("seed", int, "Seed for the storyboard and every random choice.", LOOK, "write", metavar="N"),
    # -- models
    Flag(
        "pipeline", str, "Preset of backends. auto: preview without a GPU, clap with one.", MODELS, "listen",
        metavar="auto|preview|clap|lalm",
    ),
    Flag("listener", str, "Override the pipeline's listener.", MODELS, "listen", metavar="dsp|clap|lalm", default_text="the pipeline's"),
    Flag("writer", str, "Override the pipeline's storyboard writer.", MODELS, "write", metavar="template|llm", default_text="the pipeline's"),
    Flag("renderer", str, "Override the pipeline's renderer.", MODELS, "render", metavar="animatic|diffusers", default_text="the pipeline's"),
    Flag("clap_model", str, "CLAP model: Hugging Face id or local folder.", MODELS, "listen", to=("clap.model",), metavar="MODEL"),
    Flag("lalm_model", str, "Audio-language model: Hugging Face id or local folder.", MODELS, "listen", to=("lalm.model",), metavar="MODEL"),
    Flag("whisper_model", str, "Whisper model for the lyrics: Hugging Face id or local folder.", MODELS, "lyrics", to=("lyrics.model",), metavar="MODEL"),
    Flag(
        "aligner_model", str, "CTC model that times each word of your plain-text lyrics (clap, lalm): Hugging Face id, local folder, or none.",
        MODELS, "lyrics", to=("lyrics.aligner_model",), metavar="MODEL",
    ),
    Flag(
        "llm_model", str, "Chat model for the storyboard: Hugging Face id, local folder, or model name at --llm-base-url.", MODELS, "write",
        to=("llm.model",), metavar="MODEL",
    ),
    Flag(
        "llm_base_url", str, "OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp ...). Key from MUSIC2VIDEO_LLM__API_KEY.", MODELS, "write",
        to=("llm.base_url",), metavar="URL",
    ),
    Flag(
        "keyframes", str, "References of the cast and set, and a first frame per shot that the video model animates: auto "
        "(where the video model takes a picture), on or off (text-to-video only).", MODELS, "keyframes",
        to=("keyframes.enabled",), metavar="auto|on|off",
    ),
    Flag(
        "reference", list[str], "Your image of a character, place or prop, used as given: NAME=FILE, repeatable "
        "(--reference \"the singer=photo.jpg\"). Or put NAME.png in the run folder's references/.", LOOK, "keyframes",
        to=("keyframes.references",), parse=parse_references, metavar="NAME=FILE", default_text="none",
    ),
    Flag(
        "reference_model", str, "Text-to-image model for references: registry name, Hugging Face id or local folder.",
        MODELS, "keyframes", to=("keyframes.reference_model",), metavar="MODEL",
    ),
    Flag(
        "keyframe_model", str, "Image-editing model that composes each keyframe from its references: name, id or folder.",
        MODELS, "keyframes", to=("keyframes.keyframe_model",), metavar="MODEL",
    ),
    Flag("video_model", str, "Video model (text or keyframe to video): registry name, Hugging Face id or local folder.", MODELS, "render", to=("video.model",), metavar="MODEL"),
    Flag(
        "image_conditioning", str, "How Wan VACE takes a shot's keyframe: first-frame (the clip starts on it exactly) "
        "or reference (its look and cast, freer motion).", MODELS, "render", to=("video.image_conditioning",),
        metavar="first-frame|reference",
    ),
    Flag(
        "colour_match", str, "Match each clip's colours to its scene's first keyframe (lab: Lab mean and spread "
        "per frame) or leave them as generated (none).", LOOK, "render", to=("video.colour_match",), metavar="lab|none",
    ),
    # -- speed
    Flag(
        "keyframe_speed", str, "full, or lightning-8 / lightning-4: few-step LoRAs (Apache-2.0) fused into the Qwen image "
        "models, 8 or 4 steps without guidance.", SPEED, "keyframes", to=("keyframes.speed",), metavar="full|lightning-8|lightning-4",
    ),
    Flag("device", str, "Device for every model: auto, cuda, cuda:1, mps or cpu.", SPEED, "listen", to=_model_paths("device"), metavar="DEVICE"),
    Flag(
        "dtype", str, "Precision for every model: auto, float32, float16 or bfloat16.", SPEED, "listen",
        to=_model_paths("dtype"), metavar="DTYPE",
    ),
    Flag(
        "video_speed", str, "distilled: the video model's few-step distillation LoRA, 4-8 steps at guidance 1 "
        "(about 16x less diffusion; a different look); full: its own 50-step sampling.", SPEED, "render",
        to=("video.speed",), metavar="full|distilled",
    ),
    Flag(
        "vae_float32", str, "Decode video in a float32 VAE (truer colours, more memory) or in the model's dtype.",
        ADVANCED, "render", to=("video.vae_float32",), metavar="on|off", default_text="on",
    ),
    Flag("executor", str, "Who renders the shots: local (this process) or ray (one actor per GPU; the ray extra).", SPEED, "render", metavar="local|ray"),
    Flag("ray_address", str, "Ray cluster to render on (HOST:6379, ray://HOST:10001, auto).", SPEED, "render", to=("ray.address",), metavar="ADDRESS", default_text="a local one on this machine"),
    Flag("ray_workers", int, "Render actors on Ray.", SPEED, "render", to=("ray.workers",), metavar="N", default_text="one per GPU, or per CPU without GPUs"),
    Flag("gpus_per_worker", float, "GPUs per Ray actor; a fraction shares a GPU between small models.", SPEED, "render", to=("ray.num_gpus",), metavar="GPUS", default_text="1 for diffusers on GPUs, else 0"),
)  # fmt: skip


def pipeline_command(until: str, without: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command that runs the stages up to ``until`` the flags of those stages (less the
    flags named in ``without``).

    The command declares its own parameters (the song, CLI-only flags such as ``--dry-run``)
    followed by ``**flags``, which receives every flag of :data:`FLAGS` it offers, by name.
    """
    last = STAGES.index(until)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
        arguments = [p for p in own if p.default is p.empty]  # the song
        options = [p.replace(kind=p.KEYWORD_ONLY) for p in own if p.default is not p.empty]
        offered_flags = (flag for flag in FLAGS if STAGES.index(flag.stage) <= last and flag.name not in without)
        flags = sorted(offered_flags, key=lambda flag: PANELS.index(flag.panel))
        offered = [flag.parameter(until) for flag in flags]  # --help shows the panels in the order of PANELS
        command.__signature__ = inspect.Signature([*arguments, *offered, *options])  # type: ignore[attr-defined]
        return command

    return decorate


def to_keywords(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags given (not None) as keyword arguments: Settings fields, nested by section, and
    ``make_video`` keywords, each under its own name."""
    by_name = {flag.name: flag for flag in FLAGS}
    keywords: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None:
            continue
        flag = by_name[name]
        try:
            values = flag.parse(value) if flag.parse else (value,) * len(flag.targets)
        except Music2VideoError as error:
            raise typer.BadParameter(str(error), param_hint=flag.option_name) from None
        for path, part in zip(flag.targets, values, strict=True):
            *sections, field = path.split(".")
            target = keywords
            for section in sections:
                target = target.setdefault(section, {})
            target[field] = part
    return keywords


def split_settings(keywords: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Settings fields, the other keywords), so that settings are loaded once, before the run."""
    settings = {name: value for name, value in keywords.items() if name in Settings.model_fields}
    return settings, {name: value for name, value in keywords.items() if name not in settings}


def flag_error(error: SettingsError, flags: dict[str, Any]) -> Exception:
    """A usage error naming the flag when every invalid setting came from a flag the user gave;
    otherwise ``error`` itself (the config file or the environment is at fault)."""
    given = {path: flag for flag in FLAGS if flags.get(flag.name) is not None for path in flag.targets}

    def culprit(where: str) -> Flag | None:  # a whole section is at fault when fields disagree
        return given.get(where) or next((flag for path, flag in given.items() if path.startswith(where + ".")), None)

    blamed = [(culprit(where), what) for where, what in error.problems]
    if not blamed or any(flag is None for flag, _ in blamed):
        return error
    flag, what = blamed[0]
    return typer.BadParameter(f"{flags[flag.name]!r}: {what}{_did_you_mean(flag, flags[flag.name])}", param_hint=flag.option_name)


def _did_you_mean(flag: Flag, value: Any) -> str:
    """"; did you mean X?" when ``value`` is a near miss of one of the flag's fixed choices."""
    field = _settings_field(flag.targets[0])
    if field is None or get_origin(field.annotation) is not Literal or not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value.lower(), [str(choice) for choice in get_args(field.annotation)], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
