"""Estimates before a run: how long rendering will take (``--dry-run``) and how much disk it needs.

Every estimate is made from the settings the run will use: the renderer, the video model, its
generation size, steps, step cache and device, and the output size and frame rate. The figures
in the tables below say where they come from; "estimate" figures are guesses to be replaced by
measurements (benchmarks/gpu/bench_wan.py prints the Wan figure for the GPU it runs on).
"""

from __future__ import annotations

from music2video.artifacts import ShotPlan
from music2video.render.video_models import VideoModel
from music2video.settings import Settings

# -- the animatic (preview) renderer ---------------------------------------------------------

# Measured with benchmarks/bench_preview.py on a 2-core CPU at 640x360 (13.6 s for 4320 frames):
# milliseconds per output frame. Scales roughly with the pixel count.
ANIMATIC_MS_PER_FRAME_640x360 = 3.2

# -- the diffusers renderer ------------------------------------------------------------------

# Seconds per generated frame per denoising step (both classifier-free-guidance passes
# included) at the entry's first resolution bucket, bf16, no offload, no step cache.
# Keys are matched as substrings of torch.cuda.get_device_name().
SECONDS_PER_FRAME_STEP: dict[str, dict[str, tuple[float, str]]] = {
    "wan2.1-1.3b": {
        # Wan 2.1 README: 5 s of 480p (81 frames, 50 steps) in about 4 minutes on an RTX 4090.
        "RTX 4090": (240 / (81 * 50), "Wan 2.1 README (RTX 4090, 4 min per 81-frame clip)"),
        # benchmarks/gpu/bench_wan.py on an H100 80GB HBM3 (2026-11-26): 1.30 s per step with
        # guidance for 81 frames at 832x480 in bf16, no step cache, eager attention.
        "H100": (0.01606, "measured on an H100 with benchmarks/gpu/bench_wan.py"),
        "H200": (0.0155, "estimate (the H100 measurement, slightly faster memory)"),
        "A100": (0.040, "estimate"),
    },
    "wan2.1-vace-1.3b": {
        # Wan 2.1 1.3B plus 15 VACE context blocks beside its 30 blocks: about 1.5x the work.
        "H100": (0.01606 * 1.5, "estimate: 1.5x the H100 measurement of Wan 2.1 T2V 1.3B (15 VACE blocks beside 30)"),
        "H200": (0.0155 * 1.5, "estimate (1.5x Wan 2.1 T2V 1.3B)"),
        "A100": (0.040 * 1.5, "estimate (1.5x Wan 2.1 T2V 1.3B)"),
        "RTX 4090": (240 / (81 * 50) * 1.5, "estimate: 1.5x the Wan 2.1 README figure for T2V 1.3B"),
    },
    "wan2.1-i2v-14b-480p": {
        # 14B parameters against 1.3B: the transformer's work scales with them (same tokens).
        "H100": (0.01606 * 10.7, "estimate: 10.7x the H100 measurement of Wan 2.1 T2V 1.3B (14B / 1.3B parameters)"),
        "H200": (0.0155 * 10.7, "estimate (10.7x Wan 2.1 T2V 1.3B)"),
        "A100": (0.040 * 10.7, "estimate (10.7x Wan 2.1 T2V 1.3B)"),
        "RTX 4090": (240 / (81 * 50) * 10.7, "estimate: 10.7x the Wan 2.1 README figure for T2V 1.3B"),
    },
    "wan2.1-flf2v-14b": {
        # As the I2V 14B model, at its first bucket 1280x720: 2.31x the pixels of 832x480.
        "H100": (0.01606 * 10.7 * 2.31, "estimate (wan2.1-i2v-14b-480p's, scaled to 1280x720)"),
        "H200": (0.0155 * 10.7 * 2.31, "estimate (wan2.1-i2v-14b-480p's, scaled to 1280x720)"),
        "A100": (0.040 * 10.7 * 2.31, "estimate (wan2.1-i2v-14b-480p's, scaled to 1280x720)"),
        "RTX 4090": (240 / (81 * 50) * 10.7 * 2.31, "estimate (wan2.1-i2v-14b-480p's, scaled to 1280x720)"),
    },
    "wan2.2-ti2v-5b": {
        # Wan 2.2 README: 5 s of 720p (121 frames, 50 steps) in under 9 minutes on one RTX 4090.
        "RTX 4090": (540 / (121 * 50), "Wan 2.2 README (RTX 4090, under 9 min per 121-frame clip)"),
        "H100": (0.035, "estimate"),
        "H200": (0.033, "estimate"),
        "A100": (0.060, "estimate"),
    },
    "ltx-video": {
        # LTX-Video paper: 5 s of 768x512 at 24 fps (121 frames) in 2 s on an H100 (20 steps).
        "H100": (2 / (121 * 20), "LTX-Video paper (H100, 2 s per 121-frame clip at 20 steps)"),
        "H200": (2 / (121 * 20), "estimate (H100 figure)"),
        "A100": (0.0016, "estimate (half an H100)"),
        "RTX 4090": (0.0020, "estimate"),
    },
    "ltx-video-0.9.5": {
        "H100": (2 / (121 * 20), "estimate: the LTX-Video paper's H100 figure for the same 2B transformer"),
        "H200": (2 / (121 * 20), "estimate (H100 figure)"),
        "A100": (0.0016, "estimate (half an H100)"),
        "RTX 4090": (0.0020, "estimate"),
    },
    "cogvideox-2b": {
        # CogVideoX README: 50 steps of 49 frames in ~90 s on an A100, ~45 s on an H100
        # (measured with model CPU offload and VAE tiling).
        "H100": (45 / (49 * 50), "CogVideoX README (H100, ~45 s per clip)"),
        "H200": (45 / (49 * 50), "estimate (H100 figure)"),
        "A100": (90 / (49 * 50), "CogVideoX README (A100, ~90 s per clip)"),
        "RTX 4090": (0.040, "estimate"),
    },
}
# GPUs not in the table are assumed to be about as fast as this one.
REFERENCE_GPU = "RTX 4090"
# A CPU is assumed this many times slower than the reference GPU (an estimate; real models on
# a CPU take hours per shot).
CPU_SLOWDOWN = 200.0
# How many times faster a step cache makes the denoising loop (settings.video.cache).
# TaylorSeer: benchmarks/gpu/bench_wan.py on an H100 (random weights, so indicative); the
# others are estimates until measured the same way.
CACHE_SPEEDUP: dict[str, float] = {"none": 1.0, "taylorseer": 2.8, "first-block": 1.5, "pab": 1.3}
# Fewer steps than this (a distilled schedule): no cache speed-up is counted (none measured).
CACHE_MIN_STEPS = 20

