"""The ``diffusers`` renderer: each storyboard shot becomes a video generation, from text or from its keyframe.

How one shot is made (see :meth:`DiffusersRenderer.render_shot`):

1. **Plan.** The shot's clip lasts ``frame_count / fps`` seconds of output. At the model's
   native rate that needs ``ceil(seconds x native_fps) + 1`` frames, rounded *up* to the
   model's frame rule (Wan 4k+1, LTX 8k+1, CogVideoX-2B exactly 49). Only what the shot needs
   is generated, never a fixed maximum.
2. **Generate.** The storyboard prompt already carries the style and characters; the negative
   prompt is the shot's own or the model's default; the seed is ``shot.seed``. Where the shot has
   a keyframe and the model takes pictures (``VideoModel.i2v_pipeline``: Wan VACE, Wan I2V,
   Wan 2.2 TI2V, LTX), the first generation starts from it, scaled to cover the generation size
   and centre-cropped as the clip will be; where the next shot ``continues`` this one and the
   model takes a last frame, the last generation ends on the next shot's keyframe. A shot longer
   than one generation (``max_frames``) is *extended*:

   * with the model's image-to-video pipeline, started from the previous segment's last frame,
     when the registry entry has one and it loads (the Wan 2.2 TI2V and LTX entries, which
     share the text-to-video pipeline's loaded modules, so nothing more is downloaded or
     held in memory), or
   * otherwise with further text-to-video segments of the same prompt and seeds ``seed+1``,
     ``seed+2`` ... that crossfade over :data:`CROSSFADE_SECONDS`. Nothing is ever looped.

3. **Retime** to exactly ``frame_count`` output frames at the output rate. Output frame ``i``
   (time ``i / fps``) shows the source frame nearest to ``i / fps x native_fps``
   (``retime="nearest"``, the default: every output frame is a real, sharp generated frame; at
   16 -> 24 fps this repeats every other source frame, a cadence viewers know from film
   transfers). ``retime="blend"`` mixes the two neighbouring source frames instead: smoother
   motion, but fast movement shows as a double image.
4. **Resize.** Generation happens at the model's resolution bucket nearest the output's
   aspect ratio (a model makes its best pictures at the sizes it was trained on); each frame
   is then scaled to cover the output size and centre-cropped.
5. **Colour.** Before 3, a clip with a colour reference (its scene's first keyframe) is matched
   to it (:mod:`music2video.render.colour`, ``video.colour_match``); the drift before and after
   goes to ``clips/<shot>-<hash>.colour.json`` and on to clips.json and the report.
6. **Write** with :class:`~music2video.videofile.ClipWriter`.

Steps 3-6 run beside the next shot's generation, so that the GPU waits for none of them:

* on a CUDA device the pipeline hands its frames over as a tensor on the GPU, and colour, retime
  and scale run there (milliseconds); only the finished uint8 frames are copied to the CPU, and
  a background thread encodes them (x264 in PyAV, which lets go of the GIL while it encodes);
* on the CPU all of 3-6 run in the background thread, on numpy arrays.

The background thread holds one clip at most (:data:`MAX_PENDING_WRITES`): before the next clip
is handed over, the one before must be written, so memory stays at two shots' frames and a clip
is never far behind its generation. A clip that fails to write fails its shot alone, with the
same one-line reason as a failure in the generation (:func:`music2video.render.failure_reason`),
reported when the driver next hears from the renderer; a full disk stops the run. Clips are
written atomically: a run stopped or killed keeps every finished clip, and the clip being
written when it is stopped is finished first (killed: lost, and made again by the next run).

The VAE runs in float32 where the pipeline allows it (``video.vae_float32``, the diffusers
guidance for Wan: a bfloat16 VAE bands and shifts colours); the transformer keeps ``video.dtype``.

Out of GPU memory, a shot is retried with more offloading (none -> model -> sequential; the
level then stays for the following shots); if even sequential offload fails, the shot raises
a :class:`Music2VideoError`, which the driver turns into a placeholder for that shot alone.

Shots are rendered one at a time: batching shots of equal frame count would save little on
one GPU (the transformer is already busy at batch 1 at 480p) and would multiply peak memory.

torch and diffusers are imported only when a renderer is entered.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from music2video.artifacts import Analysis, Storyboard, StoryboardShot
from music2video.errors import Music2VideoError
from music2video.model_source import load_error
from music2video.optional import require
from music2video.render import colour
from music2video.render.clip_writes import ClipWrites
from music2video.render.conditioning import ShotImages
from music2video.render.video_models import VIDEO_MODELS, DistillLora, VideoModel, resolve_video_model
from music2video.settings import VideoModelSettings
from music2video.videofile import ClipWriter

if TYPE_CHECKING:
    import torch

    Frames = np.ndarray | torch.Tensor  # a clip's frames: an array on the CPU, or a tensor on the model's device

log = logging.getLogger(__name__)

# Bump when a change here changes the pixels of a clip made from the same settings, so that
# cached clips are made again.
RENDERER_VERSION = 2  # 2: float32 VAE, keyframes, colour matching

OffloadLevel = Literal["none", "model", "sequential"]
OFFLOAD_LEVELS: tuple[OffloadLevel, ...] = ("none", "model", "sequential")

RetimeMode = Literal["nearest", "blend"]
ExtendMode = Literal["auto", "crossfade"]

# Step caches that diffusers 0.42 ships and that run with the Wan, LTX and CogVideoX
# transformers (checked on tiny Wan models; FasterCache is left out: it fails with Wan's
# separate conditional and unconditional passes).
CACHE_METHODS = ("first-block", "taylorseer", "pab")
# Clips written in the background while the next shot generates; more would only hold memory
# (one waiting in line: at most two shots' frames are held).
MAX_PENDING_WRITES = 1
# First-block cache: skip the remaining blocks while the first block's residual changes by
# less than this (relative mean absolute difference). diffusers' default; higher is faster.
FIRST_BLOCK_CACHE_THRESHOLD = 0.05

# Segments made without image-to-video crossfade over this long, seconds (at least 2 frames).
CROSSFADE_SECONDS = 0.25
# Steps for a distillation LoRA given in video.distill_lora for a model whose entry names none
# (published few-step Wan LoRAs are used at 4-8 steps).
DISTILLED_STEPS = 6
# Frames retimed and scaled at once: bounds the extra float32 copies to ~100 MB at 720p.
RESIZE_CHUNK_FRAMES = 16
# What VACE generates where no picture is given: mid grey, mask white (the diffusers example).
VACE_GREY = (128, 128, 128)


# --------------------------------------------------------------------------------------------
# Planning and retiming: pure functions, no torch.


@dataclass(frozen=True)
class GenerationPlan:
    """How one shot is generated.

    ``segments`` are the frame counts of consecutive generations; consecutive segments share
    ``overlap`` frames (1 for image-to-video, whose first frame repeats the previous last frame;
    the crossfade length otherwise). ``needed`` is the number of native frames the shot needs.
    """

    needed: int
    segments: tuple[int, ...]
    overlap: int
    method: Literal["single", "i2v", "crossfade"]

    @property
    def total_frames(self) -> int:
        """Distinct frames after joining the segments (>= ``needed``)."""
        return sum(self.segments) - self.overlap * (len(self.segments) - 1)

    @property
    def generated_frames(self) -> int:
        """Frames the model generates, overlaps included (what the time goes into)."""
        return sum(self.segments)


def generation_size(model: VideoModel, settings: VideoModelSettings, width: int, height: int) -> tuple[int, int]:
    """(width, height) the model generates at: the user's ``generation_size``, else the bucket nearest the output's shape."""
    if settings.generation_size:
        from music2video.settings import parse_resolution

        return parse_resolution(settings.generation_size)
    return model.pick_bucket(width, height)


def sampling(entry: VideoModel, settings: VideoModelSettings) -> tuple[int, float, DistillLora | None]:
    """(steps, guidance, distillation LoRA or None) a run samples with.

    ``speed = "distilled"``: the LoRA's few steps at its guidance (1: no negative-prompt pass),
    unless ``steps`` or ``guidance`` are set by hand; else the model's defaults.
    """
    distill = distill_lora(entry, settings) if settings.speed == "distilled" else None
    steps = settings.steps or (distill.steps if distill else entry.default_steps)
    if settings.guidance is not None:
        return steps, settings.guidance, distill
    return steps, distill.guidance if distill else entry.default_guidance, distill


def distill_lora(entry: VideoModel, settings: VideoModelSettings) -> DistillLora:
    """The step-distillation LoRA for ``speed = "distilled"``: ``video.distill_lora`` or the registry's."""
    if settings.distill_lora:
        registry = entry.distill_lora
        return DistillLora(source=settings.distill_lora, steps=registry.steps if registry else DISTILLED_STEPS)
    if entry.distill_lora is None:
        with_lora = ", ".join(name for name, model in VIDEO_MODELS.items() if model.distill_lora)
        raise Music2VideoError(
            f"{entry.name} has no step-distillation LoRA for video.speed = distilled; use {with_lora}, "
            "or name a LoRA file or Hugging Face id in video.distill_lora"
        )
    return entry.distill_lora


