"""Time and memory of the image-conditioned path on a CUDA GPU: references, keyframes, video from keyframes.

Every model is built from its real configuration with random weights (no download; the config
values are written below): a random-weight model does the same arithmetic as the trained one,
so time and memory are the real ones. Text encoders are not built (Qwen2.5-VL 7B for the image
models, UMT5-XXL for Wan): the pipelines get random prompt embeddings of the shapes they would
produce, so the figures leave out one text-encoder pass per image or shot (well under a second
on a datacenter GPU).

It measures, one model at a time (each freed before the next, as a run does):

1. **reference**: Qwen-Image (``QwenImagePipeline``, 20B) at the reference size, true CFG;
2. **keyframe**: Qwen-Image-Edit-2509 (``QwenImageEditPlusPipeline``, the same 20B transformer
   architecture) composing a keyframe at the video's generation size from two references;
3. **video**: Wan 2.1 VACE 1.3B (``WanVACEPipeline``) animating a keyframe as the first frame of
   an 81-frame 832x480 clip (5 s at 16 fps), VAE in float32; optionally with the TaylorSeer cache;
4. **outside the models**: colour matching to the keyframe, retiming to 24 fps, scaling and
   H.264 encoding of that clip, through the renderer's own functions, both ways it runs them:
   all on the CPU in the background writer (``outside_s``, the numpy path), and on a CUDA device
   as the renderer does there: colour, retime and scale on the GPU with the copy of the finished
   frames to the CPU (``handoff_s``, on the critical path) and the encoding alone in the
   background writer (``writer_s``).

For each: seconds per denoising step, the projection to the model's default step count, peak
GPU memory. Then a projection for a 3-minute song at 832x480 on this GPU: references, one
keyframe per shot, and the video, against the issue's targets (keyframes + video <= 15 minutes
with the speed options on; work outside the diffusion models < 3 %), as a user waits for it:

* the diffusion with the speed options that were timed (``--keyframe-speed``; the video
  ``--distilled``, else with ``--taylorseer``, else at full steps),
* the work outside the models as share of that total when written in line, and the part of it
  left on the critical path with the background writer: per shot, the hand-off plus
  ``max(0, writer time - the next shot's diffusion time)``, and the last clip's whole write.

Measured on an NVIDIA H100 80GB HBM3 (torch 2.11+cu130, diffusers 0.42.1, bf16, random weights),
``--keyframe-speed lightning-8 --distilled --taylorseer``: reference 0.195 s/step (1.7 s each at
8 steps, peak 42.5 GiB); keyframe 0.494 s/step (4.0 s each, peak 40.4 GiB); video 2.07 s/step with
CFG (107 s at 50 steps for 81 frames, peak 13.8 GiB), distilled 1.03 s/step at guidance 1 (9.9 s
a clip at 6 steps), TaylorSeer 1.50x; outside the model, on the CPU path, 3.95 s per 81-frame
clip (colour match 1.76 s). That run predates the device path (no ``handoff_s``/``writer_s``):
``--from-json`` on its JSON projects it with the whole CPU path in the writer and no hand-off:
with the speed options on (keyframes
lightning-8, video distilled) 6 references 0.2 min + 72 keyframes 4.8 min + video 6.0 min = 10.9 min
of diffusion; the clips written in line add 2.4 min, 17.8 % of 13.3 min; with the background
writer (2.0 s a shot against 5.0 s of the next shot's diffusion) only the last clip's write waits:
2.0 s, 0.30 % of 11.0 min. Both targets met, by projection; the device path's hand-off and the
GIL's share of the writer are still to be timed on a GPU.

The image models' names, pipelines and default steps come from the keyframes stage's registry
(:mod:`music2video.keyframes.image_models`), the video model's from the video registry.

    PYTHONPATH=src python benchmarks/gpu/bench_keyframes_video.py            # 8 steps each, ~5 min on an H100
    PYTHONPATH=src python benchmarks/gpu/bench_keyframes_video.py --tiny     # tiny configs, CPU is fine
    PYTHONPATH=src python benchmarks/gpu/bench_keyframes_video.py --parts reference,keyframe --keyframe-speed lightning-8 --reference-pixels 262144
    PYTHONPATH=src python benchmarks/gpu/bench_keyframes_video.py --keyframe-speed lightning-8 --distilled --taylorseer --json kv.json
    PYTHONPATH=src python benchmarks/gpu/bench_keyframes_video.py --from-json kv.json   # the projection again, no GPU needed

Without a CUDA GPU (and without --tiny) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Runnable as a plain script from the repository root, with or without PYTHONPATH=src.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_wan import (  # noqa: E402  (the Wan 1.3B configs and the cast that from_pretrained does)
    FLOW_SHIFT,
    TEXT_DIM,
    TEXT_TOKENS,
    TINY_TRANSFORMER,
    TINY_VAE,
    WAN_1_3B_TRANSFORMER,
    WAN_VAE,
    cast_like_from_pretrained,
    pick_device,
)

# Wan-AI/Wan2.1-VACE-1.3B-diffusers transformer/config.json: the 1.3B model plus 15 VACE blocks
# beside every second block (diffusers' conversion script).
VACE_1_3B_TRANSFORMER = {**WAN_1_3B_TRANSFORMER, "vace_layers": list(range(0, 30, 2)), "vace_in_channels": 96}
# Qwen/Qwen-Image transformer/config.json (Qwen-Image-Edit-2509's transformer has the same shape).
QWEN_IMAGE_TRANSFORMER = {
    "patch_size": 2,
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 60,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 3584,  # Qwen2.5-VL 7B hidden size
    "guidance_embeds": False,
    "axes_dims_rope": (16, 56, 56),
}
# Qwen/Qwen-Image vae/config.json: AutoencoderKLQwenImage's defaults (base 96, z 16, mults 1-2-4-4).
QWEN_IMAGE_VAE: dict = {}
QWEN_PROMPT_TOKENS = 256  # a storyboard prompt after the chat template is dropped
QWEN_EDIT_PROMPT_TOKENS = 640  # the prompt plus Qwen2.5-VL's tokens of two 384x384 reference images
TRUE_CFG = 4.0  # > 1: two transformer passes per step, as in real use

# --tiny: the shapes of diffusers' own pipeline tests, for a functional run on a CPU.
TINY_QWEN_TRANSFORMER = {
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 4,
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 3,
    "joint_attention_dim": 16,
    "guidance_embeds": False,
    "axes_dims_rope": (8, 4, 4),
}
TINY_QWEN_VAE = {
    "base_dim": 24,
    "z_dim": 4,
    "dim_mult": [1, 2, 4],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True],
    "latents_mean": [0.0] * 4,
    "latents_std": [1.0] * 4,
}
TINY_VACE_TRANSFORMER = {**TINY_TRANSFORMER, "num_layers": 3, "vace_layers": [0, 2], "vace_in_channels": 96}

OUTPUT_FPS = 24.0
SONG_S = 180.0  # the projection's song: 3 minutes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps timed per model (default 8; 2 with --tiny)")
    parser.add_argument("--parts", default="reference,keyframe,video", help="comma-separated subset of reference, keyframe, video")
    parser.add_argument("--taylorseer", action="store_true", help="also time the video with the TaylorSeer step cache")
    parser.add_argument(
        "--distilled", action="store_true",
        help="also time the video as video.speed = distilled samples it: guidance 1 (one pass), projected to the LoRA's steps",
    )
    parser.add_argument("--reference-size", default="1024x1024", help="WxH of a reference (keyframes.reference_size)")
    parser.add_argument("--size", default="832x480", help="WxH of keyframes and video (VACE 1.3B's 480p)")
    parser.add_argument("--frames", type=int, default=81, help="frames of the timed clip, 4k+1 (81 = 5 s at 16 fps)")
    parser.add_argument("--shot-s", type=float, default=2.5, help="mean shot length of the projected song, seconds")
    parser.add_argument("--references", type=int, default=6, help="references of the projected song (cast, places, props)")
    parser.add_argument(
        "--keyframe-speed", default="full", choices=("full", "lightning-8", "lightning-4"),
        help="keyframes.speed: lightning-* times one transformer pass a step (guidance 1) and projects to the LoRA's steps "
        "(a fused LoRA costs nothing per step, so random weights time it truly)",
    )  # fmt: skip
    parser.add_argument("--reference-pixels", type=int, default=None, help="keyframes.reference_pixels for the keyframe (default: 1024x1024)")
    parser.add_argument("--tiny", action="store_true", help="tiny configs (CPU is fine): checks that the script works")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--from-json", type=Path, default=None,
        help="print the table and the projection from the results a run wrote with --json (no GPU needed)",
    )  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # a run cut short still shows what it measured
    if args.from_json:
        return reproject(args)
    picked = pick_device(args.tiny)
    if picked is None:
        return 0
    device, dtype, device_name = picked
    import torch

    from music2video.settings import parse_resolution

    if args.tiny:
        args.reference_size, args.size, args.frames = "32x32", "32x32", 9
    args.steps = args.steps or (2 if args.tiny else 8)
    print(f"device: {device_name}, dtype {str(dtype).removeprefix('torch.')}, torch {torch.__version__}, {args.steps} steps timed")
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    results: dict[str, dict] = {}
    for part in parts:
        runner = {"reference": bench_reference, "keyframe": bench_keyframe, "video": bench_video}.get(part)
        if runner is None:
            print(f"unknown part {part!r}; choose from reference, keyframe, video")
            return 2
        try:
            results[part] = runner(args, device, dtype, parse_resolution)
            print(f"{part}: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results[part].items()})}")
        except Exception as error:  # one failing part must not hide the others
            traceback.print_exc()
            results[part] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}
        finally:
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    projection = project_song(results, args)
    print_summary(results, projection, args)
    if args.json:
        args.json.write_text(
            json.dumps({"device": device_name, "args": {k: str(v) for k, v in vars(args).items()}, "results": results, "projection": projection}, indent=2)
        )
    return 0


# -- models ----------------------------------------------------------------------------------


def build_on_device(make, device, dtype):
    """Build a model directly on the device in ``dtype`` (20B parameters do not fit in float32 on one
    GPU), then keep in float32 what ``from_pretrained`` keeps there."""
    import torch

    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = make()
    finally:
        torch.set_default_dtype(previous)
    return cast_like_from_pretrained(model, dtype)


def qwen_components(args, device, dtype) -> dict:
    import torch
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel

    transformer = build_on_device(
        lambda: QwenImageTransformer2DModel(**(TINY_QWEN_TRANSFORMER if args.tiny else QWEN_IMAGE_TRANSFORMER)), device, dtype
    )
    vae = build_on_device(lambda: AutoencoderKLQwenImage(**(TINY_QWEN_VAE if args.tiny else QWEN_IMAGE_VAE)), device, dtype)
    # Qwen/Qwen-Image scheduler/scheduler_config.json (dynamic shifting by image size).
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256, base_shift=math.log(3), max_image_seq_len=8192, max_shift=math.log(3),
        shift=1.0, shift_terminal=0.02, time_shift_type="exponential", use_dynamic_shifting=True,
    )  # fmt: skip
    del torch
    return {"transformer": transformer, "vae": vae, "scheduler": scheduler, "text_encoder": None, "tokenizer": None}


def prompt_embeddings(tokens: int, dim: int, device, dtype, prefix: str = "") -> dict:
    import torch

    generator = torch.Generator(device).manual_seed(1)
    embeds = {}
    for name in ("prompt_embeds", "negative_prompt_embeds"):
        embeds[prefix + name] = torch.randn(1, tokens, dim, generator=generator, device=device, dtype=dtype)
    return embeds


def qwen_embeddings(tokens: int, args, device, dtype) -> dict:
    import torch

    dim = TINY_QWEN_TRANSFORMER["joint_attention_dim"] if args.tiny else QWEN_IMAGE_TRANSFORMER["joint_attention_dim"]
    tokens = 8 if args.tiny else tokens
    embeds = prompt_embeddings(tokens, dim, device, dtype)
    mask = torch.ones(1, tokens, dtype=torch.long, device=device)
    return {**embeds, "prompt_embeds_mask": mask, "negative_prompt_embeds_mask": mask}


def timed_call(pipe, device, steps: int, **arguments) -> dict:
    """One pipeline call; seconds per steady-state step, total, and peak GPU memory."""
    import torch

    step_times: list[float] = []

    def on_step_end(_pipe, _step, _timestep, callback_kwargs):
        synchronize(device)
        step_times.append(time.perf_counter())
        return callback_kwargs

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synchronize(device)
    started = time.perf_counter()
    output = pipe(**arguments, num_inference_steps=steps, callback_on_step_end=on_step_end, generator=torch.Generator(device).manual_seed(0))
    synchronize(device)
    total = time.perf_counter() - started
    steps_s = [b - a for a, b in zip([started, *step_times[:-1]], step_times)]
    steady = steps_s[1:] or steps_s  # the first step also prepares latents and conditions
    per_step = sum(steady) / len(steady)
    result = {"s_per_step": per_step, "total_s": total, "outside_loop_s": max(0.0, total - sum(steps_s))}
    if device.type == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    result["output"] = output
    return result


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def picture(width: int, height: int, seed: int):
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# -- parts -----------------------------------------------------------------------------------


def bench_reference(args, device, dtype, parse_resolution) -> dict:
    from diffusers import QwenImagePipeline

    from music2video.keyframes.image_models import resolve_image_model
    from music2video.settings import KeyframeSettings

    entry = resolve_image_model(KeyframeSettings().reference_model, "text-to-image")  # the default
    sampling = speed_sampling(entry, args)
    width, height = parse_resolution(args.reference_size)
    pipe = QwenImagePipeline(**qwen_components(args, device, dtype))
    pipe.set_progress_bar_config(disable=True)
    embeds = guided(qwen_embeddings(QWEN_PROMPT_TOKENS, args, device, dtype), sampling.guidance)
    call = dict(**embeds, true_cfg_scale=sampling.guidance, height=height, width=width, output_type="pil")
    timed_call(pipe, device, 2, **call)  # warm-up: CUDA context, kernels, allocator (2 steps: 1 divides by 0 in the scheduler)
    result = timed_call(pipe, device, args.steps, **call)
    result.pop("output")
    del pipe
    return finish(result, entry.name, sampling.steps, f"{width}x{height}{speed_note(args, sampling)}")


def bench_keyframe(args, device, dtype, parse_resolution) -> dict:
    from diffusers import QwenImageEditPlusPipeline

    from music2video.keyframes.image_models import resolve_image_model
    from music2video.settings import KeyframeSettings

    entry = resolve_image_model(KeyframeSettings().keyframe_model, "edit")  # the default
    sampling = speed_sampling(entry, args)
    width, height = parse_resolution(args.size)
    reference_width, reference_height = parse_resolution(args.reference_size)
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as edit_plus

    from music2video.keyframes.generator import reference_pixels

    pipe = QwenImageEditPlusPipeline(**qwen_components(args, device, dtype), processor=None)
    pipe.set_progress_bar_config(disable=True)
    embeds = guided(qwen_embeddings(QWEN_EDIT_PROMPT_TOKENS, args, device, dtype), sampling.guidance)
    references = [picture(reference_width, reference_height, seed) for seed in (1, 2)]
    call = dict(**embeds, image=references, true_cfg_scale=sampling.guidance, height=height, width=width, output_type="pil")
    sizes = edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE
    try:
        if args.tiny:
            # The pipeline encodes each reference at about 1024x1024 whatever its size: far too slow
            # for a CPU check with tiny models (the keyframes tests shrink it the same way).
            edit_plus.VAE_IMAGE_SIZE = edit_plus.CONDITION_IMAGE_SIZE = 32 * 32
        with reference_pixels(entry, None if args.tiny else args.reference_pixels):  # as the keyframes stage sets it
            timed_call(pipe, device, 2, **call)
            result = timed_call(pipe, device, args.steps, **call)
    finally:
        edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE = sizes
    result.pop("output")
    del pipe
    encoded = f", references encoded at {args.reference_pixels} px" if args.reference_pixels and not args.tiny else ""
    return finish(result, entry.name, sampling.steps, f"{width}x{height} from 2 references{encoded}{speed_note(args, sampling)}")


def speed_sampling(entry, args):
    """Steps and guidance of ``entry`` under --keyframe-speed (the keyframes stage's rule)."""
    from music2video.keyframes.image_models import sampling_for

    sampling = sampling_for(entry, args.keyframe_speed, None, None)
    return sampling if sampling.lora else dataclasses.replace(sampling, guidance=TRUE_CFG)


def guided(embeds: dict, guidance: float) -> dict:
    """The prompt embeddings a call at ``guidance`` gets: without the negative ones at 1 (one pass a step)."""
    return embeds if guidance > 1 else {k: v for k, v in embeds.items() if not k.startswith("negative_")}


def speed_note(args, sampling) -> str:
    return f", {args.keyframe_speed} ({sampling.steps} steps, guidance {sampling.guidance:g})" if sampling.lora else ""


def bench_video(args, device, dtype, parse_resolution) -> dict:
    import numpy as np
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline, WanVACETransformer3DModel

    from music2video.render.diffusion import picture_arguments
    from music2video.render.video_models import VIDEO_MODELS

    entry = VIDEO_MODELS["wan2.1-vace-1.3b"]
    width, height = parse_resolution(args.size)
    transformer = build_on_device(
        lambda: WanVACETransformer3DModel(**(TINY_VACE_TRANSFORMER if args.tiny else VACE_1_3B_TRANSFORMER)), device, dtype
    )
    # The renderer's default: the VAE in float32 beside the bfloat16 transformer.
    vae = build_on_device(lambda: AutoencoderKLWan(**(TINY_VAE if args.tiny else WAN_VAE)), device, torch.float32)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=FLOW_SHIFT)
    pipe = WanVACEPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    tokens, dim = (16, TINY_TRANSFORMER["text_dim"]) if args.tiny else (TEXT_TOKENS, TEXT_DIM)
    embeds = prompt_embeddings(tokens, dim, device, dtype)
    keyframe = picture(width, height, 3)
    call = dict(
        **embeds, **picture_arguments(entry.image_input, args.frames, width, height, first=keyframe),
        height=height, width=width, num_frames=args.frames, guidance_scale=entry.default_guidance, output_type="np",
    )  # fmt: skip
    timed_call(pipe, device, 2, **call)
    result = timed_call(pipe, device, args.steps, **call)
    frames = np.asarray(result.pop("output").frames[0], dtype=np.float32)
    result = finish(result, entry.name, entry.default_steps, f"{width}x{height}, {args.frames} frames, keyframe first")
    clip_s = (args.frames - 1) / entry.native_fps
    result["clip_s"] = clip_s
    result["s_per_video_s"] = result["projected_s"] / clip_s
    if args.taylorseer:
        from diffusers import TaylorSeerCacheConfig

        transformer.enable_cache(TaylorSeerCacheConfig(taylor_factors_dtype=torch.float32, use_lite_mode=True))
        cached = timed_call(pipe, device, args.steps, **call)
        cached.pop("output")
        transformer.disable_cache()
        result["taylorseer_speedup"] = result["total_s"] / cached["total_s"]
    if args.distilled:
        # A fused LoRA leaves the transformer's shapes and work as they were: random weights time
        # it exactly. What changes is one pass per step (guidance 1) and the LoRA's few steps.
        lora = entry.distill_lora
        one_pass = timed_call(pipe, device, args.steps, **{**call, "guidance_scale": lora.guidance})
        one_pass.pop("output")
        result["distilled_steps"] = lora.steps
        result["distilled_s_per_step"] = one_pass["s_per_step"]
        result["distilled_projected_s"] = one_pass["s_per_step"] * lora.steps + one_pass["outside_loop_s"]
    result.update(outside_the_model(frames, keyframe, entry.native_fps, width, height))
    del pipe, transformer, vae
    return result