# -- the keyframes stage (image models) ------------------------------------------------------

# Seconds per 1,000 image tokens per transformer pass on an H100: an estimate from each model's
# size (2 x parameters FLOPs per token per pass, at half the H100's bf16 peak, 500 TFLOPS) until
# benchmarks/gpu measures it. A step is two passes where the model runs true classifier-free
# guidance (Qwen at guidance > 1 with a negative prompt), one otherwise (FLUX: schnell is
# guidance-distilled, Kontext takes guidance as an input; Qwen with a Lightning LoRA at 1).
IMAGE_SECONDS_PER_KTOKEN_PASS: dict[str, float] = {
    "qwen-image": 2 * 20e9 * 1000 / 500e12,
    "qwen-image-edit-2509": 2 * 20e9 * 1000 / 500e12,
    "flux.1-schnell": 2 * 12e9 * 1000 / 500e12,
    "flux.1-kontext-dev": 2 * 12e9 * 1000 / 500e12,
}
# How many times slower than an H100 (bf16 throughput; estimates). Keys match
# torch.cuda.get_device_name() as substrings; other GPUs count as an RTX 4090.
IMAGE_GPU_SLOWDOWN: dict[str, float] = {"H100": 1.0, "H200": 0.95, "A100": 2.5, "RTX 4090": 3.0}
# Image tokens per pixel: VAE stride 8 x patch 2 for Qwen-Image and FLUX alike.
IMAGE_PIXELS_PER_TOKEN = 16 * 16
# Qwen-Image-Edit and FLUX Kontext encode each reference image at about one megapixel
# (keyframes.reference_pixels changes it for Qwen-Image-Edit-2509).
REFERENCE_INPUT_PIXELS = 1024 * 1024
# A shot's keyframe is assumed to be composed from this many references (a character and a place).
REFERENCES_PER_KEYFRAME = 2
# The song of the projection (benchmarks/keyframes_projection.py): 3 minutes at the planner's
# mean shot length of about 3 s, with two characters, three places and a prop.
PROJECTION_SHOTS = 60
PROJECTION_REFERENCES = 6