def native_frames_needed(frame_count: int, fps: float, native_fps: float) -> int:
    """Frames at ``native_fps`` that cover ``frame_count`` output frames at ``fps``, both ends included."""
    seconds = frame_count / fps
    # The tiny epsilon keeps 2.0000000001 from becoming 3 after floating-point division.
    return math.ceil(seconds * native_fps - 1e-9) + 1


def crossfade_frames(model: VideoModel) -> int:
    """Frames two crossfaded segments share: :data:`CROSSFADE_SECONDS` at the native rate, >= 2."""
    overlap = max(2, round(CROSSFADE_SECONDS * model.native_fps))
    # A segment must add at least one new frame.
    return min(overlap, model.max_frames - 1)


def plan_generation(model: VideoModel, needed: int, can_extend_with_i2v: bool) -> GenerationPlan:
    """Split ``needed`` native frames into generations that follow the model's frame rule.

    One generation when it fits (``round_frames(needed)``); otherwise full-length segments
    and a last one rounded up to what remains, joined by image-to-video extension when
    ``can_extend_with_i2v`` and by crossfades otherwise.
    """
    first = model.round_frames(needed)
    if needed <= model.max_frames:
        return GenerationPlan(needed, (first,), 0, "single")
    method: Literal["i2v", "crossfade"] = "i2v" if can_extend_with_i2v else "crossfade"
    overlap = 1 if method == "i2v" else crossfade_frames(model)
    segments = [model.max_frames]
    produced = model.max_frames
    while produced < needed:
        length = model.round_frames(needed - produced + overlap)
        segments.append(length)
        produced += length - overlap
    return GenerationPlan(needed, tuple(segments), overlap, method)


