"""Wall time of the render stage with and without the background clip writer (tiny Wan VACE, CPU).

Renders ``--shots`` shots of ``--shot-s`` seconds with a tiny random-weight Wan VACE pipeline
(built and saved here, loaded through the renderer's real code), each started from a keyframe and
colour-matched to it, at 832x480 output, 24 fps, generated at ``--generate`` (default 64x64: the
tiny VAE is slow on a CPU at larger sizes; the writer scales every frame up to 832x480 and
encodes it, colour-matching at the generation size). Twice per run,
interleaved (each first in turn): with the writer in a background thread (the default, ``write_in_background=True``)
and with each clip written before the next shot starts (``False``). Prints the medians over
``--runs`` runs of the stage's wall time, the generation and write time per shot (measured in
the run written in line), the overlap's saving, and the ideal with two workers that never slow
each other down (the first generation, then the slower of generation and write per shot, then
the last write).

The tiny model's steps (``--steps``) set how long a generation takes; overlap helps most where
it is about as long as the write (``--steps 24`` here). On a 2-core machine the writer's encoding and the
generation share the cores, so the saving is smaller than on a GPU host, where generation runs on
the GPU.

    PYTHONPATH=src python benchmarks/bench_render_overlap.py [--shots 6] [--runs 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

WIDTH, HEIGHT, FPS = 832, 480, 24.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=6)
    parser.add_argument("--shot-s", type=float, default=2.5, help="seconds per shot (2.5: 60 frames out, 41 generated)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="denoising steps of the tiny model")
    parser.add_argument("--generate", default="64x64", help="generation size WxH of the tiny model")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image
    from test_render_diffusion import make_analysis, make_shot, make_storyboard
    from tiny_video_models import build_tiny_wan_vace

    from music2video.render import render_storyboard
    from music2video.render import diffusion as diffusion_module
    from music2video.render.diffusion import DiffusersRenderer
    from music2video.render.video_models import resolve_video_model
    from music2video.runfolder import RunFolder
    from music2video.settings import VideoModelSettings, parse_resolution

    import music2video.torch_device

    music2video.torch_device.free_memory = lambda: None  # its gc.collect is not what is measured here
    gen_width, gen_height = parse_resolution(args.generate)
    work = Path(tempfile.mkdtemp(prefix="bench-overlap-"))
    model = build_tiny_wan_vace(work / "model")
    entry = dataclasses.replace(resolve_video_model(str(model)), buckets=((gen_width, gen_height),))
    rng = np.random.default_rng(0)
    keyframes = {}
    shots = []
    for index in range(args.shots):
        shot = make_shot(start_s=index * args.shot_s, end_s=(index + 1) * args.shot_s, seed=index)
        shots.append(shot.model_copy(update={"id": f"shot-{index + 1:03d}"}))
        picture = np.clip(rng.normal(128, 40, (gen_height, gen_width, 3)), 0, 255).astype(np.uint8)
        keyframes[index] = work / f"key-{index}.png"
        Image.fromarray(picture).save(keyframes[index])
    storyboard = make_storyboard(shots)
    analysis = make_analysis(args.shots * args.shot_s)
    settings = VideoModelSettings(model=str(model), steps=args.steps, device="cpu")

    # Per-shot parts, timed inside the renderer (the run written in line gives them cleanly).
    parts: dict[str, list[float]] = {"generate": [], "write": []}
    generate, write = DiffusersRenderer._generate_with_memory_fallback, DiffusersRenderer._write_clip
    enter = DiffusersRenderer.__enter__

    def timed(name, function):
        def wrapper(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                parts[name].append(time.perf_counter() - started)

        return wrapper

    DiffusersRenderer._generate_with_memory_fallback = timed("generate", generate)
    DiffusersRenderer._write_clip = timed("write", write)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    # Warm-up: the first pipeline call and the first encoder pay one-off costs that neither variant should.
    with DiffusersRenderer(settings, WIDTH, HEIGHT, FPS, video_model=entry) as renderer:
        renderer.render_shot(shots[0], storyboard, analysis, round(args.shot_s * FPS), work / "warm-up.mp4")
        renderer.finish()
    walls: dict[bool, list[float]] = {True: [], False: []}
    in_line_parts: dict[str, list[float]] = {"generate": [], "write": []}
    for run_index in range(args.runs):
        # Interleaved, each first in turn, so that load changes (other users of the machine) hit both alike.
        for background in (False, True) if run_index % 2 == 0 else (True, False):
            for values in parts.values():
                values.clear()
            run = RunFolder(work / f"run-{run_index}-{background}")
            renderer = DiffusersRenderer(settings, WIDTH, HEIGHT, FPS, video_model=entry, write_in_background=background)
            renderer.__enter__()  # load outside the timed part; the executor's 'with' then only renders
            DiffusersRenderer.__enter__ = lambda self: self
            try:
                started = time.perf_counter()
                result = render_storyboard(renderer, storyboard, analysis, run, FPS, WIDTH, HEIGHT, keyframes=keyframes)
                walls[background].append(time.perf_counter() - started)
            finally:
                DiffusersRenderer.__enter__ = enter
            print(
                f"  run {run_index + 1}, {'background writer' if background else 'written in line'}: {walls[background][-1]:.2f} s; "
                + ", ".join(f"{name} {statistics.median(values):.2f} s a shot ({' '.join(f'{v:.1f}' for v in values)})" for name, values in parts.items())
            )
            assert not result.failed_shots, result.failed_shots
            if not background:
                for name, values in parts.items():
                    in_line_parts[name].extend(values)
    assert diffusion_module.MAX_PENDING_WRITES == 1
    generation = statistics.median(in_line_parts["generate"])
    writing = statistics.median(in_line_parts["write"])
    in_line, overlapped = statistics.median(walls[False]), statistics.median(walls[True])
    # Every write hidden: the first generation, then whichever of generation and write is slower, then the last write.
    ideal = generation + (args.shots - 1) * max(generation, writing) + writing
    print(
        f"{args.shots} shots of {args.shot_s:g} s ({round(args.shot_s * FPS)} frames at {WIDTH}x{HEIGHT}, generated at "
        f"{gen_width}x{gen_height}, {args.steps} steps), median of {args.runs} runs:"
    )
    print(f"  per shot: generation {generation:.2f} s, write (colour, retime, scale, encode) {writing:.2f} s")
    print(f"  written in line:       {in_line:6.2f} s   (runs: {', '.join(f'{w:.2f}' for w in walls[False])})")
    print(f"  background writer:     {overlapped:6.2f} s   (runs: {', '.join(f'{w:.2f}' for w in walls[True])})")
    print(f"  saving {in_line - overlapped:.2f} s ({100 * (1 - overlapped / in_line):.0f} %); with no contention between the two it would take {ideal:.2f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
