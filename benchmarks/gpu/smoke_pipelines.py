"""The clap and lalm pipelines end to end on a CUDA GPU, with tiny random-weight models.

The test suite runs these pipelines on the CPU; this script runs the same code with
``--device cuda`` and the default dtype (bfloat16 on CUDA), so that device placement, dtype
casts and memory freeing between models are exercised where users run them. It prints one
line per pipeline and exits non-zero if any failed. Without CUDA it says so and exits 0.

    PYTHONPATH=src:tests python benchmarks/gpu/smoke_pipelines.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def main() -> int:
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to check the script itself")
    device = parser.parse_args().device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    import av
    import soundfile as sf

    from music2video import make_video
    from music2video.demo import synthesize_demo_song
    from tiny_clap import build_tiny_clap
    from tiny_lalm import build_tiny_qwen2_audio
    from tiny_llm import build_tiny_llm
    from tiny_video_models import build_tiny_wan
    from tiny_whisper import build_tiny_whisper

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        song = root / "song.wav"
        synthesize_demo_song(song, duration_s=16.0)
        models = {
            "clap": build_tiny_clap(root / "clap"),
            "lalm": build_tiny_qwen2_audio(root / "lalm"),
            "llm": build_tiny_llm(root / "llm"),
            "video": build_tiny_wan(root / "wan"),
            "whisper": build_tiny_whisper(root / "whisper"),
        }
        common = dict(
            width=64,
            height=48,
            fps=12,
            llm={"model": str(models["llm"]), "device": device},
            video={"model": str(models["video"]), "device": device, "steps": 2, "generation_size": "32x32"},
            lyrics={"model": str(models["whisper"]), "device": device},
            evaluate={"enabled": False},
        )
        runs = {
            "clap": dict(pipeline="clap", clap={"model": str(models["clap"]), "device": device}),
            "lalm": dict(pipeline="lalm", lalm={"model": str(models["lalm"]), "device": device}),
        }
        for name, settings in runs.items():
            started = time.perf_counter()
            try:
                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                result = make_video(song, root / f"{name}.mp4", **common, **settings)
                video = result.video_path if result.video_path.is_absolute() else result.run_folder / result.video_path
                with av.open(str(video)) as container:
                    frames = sum(1 for _ in container.decode(video=0))
                expected = round(sf.info(str(song)).duration * 12)
                ok = frames == expected and not result.render.failed_shots
                failures += not ok
                print(
                    f"{name}: {'ok' if ok else 'WRONG'} in {time.perf_counter() - started:.1f} s; "
                    f"{frames}/{expected} frames, failed shots {result.render.failed_shots or 'none'}, "
                    f"peak GPU {torch.cuda.max_memory_allocated() / 2**20 if device.startswith('cuda') else 0:.0f} MiB, "
                    f"memory left allocated {torch.cuda.memory_allocated() / 2**20 if device.startswith('cuda') else 0:.0f} MiB; "
                    f"warnings: {len(result.descriptions.warnings)} listener, {len(result.storyboard.warnings)} writer"
                )
            except Exception:  # report every pipeline, then fail
                failures += 1
                print(f"{name}: FAILED")
                traceback.print_exc()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
