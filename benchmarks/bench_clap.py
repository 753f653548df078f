"""Speed of the clap listener with a real-size CLAP (laion/larger_clap_music) on a 3-minute song.

The trained weights cannot be downloaded here, but a model built from the real configuration
with random weights costs the same compute, so the timings stand for the real model. The
configuration below is laion/larger_clap_music's ``config.json`` (revision a0b4534, written by
transformers 4.35): an HTSAT-base audio encoder (patch width 128, depths 2-2-12-2, hidden size
1024), the default RoBERTa-base text encoder, 512-d projections, everything else at
transformers' ``ClapConfig`` defaults (``enable_fusion`` false). The feature extractor takes the
values of its ``preprocessor_config.json`` (48 kHz, 10 s, 64 mels, 50-14000 Hz, hop 480,
``rand_trunc``/``repeatpad``). The tokenizer is the tiny byte-level BPE of the tests (the real
RoBERTa vocabulary is not available offline), trained on the vocabularies' prompts with a
2000-token vocabulary so that it splits them into about as many tokens as RoBERTa would.

Prints, per device (the CPU, and CUDA when available):

* model load time from a saved folder,
* text embeddings of every shipped vocabulary with a cold cache (once per model, then cached),
* audio: number of 10 s windows, seconds, windows per second,
* the whole ``describe_clap`` call with a warm text cache, and its real-time factor.

Each figure is wall-clock seconds with the process's CPU seconds beside it: on a shared
machine the wall time grows with other people's load, the CPU time much less.

Target on the 2-core CPU machine: the whole listener under 60 s for a 3-minute song.

    python benchmarks/bench_clap.py [--duration 180] [--shot-s 3] [--batch-size 8] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 48_000
SECTION_S = 30.0  # length of each synthetic section

# laion/larger_clap_music config.json (only the values that differ from ClapConfig's defaults).
LARGER_CLAP_MUSIC_CONFIG = {
    "audio_config": {"depths": [2, 2, 12, 2], "hidden_size": 1024, "patch_embeds_hidden_size": 128},
    "text_config": {},
    "logit_scale_init_value": 14.285714285714285,
    "projection_dim": 512,
    "projection_hidden_act": "relu",
}
# laion/larger_clap_music preprocessor_config.json
FEATURE_EXTRACTOR_CONFIG = {
    "feature_size": 64,
    "sampling_rate": SAMPLE_RATE_HZ,
    "hop_length": 480,
    "max_length_s": 10,
    "fft_window_size": 1024,
    "frequency_min": 50,
    "frequency_max": 14_000,
    "truncation": "rand_trunc",
    "padding": "repeatpad",
}


def build_real_size_clap(folder: Path) -> tuple[Path, int]:
    """Save a random-weight larger_clap_music-sized model and processor; return folder and parameter count."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_clap import build_tiny_tokenizer

    torch.manual_seed(0)
    model = ClapModel(ClapConfig(**LARGER_CLAP_MUSIC_CONFIG)).eval()
    parameters = sum(p.numel() for p in model.parameters())
    # A BPE trained on the prompts themselves splits them about as RoBERTa's 50k vocabulary would.
    from music2video.listen.clap import load_vocabularies

    prompts = [prompt for vocabulary in load_vocabularies() for prompt in vocabulary.prompts]
    tokenizer = build_tiny_tokenizer(corpus=prompts * 4, vocab_size=2000)
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(**FEATURE_EXTRACTOR_CONFIG), tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, parameters


def synthetic_song(path: Path, duration_s: float) -> None:
    """A stereo 48 kHz WAV: a chord that changes every section, with noise bursts on the beat."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    root = 110.0 * 2 ** ((t // SECTION_S) % 4 / 12)
    song = 0.2 * sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1.0, 1.25, 1.5))
    beat = (t % 0.5) < 0.05
    song[beat] += 0.3 * rng.standard_normal(beat.sum())
    sf.write(path, np.stack([song, song], axis=1).astype(np.float32), SAMPLE_RATE_HZ)


def analysis_and_plan(duration_s: float, shot_s: float):
    from music2video.artifacts import Analysis, Section, Shot, ShotPlan

    bounds = list(np.arange(0.0, duration_s, SECTION_S)) + [duration_s]
    sections = [
        Section(index=i, start_s=float(a), end_s=float(b), label="ABAB"[i % 4], role="verse", energy=0.5)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ]
    shots = []
    for section in sections:
        count = max(1, round(section.duration_s / shot_s))
        edges = np.linspace(section.start_s, section.end_s, count + 1)
        for a, b in zip(edges[:-1], edges[1:]):
            shots.append(Shot(index=len(shots), id=f"shot-{len(shots):03d}", start_s=float(a), end_s=float(b), section_index=section.index, cut="beat"))
    frames = int(duration_s * 10)
    analysis = Analysis(
        duration_s=duration_s, tempo_bpm=120.0, beats_per_bar=4, beats_s=[], downbeats_s=[], sections=sections,
        curve_rate_hz=10.0, energy=[0.5] * frames, brightness=[0.5] * frames, onset_strength=[0.5] * frames,
    )
    return analysis, ShotPlan(duration_s=duration_s, shots=shots)


class Timer:
    """Wall-clock and process CPU seconds of a block. On a shared machine the wall time grows
    with other people's load while the CPU time stays near the work done, so both are shown."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s (cpu {self.cpu:6.1f} s)"


