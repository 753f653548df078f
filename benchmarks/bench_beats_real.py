"""Acceptance benchmark of the beat grid on real recordings with charted ground truth (issue 11).

The Debian packages ``fretsonfire-songs-muldjord`` and ``fretsonfire-songs-sectoid`` hold eight
recorded rock/metal songs, each with its audio stems (``song.ogg``, ``guitar.ogg``, maybe
``rhythm.ogg``: the full mix is their sum) and a Frets on Fire chart (``notes.mid``) whose tempo
map and time signatures are authored to the recording. They are kept OUT of the dev set on
purpose: nothing may be tuned on them; this script only measures.

Truth: a beat per time-signature denominator note (a quarter for x/4; MIDI's 4/4 where the
chart sets none), a downbeat every numerator beats from each time signature's start, over the
tempo map, shifted by ``song.ini``'s ``delay`` (ms; Frets on Fire's chart position is the audio
position minus the delay, so audio time = chart time + delay). Only the beats where the mix is
audible count (from 70 ms before its first frame above -40 dB re its loudest frame to its last):
a chart's clock runs on through silence where no tracker can hear a beat.

Scored like ``bench_beats.py`` (its ``score``, trackers and cache are imported, not copied):
beat F (±70 ms), CMLt, AMLt, downbeat F, tempo within 4 % (60 / median inter-beat interval, no
octave forgiveness), and our planned cuts (``plan_shots``, default shot settings) within ±50 ms
of a true beat; for ours (default tracker ``hybrid``), ``tracker="dsp"``, librosa's
``beat_track`` with its defaults and madmom's RNN + DBN (when it imports: ``make madmom``).

    apt-get install fretsonfire-songs-muldjord fretsonfire-songs-sectoid   # or: make fof-songs
    python benchmarks/bench_beats_real.py [--trackers ours dsp librosa madmom] [--json results.json]

The mixes and the librosa/madmom outputs are cached under ``<user cache>/music2video/fof``.
"""

from __future__ import annotations

import argparse
import configparser
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_beats  # noqa: E402  (the dev-set benchmark: trackers, cache, scores)

SONGS_DIR = Path("/usr/share/games/fretsonfire/data/songs")
PACKS = ("muldjord", "sectoid")
STEMS = ("song.ogg", "guitar.ogg", "rhythm.ogg")
AUDIBLE_DB = -40.0
"""A frame is audible above this RMS level relative to the mix's loudest frame (dB)."""
AUDIBLE_FRAME_S = 0.05
MIX_RATE_HZ = 44_100
"""The mix's rate: madmom's networks run at 44.1 kHz and resample other rates with ffmpeg's binary."""
FIGURES = [("beat_f", "{:.3f}"), ("cmlt", "{:.3f}"), ("amlt", "{:.3f}"), ("downbeat_f", "{:.3f}"), ("tempo_ok", "{:.0%}"), ("cuts_on_beat", "{:.1%}")]


def song_dirs() -> list[Path]:
    return sorted(d for pack in PACKS for d in (SONGS_DIR / pack).glob("*") if (d / "notes.mid").exists())


def cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("music2video")) / "fof"


def build_mix(song: Path, out: Path) -> Path:
    """The full mix (the sum of the stems present) as a 16-bit WAV, decoded through our helpers."""
    import soundfile

    from music2video.decode import decode_audio, load_audio

    wav = out / f"{song.name.replace(' ', '_')}.wav"
    if wav.exists():
        return wav
    stems = []
    with tempfile.TemporaryDirectory(prefix="m2v-fof-") as tmp:
        for name in STEMS:
            if (song / name).exists():
                decoded = Path(tmp) / f"{name}.wav"
                decode_audio(song / name, decoded)
                stems.append(load_audio(decoded, MIX_RATE_HZ, mono=True))
    mix = np.zeros(max(len(s) for s in stems), dtype=np.float32)
    for stem in stems:
        mix[: len(stem)] += stem
    mix /= max(1.0, float(np.max(np.abs(mix))) / 0.9)  # a level change only: no beat moves
    out.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(wav.with_suffix(".tmp.wav")), mix, MIX_RATE_HZ, subtype="PCM_16")  # 16-bit PCM: every tracker's reader takes it
    wav.with_suffix(".tmp.wav").replace(wav)
    return wav


def delay_s(song: Path) -> float:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(song / "song.ini", encoding="utf-8")
    return float(ini.get("song", "delay", fallback="0") or 0) / 1000.0