def finish(result: dict, model: str, default_steps: int, what: str) -> dict:
    """Add the projection to the model's default steps (steady steps x default + the work outside the loop)."""
    result["model"], result["what"], result["default_steps"] = model, what, default_steps
    result["projected_s"] = result["s_per_step"] * default_steps + result["outside_loop_s"]
    return result


def outside_the_model(frames, keyframe, native_fps: float, width: int, height: int) -> dict:
    """The renderer's per-shot work after diffusion (colour match to the keyframe, retime to 24 fps,
    scale, encode), through its own functions, timed both ways it runs them (module docstring)."""
    from types import SimpleNamespace

    import torch

    from music2video.render.diffusion import DiffusersRenderer

    # What the renderer's writing methods read from it.
    renderer = SimpleNamespace(
        settings=SimpleNamespace(colour_match="lab"), entry=SimpleNamespace(native_fps=native_fps),
        fps=OUTPUT_FPS, retime="nearest", width=width, height=height,
    )  # fmt: skip
    for name in ("_match_colour", "_finished_chunks", "_write_clip", "_finish_on_device", "_encode_clip"):
        setattr(renderer, name, getattr(DiffusersRenderer, name).__get__(renderer))
    frame_count = round((len(frames) - 1) / native_fps * OUTPUT_FPS)
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / "keyframe.png"
        keyframe.save(reference)
        # The CPU path: all of it in the background writer, on numpy frames.
        started = time.perf_counter()
        renderer._match_colour(frames.copy(), reference, Path(folder) / "colour.mp4")
        result["colour_match_s"] = time.perf_counter() - started
        started = time.perf_counter()
        renderer._write_clip(frames.copy(), frame_count, Path(folder) / "cpu.mp4", reference)
        result["outside_s"] = time.perf_counter() - started
        if torch.cuda.is_available():
            # The CUDA path: the frames as the pipeline leaves them on the GPU; colour, retime, scale
            # and the copy of uint8 frames on the critical path; the encoding in the writer.
            device = torch.device("cuda")
            on_device = torch.from_numpy(frames).to(device)
            renderer._finish_on_device(on_device.clone(), frame_count, Path(folder) / "warm.mp4", reference)  # tables to the GPU once
            torch.cuda.synchronize()
            started = time.perf_counter()
            pixels = renderer._finish_on_device(on_device, frame_count, Path(folder) / "gpu.mp4", reference)
            result["handoff_s"] = time.perf_counter() - started  # ends with the copy to the CPU: synchronised
            started = time.perf_counter()
            renderer._encode_clip(pixels, Path(folder) / "gpu.mp4")
            result["writer_s"] = time.perf_counter() - started
        else:  # the renderer's CPU path: the hand-off is a queue put (microseconds), the writer does it all
            result["handoff_s"], result["writer_s"] = 0.0, result["outside_s"]
    return result