def estimate_keyframes(plan: ShotPlan, settings: Settings, section_labels: list[str] | None = None) -> str:
    """One line for ``--dry-run``: references and keyframes to make and the expected time, apart
    from the video's. Before the storyboard exists the cast is counted as its writer makes it
    at most (the template: two characters; the LLM: three) plus one place per distinct section.
    At full speed on a GPU it adds what the lightning-8 option would make of it."""
    from music2video.keyframes import keyframe_size, keyframes_wanted
    from music2video.settings import parse_resolution

    wanted, why = keyframes_wanted(settings)
    if not wanted:
        return f"keyframes: none ({why})"
    options = settings.keyframes
    places = len(set(section_labels or [])) or 1
    characters = 2 if settings.backends()["writer"] == "template" else 3
    references = characters + min(places, 4)
    device = device_name(options.device)
    costs = keyframe_costs(options, keyframe_size(settings), len(plan.shots), references, device)
    text, edit = costs["text"], costs["edit"]
    ref_width, ref_height = parse_resolution(options.reference_size)
    width, height = keyframe_size(settings)
    line = (
        f"keyframes: about {references} references with {text.name} at {ref_width}x{ref_height} ≈ "
        f"{format_duration(costs['references_s'])}, then {len(plan.shots)} keyframes with {edit.name} at {width}x{height} "
        f"≈ {format_duration(costs['keyframes_s'])} on {device}{_sampling_note(costs)} "
        "(estimate from model size; before the video model loads)"
    )
    if options.speed == "full" and edit.speed_loras and device not in ("cpu", "mps"):
        fast = keyframe_costs(options.model_copy(update={"speed": "lightning-8"}), (width, height), len(plan.shots), references, device)
        line += f"; --keyframe-speed lightning-8 ≈ {format_duration(fast['references_s'] + fast['keyframes_s'])} in all"
    return line


def keyframe_costs(options: object, size: tuple[int, int], shots: int, references: int, device: str) -> dict:
    """Seconds of references and keyframes for the ``[keyframes]`` settings ``options``: the
    models, their steps and guidance under ``options.speed``, and the reference encoding size."""
    from music2video.keyframes.image_models import resolve_image_model, sampling_for
    from music2video.settings import parse_resolution

    text = resolve_image_model(options.reference_model, "text-to-image")
    edit = resolve_image_model(options.keyframe_model, "edit")
    text_sampling = sampling_for(text, options.speed, options.steps, options.guidance)
    edit_sampling = sampling_for(edit, options.speed, options.steps, options.guidance)
    ref_width, ref_height = parse_resolution(options.reference_size)
    reference_pixels = options.reference_pixels if edit.reference_pixels_constant else None
    refs_per_frame = min(REFERENCES_PER_KEYFRAME, edit.max_references)
    return {
        "text": text,
        "edit": edit,
        "edit_sampling": edit_sampling,
        "reference_pixels": reference_pixels or REFERENCE_INPUT_PIXELS,
        "references_s": references
        * image_seconds(text, ref_width * ref_height, 0, text_sampling.steps, device, guidance=text_sampling.guidance),
        "keyframes_s": shots
        * image_seconds(
            edit, size[0] * size[1], refs_per_frame, edit_sampling.steps, device,
            guidance=edit_sampling.guidance, reference_pixels=reference_pixels,
        ),  # fmt: skip
    }


def _sampling_note(costs: dict) -> str:
    sampling = costs["edit_sampling"]
    passes = "one pass" if sampling.guidance <= 1 else "two passes"
    lora = f", {sampling.lora.weight_name.rsplit('/', 1)[-1]}" if sampling.lora else ""
    encoded = "" if costs["reference_pixels"] == REFERENCE_INPUT_PIXELS else f", references encoded at {costs['reference_pixels']} px"
    return f" ({sampling.steps} steps, {passes} a step{lora}{encoded})"


