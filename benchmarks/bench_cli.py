"""The speed a user sees: ``music2video SONG --pipeline preview`` as typed, on a real recording.

Each run is a fresh process with a fresh run folder and every default stage (decode, structure,
shots, listen, lyrics, write, render, assemble, evaluate, report), timed from outside. Prints the
median wall time and real-time factor over ``--runs`` runs, the CPU seconds the process used
(the machine may be shared: CPU time shows the work, wall time what a user waits), each stage's
median from ``run.json``, and the time of a rerun that has nothing left to do.

No real recording ships with the repository, so by default one is rendered from a real
composition: a General MIDI arrangement from Debian's ``mma`` package (a rock band: drums, bass,
guitars, piano, sax) through FluidSynth and a General MIDI SoundFont. Install them with
``apt-get install fluidsynth fluidr3mono-gm-soundfont mma``, or pass any song with ``--song``.

``--cold``: every run as the first one in a fresh install (its own empty numba cache folder and
user cache folder, no warm-up run), so any just-in-time compilation is paid in each.

Targets (2-core CPU, idle): the full preview at least 5x real time, goal 10x; a rerun ~1 s.

    python benchmarks/bench_cli.py [--song SONG] [--runs 3] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MIDI = Path("/usr/share/doc/mma/examples/midi-inc/mid2seq/rockgroove.mid")  # 2:48, 148 BPM rock
SOUNDFONTS = [Path("/usr/share/sounds/sf3/default-GM.sf3"), Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")]
SILENCE_DBFS = -60.0  # FluidSynth renders a long silent tail after the last note: cut it


def render_midi(midi: Path, wav: Path) -> Path:
    """``midi`` through FluidSynth at 44.1 kHz into ``wav``, its silent tail trimmed."""
    import numpy as np
    import soundfile

    fluidsynth = shutil.which("fluidsynth")
    soundfont = next((f for f in SOUNDFONTS if f.is_file()), None)
    if fluidsynth is None or soundfont is None or not midi.is_file():
        sys.exit(f"needs fluidsynth, a GM SoundFont and {midi}: apt-get install fluidsynth fluidr3mono-gm-soundfont mma (or pass --song)")
    raw = wav.with_suffix(".raw.wav")
    subprocess.run([fluidsynth, "-ni", "-q", "-F", str(raw), "-r", "44100", "-g", "0.6", str(soundfont), str(midi)], check=True, capture_output=True)
    samples, rate = soundfile.read(raw, dtype="float32")
    loud = np.flatnonzero(np.abs(samples).max(axis=1) > 10 ** (SILENCE_DBFS / 20))
    end = min(len(samples), int(loud[-1] + rate)) if loud.size else len(samples)  # keep a 1 s release
    soundfile.write(wav, samples[:end], rate, subtype="PCM_16")
    raw.unlink()
    return wav


CPU_POLL_S = 0.1


def _descendants_cpu_s(root_pid: int, seen: dict[int, float]) -> None:
    """Update ``seen`` (pid -> CPU seconds) with every live descendant of ``root_pid`` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    for pid in times:
        ancestor = pid
        while ancestor in parents and ancestor != root_pid:
            ancestor = parents[ancestor]
        if ancestor == root_pid:
            seen[pid] = max(seen.get(pid, 0.0), times[pid])


def run_cli(song: Path, output: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``music2video`` run as a user types it.

    CPU time counts the process and every process it starts (render workers included), sampled
    from /proc every CPU_POLL_S, so a worker's last tenth of a second may go uncounted.
    """
    script = Path(sys.executable).with_name("music2video")
    command = [str(script) if script.exists() else sys.executable, *([] if script.exists() else ["-m", "music2video"])]
    started = time.perf_counter()
    seen: dict[int, float] = {}
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [*command, str(song), "-o", str(output), "--pipeline", "preview", *extra], stdout=subprocess.DEVNULL, stderr=errors, env=env
        )
        while child.poll() is None:
            _descendants_cpu_s(child.pid, seen)
            time.sleep(CPU_POLL_S)
        wall = time.perf_counter() - started
        if child.returncode:
            errors.seek(0)
            sys.exit(f"music2video failed ({child.returncode}): {errors.read().decode()[-2000:]}")
    return wall, sum(seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--song", type=Path, help="a real recording; default: rendered from --midi")
    parser.add_argument("--midi", type=Path, default=DEFAULT_MIDI)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="each run with empty numba and user cache folders, as in a fresh install")
    args = parser.parse_args()

    import soundfile

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        root = Path(tmp)
        song = args.song or render_midi(args.midi, root / f"{args.midi.stem}.wav")
        duration_s = soundfile.info(str(song)).duration
        if not args.cold:
            run_cli(song, root / "warmup.mp4", "--dry-run")  # numba's cache and the page cache, as after a first use

        walls, cpus, stages = [], [], []
        for i in range(args.runs):
            output = root / f"run-{i}.mp4"
            fresh = dict(os.environ, NUMBA_CACHE_DIR=str(root / f"numba-{i}"), XDG_CACHE_HOME=str(root / f"cache-{i}"))
            wall, cpu = run_cli(song, output, env=fresh if args.cold else None)
            walls.append(wall)
            cpus.append(cpu)
            summary = json.loads((root / f"run-{i}.music2video" / "run.json").read_text())
            stages.append({s["name"]: s["seconds"] for s in summary["stages"]})
        rerun_wall, _ = run_cli(song, root / "run-0.mp4")  # everything is done already

    wall = statistics.median(walls)
    print(f"song: {song.name}, {duration_s:.1f} s; {args.runs} {'fresh-install ' if args.cold else ''}runs, medians; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"music2video SONG --pipeline preview: {wall:6.1f} s wall  {duration_s / wall:5.1f}x real time  "
          f"(runs {', '.join(f'{w:.1f}' for w in walls)} s)")  # fmt: skip
    print(f"CPU time of the process:             {statistics.median(cpus):6.1f} s")
    for name in stages[0]:
        print(f"  {name:10s} {statistics.median(s.get(name, 0.0) for s in stages):6.2f} s")
    print(f"rerun with nothing to do:            {rerun_wall:6.1f} s")


if __name__ == "__main__":
    main()