def bench_device(folder: Path, song: Path, analysis, plan, device: str, dtype: str, batch_size: int, duration_s: float) -> None:
    import torch

    from music2video.listen import clap
    from music2video.settings import ClapSettings
    from music2video.torch_device import free_memory, resolve_device, resolve_dtype

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    print(f"\n== {torch_device} ({str(torch_dtype).removeprefix('torch.')}), batch {batch_size}, {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as cache:
        cache_dir = Path(cache)
        with Timer() as timer:
            model, processor = clap.load_clap(str(folder), torch_device, torch_dtype)
        print(f"load model            {timer}")

        vocabularies = clap.load_vocabularies()
        fingerprint = clap.model_fingerprint(str(folder))
        with Timer() as timer:
            for vocabulary in vocabularies:
                clap.text_embeddings(model, processor.tokenizer, vocabulary, fingerprint, cache_dir)
        prompts = sum(len(v.labels) for v in vocabularies)
        print(f"text, cold cache      {timer}  {prompts} prompts in {len(vocabularies)} vocabularies; cached afterwards")

        audio, _, _ = clap.read_mono(song, SAMPLE_RATE_HZ)
        spans = [clap.span_to_samples(s.start_s, s.end_s, SAMPLE_RATE_HZ, len(audio)) for s in plan.shots]
        limit = processor.feature_extractor.nb_max_samples
        windows = clap.plan_windows(spans, len(audio), limit, round(clap.MIN_GAP_S * SAMPLE_RATE_HZ)).windows
        sample = windows[: 2 * batch_size]
        with Timer() as mel:
            processor.feature_extractor(
                [audio[a:b] for a, b in sample], sampling_rate=SAMPLE_RATE_HZ, truncation="rand_trunc", padding="repeatpad"
            )
        with Timer() as timer:
            clap.embed_windows(model, processor.feature_extractor, audio, windows, batch_size)
        print(f"audio windows         {timer}  {len(windows)} windows of <= 10 s: {timer.wall / len(windows):.3f} s each, "
              f"of which log-mel {mel.wall / len(sample):.3f} s")
        del model, processor
        free_memory()

        settings = ClapSettings(model=str(folder), device=device, dtype=dtype, batch_size=batch_size)
        with Timer() as timer:
            result = clap.describe_clap(song, analysis, plan, settings, cache_dir=cache_dir)
    print(f"describe_clap, warm   {timer}  for {duration_s:.0f} s of audio: {duration_s / timer.wall:.1f}x real time "
          f"({len(result.shots)} shots, {len(result.sections)} sections; load + read + windows + scoring)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180.0, help="song length, seconds")
    parser.add_argument("--shot-s", type=float, default=3.0, help="typical shot length, seconds (one window per shot)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16 or bfloat16")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", action="append", help="cpu, cuda ... (default: cpu, plus cuda when available)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        started = time.perf_counter()
        folder, parameters = build_real_size_clap(work_dir / "larger_clap_music-random")
        print(f"built larger_clap_music-sized model: {parameters / 1e6:.0f} M parameters ({time.perf_counter() - started:.0f} s, not timed below)")
        song = work_dir / "song.wav"
        synthetic_song(song, args.duration)
        analysis, plan = analysis_and_plan(args.duration, args.shot_s)
        print(f"song {args.duration:.0f} s, {len(plan.shots)} shots of ~{args.shot_s:g} s, {len(analysis.sections)} sections")
        for device in devices:
            bench_device(folder, song, analysis, plan, device, args.dtype, args.batch_size, args.duration)
    # Other work on the machine inflates wall times; the load average says how busy it was.
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"\nwindows per shot: ceil(shot / 10 s); {math.ceil(args.shot_s / 10)} for {args.shot_s:g} s shots.")


if __name__ == "__main__":
    main()