def image_seconds(
    entry: object,
    pixels: int,
    references: int,
    steps: int | None,
    device: str,
    *,
    guidance: float | None = None,
    reference_pixels: int | None = None,
) -> float:
    """Expected seconds for one image of ``pixels`` from ``references`` reference images, each
    encoded at ``reference_pixels`` (None: one megapixel), at ``guidance`` (None: the model's).

    Linear in the tokens: attention grows faster, so large token counts (an edit with three
    one-megapixel references is 13,000 tokens) are, if anything, underestimated, and fewer
    reference pixels save more than this says."""
    tokens = pixels / IMAGE_PIXELS_PER_TOKEN + references * (reference_pixels or REFERENCE_INPUT_PIXELS) / IMAGE_PIXELS_PER_TOKEN
    guidance = entry.default_guidance if guidance is None else guidance
    passes = 2 if entry.negative_prompt and guidance > 1 else 1
    per_pass = IMAGE_SECONDS_PER_KTOKEN_PASS.get(entry.name, IMAGE_SECONDS_PER_KTOKEN_PASS["qwen-image"]) * tokens / 1000
    if device.lower() in ("cpu", "mps"):
        slowdown = IMAGE_GPU_SLOWDOWN[REFERENCE_GPU] * CPU_SLOWDOWN
    else:
        slowdown = next((v for k, v in IMAGE_GPU_SLOWDOWN.items() if k.lower() in device.lower()), IMAGE_GPU_SLOWDOWN[REFERENCE_GPU])
    return (steps or entry.default_steps) * passes * per_pass * slowdown


def keyframe_projection(
    device: str = "NVIDIA H100 80GB HBM3",
    size: tuple[int, int] = (832, 480),
    shots: int = PROJECTION_SHOTS,
    references: int = PROJECTION_REFERENCES,
) -> list[tuple[str, float, float]]:
    """(option, seconds of references, seconds of keyframes) for a song of ``shots`` shots with
    the default models, without and with the speed options; estimates from model size."""
    from music2video.settings import KeyframeSettings

    options = {
        "full (defaults)": {},
        "lightning-8": {"speed": "lightning-8"},
        "lightning-4": {"speed": "lightning-4"},
        "lightning-8, references encoded at 512x512": {"speed": "lightning-8", "reference_pixels": 512 * 512},
        "lightning-4, references encoded at 512x512": {"speed": "lightning-4", "reference_pixels": 512 * 512},
    }
    rows = []
    for name, changes in options.items():
        costs = keyframe_costs(KeyframeSettings(**changes), size, shots, references, device)
        rows.append((name, costs["references_s"], costs["keyframes_s"]))
    return rows


# -- disk ------------------------------------------------------------------------------------

# H.264 at the clip writer's settings (crf 20, veryfast): bits per pixel per frame, an upper
# figure for busy pictures (calm ones take a fraction of it). Clips and the final video each
# hold every frame once, the video without subtitles a third copy while subtitles are added.
H264_BITS_PER_PIXEL = 0.15
VIDEO_COPIES = 3
# audio.wav: 44.1 kHz stereo float32, as decode writes it; plus AAC and the artifacts' slack.
AUDIO_WAV_BYTES_PER_SECOND = 44_100 * 2 * 4
SLACK_BYTES = 16 * 1024 * 1024