def join_segments(segments: list[Frames], overlap: int) -> Frames:
    """Concatenate (frames, H, W, 3) float arrays (or tensors); over ``overlap`` shared frames, fade linearly to the next."""
    on_device = colour.is_tensor(segments[0])
    if on_device:
        import torch

        concatenate = torch.cat
    else:
        concatenate = np.concatenate
    joined = segments[0]
    for segment in segments[1:]:
        if overlap:
            # Weights of the incoming segment: 1/(n+1) ... n/(n+1), never a hard 0 or 1.
            weights = (np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1))[:, None, None, None]
            if on_device:
                weights = torch.from_numpy(weights).to(segment.device)
            mixed = joined[-overlap:] * (1 - weights) + segment[:overlap] * weights
            joined = concatenate([joined[:-overlap], mixed, segment[overlap:]])
        else:
            joined = concatenate([joined, segment])
    return joined


def retime_plan(
    frame_count: int, fps: float, native_fps: float, source_frames: int, mode: RetimeMode = "nearest"
) -> list[tuple[int, int, float]]:
    """For each output frame: (source frame a, source frame b, weight of b).

    Output frame ``i`` sits at time ``i / fps``, i.e. at source position ``i / fps x native_fps``.
    ``nearest`` picks the nearest source frame (weight 0); ``blend`` mixes the two neighbours.
    Positions past the last source frame hold it.
    """
    last = source_frames - 1
    plan = []
    for index in range(frame_count):
        position = index * native_fps / fps
        if mode == "nearest":
            nearest = min(math.floor(position + 0.5 + 1e-9), last)
            plan.append((nearest, nearest, 0.0))
        else:
            lower = min(math.floor(position + 1e-9), last)
            weight = position - lower if lower < last else 0.0
            plan.append((lower, min(lower + 1, last), float(weight)))
    return plan


def retime_frames(frames: Frames, plan: list[tuple[int, int, float]]) -> Frames:
    """Apply :func:`retime_plan` to (frames, H, W, 3) float frames (a numpy array, or a float32 tensor on its device)."""
    shape = (len(plan), *frames.shape[1:])
    out = frames.new_empty(shape) if colour.is_tensor(frames) else np.empty(shape, dtype=np.float32)
    for index, (a, b, weight) in enumerate(plan):
        out[index] = frames[a] if weight == 0.0 else frames[a] * (1 - weight) + frames[b] * weight
    return out


