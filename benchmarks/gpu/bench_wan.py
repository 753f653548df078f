"""Speed and memory of one Wan 2.1 T2V-1.3B shot on a CUDA GPU, with and without speed options.

The model is built from the real 1.3B configuration with random weights (no download): a
random-weight model does the same arithmetic as the trained one, so its time and memory are the
real ones. The UMT5-XXL text encoder (5.7B parameters, run once per shot) is not built: the
pipeline gets random prompt embeddings of the shape it would produce, (1, 512, 4096), so the
figures below leave out text encoding (well under a second per shot on a datacenter GPU).

For one 5 s 480p clip (832x480, 81 frames, classifier-free guidance on, bf16) it prints:

* seconds per denoising step, diffusion total, VAE decode time, peak GPU memory,
* the same for each speed option: first-block cache, TaylorSeer cache, torch.compile of the
  transformer blocks (compile time reported apart),
* the work outside the diffusion model for one shot (retime to 24 fps, scale and crop, H.264
  encode with ClipWriter) as a share of the shot's total.

Step caches decide what to skip from the model's own activations, so with random weights they
may skip more or fewer steps than with the trained model: the "attn passes" column says how
many of the last block's attention passes really ran (two per step with guidance), and
"latent diff" how far the result moved from the baseline. Treat cache speedups as indicative;
compile speedups are exact.

    PYTHONPATH=src python benchmarks/gpu/bench_wan.py              # 20 steps, < 7 min on an H100
    PYTHONPATH=src python benchmarks/gpu/bench_wan.py --steps 50   # the model's default steps
    PYTHONPATH=src python benchmarks/gpu/bench_wan.py --tiny       # tiny configs, CPU is fine

Without a CUDA GPU (and without --tiny) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Runnable as a plain script from the repository root, with or without PYTHONPATH=src.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json (diffusers' conversion script).
WAN_1_3B_TRANSFORMER = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,  # hidden size 12 x 128 = 1536
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}
# Wan-AI/Wan2.1-T2V-1.3B-Diffusers vae/config.json: AutoencoderKLWan's defaults.
WAN_VAE = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],
}
TEXT_TOKENS = 512  # UMT5 sequence length Wan pads prompts to
TEXT_DIM = 4096  # UMT5-XXL hidden size
GUIDANCE = 5.0  # > 1: two transformer passes per step, as in real use
FLOW_SHIFT = 3.0  # the 1.3B checkpoint's UniPC scheduler setting

# --tiny: the shapes of diffusers' own Wan pipeline tests, for a functional run on a CPU.
TINY_TRANSFORMER = {
    **WAN_1_3B_TRANSFORMER,
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "text_dim": 32,
    "ffn_dim": 32,
    "num_layers": 2,
    "rope_max_seq_len": 32,
}
TINY_VAE = {**WAN_VAE, "base_dim": 3, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1}
TINY_TEXT = (16, 32)  # tokens, dim

VARIANTS = ("baseline", "first-block", "taylorseer", "compile")
OUTPUT_FPS = 24.0  # the shot's clip is retimed from 16 fps to this rate
DEFAULT_BUDGET_S = 390.0  # stop starting variants after this long (H100 lease is short)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="denoising steps per variant (default 20, 3 with --tiny; the model's default is 50)",
    )
    parser.add_argument("--frames", type=int, default=81, help="frames per clip, 4k+1 (81 = 5 s at 16 fps)")
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--output", default="1280x720", help="clip size for the outside-the-model overhead, WxH")
    parser.add_argument("--attention-backend", default=None, help="diffusers attention backend for every variant")
    parser.add_argument(
        "--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds after which no new variant starts"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny configs (CPU is fine): checks that the script works")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    # Line by line, so a run cut short by a time limit still shows what it measured.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    picked = pick_device(args.tiny)
    if picked is None:
        return 0
    device, dtype, device_name = picked
    import torch

    if args.tiny:
        args.frames, args.width, args.height = 9, 64, 48
        args.output = "64x36"
    if args.steps is None:
        args.steps = 3 if args.tiny else 20
    started = time.perf_counter()
    print(f"device: {device_name}, dtype {str(dtype).removeprefix('torch.')}, torch {torch.__version__}")
    print(f"clip: {args.width}x{args.height}, {args.frames} frames, {args.steps} steps, guidance {GUIDANCE}")

    pipe, embeds = build_pipeline(args.tiny, device, dtype)
    if args.attention_backend:
        pipe.transformer.set_attention_backend(args.attention_backend)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    print(
        f"built random-weight transformer ({params / 1e9:.2f} B parameters) and VAE in {time.perf_counter() - started:.1f} s"
    )

    warm_up(pipe, embeds, args, device)
    results: list[dict] = []
    baseline_latents = None
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    for name in variants:
        elapsed = time.perf_counter() - started
        estimate = results[0]["diffusion_s"] * 1.3 if results and "diffusion_s" in results[0] else 0.0
        if elapsed + estimate > args.budget:
            results.append({"variant": name, "error": f"skipped: {elapsed:.0f} s spent, budget {args.budget:.0f} s"})
            continue
        try:
            result, latents = run_variant(name, pipe, embeds, args, device, baseline_latents)
            if name == "baseline":
                baseline_latents = latents
                result.update(measure_decode_and_overhead(pipe, latents, args, device))
            results.append(result)
            print(f"{name}: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})}")
        except Exception as error:  # one failing option must not hide the others
            traceback.print_exc()
            results.append(
                {
                    "variant": name,
                    "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                }
            )
        finally:
            disable_cache(pipe)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    print_table(results, args)
    print(f"total benchmark time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"device": device_name, "args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                indent=2,
            )
        )
    return 0


def pick_device(tiny: bool):
    """``(device, dtype, device name)``: the CUDA GPU in bfloat16, or with ``tiny`` and no GPU the
    CPU in float32; None (after saying why) when there is no GPU and no ``tiny``."""
    import torch

    if not torch.cuda.is_available() and not tiny:
        print("No CUDA GPU is present: nothing to benchmark (use --tiny for a functional run on the CPU).")
        return None
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16, torch.cuda.get_device_name()
    return torch.device("cpu"), torch.float32, "cpu"


def build_pipeline(tiny: bool, device, dtype):
    """A WanPipeline without tokenizer and text encoder, plus random prompt embeddings."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    torch.manual_seed(0)
    # Built directly on the device: initialising 1.3B parameters on a CPU takes a minute.
    with torch.device(device):
        transformer = cast_like_from_pretrained(
            WanTransformer3DModel(**(TINY_TRANSFORMER if tiny else WAN_1_3B_TRANSFORMER)), dtype
        )
        vae = cast_like_from_pretrained(AutoencoderKLWan(**(TINY_VAE if tiny else WAN_VAE)), dtype)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=FLOW_SHIFT)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    tokens, dim = TINY_TEXT if tiny else (TEXT_TOKENS, TEXT_DIM)
    generator = torch.Generator(device).manual_seed(1)
    embeds = {
        "prompt_embeds": torch.randn(1, tokens, dim, generator=generator, device=device, dtype=dtype),
        "negative_prompt_embeds": torch.randn(1, tokens, dim, generator=generator, device=device, dtype=dtype),
    }
    return pipe, embeds


