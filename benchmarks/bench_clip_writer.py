"""Speed of the renderer's clip writer (the CPU work beside the diffusion model), exact vs table colour matching.

For a synthetic drifting clip of 41 and of 81 frames at 832x480 (Wan's 16 fps; 2.5 s and 5 s of
shot), prints the median seconds over ``--runs`` runs of

* colour matching (drift before, fit, apply in chunks, drift after: ``DiffusersRenderer._match_colour``)
  with the exact Lab round trip per pixel (``ColourTransform.apply_exact``, the old path) and with
  the per-frame lookup table (``ColourTransform.apply``, the new one),
* the whole clip write (``DiffusersRenderer._write_clip``: colour, retime to 24 fps, scale, H.264
  to MP4) with each,

and the largest difference between the two outputs in levels of 255, and the load average.

    python benchmarks/bench_clip_writer.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

OUTPUT_FPS = 24.0
NATIVE_FPS = 16.0
WIDTH, HEIGHT = 832, 480


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from PIL import Image
    from test_colour import textured_picture, with_cast

    from music2video.render import colour
    from music2video.render.diffusion import DiffusersRenderer

    reference = textured_picture(0, HEIGHT, WIDTH)
    work = Path(tempfile.mkdtemp(prefix="bench-clip-writer-"))
    reference_path = work / "reference.png"
    Image.fromarray((reference * 255).round().astype(np.uint8)).save(reference_path)
    writer = SimpleNamespace(
        settings=SimpleNamespace(colour_match="lab"),
        entry=SimpleNamespace(native_fps=NATIVE_FPS),
        fps=OUTPUT_FPS,
        retime="nearest",
        width=WIDTH,
        height=HEIGHT,
    )
    writer._match_colour = partial(DiffusersRenderer._match_colour, writer)
    methods = {"exact": colour.ColourTransform.apply_exact, "table": colour.ColourTransform.apply}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    for native_frames in (41, 81):
        clip = with_cast(reference, native_frames)
        frame_count = round(native_frames / NATIVE_FPS * OUTPUT_FPS)
        results: dict[str, dict[str, list[float]]] = {name: {"colour": [], "write": []} for name in methods}
        outputs = {}
        for _ in range(args.runs):
            for name, method in methods.items():  # interleaved, so that load changes hit both alike
                colour.ColourTransform.apply = method
                frames = clip.copy()
                started = time.perf_counter()
                writer._match_colour(frames, reference_path, work / f"{name}.mp4")
                results[name]["colour"].append(time.perf_counter() - started)
                outputs[name] = frames
                frames = clip.copy()
                started = time.perf_counter()
                DiffusersRenderer._write_clip(writer, frames, frame_count, work / f"{name}.mp4", reference_path)
                results[name]["write"].append(time.perf_counter() - started)
        colour.ColourTransform.apply = methods["table"]
        levels = np.abs(outputs["table"] - outputs["exact"]) * 255
        print(f"{native_frames} frames at {WIDTH}x{HEIGHT} -> {frame_count} at {OUTPUT_FPS:g} fps, median of {args.runs}:")
        for part in ("colour", "write"):
            old, new = (statistics.median(results[name][part]) for name in methods)
            print(f"  {part:6s}: exact {old:6.2f} s   table {new:6.2f} s   ({old / new:.1f}x)")
        print(f"  table vs exact: max {levels.max():.2f} levels of 255, mean {levels.mean():.3f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