# -- the 3-minute song -----------------------------------------------------------------------


def project_song(results: dict, args) -> dict | None:
    """Seconds for a 3-minute song at this size on this GPU, from the measured parts."""
    if any("projected_s" not in results.get(part, {}) for part in ("reference", "keyframe", "video")):
        return None
    shots = math.ceil(SONG_S / args.shot_s)
    video = results["video"]
    # Each shot generates ceil(shot_s x 16) + 1 frames rounded up to 4k+1: a little more than its length.
    from music2video.render.diffusion import native_frames_needed
    from music2video.render.video_models import VIDEO_MODELS

    entry = VIDEO_MODELS["wan2.1-vace-1.3b"]
    frames_per_shot = entry.round_frames(native_frames_needed(round(args.shot_s * OUTPUT_FPS), OUTPUT_FPS, entry.native_fps))
    generated_s = shots * (frames_per_shot - 1) / entry.native_fps
    # Time per generated second measured on the full 81-frame clip: attention grows faster than
    # the frame count, so shorter shots cost a little less per second (this is an upper figure).
    video_s = generated_s * video["s_per_video_s"]
    speedup = video.get("taylorseer_speedup")
    references_s = args.references * results["reference"]["projected_s"]
    keyframes_s = shots * results["keyframe"]["projected_s"]
    # Work outside the model per shot, scaled from the timed clip by frame count.
    per_shot = (frames_per_shot - 1) / (int(args.frames) - 1)
    outside_s = shots * video["outside_s"] * per_shot
    projection = {
        "shots": shots,
        "references": args.references,
        "frames_per_shot": frames_per_shot,
        "references_s": references_s,
        "keyframes_s": keyframes_s,
        "video_s": video_s,
        "outside_s": outside_s,
        "total_s": references_s + keyframes_s + video_s + outside_s,
    }
    if speedup:
        projection["video_taylorseer_s"] = video_s / speedup
    if "distilled_projected_s" in video:
        projection["video_distilled_s"] = generated_s * video["distilled_projected_s"] / video["clip_s"]
    projection["outside_share"] = outside_s / projection["total_s"]

    # What a user waits for with the speed options on: the fastest video timed, the keyframes as timed.
    fast_video, projection["video_speed"] = next(
        (projection[key], name) for key, name in (("video_distilled_s", "distilled"), ("video_taylorseer_s", "taylorseer"), ("video_s", "full"))
        if key in projection
    )  # fmt: skip
    diffusion_s = references_s + keyframes_s + fast_video
    # Runs that predate the device path have neither: the whole CPU path in the writer, no hand-off.
    handoff = video.get("handoff_s", 0.0) * per_shot
    writer = video.get("writer_s", video["outside_s"]) * per_shot
    shot_diffusion = fast_video / shots
    # Per shot: the hand-off, and the part of the previous clip's write that the next shot's
    # diffusion does not cover; the last clip has no next shot, its whole write waits.
    critical_s = shots * handoff + (shots - 1) * max(0.0, writer - shot_diffusion) + writer
    projection.update(
        fast_diffusion_s=diffusion_s,
        fast_in_line_total_s=diffusion_s + outside_s,
        fast_in_line_outside_share=outside_s / (diffusion_s + outside_s),
        handoff_per_shot_s=handoff,
        writer_per_shot_s=writer,
        diffusion_per_shot_s=shot_diffusion,
        fast_critical_outside_s=critical_s,
        fast_total_s=diffusion_s + critical_s,
        fast_outside_share=critical_s / (diffusion_s + critical_s),
    )
    return projection