def cast_like_from_pretrained(model, dtype):
    """Cast to ``dtype`` except the parameters ``from_pretrained(dtype=...)`` keeps in float32.

    diffusers keeps a model's ``_keep_in_fp32_modules`` (Wan: rope, time embedder, norms ...)
    in float32 when loading; a plain ``.to(dtype)`` would not, and would time another model.
    """
    import torch

    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point():
            kept = any(part in name.split(".") for part in keep)
            tensor.data = tensor.data.to(torch.float32 if kept else dtype)
    return model


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def diffuse(pipe, embeds, args, device, steps: int, step_times: list[float] | None = None):
    """Run the denoising loop only (latents out); record the wall time at the end of each step."""
    import torch

    def on_step_end(_pipe, _step, _timestep, callback_kwargs):
        if step_times is not None:
            synchronize(device)
            step_times.append(time.perf_counter())
        return callback_kwargs

    return pipe(
        **embeds,
        height=args.height,
        width=args.width,
        num_frames=args.frames,
        num_inference_steps=steps,
        guidance_scale=GUIDANCE,
        generator=torch.Generator(device).manual_seed(0),
        output_type="latent",
        callback_on_step_end=on_step_end,
    ).frames


def warm_up(pipe, embeds, args, device) -> None:
    """One step at full size, so CUDA context, kernels and allocator are ready before timing."""
    started = time.perf_counter()
    diffuse(pipe, embeds, args, device, steps=1)
    synchronize(device)
    print(f"warm-up step: {time.perf_counter() - started:.1f} s")


class PassCounter:
    """Counts the self-attention passes the transformer's last block really computes.

    The hook sits on the query projection inside the attention: a step cache that skips the
    block (first-block cache) or predicts the attention output (TaylorSeer) never reaches it,
    while a hook on the block itself would fire either way.
    """

    def __init__(self, pipe):
        self.count = 0
        self.handle = pipe.transformer.blocks[-1].attn1.to_q.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.count += 1

    def remove(self) -> None:
        self.handle.remove()