def audible_span_s(wav: Path) -> tuple[float, float]:
    import soundfile

    samples, rate = soundfile.read(str(wav), dtype="float32")
    frame = int(AUDIBLE_FRAME_S * rate)
    rms = np.sqrt(np.mean(samples[: len(samples) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (AUDIBLE_DB / 20))
    return float(loud[0] * AUDIBLE_FRAME_S), float((loud[-1] + 1) * AUDIBLE_FRAME_S)


def chart_truth(song: Path, wav: Path) -> dict:
    """Beats and downbeats from the chart's tempo map and time signatures (see the docstring)."""
    import mido
    import soundfile

    from music2video.beat_grid import midi_tempo_map, ticks_to_seconds

    midi = mido.MidiFile(song / "notes.mid")
    tpq = midi.ticks_per_beat
    signatures, end_tick = [], 0
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "time_signature":
                signatures.append((tick, message.numerator, message.denominator))
            if message.type == "note_on":
                end_tick = max(end_tick, tick)
    signatures = sorted(signatures) or [(0, 4, 4)]
    if signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    beat_ticks, downbeat_ticks = [], []
    for i, (start, numerator, denominator) in enumerate(signatures):
        stop = signatures[i + 1][0] if i + 1 < len(signatures) else end_tick + 1
        ticks = np.arange(start, stop, tpq * 4 / denominator)
        beat_ticks.extend(ticks)
        downbeat_ticks.extend(ticks[::numerator])
    offset = delay_s(song)
    tempo_map = midi_tempo_map(midi)
    beats = ticks_to_seconds(np.array(beat_ticks), tempo_map, tpq) + offset
    downbeats = ticks_to_seconds(np.array(downbeat_ticks), tempo_map, tpq) + offset
    first, last = audible_span_s(wav)
    keep = lambda t: t[(t >= first - bench_beats.BEAT_WINDOW_S) & (t <= last)]  # noqa: E731
    beats, downbeats = keep(beats), keep(downbeats)
    return {
        "id": song.name,
        "beats_s": beats.tolist(),
        "downbeats_s": downbeats.tolist(),
        "beats_per_bar": signatures[0][1],
        "tempo_bpm": bench_beats.tempo_of(beats),
        "duration_s": soundfile.info(str(wav)).duration,
        "delay_s": offset,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trackers", nargs="*", default=["ours", "dsp", "librosa", "madmom"])
    parser.add_argument("--json", type=Path, help="write the truth summary and per-song results here")
    args = parser.parse_args()

    songs = song_dirs()
    if not songs:
        print(f"no Frets on Fire songs under {SONGS_DIR}: apt-get install fretsonfire-songs-muldjord fretsonfire-songs-sectoid; skipped")
        return
    trackers = [t for t in args.trackers if bench_beats.AVAILABLE[t]() or print(f"{t}: not installed, skipped", file=sys.stderr)]
    out = cache_dir()
    results: dict[str, dict[str, dict]] = {t: {} for t in trackers}
    truths = {}
    lines = ["| song | true bpm | meter | tracker | beat F | CMLt | AMLt | downbeat F | bpm | cuts ±50 ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for song in songs:
        wav = build_mix(song, out)
        truth = chart_truth(song, wav)
        truths[song.name] = {k: v for k, v in truth.items() if k not in ("beats_s", "downbeats_s")}
        for tracker in trackers:
            output = bench_beats.tracker_output(tracker, wav, out / "outputs", use_cache=tracker in ("librosa", "madmom"))
            result = bench_beats.score(truth, output)
            results[tracker][song.name] = result
            cells = [f"{result[k]:.3f}" if k in result else "-" for k in ("beat_f", "cmlt", "amlt", "downbeat_f")]
            cuts = f"{result['cuts_on_beat']:.0%}" if "cuts_on_beat" in result else "-"
            tempo = f"{result['tempo_bpm']:.1f}" if result["tempo_bpm"] else "-"
            meter = f"{truth['beats_per_bar']}" + (f" (est {output['beats_per_bar']})" if output.get("beats_per_bar") else "")
            line = f"| {song.name} | {truth['tempo_bpm']:.1f} | {meter} | {tracker} | " + " | ".join(cells) + f" | {tempo} | {cuts} |"
            lines.append(line)
            print(line, file=sys.stderr, flush=True)
    for tracker in trackers:
        cells = []
        for key, fmt in FIGURES:
            values = [r[key] for r in results[tracker].values() if key in r]
            cells.append(fmt.format(statistics.mean(values)) if values else "-")
        beat_f, cmlt, amlt, downbeat_f, tempo_ok, cuts = cells
        lines.append(f"| **mean ({len(songs)})** | | | {tracker} | {beat_f} | {cmlt} | {amlt} | {downbeat_f} | tempo ok {tempo_ok} | {cuts} |")
    print(f"\n# Beat grid on {len(songs)} real recordings (Frets on Fire charts; acceptance only, never tuned on)")
    print("\n".join(lines))
    for tracker in trackers:
        if (line := bench_beats.alarms(results[tracker], list(results[tracker]))) is not None:
            print(f"self-check, {tracker}: {line}")
    if args.json:
        args.json.write_text(json.dumps({"truth": truths, "results": results}, indent=1))


if __name__ == "__main__":
    main()