def cover_and_crop(frames: Frames, width: int, height: int) -> Frames:
    """Scale (frames, H, W, 3) float [0, 1] frames to cover ``width`` x ``height``, centre-crop, return uint8.

    Bilinear with antialiasing (torch), in chunks of :data:`RESIZE_CHUNK_FRAMES` frames. A tensor is
    scaled on its device and comes back as a uint8 tensor there; an array as a uint8 array.
    """
    import torch
    import torch.nn.functional as F

    source_height, source_width = frames.shape[1:3]
    scale = max(width / source_width, height / source_height)
    scaled_width = max(width, round(source_width * scale))
    scaled_height = max(height, round(source_height * scale))
    left = (scaled_width - width) // 2
    top = (scaled_height - height) // 2
    on_device = colour.is_tensor(frames)
    if on_device:
        out_t = torch.empty((len(frames), height, width, 3), dtype=torch.uint8, device=frames.device)
    else:
        out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
        out_t = torch.from_numpy(out)
    same_size = (scaled_height, scaled_width) == (source_height, source_width)
    for start in range(0, len(frames), RESIZE_CHUNK_FRAMES):
        part = frames[start : start + RESIZE_CHUNK_FRAMES]
        chunk = part if on_device else torch.from_numpy(np.ascontiguousarray(part))
        if same_size:  # the model made the output size: crop and quantise in place, half the time of the path below
            chunk = chunk[:, top : top + height, left : left + width].float().clamp(0, 1).mul_(255).round_()
            out_t[start : start + len(chunk)] = chunk.to(torch.uint8)
            continue
        chunk = chunk.permute(0, 3, 1, 2).float()
        chunk = F.interpolate(
            chunk, size=(scaled_height, scaled_width), mode="bilinear", antialias=True, align_corners=False
        )
        chunk = chunk[:, :, top : top + height, left : left + width]
        chunk = (chunk.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        out_t[start : start + len(chunk)] = chunk
    return out_t if on_device else out


# --------------------------------------------------------------------------------------------
# The renderer


class DiffusersRenderer:
    """Render shots with a diffusers text-to-video pipeline (Wan, LTX-Video, CogVideoX ...).

    Args:
        settings: the ``[video]`` section, read here and nowhere else: model id or folder,
            device, dtype, steps, guidance, offload, VAE tiling, generation size, and
            ``cache`` (a diffusers step cache, one of :data:`CACHE_METHODS`, or ``none``;
            faster, slightly different pixels), ``compile`` (``torch.compile`` the
            transformer's repeated blocks: the first shot pays the compile time, later shots
            run faster), ``attention_backend`` (``flash``, ``_native_cudnn``, ``sage`` ...;
            None keeps PyTorch's scaled-dot-product attention), ``retime`` (``nearest`` or
            ``blend``; see the module docstring) and ``extend`` (``auto`` extends long shots
            with image-to-video when the model has it, else crossfades; ``crossfade`` always
            crossfades). The settings model has validated them.
        width, height: output size in pixels (each clip is scaled and cropped to it).
        fps: output frame rate.
        cache_threshold: first-block cache threshold (default :data:`FIRST_BLOCK_CACHE_THRESHOLD`);
            a library knob, not a setting.
        video_model: a registry entry to use instead of resolving ``settings.model`` (tests and
            library users with their own entries).
        write_in_background: write each clip in a background thread while the next shot
            generates (the default); False writes it before ``render_shot`` returns (a library
            knob for benchmarks; the clip's bytes are the same either way).

    Use as a context manager: the pipeline loads on enter and is freed on exit.
    """

    name = "diffusers"

    def __init__(
        self,
        settings: VideoModelSettings,
        width: int,
        height: int,
        fps: float,
        *,
        cache_threshold: float | None = None,
        video_model: VideoModel | None = None,
        write_in_background: bool = True,
    ):
        self.settings = settings
        self.entry = video_model or resolve_video_model(settings.model)
        self.model: str | None = self.entry.hf_id
        self.width, self.height, self.fps = width, height, fps
        self.cache: str | None = None if settings.cache == "none" else settings.cache
        self.cache_threshold = cache_threshold
        self.compile, self.attention_backend = settings.compile, settings.attention_backend
        self.retime: RetimeMode = settings.retime
        self.extend: ExtendMode = settings.extend
        self.takes_images = self.entry.takes_images
        self.takes_last_frame = self.entry.takes_images and self.entry.last_frame
        self.needs_images = not self.entry.text_to_video
        self.steps, self.guidance, self.distill = sampling(self.entry, settings)
        if self.distill and self.cache:
            log.warning(
                "step cache %s with %d distilled steps: caches skip steps of long schedules; expect little gain",
                self.cache,
                self.steps,
            )
        self.generation_size = generation_size(self.entry, settings, width, height)
        self.offload: OffloadLevel = settings.offload

        self._pipe: Any = None
        self._i2v: Any = None
        self._i2v_unavailable = False
        self._running: Any = None  # the pipeline being called (the PAB cache asks it for the timestep)
        self._placed: tuple[int, str] | None = None  # (id of pipeline, offload level) last applied
        self._device: torch.device | None = None
        self._dtype: torch.dtype | None = None
        self.write_in_background = write_in_background
        # Colour, retime and scale on the model's device, with the frames as a tensor there (CUDA).
        self._frames_on_device = False
        self._compiled = False
        self._writes = ClipWrites(max_pending=MAX_PENDING_WRITES)

    # -- ShotRenderer ------------------------------------------------------------------------

    def settings_fingerprint(self) -> object:
        """What changes the pixels: model and its rules, sampling, sizes, retiming, step cache.

        Device and offloading are left out: they change speed and memory, not the picture.
        """
        entry = self.entry
        fingerprint = {
            "renderer": self.name,
            "version": RENDERER_VERSION,
            "model": entry.name,
            "source": entry.hf_id,
            "frame_rule": [entry.frame_step, entry.min_frames, entry.max_frames],
            "native_fps": entry.native_fps,
            "generation_size": list(self.generation_size),
            "steps": self.steps,
            "guidance": self.guidance,
            "dtype": self.settings.dtype,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "retime": self.retime,
            "extend": self.extend,
            "cache": self.cache,
            "cache_threshold": self.cache_threshold,
            "vae_float32": self._vae_float32(),
            "image_conditioning": self.settings.image_conditioning if self.takes_images else None,
            "colour_match": self.settings.colour_match if self.takes_images else None,
        }
        if self.distill:  # only then: clips made at full speed keep their hashes
            fingerprint["distill_lora"] = self.distill.source
        return fingerprint

    def _fuse_distill_lora(self, pipe: Any) -> None:
        """Load the distillation LoRA into the transformer, fuse it into the weights and drop the
        adapter layers (diffusers' documented fuse_lora + unload_lora_weights), so step caches,
        torch.compile and the image-to-video pipeline that shares the transformer see plain weights."""
        assert self.distill is not None
        source = self.distill.source
        arguments: dict[str, Any] = {}
        local = Path(source).expanduser()
        if local.is_file():
            source = str(local)
        elif source.endswith(".safetensors") and source.count("/") >= 2:  # owner/name/path/in/repo.safetensors
            owner, name, weight_name = source.split("/", 2)
            source, arguments["weight_name"] = f"{owner}/{name}", weight_name
        try:
            pipe.load_lora_weights(source, adapter_name="distill", **arguments)
            pipe.fuse_lora(lora_scale=1.0)
            pipe.unload_lora_weights()
        except Exception as error:  # hub, file and key-layout errors all mean "cannot use this LoRA"
            raise Music2VideoError(
                f"cannot load the step-distillation LoRA {self.distill.source} into {self.entry.name} "
                f"({_first_line(error)}); set video.distill_lora to a Wan LoRA file, or video.speed = full"
            ) from None
        log.info(
            "fused step-distillation LoRA %s: %d steps at guidance %g", self.distill.source, self.steps, self.guidance
        )

    def _vae_float32(self) -> bool:
        return self.settings.vae_float32 and self.entry.vae_float32

    def _component_dtypes(self) -> Any:
        """``dtype`` for ``from_pretrained``: the VAE in float32 where it applies (loaded so, not cast
        after), and Wan I2V's CLIP image encoder with it, as diffusers' Wan examples load them."""
        import torch

        if self._vae_float32() and self._dtype != torch.float32:
            return {"vae": torch.float32, "image_encoder": torch.float32, "default": self._dtype}
        return self._dtype

    def __enter__(self) -> DiffusersRenderer:
        require("torch", "diffusers", extra="video", purpose="The diffusers renderer")
        if self.distill is not None:  # before the model loads: diffusers loads LoRAs through peft
            require("peft", extra="video", purpose="video.speed = distilled")
        import diffusers
        from music2video.torch_device import resolve_device, resolve_dtype

        self._writes.open()
        self._device = resolve_device(self.settings.device)
        self._dtype = resolve_dtype(self.settings.dtype, self._device)
        self._frames_on_device = self._device.type == "cuda"
        entry = self.entry
        started = time.perf_counter()
        pipeline_class = getattr(diffusers, entry.pipeline, None) or diffusers.DiffusionPipeline
        try:
            self._pipe = pipeline_class.from_pretrained(entry.hf_id, dtype=self._component_dtypes())
        except Exception as error:  # hub, file, config and import errors all mean "cannot load"
            raise load_error(entry.hf_id, "video", "--video-model", error) from None
        self._pipe.set_progress_bar_config(disable=True)
        if self.distill is not None:
            self._fuse_distill_lora(self._pipe)
        self._configure(self._pipe)
        if self.compile:
            self._compile_transformer()
        log.info(
            "loaded %s (%s) on %s in %s in %.1f s; offload %s",
            entry.name,
            entry.hf_id,
            self._device,
            str(self._dtype).removeprefix("torch."),
            time.perf_counter() - started,
            self.offload,
        )
        gen_width, gen_height = self.generation_size
        log.info(
            "%s generates at %dx%d (its size nearest the output's aspect ratio) at %g fps; "
            "clips are scaled and centre-cropped to %dx%d and retimed to %g fps (%s)",
            entry.name,
            gen_width,
            gen_height,
            entry.native_fps,
            self.width,
            self.height,
            self.fps,
            self.retime,
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        from music2video.torch_device import free_memory

        try:
            # Interrupted: let the clip in flight finish, keep nothing else waiting.
            self._writes.close(wait_for_pending=exc_type is not None)
        finally:
            self._pipe = self._i2v = self._running = None
            self._placed = None
            free_memory()

    def finish(self) -> dict[str, str]:
        """Wait for the clips still being written; return ``{shot id: why}`` for any that failed.

        Called by the render driver after the last shot, because writing a clip (retime, resize,
        encode) runs in a background thread while the GPU generates the next shot.
        """
        return self._writes.failures()

    def ended_writes(self, wait: bool = False) -> dict[str, str | None]:
        """``{shot id: None when its clip is on disk, else why writing it failed}`` for each shot
        whose ``render_shot`` returned and whose write has ended since the last call (this or
        :meth:`finish`); ``wait``: wait for every write first. A Ray worker hands these to the
        driver, which counts a shot as done only then (:class:`~music2video.render.executors.RenderWorker`).
        """
        return self._writes.ended(wait)

    def render_shot(
        self,
        shot: StoryboardShot,
        storyboard: Storyboard,
        analysis: Analysis,
        frame_count: int,
        output: Path,
        images: ShotImages | None = None,
    ) -> None:
        """Generate ``shot`` and write exactly ``frame_count`` frames at the output size and rate.

        ``images``: the shot's keyframe, last frame and colour reference (render driver).
        """
        if self._pipe is None:
            raise RuntimeError("DiffusersRenderer.render_shot called outside its 'with' block")
        entry = self.entry

        # 1. Plan the generations the shot needs at the native frame rate.
        images = images or ShotImages()
        if images.first is None and self.needs_images:
            raise Music2VideoError(f"{shot.id} has no keyframe, and {entry.name} makes video from a picture only")
        needed = native_frames_needed(frame_count, self.fps, entry.native_fps)
        # A picture-only model always extends from the last frame: it has no text-only segment to crossfade.
        can_extend = needed > entry.max_frames and (
            self.needs_images or (self.extend != "crossfade" and self._image_to_video() is not None)
        )
        plan = plan_generation(entry, needed, can_extend)
        if plan.method != "single":
            log.info(
                "%s needs %d frames at %g fps, more than one generation (%d): %s in %d segments",
                shot.id,
                needed,
                entry.native_fps,
                entry.max_frames,
                "image-to-video extension" if plan.method == "i2v" else "crossfaded generations",
                len(plan.segments),
            )

        # 2. Generate, with more offloading after running out of GPU memory.
        started = time.perf_counter()
        frames = self._generate_with_memory_fallback(shot, plan, images)

        log.info(
            "%s: %d frames generated (%s) in %.1f s",
            shot.id,
            plan.generated_frames,
            "+".join(map(str, plan.segments)),
            time.perf_counter() - started,
        )

        # 3-6. Colour, retime, scale and write, beside the next shot's generation (module docstring).
        reference = images.colour_reference
        if colour.is_tensor(frames):  # on the GPU: only the finished uint8 frames go to the CPU
            write, arguments = self._encode_clip, (self._finish_on_device(frames, frame_count, output, reference), output)
        else:
            write, arguments = self._write_clip, (frames, frame_count, output, reference)
        del frames  # the writer holds the clip from here
        if self.write_in_background:
            self._writes.submit(shot.id, write, *arguments)
        else:
            write(*arguments)
            self._writes.written(shot.id)

    def _finished_chunks(self, frames: Frames, frame_count: int, output: Path, reference: Path | None) -> Iterator[Frames]:
        """Steps 3-5 on the frames' device: the colour match (5, done now, in place: the source
        frames are what it fits), then retime (3) and scale and crop (4) lazily, a chunk of uint8
        frames at a time, so that only a few retimed full-size frames exist at once."""
        if reference is not None and self.settings.colour_match != "none":
            self._match_colour(frames, reference, output)
        timing = retime_plan(frame_count, self.fps, self.entry.native_fps, len(frames), self.retime)
        return (
            cover_and_crop(retime_frames(frames, timing[start : start + RESIZE_CHUNK_FRAMES]), self.width, self.height)
            for start in range(0, frame_count, RESIZE_CHUNK_FRAMES)
        )

    def _finish_on_device(self, frames: torch.Tensor, frame_count: int, output: Path, reference: Path | None) -> np.ndarray:
        """Steps 3-5 on the frames' device (colour, retime, scale): the clip's uint8 frames, on the CPU."""
        import torch

        return torch.cat(list(self._finished_chunks(frames, frame_count, output, reference))).cpu().numpy()

    def _encode_clip(self, pixels: Iterable[np.ndarray], output: Path) -> None:
        """Step 6 alone: (height, width, 3) uint8 frames to ``output``."""
        with ClipWriter(output, self.width, self.height, self.fps) as writer:
            for frame in pixels:
                writer.write(frame)

    def _write_clip(self, frames: np.ndarray, frame_count: int, output: Path, reference: Path | None = None) -> None:
        """Steps 3-6 on the CPU, in the background writer."""
        chunks = self._finished_chunks(frames, frame_count, output, reference)
        self._encode_clip(itertools.chain.from_iterable(chunks), output)

    def _match_colour(self, frames: Frames, reference: Path, output: Path) -> None:
        """Match ``frames`` in place to ``reference``'s Lab colours; record the drift beside ``output``."""
        from music2video.artifacts import ClipColour
        from music2video.render import colour_sidecar
        from music2video.runfolder import write_json_atomic

        picture = np.asarray(_load_picture(reference), dtype=np.float32) / 255.0
        before = colour.colour_drift(frames, picture)
        transform = colour.fit_transform(frames, picture, self.entry.native_fps)
        for start in range(0, len(frames), RESIZE_CHUNK_FRAMES):
            frames[start : start + RESIZE_CHUNK_FRAMES] = transform.apply(frames[start : start + RESIZE_CHUNK_FRAMES], start)
        after = colour.colour_drift(frames, picture)
        write_json_atomic(
            colour_sidecar(output),
            ClipColour(method=colour.METHOD, reference=str(reference), drift_before=round(before, 3), drift_after=round(after, 3)),
        )

    # -- generation --------------------------------------------------------------------------

    def _generate_with_memory_fallback(self, shot: StoryboardShot, plan: GenerationPlan, images: ShotImages) -> Frames:
        while True:
            out_of_memory = False
            try:
                return self._generate_shot(shot, plan, images)
            except Exception as error:
                if self._compiled and is_compile_error(error):
                    # No working compiler (no triton, an unsupported op): run uncompiled instead
                    # of failing every shot.
                    log.warning("torch.compile failed (%s); rendering without it", _first_line(error))
                    self._uncompile_transformer()
                    continue
                if not is_out_of_memory(error):
                    raise
                out_of_memory = True
            # Outside the except block, so the traceback's tensors are gone before we free.
            if out_of_memory:
                from music2video.torch_device import free_memory

                free_memory()
                more = _next_offload(self.offload)
                width, height = self.generation_size
                if more is None:
                    raise Music2VideoError(
                        f"{shot.id}: out of GPU memory even with sequential offload at {width}x{height} "
                        f"({plan.generated_frames} frames); try shorter shots (shots.max_shot_s), "
                        f"video.vae_tiling, or a smaller --video-model such as wan2.1-1.3b"
                    )
                log.warning(
                    "%s: out of GPU memory with offload %s; retrying with offload %s", shot.id, self.offload, more
                )
                self.offload = more

    def _generate_shot(self, shot: StoryboardShot, plan: GenerationPlan, images: ShotImages | None = None) -> Frames:
        """All segments of one shot, joined: (frames, H, W, 3) float32 in [0, 1] at the generation size.

        The first segment starts from the keyframe, an extension from the previous segment's last
        frame; the last segment ends on ``images.last`` where there is one.
        """
        images = images or ShotImages()
        prompt = shot.prompt
        negative = shot.negative_prompt or self.entry.negative_prompt
        width, height = self.generation_size
        segments: list[Frames] = []
        for index, length in enumerate(plan.segments):
            first = last = None
            if index == 0 and images.first is not None:
                first = _fit_picture(images.first, width, height)
            elif index and plan.method == "i2v":
                first = _to_pil(segments[-1][-1])
            if index == len(plan.segments) - 1 and images.last is not None and self.takes_last_frame:
                last = _fit_picture(images.last, width, height)
            if first is None and last is None and self.entry.text_to_video:
                # Crossfaded segments differ by seed, so no segment repeats another.
                segment = self._call(self._pipe, prompt, negative, length, shot.seed + index)
            else:
                pipe = self._image_to_video()
                if pipe is None:  # the image pipeline could not be built (logged once): text only
                    segment = self._call(self._pipe, prompt, negative, length, shot.seed + index)
                else:
                    # The keyframe as a VACE reference image (identity, not the exact first frame) on request.
                    as_reference = index == 0 and images.first is not None and self.settings.image_conditioning == "reference"
                    segment = self._call(
                        pipe, prompt, negative, length, shot.seed + index, image=first, last_image=last, as_reference=as_reference
                    )
            segments.append(segment)
        return join_segments(segments, plan.overlap)

    def _call(
        self,
        pipe: Any,
        prompt: str,
        negative: str,
        frames: int,
        seed: int,
        image: Any = None,
        last_image: Any = None,
        as_reference: bool = False,
    ) -> Frames:
        """One pipeline call: (frames, H, W, 3) float32 in [0, 1]: a tensor on the model's device where
        clips are finished there (CUDA), else a numpy array.

        ``image`` / ``last_image``: PIL pictures at the generation size for the first / last
        frame, given to the pipeline the way its registry entry says (``image_input``).
        """
        import torch

        self._place(pipe)
        width, height = self.generation_size
        entry = self.entry
        generator = torch.Generator(device=pipe._execution_device).manual_seed(seed)
        arguments: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative,
            "height": height,
            "width": width,
            "num_frames": frames,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "generator": generator,
            "output_type": "pt" if self._frames_on_device else "np",
            **entry.extra_call_arguments,
        }
        if entry.frame_rate_argument:
            arguments[entry.frame_rate_argument] = round(entry.native_fps)
        if image is not None or last_image is not None:
            arguments.update(picture_arguments(entry.image_input, frames, width, height, image, last_image, as_reference))
        self._running = pipe
        try:
            output = pipe(**arguments)
        finally:
            self._running = None
        if self._frames_on_device:  # (frames, 3, H, W), as the "np" output but not copied to the CPU
            video = output.frames[0].permute(0, 2, 3, 1).float()
        else:
            video = np.asarray(output.frames[0], dtype=np.float32)
        if video.ndim != 4 or video.shape[-1] != 3:
            raise Music2VideoError(
                f"{entry.pipeline} returned frames of shape {video.shape}; expected (frames, H, W, 3)"
            )
        if len(video) != frames:
            log.warning(
                "%s returned %d frames for %d asked; retiming uses what came back", entry.pipeline, len(video), frames
            )
        return video

    def _image_to_video(self) -> Any:
        """The image-to-video pipeline, built on first use and kept; None when the model has none.

        Built from the loaded components (no second copy in memory) unless the entry names
        separate weights. Any failure is logged once and long shots crossfade.
        """
        if self._i2v is not None:
            return self._i2v
        entry = self.entry
        if entry.i2v_pipeline is None or self._i2v_unavailable:
            return None
        import diffusers

        try:
            pipeline_class = getattr(diffusers, entry.i2v_pipeline)
            if entry.i2v_id is None and isinstance(self._pipe, pipeline_class):
                self._i2v = self._pipe  # one pipeline does both (Wan VACE, LTX condition, Wan I2V)
            elif entry.i2v_id is None:
                self._i2v = share_components(pipeline_class, self._pipe)
            else:
                self._i2v = pipeline_class.from_pretrained(entry.i2v_id, dtype=self._component_dtypes())
            self._i2v.set_progress_bar_config(disable=True)
        except Exception as error:
            self._i2v_unavailable = True
            log.warning(
                "cannot build %s for %s (%s); long shots crossfade between generations instead",
                entry.i2v_pipeline,
                entry.name,
                _first_line(error),
            )
            return None
        return self._i2v

    # -- placement, memory and speed options --------------------------------------------------

    def _place(self, pipe: Any) -> None:
        """Put ``pipe`` on the device with the current offload level (again only when something changed)."""
        assert self._device is not None
        if self._placed == (id(pipe), self.offload):
            return
        device = self._device
        if device.type == "cpu" or self.offload == "none":
            if device.type == "cpu" and self.offload != "none":
                log.info("offload %s has no effect on the CPU; running in place", self.offload)
            pipe.to(device)
        elif self.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
        self._placed = (id(pipe), self.offload)

    def _configure(self, pipe: Any) -> None:
        """VAE tiling, attention backend and step cache: applied to the loaded components once."""
        if self.settings.vae_tiling and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()
        transformer = pipe.transformer
        if self.attention_backend:
            try:
                transformer.set_attention_backend(self.attention_backend)
            except Exception as error:
                log.warning(
                    "attention backend %r is not available (%s); keeping the default",
                    self.attention_backend,
                    _first_line(error),
                )
        if self.cache:
            try:
                transformer.enable_cache(self._cache_config())
            except Exception as error:
                raise Music2VideoError(
                    f"step cache {self.cache!r} does not work with {type(transformer).__name__} "
                    f"({_first_line(error)}); choose another cache or none"
                ) from None

    def _cache_config(self) -> Any:
        import diffusers
        import torch

        if self.cache == "first-block":
            threshold = self.cache_threshold if self.cache_threshold is not None else FIRST_BLOCK_CACHE_THRESHOLD
            return diffusers.FirstBlockCacheConfig(threshold=threshold)
        if self.cache == "taylorseer":
            # Lite mode: on predicted steps every block is skipped and the output projection is
            # extrapolated. Its default patterns look for attention modules named '...attn'; Wan
            # names them attn1/attn2, so without lite mode nothing would be cached. The factors
            # are small: float32 keeps the extrapolation exact.
            return diffusers.TaylorSeerCacheConfig(use_lite_mode=True, taylor_factors_dtype=torch.float32)
        # Pyramid attention broadcast: reuse spatial attention every other step in the middle
        # of the schedule, where it changes least (diffusers' documented example values).
        return diffusers.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=lambda: self._running.current_timestep,
        )

    def _compile_transformer(self) -> None:
        if self.offload == "sequential":
            log.warning("torch.compile does not work with sequential offload; not compiling")
            return
        transformer = self._pipe.transformer
        if getattr(transformer, "_repeated_blocks", None):
            # Regional compilation: one compiled block reused 30 times compiles far faster.
            transformer.compile_repeated_blocks(fullgraph=True)
        else:
            transformer.compile()
        self._compiled = True
        log.info(
            "compiling %s with torch.compile: the first shot includes the compile time", type(transformer).__name__
        )


    def _uncompile_transformer(self) -> None:
        """Undo ``Module.compile`` on the transformer and its blocks: plain eager calls again."""
        for module in self._pipe.transformer.modules():
            if getattr(module, "_compiled_call_impl", None) is not None:
                module._compiled_call_impl = None
        self._compiled = False


