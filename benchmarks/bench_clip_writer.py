"""Speed of the renderer's clip writer (the CPU work beside the diffusion model), exact vs table colour matching.

For a synthetic drifting clip of 41 and of 81 frames at 832x480 (Wan's 16 fps; 2.5 s and 5 s of
shot), prints the median seconds over ``--runs`` runs of

* colour matching (drift before, fit, apply in chunks, drift after: ``DiffusersRenderer._match_colour``)
  with the exact Lab round trip per pixel (``ColourTransform.apply_exact``, the old path) and with
  the per-frame lookup table (``ColourTransform.apply``, the new one),
* the whole clip write (``DiffusersRenderer._write_clip``: colour, retime to 24 fps, scale, H.264
  to MP4) with each,

and the largest difference between the two outputs in levels of 255, and the load average.

Then the renderer's CUDA path, here on CPU tensors (so only its split is shown, not GPU speed):
colour, retime and scale on the tensor (``_finish_on_device``, the hand-off on the critical path)
and the encoding alone (``_encode_clip``, all that the background writer does there).

``--gil`` (instead of the above): does the writer let go of the GIL? A loop of small torch operations on the main thread
(what a diffusion loop does between GPU kernels: Python and dispatch, GIL held) is timed alone,
then beside a thread that encodes clips (PyAV: x264 runs with the GIL released), beside a thread
that does the whole CPU path, and beside a thread of pure Python (holds the GIL: the control).
On this 2-core machine the encoder's two x264 threads also take CPU from the loop, so the
loop's rate beside the encoder is a lower bound of what the GIL leaves it; the process's CPU use
in the window tells the two apart: Python threads that take turns on the GIL use one core at
most together, while x264 encoding beside the loop adds to it.

    python benchmarks/bench_clip_writer.py [--runs 3] [--gil]
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
    parser.add_argument("--gil", action="store_true", help="check how much the writer thread holds the GIL (instead of the timings)")
    args = parser.parse_args()

    from PIL import Image
    from test_colour import textured_picture, with_cast

    import torch

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
    for name in ("_match_colour", "_finished_chunks", "_write_clip", "_finish_on_device", "_encode_clip"):
        setattr(writer, name, partial(getattr(DiffusersRenderer, name), writer))
    methods = {"exact": colour.ColourTransform.apply_exact, "table": colour.ColourTransform.apply}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    for native_frames in () if args.gil else (41, 81):
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
        handoff, encode = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            pixels = writer._finish_on_device(torch.from_numpy(clip.copy()), frame_count, work / "device.mp4", reference_path)
            handoff.append(time.perf_counter() - started)
            started = time.perf_counter()
            writer._encode_clip(pixels, work / "device.mp4")
            encode.append(time.perf_counter() - started)
        print(
            f"  CUDA path on CPU tensors: colour + retime + scale {statistics.median(handoff):.2f} s, "
            f"encode alone {statistics.median(encode):.2f} s"
        )
    if args.gil:
        gil_check(writer, with_cast(reference, 41), reference_path, work, args.runs)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def gil_check(writer, clip: np.ndarray, reference_path: Path, work: Path, runs: int, window_s: float = 3.0) -> None:
    """Rate of a GIL-bound main-thread loop alone and beside each kind of background thread (--gil)."""
    import threading

    import torch

    frame_count = round(len(clip) / NATIVE_FPS * OUTPUT_FPS)
    pixels = writer._finish_on_device(torch.from_numpy(clip.copy()), frame_count, work / "gil.mp4", reference_path)

    def encode_only():
        writer._encode_clip(pixels, work / "gil-encode.mp4")

    def whole_cpu_path():
        writer._write_clip(clip.copy(), frame_count, work / "gil-cpu.mp4", reference_path)

    def pure_python():
        deadline = time.perf_counter() + 0.5
        total = 0
        while time.perf_counter() < deadline:
            total += 1

    def loop_rate(name, background) -> float:
        """Iterations a second of small torch operations on this thread while ``background`` repeats."""
        stop = threading.Event()

        def repeat():
            while not stop.is_set():
                background()

        thread = threading.Thread(target=repeat, name="clip-writer") if background else None
        if thread:
            thread.start()
            time.sleep(0.2)
        x = torch.zeros(16)
        count, started, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - started < window_s:
            for _ in range(100):
                x = x.add(1).mul_(0.5)
            count += 100
        wall = time.perf_counter() - started
        rate = count / wall
        cores[name].append((time.process_time() - cpu) / wall)
        stop.set()
        if thread:
            thread.join()
        return rate

    cases = {"alone": None, "beside encoding (x264)": encode_only, "beside the whole CPU path": whole_cpu_path, "beside pure Python (control)": pure_python}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    cores: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, background in cases.items():
            rates[name].append(loop_rate(name, background))
    alone = statistics.median(rates["alone"])
    print(f"GIL check: a main-thread loop of small torch operations, median of {runs} windows of {window_s:g} s:")
    for name in cases:
        rate = statistics.median(rates[name])
        print(
            f"  {name:30s} {rate / 1000:8.1f} k ops/s  ({100 * rate / alone:5.1f} % of alone), "
            f"process CPU {statistics.median(cores[name]):.2f} cores"
        )


if __name__ == "__main__":
    main()