def estimate_render(plan: ShotPlan, settings: Settings) -> str:
    """One line: frames to render and the expected time with the renderer the settings choose."""
    frames = [shot.frame_count(settings.fps) for shot in plan.shots]
    total_frames = sum(frames)
    renderer = settings.backends()["renderer"]
    workers, on_ray = ray_share(settings, len(frames))
    if renderer == "animatic":
        pixels_ratio = settings.width * settings.height / (640 * 360)
        seconds = total_frames * ANIMATIC_MS_PER_FRAME_640x360 * pixels_ratio / 1000 / workers
        return (
            f"render: {len(frames)} shots, {total_frames} frames at {settings.width}x{settings.height}; "
            f"animatic ≈ {seconds:.0f} s on a 2-core CPU{on_ray}"
        )
    from music2video.render.diffusion import generation_size
    from music2video.render.video_models import resolve_video_model

    video = settings.video
    entry = resolve_video_model(video.model)
    size = generation_size(entry, video, settings.width, settings.height)
    device = device_name(video.device)
    steps, guidance = _sampling(entry, video)
    line = describe_render_estimate(
        entry, frames, steps, device, guidance=guidance, output_fps=settings.fps, size=size, cache=video.cache, workers=workers
    ) + on_ray
    # The same plan at the other speed, so the choice is made before the run.
    other = video.model_copy(update={"speed": "full" if video.speed == "distilled" else "distilled"})
    if other.speed == "distilled" and entry.distill_lora is None and not video.distill_lora:
        return line
    steps, guidance = _sampling(entry, other)
    seconds = estimate_render_seconds(
        entry, frames, steps, device, guidance=guidance, output_fps=settings.fps, size=size, cache=video.cache
    )
    flag = "--video-speed full" if other.speed == "full" else "--video-speed distilled"
    return f"{line}; with {flag} ≈ {format_duration(seconds / workers)}"


def ray_share(settings: Settings, shots: int) -> tuple[int, str]:
    """(actors the render time is shared by, what the estimate line says of it).

    With ``executor = "ray"`` and ``[ray] workers`` set, shots spread over that many actors (at
    most one per shot), each rendering as one machine would; the time divides. Left unset, the
    cluster decides when it starts, so the line gives one actor's time and says so.
    """
    if settings.executor != "ray":
        return 1, ""
    if settings.ray.workers is None:
        return 1, " for one Ray worker (--ray-workers not set: the cluster decides how many)"
    workers = max(1, min(settings.ray.workers, shots))
    return workers, f" with {workers} Ray workers (one worker's time / {workers})"


def _sampling(entry: VideoModel, video: object) -> tuple[int, float]:
    from music2video.render.diffusion import sampling

    steps, guidance, _lora = sampling(entry, video)
    return steps, guidance


def seconds_per_frame_step(model: VideoModel, device: str) -> tuple[float, str]:
    """(seconds per generated frame per step at the first bucket, where the figure comes from)."""
    table = SECONDS_PER_FRAME_STEP.get(model.name) or SECONDS_PER_FRAME_STEP["wan2.1-1.3b"]
    source_note = "" if model.name in SECONDS_PER_FRAME_STEP else f" (no figures for {model.name}: Wan 2.1 1.3B's)"
    reference = table.get(REFERENCE_GPU) or next(iter(table.values()))
    if device.lower() in ("cpu", "mps"):
        return reference[0] * CPU_SLOWDOWN, f"estimate: {CPU_SLOWDOWN:g}x an {REFERENCE_GPU}" + source_note
    for key, (seconds, source) in table.items():
        if key.lower() in device.lower():
            return seconds, source + source_note
    return reference[0], f"{device} not in the table; {REFERENCE_GPU} figure" + source_note


