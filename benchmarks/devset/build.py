"""Build the real-instrument development set for the beat grid (issue 11).

Each piece in ``manifest.toml`` is written as a score with an exact tempo map (an MMA chord
chart over a groove from Debian's ``mma`` library, or a piece from music21's bundled corpus),
turned into MIDI, and rendered to audio with FluidSynth and a General MIDI SoundFont. The ground
truth (beats, downbeats, meter, tempo map, section marks) is computed from the same score and the
MIDI tempo map, so it is exact to the sample, pickups, swing and tempo changes included. Pieces
of ``source = "lmms"`` or ``"hydrogen"`` are real productions instead: demo projects rendered by
LMMS or Hydrogen themselves, their beats read from the project (``productions.py``).

Output, in ``devset_dir()`` (the user cache folder, or ``$M2V_DEVSET_DIR``):

    <id>.wav      mono 16-bit, 44.1 kHz (madmom's native rate; our analysis resamples)
    <id>.json     ground truth: beats_s, downbeats_s, beats_per_bar, tempo_bpm, tempo_map,
                  sections [{start_s, label}], bucket, meter, source, licence, duration_s
    index.json    the list of built ids with their buckets

Needs: the Debian packages ``mma``, ``fluidsynth`` and ``fluidr3mono-gm-soundfont``, and for the
productions ``lmms``, ``lmms-common``, ``hydrogen`` and ``hydrogen-data`` (``make devset``
installs them when run as root), and the Python packages ``mido`` and ``music21``
(the ``devset`` extra). Usage::

    python benchmarks/devset/build.py [--only ID ...] [--jobs 2]

Rebuilding is incremental: a piece is rebuilt only when its manifest entry or this script's
``BUILD_VERSION`` changes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np

from music2video.beat_grid import midi_tempo_map, ticks_to_seconds

BUILD_VERSION = 3
"""Bump when the rendering or the ground truth changes: every piece is rebuilt. 3: MMA's
random humanisation seeded, so two builds give the same audio."""
MANIFEST = Path(__file__).with_name("manifest.toml")
SAMPLE_RATE_HZ = 44_100
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
)
RENDER_TIMEOUT_S = 300
PEAK_LEVEL = 0.7
"""Rendered audio is normalised to this peak (FluidSynth's level depends on the polyphony)."""
FLUIDSYNTH_GAIN = 0.5
"""FluidSynth's master gain; its default (0.2) leaves sparse pieces very quiet before normalising."""
PRODUCTION_SOURCES = ("lmms", "hydrogen")
"""Sources rendered from a real production's project file (``productions.py``), not from MIDI."""
PRODUCTION_MAX_S = 60.0
"""A production going on longer than this after its first sounding bar is cut at the last bar
line before (madmom, the costliest baseline, takes ~15 s of CPU per minute of audio); a
manifest entry's ``max_s`` overrides it."""


def devset_dir() -> Path:
    """Where the built set lives: ``$M2V_DEVSET_DIR`` or ``<user cache>/music2video/devset``."""
    if os.environ.get("M2V_DEVSET_DIR"):
        return Path(os.environ["M2V_DEVSET_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("music2video")) / "devset"


def load_manifest() -> list[dict]:
    with MANIFEST.open("rb") as file:
        pieces = tomllib.load(file)["piece"]
    ids = [p["id"] for p in pieces]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"duplicate ids in {MANIFEST}")
    return pieces


def missing_tools(sources: set[str] | None = None) -> list[str]:
    """Names of the tools that building pieces of ``sources`` needs and are not installed
    (empty when it can run); by default the MIDI sources' (mma, music21)."""
    missing = []
    for source in sorted(set(sources or ()) & set(PRODUCTION_SOURCES)):
        import productions

        missing += productions.missing_tools(source)
    if sources is not None and not set(sources) - set(PRODUCTION_SOURCES):
        return missing
    missing += [tool for tool in ("mma", "fluidsynth") if shutil.which(tool) is None]
    if _soundfont() is None:
        missing.append("fluidr3mono-gm-soundfont")
    for module in ("mido", "music21"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    return missing


def _soundfont() -> str | None:
    return next((path for path in SOUNDFONT_CANDIDATES if Path(path).exists()), None)


def _piece_key(piece: dict) -> str:
    text = json.dumps(piece, sort_keys=True) + f"|v{BUILD_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# MIDI tempo maps


def _set_programs(midi_path: Path, programs: list[int]) -> None:
    """Give each melodic MIDI channel a General MIDI program (parts in order)."""
    import mido

    midi = mido.MidiFile(midi_path)
    channels: list[int] = []
    for track in midi.tracks:
        for message in track:
            if hasattr(message, "channel") and message.channel != 9 and message.channel not in channels:
                channels.append(message.channel)
    for track in midi.tracks:
        track[:] = [m for m in track if m.type != "program_change"]
    setup = mido.MidiTrack(
        [mido.Message("program_change", channel=c, program=programs[i % len(programs)], time=0) for i, c in enumerate(channels)]
    )
    if midi.type == 1:
        midi.tracks.insert(1, setup)
    else:
        midi.tracks[0][0:0] = list(setup)
    midi.save(midi_path)


# ------------------------------------------------------------------------------------------
# Sources


def _mma_piece(piece: dict, workdir: Path) -> tuple[Path, dict]:
    """Write the MMA chart, run mma, and compute beats/downbeats/sections in quarter notes."""
    quarters_per_bar = int(piece["time"])
    beats_per_bar = int(piece["beats_per_bar"])
    mma_tempo_factor = quarters_per_bar / beats_per_bar  # MMA counts quarter notes per minute
    chords = piece["chords"]
    changes = {int(c[0]): c[1:] for c in piece.get("tempo_changes", [])}
    # MMA humanises timing and velocity at random: a fixed seed makes every build the same audio.
    lines = ["RndSeed 1", f"Tempo {piece['tempo_bpm'] * mma_tempo_factor:g}", "Volume mf"]
    sections: list[tuple[int, str]] = []  # (bar index from 0, label)
    names = {"I": "intro", "V": "verse", "C": "chorus", "F": "fill", "E": "ending"}
    bar = 0
    current_groove = None
    for token in piece["form"].split():
        letter, n_bars = token[0], int(token[1:])
        groove = piece["grooves"][letter]
        if letter != "F":  # a one-bar fill belongs to the section it leads out of
            sections.append((bar, names[letter]))
        if groove != current_groove:
            lines.append(f"Groove {groove}")
            current_groove = groove
        for _ in range(n_bars):
            if bar + 1 in changes:
                bpm, *over = changes[bar + 1]
                over_beats = f" {int(over[0] * mma_tempo_factor)}" if over else ""
                lines.append(f"Tempo {bpm * mma_tempo_factor:g}{over_beats}")
            lines.append(f"{bar + 1} {chords[bar % len(chords)]}")
            bar += 1
    chart = workdir / f"{piece['id']}.mma"
    chart.write_text("\n".join(lines) + "\n")
    midi_path = workdir / f"{piece['id']}.mid"
    environment = {**os.environ, "PYTHONHASHSEED": "0"}  # mma is a Python program
    result = subprocess.run(["mma", str(chart), "-f", str(midi_path)], capture_output=True, text=True, env=environment)
    if result.returncode != 0 or not midi_path.exists():
        raise RuntimeError(f"mma failed on {piece['id']}: {result.stdout[-500:]} {result.stderr[-500:]}")
    n_bars = bar
    beat_q = quarters_per_bar / beats_per_bar
    beats_q = np.arange(n_bars * beats_per_bar) * beat_q
    downbeats_q = np.arange(n_bars) * quarters_per_bar
    grid = {
        "beats_q": beats_q,
        "downbeats_q": downbeats_q,
        "beats_per_bar": beats_per_bar,
        "sections_q": [(b * quarters_per_bar, label) for b, label in sections],
        "end_q": n_bars * quarters_per_bar,
    }
    return midi_path, grid


def _music21_piece(piece: dict, workdir: Path) -> tuple[Path, dict]:
    """Parse a corpus piece, set its tempo, write MIDI, and read beats/downbeats from its bars
    (a pickup bar's beats are counted back from its end)."""
    from music21 import corpus, duration, stream, tempo

    score = corpus.parse(piece["corpus"])
    if "measures" in piece:
        first, last = piece["measures"]
        score = score.measures(first, last)
    # music21's MIDI writer plays repeats; expand them here so the bars below are the bars heard.
    score = score.expandRepeats()
    for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
        mark.activeSite.remove(mark)
    for mark in list(score.recurse().getElementsByClass(tempo.TempoIndication)):
        mark.activeSite.remove(mark)
    part = score.parts[0] if score.hasPartLikeStreams() else score
    measures = list(part.getElementsByClass(stream.Measure))
    time_signature = measures[0].timeSignature or part.recurse().getElementsByClass("TimeSignature").first()
    beat_q = float(time_signature.beatDuration.quarterLength)
    first_measure_offset = float(measures[0].offset)
    measures[0].insert(0, tempo.MetronomeMark(number=piece["tempo_bpm"], referent=duration.Duration(beat_q)))
    beats_q: list[float] = []
    downbeats_q: list[float] = []
    active_signature = time_signature
    for measure in measures:
        if measure.timeSignature is not None:
            active_signature = measure.timeSignature
        bar_q = float(active_signature.barDuration.quarterLength)
        beat_q = float(active_signature.beatDuration.quarterLength)
        start = float(measure.offset) - first_measure_offset
        length = float(measure.duration.quarterLength)
        padding = float(measure.paddingLeft or 0.0)
        if padding == 0.0 and length < bar_q - 1e-6 and measure is measures[0]:
            padding = bar_q - length  # an anacrusis not marked as such
        virtual_start = start - padding
        if padding == 0.0:
            downbeats_q.append(start)
        k = int(np.ceil((padding - 1e-6) / beat_q))
        while virtual_start + k * beat_q < start + length - 1e-6:
            beats_q.append(virtual_start + k * beat_q)
            k += 1
    midi_path = workdir / f"{piece['id']}.mid"
    score.write("midi", fp=str(midi_path))
    _set_programs(midi_path, piece.get("programs", [0]))
    grid = {
        "beats_q": np.array(beats_q),
        "downbeats_q": np.array(downbeats_q),
        "beats_per_bar": int(time_signature.beatCount),
        "sections_q": [],
        "end_q": float(measures[-1].offset) - first_measure_offset + float(measures[-1].duration.quarterLength),
    }
    return midi_path, grid


# ------------------------------------------------------------------------------------------
# Rendering and truth


def _render(midi_path: Path, wav_path: Path, silent_intro_s: float) -> float:
    """Render MIDI to mono 16-bit audio at ``SAMPLE_RATE_HZ``; returns the duration in s."""
    stereo_path = midi_path.with_suffix(".stereo.wav")
    command = [
        "fluidsynth", "-ni", "-q", "-g", str(FLUIDSYNTH_GAIN), "-r", str(SAMPLE_RATE_HZ),
        "-o", "synth.reverb.active=1", "-o", "synth.chorus.active=0",
        "-F", str(stereo_path), _soundfont(), str(midi_path),
    ]  # fmt: skip
    # A timeout: FluidSynth never returned on one corpus piece (Beethoven op. 18/1 iii), now dropped.
    result = subprocess.run(command, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
    if result.returncode != 0 or not stereo_path.exists():
        raise RuntimeError(f"fluidsynth failed on {midi_path.name}: {result.stderr[-500:]}")
    return _write_mono(stereo_path, wav_path, silent_intro_s)


def _write_mono(stereo_path: Path, wav_path: Path, silent_intro_s: float = 0.0, end_s: float | None = None) -> float:
    """Mix a render to mono at ``PEAK_LEVEL``, with ``silent_intro_s`` of silence before it and
    cut at ``end_s`` (of the render); write 16-bit ``wav_path``; returns the duration in s."""
    import soundfile

    audio, rate = soundfile.read(stereo_path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE_HZ:
        raise RuntimeError(f"{stereo_path.name} was rendered at {rate} Hz, not {SAMPLE_RATE_HZ}")
    mono = audio.mean(axis=1)
    if end_s is not None:
        mono = mono[: int(round(end_s * rate))]
    peak = float(np.max(np.abs(mono))) or 1.0
    mono = mono * (PEAK_LEVEL / peak)
    mono = np.concatenate([np.zeros(int(round(silent_intro_s * rate)), dtype=np.float32), mono])
    tmp = wav_path.with_suffix(".tmp.wav")
    soundfile.write(tmp, mono, rate, subtype="PCM_16")
    tmp.replace(wav_path)
    return len(mono) / rate


def _production_truth(piece: dict, out_dir: Path) -> dict:
    """Render an LMMS or Hydrogen demo (``productions.py``) and read its beats from the project."""
    import productions

    with tempfile.TemporaryDirectory(prefix=f"m2v-devset-{piece['id']}-") as tmp:
        stereo_path, timeline = productions.render_piece(piece, Path(tmp), piece.get("max_s", PRODUCTION_MAX_S))
        end_s = timeline.seconds(timeline.end_ticks) if timeline.cut else None
        duration_s = _write_mono(stereo_path, out_dir / f"{piece['id']}.wav", end_s=end_s)
    return {
        "source": f"{piece['source']}:{piece['project']}",
        "duration_s": duration_s,
        "beats_per_bar": timeline.beats_per_bar,
        "beats_s": np.array(timeline.beats_s()),
        "downbeats_s": np.array(timeline.downbeats_s()),
        "tempo_map": [{"time_s": 0.0, "quarter_bpm": timeline.bpm}],
        "sections": [],
        "silent_intro_s": 0.0,
    }


def _midi_truth(piece: dict, out_dir: Path) -> dict:
    """Write the score as MIDI, render it with FluidSynth, and read the beats from the score."""
    import mido

    with tempfile.TemporaryDirectory(prefix=f"m2v-devset-{piece['id']}-") as tmp:
        workdir = Path(tmp)
        if piece["source"] == "mma":
            midi_path, grid = _mma_piece(piece, workdir)
        elif piece["source"] == "music21":
            midi_path, grid = _music21_piece(piece, workdir)
        else:
            raise ValueError(f"unknown source {piece['source']!r} in {piece['id']}")
        midi = mido.MidiFile(midi_path)
        tempo_map = midi_tempo_map(midi)
        tpq = midi.ticks_per_beat
        intro_s = float(piece.get("silent_intro_s", 0.0))

        def seconds(quarters) -> np.ndarray:
            return ticks_to_seconds(np.asarray(quarters, dtype=float) * tpq, tempo_map, tpq) + intro_s

        duration_s = _render(midi_path, out_dir / f"{piece['id']}.wav", intro_s)
        shutil.copyfile(midi_path, out_dir / f"{piece['id']}.mid")
    tempo_changes = []
    for tick, microseconds in tempo_map:
        time_s = float(ticks_to_seconds(np.array([tick]), tempo_map, tpq)[0]) + intro_s
        tempo_changes.append({"time_s": round(time_s, 6), "quarter_bpm": round(60e6 / microseconds, 4)})
    return {
        "source": piece["source"] + ":" + piece.get("corpus", ",".join(sorted(set(piece.get("grooves", {}).values())))),
        "duration_s": duration_s,
        "beats_per_bar": int(grid["beats_per_bar"]),
        "beats_s": seconds(grid["beats_q"]),
        "downbeats_s": seconds(grid["downbeats_q"]),
        "tempo_map": tempo_changes,
        "sections": [{"start_s": round(float(seconds([q])[0]), 6), "label": label} for q, label in grid["sections_q"]],
        "silent_intro_s": intro_s,
    }


def build_piece(piece: dict, out_dir: Path) -> dict:
    """Render one piece and write its ground truth; returns the truth dict."""
    made = _production_truth(piece, out_dir) if piece["source"] in PRODUCTION_SOURCES else _midi_truth(piece, out_dir)
    duration_s = made["duration_s"]
    beats_s, downbeats_s = made["beats_s"], made["downbeats_s"]
    beats_s, downbeats_s = beats_s[beats_s < duration_s], downbeats_s[downbeats_s < duration_s]
    beat_periods = np.diff(beats_s)
    truth = {
        "id": piece["id"],
        "bucket": piece["bucket"],
        "meter": piece["meter"],
        "source": made["source"],
        "licence": piece["licence"],
        "duration_s": round(duration_s, 6),
        "beats_per_bar": made["beats_per_bar"],
        "tempo_bpm": round(float(60.0 / np.median(beat_periods)), 4),
        "tempo_varies": bool(np.ptp(beat_periods) > 0.01 * np.median(beat_periods)),
        "tempo_map": made["tempo_map"],
        "silent_intro_s": made["silent_intro_s"],
        "beats_s": [round(float(t), 6) for t in beats_s],
        "downbeats_s": [round(float(t), 6) for t in downbeats_s],
        "sections": made["sections"],
        "key": _piece_key(piece),
    }
    tmp_json = out_dir / f"{piece['id']}.json.tmp"
    tmp_json.write_text(json.dumps(truth, indent=1))
    tmp_json.replace(out_dir / f"{piece['id']}.json")
    return truth


def is_built(piece: dict, out_dir: Path) -> bool:
    truth_path, wav_path = out_dir / f"{piece['id']}.json", out_dir / f"{piece['id']}.wav"
    if not (truth_path.exists() and wav_path.exists()):
        return False
    return json.loads(truth_path.read_text()).get("key") == _piece_key(piece)


def build(only: list[str] | None = None, jobs: int = 2, out_dir: Path | None = None) -> Path:
    """Build every piece (or those in ``only``) that is not built yet; returns the folder."""
    out_dir = out_dir or devset_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    pieces = [p for p in load_manifest() if not only or p["id"] in only]
    todo = [p for p in pieces if not is_built(p, out_dir)]
    # Build what the installed tools allow: a machine without lmms or hydrogen (no root for
    # apt) still gets the MIDI pieces, and the benchmarks say how many pieces they score.
    unbuildable = {source: missing_tools({source}) for source in {p["source"] for p in todo}}
    skipped = [p for p in todo if unbuildable[p["source"]]]
    if skipped:
        tools = sorted({tool for p in skipped for tool in unbuildable[p["source"]]})
        print(
            f"dev set: {len(skipped)} pieces skipped, missing {', '.join(tools)} (`make devset` installs them: apt-get "
            "install mma fluidsynth fluidr3mono-gm-soundfont lmms lmms-common hydrogen hydrogen-data; pip install '.[devset]')",
            file=sys.stderr,
        )
        if len(skipped) == len(todo) and len(todo) == len(pieces):
            raise SystemExit("the dev set cannot be built here: no piece's tools are installed")
    todo = [p for p in todo if not unbuildable[p["source"]]]
    print(f"dev set in {out_dir}: {len(pieces) - len(todo) - len(skipped)} built, {len(todo)} to build", file=sys.stderr)
    failures = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(build_piece, p, out_dir): p["id"] for p in todo}
        for future in concurrent.futures.as_completed(futures):
            try:
                truth = future.result()
                print(f"  {truth['id']}: {truth['duration_s']:.0f} s, {len(truth['beats_s'])} beats", file=sys.stderr)
            except Exception as error:  # report every failed piece, then fail the build
                failures.append(f"{futures[future]}: {error}")
    if failures:
        raise SystemExit("dev set build failed:\n  " + "\n  ".join(failures))
    index = [{"id": p["id"], "bucket": p["bucket"], "meter": p["meter"], "split": p.get("split", "design")} for p in load_manifest()]
    (out_dir / "index.json").write_text(json.dumps(index, indent=1))
    return out_dir


def load_devset(only: list[str] | None = None, out_dir: Path | None = None) -> list[tuple[Path, dict]]:
    """(audio path, truth) of every built piece in manifest order (build first). Pieces named in
    ``only`` must be built; without ``only``, unbuilt pieces are left out with a note on stderr
    (their tools were missing when the set was built), and none built at all is an error."""
    out_dir = out_dir or devset_dir()
    pieces = [p for p in load_manifest() if not only or p["id"] in only]
    missing = [p["id"] for p in pieces if not (out_dir / f"{p['id']}.json").exists()]
    if missing and (only or len(missing) == len(pieces)):
        raise SystemExit(f"dev set not built in {out_dir} ({len(missing)} missing, e.g. {missing[0]}): run `make devset`")
    if missing:
        print(f"dev set: {len(missing)} of {len(pieces)} pieces not built (e.g. {missing[0]}), left out: run `make devset`", file=sys.stderr)
        pieces = [p for p in pieces if p["id"] not in missing]
    loaded = []
    for piece in pieces:
        truth = json.loads((out_dir / f"{piece['id']}.json").read_text())
        truth["split"] = piece.get("split", "design")  # read from the manifest: no rebuild when it changes
        loaded.append((out_dir / f"{piece['id']}.wav", truth))
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="ids to build (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="pieces rendered at once")
    parser.add_argument("--out", type=Path, help="output folder (default: user cache)")
    args = parser.parse_args()
    print(build(args.only, args.jobs, args.out))


if __name__ == "__main__":
    main()
