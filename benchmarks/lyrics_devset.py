"""A development set for lyrics timing: spoken words with exact times over real instruments.

Each song is a General MIDI arrangement composed here from a seed (a lead melody on a fiddle,
flute, clarinet, sax or guitar that plays through the vocal gaps, chords, bass, drums), rendered
by FluidSynth through a General MIDI SoundFont (real sampled instruments), with lyric lines
spoken word by word by espeak-ng (``tests/synthetic_voice.py``) 2-4 s apart. The truth is every
word's start and end.

Needs: ``apt-get install fluidsynth fluid-soundfont-gm`` (or ``timgm6mb-soundfont``), ``mido``
(a dependency of the dev tools here) and espeak-ng (``pip install espeakng-loader``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_voice import SpokenLyrics, spoken_lyrics  # noqa: E402

RATE_HZ = 16_000
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
SONG_S = 48.0
LYRIC_POOL = [
    "walking down the silver road", "carry all my heavy load", "morning light upon the hill",
    "every river running still", "hold on to the night", "we were young and the river ran",
    "under city lights", "she said the summer never ends", "call me when the rain is gone",
    "dancing on the kitchen floor", "nothing left to lose tonight", "take me to the other side",
    "paper boats on windy water", "long ago a sailor told me", "sing it loud and sing it clear",
    "golden fields and open sky", "all the stars are falling down", "i will wait for you forever",
]  # fmt: skip
LEADS = {"fiddle": 40, "flute": 73, "clarinet": 71, "alto sax": 65, "nylon guitar": 24, "accordion": 21}
CHORDS = {"piano": 0, "steel guitar": 25, "strings": 48, "organ": 19}
PROGRESSIONS = [[0, 7, 9, 5], [0, 5, 7, 0], [9, 5, 0, 7], [0, 9, 5, 7]]  # I-V-vi-IV etc., semitones above the key
MAJOR = [0, 2, 4, 5, 7, 9, 11]


@dataclass
class DevSong:
    name: str
    path: Path
    lyrics: SpokenLyrics
    voice_to_music_db: float
    description: str


def soundfont() -> str | None:
    return next((path for path in SOUNDFONTS if Path(path).is_file()), None)


def available() -> str | None:
    """None when the set can be built, else what is missing."""
    if shutil.which("fluidsynth") is None or soundfont() is None:
        return "FluidSynth and a General MIDI SoundFont (apt-get install fluidsynth fluid-soundfont-gm)"
    try:
        import mido  # noqa: F401
    except ImportError:
        return "mido (pip install mido)"
    from synthetic_voice import espeak_available

    if not espeak_available():
        return "espeak-ng (pip install espeakng-loader)"
    return None


def compose(path: Path, seed: int, duration_s: float) -> str:
    """Write a General MIDI file of about ``duration_s`` seconds; returns a description."""
    import mido

    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(84, 132))
    key = int(rng.integers(55, 63))
    lead_name = list(LEADS)[seed % len(LEADS)]
    chord_name = list(CHORDS)[int(rng.integers(len(CHORDS)))]
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    ticks = 480
    beat_s = 60.0 / bpm
    bars = int(np.ceil(duration_s / (4 * beat_s)))
    events: list[tuple[int, mido.Message]] = []  # (absolute tick, message)

    def note(channel: int, pitch: int, start: int, length: int, velocity: int) -> None:
        events.append((start, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        events.append((start + length, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))

    for channel, program in ((0, LEADS[lead_name]), (1, CHORDS[chord_name]), (2, 33)):
        events.append((0, mido.Message("program_change", channel=channel, program=program)))
    scale = [key + 12 + step + octave for octave in (0, 12) for step in MAJOR]
    position = int(rng.integers(len(scale) // 2))
    for bar in range(bars):
        root = key + progression[bar % len(progression)]
        third = 3 if progression[bar % len(progression)] == 9 else 4
        start = bar * 4 * ticks
        for pitch in (root, root + third, root + 7):
            note(1, pitch, start, 4 * ticks - 20, 58)
        for b in range(4):
            note(2, root - 24 + (7 if b % 2 else 0), start + b * ticks, ticks - 40, 80)
            note(9, 36 if b % 2 == 0 else 38, start + b * ticks, ticks // 2, 90)
            for half in range(2):
                note(9, 42, start + b * ticks + half * ticks // 2, ticks // 4, 55)
        # The lead plays phrases of eighths and quarters with rests: a second, non-repeating
        # melodic voice in the vocal band, the detector's hardest case.
        tick = start
        while tick < start + 4 * ticks:
            length = ticks // 2 if rng.random() < 0.6 else ticks
            if rng.random() < 0.8:
                position = int(np.clip(position + rng.integers(-2, 3), 0, len(scale) - 1))
                note(0, scale[position], tick, length - 10, int(rng.integers(70, 100)))
            tick += length
    events.sort(key=lambda e: (e[0], e[1].type == "note_on"))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    last = 0
    for tick, message in events:
        track.append(message.copy(time=tick - last))
        last = tick
    midi = mido.MidiFile(ticks_per_beat=ticks)
    midi.tracks.append(track)
    midi.save(path)
    return f"{bpm:.0f} BPM, {lead_name} lead, {chord_name} chords"


def render(midi: Path, wav: Path) -> np.ndarray:
    sf2 = soundfont()
    subprocess.run(
        ["fluidsynth", "-ni", "-g", "0.6", "-r", str(RATE_HZ), "-F", str(wav), sf2, str(midi)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    samples, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    assert rate == RATE_HZ
    return samples.mean(axis=1)


def build(folder: Path, songs: int = 6, duration_s: float = SONG_S, lines: int = 8) -> list[DevSong]:
    """The set in ``folder`` (built once; reused when the files are there)."""
    folder.mkdir(parents=True, exist_ok=True)
    result = []
    for seed in range(songs):
        rng = np.random.default_rng(1000 + seed)
        texts = [LYRIC_POOL[i] for i in rng.choice(len(LYRIC_POOL), size=lines, replace=False)]
        voice = spoken_lyrics(texts, duration_s, RATE_HZ, first_s=float(rng.uniform(3.0, 6.0)), seed=seed)
        midi = folder / f"song{seed}.mid"
        description = compose(midi, seed, duration_s)
        music = render(midi, folder / f"song{seed}-music.wav")
        music = np.pad(music, (0, max(0, voice.samples.size - music.size)))[: voice.samples.size]
        voiced = np.zeros(music.size, bool)
        for a, b in voice.lines_s:
            voiced[int(a * RATE_HZ) : int(b * RATE_HZ)] = True
        ratio_db = float([-6.0, -3.0, 0.0, 3.0][seed % 4])
        voice_rms = float(np.sqrt(np.mean(voice.samples[voiced] ** 2)))
        music_rms = float(np.sqrt(np.mean(music[voiced] ** 2)))
        mix = music + voice.samples * (music_rms / voice_rms) * 10 ** (ratio_db / 20)
        mix = 0.9 * mix / float(np.abs(mix).max())
        path = folder / f"song{seed}.wav"
        soundfile.write(path, mix.astype(np.float32), RATE_HZ, subtype="FLOAT")
        result.append(DevSong(f"song{seed}", path, voice, ratio_db, description))
    return result