def estimate_render_seconds(
    model_entry: VideoModel,
    plan_frames: list[int],
    steps: int | None = None,
    device: str | None = None,
    *,
    guidance: float | None = None,
    output_fps: float | None = None,
    size: tuple[int, int] | None = None,
    cache: str = "none",
) -> float:
    """Expected seconds of diffusion for a shot plan.

    Args:
        model_entry: the video model (see :func:`~music2video.render.video_models.resolve_video_model`).
        plan_frames: frames per shot: output frames at ``output_fps`` when it is given, else
            frames at the model's native rate.
        steps: denoising steps (None: the model's default).
        guidance: guidance scale (None: the model's default); at 1 or less the pipeline skips the
            negative-prompt pass, half the work of the table's figures.
        device: a GPU name as ``torch.cuda.get_device_name()`` gives it, or ``cpu``; None asks
            torch (``cpu`` without torch or CUDA).
        size: the generation size (width, height); None: the model's first bucket. Time scales
            with the pixel count (linearly: attention grows faster, so small sizes are, if
            anything, overestimated).
        cache: the step cache (``settings.video.cache``), see :data:`CACHE_SPEEDUP`.

    Counts every frame the model generates (frame-rule rounding and extension overlaps
    included) times the steps times :func:`seconds_per_frame_step`. Model loading, text
    encoding and VAE decoding are left out (a few seconds per shot on a GPU).
    """
    from music2video.render.diffusion import native_frames_needed, plan_generation

    steps = steps or model_entry.default_steps
    guidance = model_entry.default_guidance if guidance is None else guidance
    device = device or device_name("auto")
    per_frame_step, _source = seconds_per_frame_step(model_entry, device)
    passes = 1 if guidance <= 1 else 2  # the diffusers pipelines skip the negative pass at guidance <= 1
    bucket_width, bucket_height = model_entry.buckets[0]
    width, height = size or (bucket_width, bucket_height)
    pixel_ratio = width * height / (bucket_width * bucket_height)
    can_extend = model_entry.i2v_pipeline is not None
    generated = 0
    for frames in plan_frames:
        needed = native_frames_needed(frames, output_fps, model_entry.native_fps) if output_fps else frames
        generated += plan_generation(model_entry, needed, can_extend).generated_frames
    # CACHE_SPEEDUP was measured over 50 steps; a few-step schedule leaves a cache little to skip.
    speedup = CACHE_SPEEDUP.get(cache, 1.0) if steps >= CACHE_MIN_STEPS else 1.0
    return generated * steps * per_frame_step * pixel_ratio * passes / 2 / speedup


def describe_render_estimate(
    model_entry: VideoModel,
    plan_frames: list[int],
    steps: int | None = None,
    device: str | None = None,
    *,
    guidance: float | None = None,
    output_fps: float | None = None,
    size: tuple[int, int] | None = None,
    cache: str = "none",
    workers: int = 1,
) -> str:
    """One line for ``--dry-run``: shots, model, size, steps, cache and expected diffusion time
    (shared by ``workers`` devices rendering shots at once), with the figure's source."""
    steps = steps or model_entry.default_steps
    guidance = model_entry.default_guidance if guidance is None else guidance
    device = device or device_name("auto")
    size = size or model_entry.buckets[0]
    seconds = estimate_render_seconds(
        model_entry, plan_frames, steps, device, guidance=guidance, output_fps=output_fps, size=size, cache=cache
    ) / max(1, workers)
    _per_frame_step, source = seconds_per_frame_step(model_entry, device)
    speedup = CACHE_SPEEDUP.get(cache, 1.0) if steps >= CACHE_MIN_STEPS else 1.0
    cached = "" if cache == "none" else f", {cache} cache (≈{speedup:g}x)"
    one_pass = f", guidance {guidance:g} (no negative pass)" if guidance <= 1 else ""
    return (
        f"render: {len(plan_frames)} shots with {model_entry.name} at {size[0]}x{size[1]}, {steps} steps{cached}{one_pass}; "
        f"≈ {format_duration(seconds)} of diffusion on {device} ({source})"
    )


def estimate_disk_bytes(duration_s: float, width: int, height: int, fps: float) -> tuple[int, int]:
    """(bytes the run folder needs, bytes the output video needs) for a song of ``duration_s``.

    A deliberately generous figure (see :data:`H264_BITS_PER_PIXEL`): it is checked against the
    free space before a run starts, so that a disk that cannot hold the run stops it at once.
    """
    video_bytes = int(duration_s * fps * width * height * H264_BITS_PER_PIXEL / 8)
    run_folder = int(duration_s * AUDIO_WAV_BYTES_PER_SECOND) + (VIDEO_COPIES - 1) * video_bytes + SLACK_BYTES
    return run_folder, video_bytes


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def device_name(device: str) -> str:
    """The name the cost table is keyed by, for a device setting (``auto``, ``cuda:1``, ``cpu``)."""
    if device.lower().startswith(("cpu", "mps")):
        return device.split(":")[0].lower()
    try:
        import torch
    except ImportError:
        return "cpu"
    if not torch.cuda.is_available():
        return "cpu"
    index = int(device.split(":")[1]) if device.startswith("cuda:") else None
    return torch.cuda.get_device_name(index)