def reproject(args) -> int:
    """--from-json: the table and the projection from a saved run, with this script's projection."""
    saved = json.loads(args.from_json.read_text())
    for name in ("shot_s", "references", "frames", "size", "keyframe_speed"):  # the song as that run projected it
        if name in saved.get("args", {}):
            setattr(args, name, type(getattr(args, name))(saved["args"][name]))
    print(f"device: {saved.get('device', '?')} (results read from {args.from_json})")
    results = saved["results"]
    print_summary(results, project_song(results, args), args)
    return 0


def print_summary(results: dict, projection: dict | None, args) -> None:
    print()
    header = f"{'part':<10} {'model':<22} {'s/step':>8} {'steps':>5} {'s each':>8} {'peak GiB':>8}  what"
    print(header)
    print("-" * len(header))
    for part, result in results.items():
        if "error" in result:
            print(f"{part:<10} {result['error']}")
            continue
        print(
            f"{part:<10} {result['model']:<22} {result['s_per_step']:>8.3f} {result['default_steps']:>5} "
            f"{result['projected_s']:>8.1f} {result.get('peak_gib', float('nan')):>8.2f}  {result['what']}"
        )
    video = results.get("video", {})
    if "s_per_video_s" in video:
        print(
            f"\nvideo: {video['s_per_video_s']:.1f} s per second of video at {video['default_steps']} steps; "
            f"outside the model {video['outside_s']:.1f} s per {video['clip_s']:.1f} s clip on the CPU path "
            f"(colour match {video['colour_match_s']:.2f} s)"
            + (
                f"; the renderer's path here: hand-off {video['handoff_s']:.3f} s, writer {video['writer_s']:.2f} s"
                if "writer_s" in video else ""
            )  # fmt: skip
        )
        if "taylorseer_speedup" in video:
            print(f"TaylorSeer cache: {video['taylorseer_speedup']:.2f}x on the video's denoising loop (random weights: indicative)")
    if projection is None:
        print("\nno projection: a part failed or was not run")
        return
    minutes = {k: v / 60 for k, v in projection.items() if k.endswith("_s")}
    print(
        f"\n3-minute song at {args.size}: {projection['references']} references {minutes['references_s']:.1f} min, "
        f"{projection['shots']} keyframes {minutes['keyframes_s']:.1f} min, video ({projection['shots']} shots of "
        f"{projection['frames_per_shot']} frames) {minutes['video_s']:.1f} min"
        + (f" ({minutes['video_taylorseer_s']:.1f} min with TaylorSeer)" if "video_taylorseer_s" in minutes else "")
        + (f" ({minutes['video_distilled_s']:.1f} min distilled)" if "video_distilled_s" in minutes else "")
        + f", outside the models {minutes['outside_s']:.1f} min ({100 * projection['outside_share']:.1f} %): "
        f"total {minutes['total_s']:.1f} min at the video's full steps"
    )
    keyframe_speed = args.keyframe_speed if args.keyframe_speed != "full" else "full steps"
    print(
        f"with the speed options on (keyframes {keyframe_speed}, video {projection['video_speed']}): diffusion "
        f"{minutes['fast_diffusion_s']:.1f} min (references {minutes['references_s']:.1f} + keyframes "
        f"{minutes['keyframes_s']:.1f} + video {minutes['fast_diffusion_s'] - minutes['references_s'] - minutes['keyframes_s']:.1f})"
    )
    print(
        f"  clips written in line: outside the models {minutes['outside_s']:.1f} min, "
        f"{100 * projection['fast_in_line_outside_share']:.1f} % of {minutes['fast_in_line_total_s']:.1f} min"
    )
    print(
        f"  background writer: per shot hand-off {projection['handoff_per_shot_s']:.3f} s + max(0, writer "
        f"{projection['writer_per_shot_s']:.2f} s - next shot's diffusion {projection['diffusion_per_shot_s']:.2f} s), "
        f"plus the last clip's write: {projection['fast_critical_outside_s']:.1f} s on the critical path, "
        f"{100 * projection['fast_outside_share']:.2f} % of {minutes['fast_total_s']:.1f} min"
    )
    if args.tiny:
        print("(tiny models: these figures show that the script works, nothing about a real model)")
    print(
        f"targets: keyframes + video <= 15 min: {minutes['fast_total_s']:.1f} min "
        f"({'met' if minutes['fast_total_s'] <= 15 else 'not met'}); outside the models < 3 %: "
        f"{100 * projection['fast_outside_share']:.2f} % ({'met' if projection['fast_outside_share'] < 0.03 else 'not met'})"
    )


if __name__ == "__main__":
    sys.exit(main())