def run_variant(name: str, pipe, embeds, args, device, baseline_latents):
    import torch
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    result: dict = {"variant": name}
    transformer = pipe.transformer
    if name == "first-block":
        transformer.enable_cache(FirstBlockCacheConfig(threshold=0.05))
    elif name == "taylorseer":
        # Lite mode: on predicted steps skip every block and extrapolate the output projection.
        # (The default patterns look for modules named '...attn'; Wan's are attn1/attn2, so
        # without lite mode nothing would be cached.)
        transformer.enable_cache(TaylorSeerCacheConfig(taylor_factors_dtype=torch.float32, use_lite_mode=True))
    elif name == "compile":
        if device.type != "cuda":
            return {"variant": name, "error": "skipped on CPU"}, None
        transformer.compile_repeated_blocks(fullgraph=True)
        compile_started = time.perf_counter()
        diffuse(pipe, embeds, args, device, steps=2)  # compiles (and recompiles for CFG's second pass)
        synchronize(device)
        result["compile_s"] = time.perf_counter() - compile_started
    elif name != "baseline":
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")

    counter = PassCounter(pipe) if name != "compile" else None  # a Python hook would break fullgraph
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step_times: list[float] = []
    synchronize(device)
    started = time.perf_counter()
    latents = diffuse(pipe, embeds, args, device, args.steps, step_times)
    synchronize(device)
    result["diffusion_s"] = time.perf_counter() - started
    steps = [b - a for a, b in zip([started, *step_times[:-1]], step_times)]
    # The first step also prepares latents and timesteps; the rest are steady-state steps.
    steady = steps[1:] or steps
    result["s_per_step"] = sum(steady) / len(steady)
    if device.type == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if counter is not None:
        result["attn_passes"] = f"{counter.count}/{2 * args.steps}"
        counter.remove()
    if baseline_latents is not None:
        difference = (latents.float() - baseline_latents.float()).norm() / baseline_latents.float().norm()
        result["latent_diff"] = float(difference)
    return result, latents


def disable_cache(pipe) -> None:
    if getattr(pipe.transformer, "is_cache_enabled", False):
        pipe.transformer.disable_cache()


def measure_decode_and_overhead(pipe, latents, args, device) -> dict:
    """VAE decode as the pipeline does it, then retime + resize + encode one clip with ClipWriter."""
    import torch

    from music2video.render.diffusion import cover_and_crop, retime_frames, retime_plan
    from music2video.settings import parse_resolution
    from music2video.videofile import ClipWriter

    vae = pipe.vae
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synchronize(device)
    started = time.perf_counter()
    with torch.no_grad():
        z = latents.to(vae.dtype)
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(z.device, z.dtype)
        inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(
            z.device, z.dtype
        )
        video = vae.decode(z / inverse_std + mean, return_dict=False)[0]
        frames = pipe.video_processor.postprocess_video(video, output_type="np")[0]
    synchronize(device)
    result = {"decode_s": time.perf_counter() - started}
    if device.type == "cuda":
        result["decode_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30

    width, height = parse_resolution(args.output)
    native_fps = 16.0
    frame_count = round((len(frames) - 1) / native_fps * OUTPUT_FPS)
    started = time.perf_counter()
    retimed = retime_frames(frames, retime_plan(frame_count, OUTPUT_FPS, native_fps, len(frames)))
    pixels = cover_and_crop(retimed, width, height)
    with (
        tempfile.TemporaryDirectory() as folder,
        ClipWriter(Path(folder) / "clip.mp4", width, height, OUTPUT_FPS) as writer,
    ):
        for frame in pixels:
            writer.write(frame)
    result["overhead_s"] = time.perf_counter() - started
    result["overhead_frames"] = f"{frame_count} at {width}x{height}"
    return result


def print_table(results: list[dict], args) -> None:
    baseline = next((r for r in results if r["variant"] == "baseline" and "diffusion_s" in r), None)
    print()
    header = f"{'variant':<12} {'s/step':>7} {'diffusion s':>11} {'speedup':>7} {'peak GiB':>8} {'attn passes':>11} {'latent diff':>11} {'compile s':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['variant']:<12} {r['error']}")
            continue
        speedup = baseline["diffusion_s"] / r["diffusion_s"] if baseline else float("nan")
        print(
            f"{r['variant']:<12} {r['s_per_step']:>7.3f} {r['diffusion_s']:>11.1f} {speedup:>6.2f}x "
            f"{r.get('peak_gib', float('nan')):>8.2f} {r.get('attn_passes', '-'):>11} "
            f"{r.get('latent_diff', 0.0):>11.4f} {r.get('compile_s', float('nan')):>9.1f}"
        )
    if baseline:
        frames_steps = args.frames * args.steps
        print()
        print(
            f"seconds per frame-step (baseline, for estimate.SECONDS_PER_FRAME_STEP): {baseline['diffusion_s'] / frames_steps:.5f}"
        )
        print(f"projected 50-step diffusion for this clip: {baseline['s_per_step'] * 50:.0f} s")
        decode, overhead = baseline.get("decode_s"), baseline.get("overhead_s")
        if decode is not None:
            print(f"VAE decode: {decode:.1f} s, peak {baseline.get('decode_peak_gib', float('nan')):.2f} GiB")
        if overhead is not None:
            shot_total = baseline["diffusion_s"] + (decode or 0.0) + overhead
            print(
                f"outside the model (retime + resize + encode, {baseline['overhead_frames']}): {overhead:.1f} s, "
                f"{100 * overhead / shot_total:.1f}% of the shot's {shot_total:.0f} s at {args.steps} steps"
            )


if __name__ == "__main__":
    sys.exit(main())