def is_compile_error(error: BaseException) -> bool:
    """True for errors raised by torch.compile's tracing or code generation (dynamo, inductor)."""
    for cause in (error, error.__cause__, error.__context__):
        if cause is not None and type(cause).__module__.startswith(("torch._dynamo", "torch._inductor")):
            return True
    return "triton" in str(error).lower() and "torch.compile" in str(error).lower()


def share_components(pipeline_class: Any, pipe: Any) -> Any:
    """A ``pipeline_class`` built from ``pipe``'s components and matching config values.

    What ``DiffusionPipeline.from_pipe`` does, minus its final ``.to(dtype)``: that cast would
    also turn the modules diffusers keeps in float32 (Wan's norms and embeddings) into bfloat16,
    in the text-to-video pipeline too, since the modules are shared.
    """
    import inspect

    accepted = inspect.signature(pipeline_class.__init__).parameters
    components = {name: module for name, module in pipe.components.items() if name in accepted}
    options = {
        name: value
        for name, value in pipe.config.items()
        if name in accepted and name not in components and not name.startswith("_")
    }
    return pipeline_class(**components, **options)


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA out-of-memory errors, whichever way torch or a kernel raised them."""
    try:
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            return True
    except ImportError:
        pass
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _next_offload(level: OffloadLevel) -> OffloadLevel | None:
    index = OFFLOAD_LEVELS.index(level)
    return OFFLOAD_LEVELS[index + 1] if index + 1 < len(OFFLOAD_LEVELS) else None


def picture_arguments(
    image_input: str,
    frames: int,
    width: int,
    height: int,
    first: Any = None,
    last: Any = None,
    as_reference: bool = False,
) -> dict[str, Any]:
    """Pipeline arguments that give it a first and/or last picture (PIL, at the generation size).

    ``image``: ``image=`` / ``last_image=`` (a first picture is required by those pipelines).
    ``vace``: ``video=`` and ``mask=`` of ``frames`` pictures: the given ones kept (mask black),
    grey elsewhere to be generated (mask white); with ``as_reference`` the first picture goes to
    ``reference_images`` instead. ``conditions``: LTX conditions at frame 0 and ``frames - 1``.
    """
    if image_input == "image":
        if first is None:
            raise Music2VideoError("this image-to-video pipeline needs a first picture to take a last one")
        return {"image": first, **({"last_image": last} if last is not None else {})}
    if image_input == "vace":
        import PIL.Image

        arguments: dict[str, Any] = {}
        if as_reference and first is not None:
            arguments["reference_images"] = [first]
            first = None
        if first is None and last is None:
            return arguments
        grey = PIL.Image.new("RGB", (width, height), VACE_GREY)
        keep, generate = PIL.Image.new("L", (width, height), 0), PIL.Image.new("L", (width, height), 255)
        video = [grey] * frames
        mask = [generate] * frames
        if first is not None:
            video[0], mask[0] = first, keep
        if last is not None:
            video[-1], mask[-1] = last, keep
        return {**arguments, "video": video, "mask": mask}
    if image_input == "conditions":
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        conditions = []
        if first is not None:
            conditions.append(LTXVideoCondition(image=first, frame_index=0))
        if last is not None:
            conditions.append(LTXVideoCondition(image=last, frame_index=frames - 1))
        return {"conditions": conditions}
    raise ValueError(f"unknown image_input {image_input!r}")


def _load_picture(path: Path) -> Any:
    """An RGB PIL picture from ``path``; a one-line error when it cannot be read."""
    import PIL.Image

    try:
        with PIL.Image.open(path) as picture:
            return picture.convert("RGB")
    except (OSError, ValueError) as error:
        raise Music2VideoError(f"cannot read the keyframe {path}: {_first_line(error)}") from None


def _fit_picture(path: Path, width: int, height: int) -> Any:
    """The picture at ``path`` scaled to cover ``width`` x ``height`` and centre-cropped (as clips are)."""
    import PIL.Image
    import PIL.ImageOps

    return PIL.ImageOps.fit(_load_picture(path), (width, height), method=PIL.Image.Resampling.LANCZOS)


def _to_pil(frame: Frames) -> Any:
    import PIL.Image

    if colour.is_tensor(frame):
        frame = frame.float().cpu().numpy()
    return PIL.Image.fromarray((np.clip(frame, 0, 1) * 255).round().astype(np.uint8))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
