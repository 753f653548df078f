"""The whole diffusers render stage on a CUDA GPU: a storyboard of shots through the real code.

``bench_wan.py`` times one generation; this script times what a user waits for: the render
driver (:func:`music2video.render.render_storyboard`) with :class:`DiffusersRenderer` loading a
saved Wan 2.1 1.3B pipeline through ``from_pretrained`` and rendering a storyboard of shots,
retiming, resizing and encoding each clip (in the background, while the next shot generates).

The transformer and VAE have the real 1.3B configuration with random weights (same compute as
the trained model). The UMT5-XXL text encoder (5.7B parameters, once per shot, well under a
second) is replaced by a one-layer encoder of the same output width, so the figures leave out
text encoding.

Prints, per variant (baseline, TaylorSeer step cache):

* total render time, the time inside the pipeline calls, and the rest ("overhead": retiming,
  resizing, encoding that did not overlap, bookkeeping) as a share of the total,
* seconds of render per second of video, and the projection for a 3-minute song.

    PYTHONPATH=src:tests python benchmarks/gpu/bench_render.py [--shots 6] [--steps 20]
    PYTHONPATH=src:tests python benchmarks/gpu/bench_render.py --tiny   # tiny models, CPU is fine
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

SHOT_S = 3.0  # a typical shot: one and a half bars at 120 bpm
SONG_S = 180.0


def build_and_save(folder: Path, tiny: bool, device: str) -> Path:
    """A WanPipeline with the real (or tiny) transformer and VAE, saved with save_pretrained."""
    import torch
    from bench_wan import TINY_TRANSFORMER, TINY_VAE, WAN_1_3B_TRANSFORMER, WAN_VAE, FLOW_SHIFT
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from tiny_video_models import tiny_t5_tokenizer
    from transformers import UMT5Config, UMT5EncoderModel

    transformer_config = TINY_TRANSFORMER if tiny else WAN_1_3B_TRANSFORMER
    tokenizer = tiny_t5_tokenizer()
    torch.manual_seed(0)
    with torch.device(device):
        transformer = WanTransformer3DModel(**transformer_config)
        vae = AutoencoderKLWan(**(TINY_VAE if tiny else WAN_VAE))
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=len(tokenizer),
                d_model=transformer_config["text_dim"],
                d_kv=64,
                d_ff=256,
                num_layers=1,
                num_heads=8,
                relative_attention_num_buckets=8,
            )
        )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=FLOW_SHIFT)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)
    pipe.to(torch.bfloat16 if not tiny else torch.float32)
    pipe.save_pretrained(folder)
    return folder


def storyboard(shots: int):
    from music2video.artifacts import Analysis, Section, SectionTreatment, Storyboard, StoryboardShot, StyleBible

    entries = [
        StoryboardShot(
            id=f"shot-{i + 1:03d}",
            start_s=i * SHOT_S,
            end_s=(i + 1) * SHOT_S,
            section_index=0,
            scene="a figure walks through a neon city at night",
            prompt=f"Cinematic, 35mm film. A figure in a red coat walks through a neon city at night, shot {i + 1}.",
            seed=i,
            palette=["#101020", "#ff3060"],
            motif="grid",
        )
        for i in range(shots)
    ]
    duration = shots * SHOT_S
    board = Storyboard(
        writer="bench",
        title="bench",
        concept="bench",
        style=StyleBible(look="cinematic", palette=["#101020"]),
        sections=[SectionTreatment(section_index=0, label="A", role="verse", palette=["#101020"], motif="grid")],
        shots=entries,
    )
    analysis = Analysis(
        duration_s=duration,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=[i * 0.5 for i in range(int(duration * 2))],
        downbeats_s=[i * 2.0 for i in range(int(duration / 2))],
        sections=[Section(index=0, start_s=0.0, end_s=duration, label="A", role="verse", energy=0.5)],
        curve_rate_hz=10.0,
        energy=[0.5] * int(duration * 10),
        brightness=[0.5] * int(duration * 10),
        onset_strength=[0.5] * int(duration * 10),
    )
    return board, analysis


def run_variant(folder: Path, work: Path, args, cache: str | None, device: str) -> dict:
    import torch
    from diffusers import WanPipeline

    from music2video.render import render_storyboard
    from music2video.render.diffusion import DiffusersRenderer
    from music2video.runfolder import RunFolder
    from music2video.settings import VideoModelSettings

    inside = [0.0]
    original_call = WanPipeline.__call__

    def timed_call(self, *a, **k):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        try:
            return original_call(self, *a, **k)
        finally:
            if device == "cuda":
                torch.cuda.synchronize()
            inside[0] += time.perf_counter() - started

    settings = VideoModelSettings(
        model=str(folder),
        device=device,
        steps=args.steps,
        generation_size=None if not args.tiny else "32x32",
        cache=cache or "none",
    )
    renderer = DiffusersRenderer(settings, args.width, args.height, 24.0)
    board, analysis = storyboard(args.shots)
    warm_board = board.model_copy(update={"shots": board.shots[:1]})
    # The pipeline loads once per run, for every shot: load it outside the timing, and keep
    # render_storyboard from loading and freeing it again.
    renderer.__enter__()
    enter, exit_ = DiffusersRenderer.__enter__, DiffusersRenderer.__exit__
    DiffusersRenderer.__enter__ = lambda self: self
    DiffusersRenderer.__exit__ = lambda self, *exc: None
    WanPipeline.__call__ = timed_call
    try:
        # Warm-up: one shot, not timed (CUDA kernels, the allocator, the encoder thread).
        render_storyboard(renderer, warm_board, analysis, RunFolder(work / "warm"), 24.0, args.width, args.height)
        inside[0] = 0.0
        started = time.perf_counter()
        result = render_storyboard(renderer, board, analysis, RunFolder(work), 24.0, args.width, args.height)
        total = time.perf_counter() - started
    finally:
        WanPipeline.__call__ = original_call
        DiffusersRenderer.__enter__, DiffusersRenderer.__exit__ = enter, exit_
        renderer.__exit__(None, None, None)
    video_s = args.shots * SHOT_S
    return {
        "variant": cache or "baseline",
        "shots": args.shots,
        "total_s": total,
        "in_pipeline_s": inside[0],
        "overhead_share": (total - inside[0]) / total,
        "render_s_per_video_s": total / video_s,
        "projected_3min_min": total / video_s * SONG_S / 60,
        "failed": len(result.failed_shots),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, default=6, help=f"shots of {SHOT_S:g} s to render")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--variants", default="baseline,taylorseer")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU: checks the script")
    args = parser.parse_args()
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if device == "cpu" and not args.tiny:
        print("no CUDA GPU: use --tiny to check the script on a CPU")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_and_save(Path(tmp) / "wan", args.tiny, device)
        if device == "cuda":
            torch.cuda.empty_cache()
        print(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; {args.shots} shots of {SHOT_S:g} s, "
              f"{args.steps} steps, output {args.width}x{args.height} @ 24 fps")
        for variant in args.variants.split(","):
            cache = None if variant == "baseline" else variant
            row = run_variant(folder, Path(tmp) / f"run-{variant}", args, cache, device)
            print(
                f"{row['variant']:11s} total {row['total_s']:7.1f} s  in pipeline {row['in_pipeline_s']:7.1f} s  "
                f"overhead {100 * row['overhead_share']:5.1f} %  {row['render_s_per_video_s']:6.2f} s per video s  "
                f"3-min song ≈ {row['projected_3min_min']:5.1f} min  failed {row['failed']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
