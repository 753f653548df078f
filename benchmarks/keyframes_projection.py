"""Projected time of the image-conditioned path for a 3-minute song, without and with the speed options.

ESTIMATES, not measurements: the figures come from music2video.estimate, the same tables that
``--dry-run`` prints (image models: from their size; the video model: from the Wan 2.1 1.3B
measurement on an H100 in bench_wan.py, scaled for VACE). Measure on a GPU with
benchmarks/gpu/bench_keyframes_video.py. Runs on any machine, in a second.

    PYTHONPATH=src python benchmarks/keyframes_projection.py [--device "NVIDIA H100 80GB HBM3"] [--shots 60]

Prints, for the default models at 832x480 (references at 1024x1024): references and keyframes
at full speed (Qwen-Image 50 steps, Qwen-Image-Edit-2509 40 steps, true CFG) and with
``keyframes.speed`` lightning-8 / lightning-4 and ``keyframes.reference_pixels``; then the video
(Wan 2.1 VACE 1.3B, 50 steps, with and without the TaylorSeer cache, and with
``video.speed`` distilled: the CausVid LoRA's few steps at guidance 1) and the totals against the
issue's target of 15 minutes for keyframes + video.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TARGET_MIN = 15.0
SONG_S = 180.0
OUTPUT_FPS = 24.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="NVIDIA H100 80GB HBM3", help="GPU name as torch.cuda.get_device_name() gives it")
    parser.add_argument("--shots", type=int, default=None, help="shots of the song (default: music2video.estimate's 60)")
    args = parser.parse_args()

    from music2video.estimate import PROJECTION_SHOTS, estimate_render_seconds, keyframe_projection
    from music2video.render.video_models import VIDEO_MODELS

    shots = args.shots or PROJECTION_SHOTS
    rows = keyframe_projection(args.device, shots=shots)
    video = VIDEO_MODELS["wan2.1-vace-1.3b"]
    frames = [round(SONG_S / shots * OUTPUT_FPS)] * shots
    video_s = {
        cache: estimate_render_seconds(video, frames, None, args.device, output_fps=OUTPUT_FPS, size=(832, 480), cache=cache)
        for cache in ("none", "taylorseer")
    }
    lora = video.distill_lora  # --video-speed distilled: the LoRA's steps in one pass (guidance 1)
    video_s["distilled"] = estimate_render_seconds(
        video, frames, lora.steps, args.device, guidance=lora.guidance, output_fps=OUTPUT_FPS, size=(832, 480)
    )
    print(f"ESTIMATES (model-size and scaled figures, not measurements) on {args.device}: a 3-minute song, {shots} shots, 832x480")
    print(f"video: {video.name}, {video.default_steps} steps: {video_s['none'] / 60:.1f} min; TaylorSeer cache {video_s['taylorseer'] / 60:.1f} min; "
          f"distilled ({lora.steps} steps, guidance {lora.guidance:g}) {video_s['distilled'] / 60:.1f} min\n")
    header = f"{'keyframes option':<45} {'refs':>6} {'keyframes':>10} {'+ video':>8} {'+ video (TaylorSeer)':>21} {'+ video (distilled)':>20}"
    print(header)
    print("-" * len(header))
    for name, references_s, keyframes_s in rows:
        images_min = (references_s + keyframes_s) / 60
        print(
            f"{name:<45} {references_s / 60:>5.1f}m {keyframes_s / 60:>9.1f}m {images_min + video_s['none'] / 60:>7.1f}m "
            f"{images_min + video_s['taylorseer'] / 60:>20.1f}m {images_min + video_s['distilled'] / 60:>19.1f}m"
        )
    print(f"\ntarget: keyframes + video <= {TARGET_MIN:g} min with the speed options on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
