"""A synthetic demo song whose beats, bars and sections are known exactly.

The song is made from simple synthesised instruments (kick, snare, hi-hats, crash, bass, pad,
plucked keys, a lead in the chorus) and has the form

    silence | pickup | intro | verse | chorus | verse | chorus | outro | final chord

At the defaults (60 s, 120 bpm, 4/4) the sections are 4, 6, 6, 6, 6 and 2 bars long
(``SECTION_PLAN``), preceded by ``LEAD_IN_S`` of silence and a one-beat pickup (anacrusis), and
followed by a final chord on the next downbeat that rings for ``RING_OUT_S``: 62.3 s in all. Other
durations scale every section's bar count (at least one bar each).

What makes it a fair test of an analyser:

* The first sound is the pickup on beat 4, not a downbeat, so "every 4th beat from the first
  one" gives the wrong bars. Bars are only visible in the music itself: the chord and the bass
  note change on every downbeat, the kick is louder on beat 1 than on beat 3, and a crash
  marks the first downbeat of each verse and chorus.
* Repeated sections are sample-for-sample the same material (a verse is a verse), so they
  should get the same label; section types differ in chords, instruments and level: the
  chorus is the loudest and brightest part (crash, 16th hats, bright pad, lead melody), the
  verse has kick, snare, 8th hats, bass, pad and plucked keys, the intro a dark pad with a
  soft kick and hats, the outro plucked keys over the bass with a soft kick only.
* ``tempo_end_bpm`` ramps the tempo linearly across the song, to test beat tracking under drift.

The ground truth is returned as ``DemoTruth`` and saved beside the audio as
``<audio file name>.truth.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from music2video.runfolder import atomic_path, write_json_atomic

BEATS_PER_BAR = 4
LEAD_IN_S = 0.3
"""Silence before the pickup beat, so that no beat sits at time zero."""
PICKUP_BEATS = 1
"""Beats before the first downbeat (an anacrusis on beat 4)."""
RING_OUT_S = 1.5
"""Shortest time the final chord rings after the last downbeat."""
PEAK_LEVEL = 0.89
"""Peak amplitude of the finished mix (about -1 dBFS)."""

# (role, label, bars at the default length). Repeated roles reuse the same material.
SECTION_PLAN: list[tuple[str, str, int]] = [
    ("intro", "A", 4),
    ("verse", "B", 6),
    ("chorus", "C", 6),
    ("verse", "B", 6),
    ("chorus", "C", 6),
    ("outro", "D", 2),
]
DEFAULT_DURATION_S = 60.0

# Chord progressions (MIDI note numbers), one chord per bar, cycled over a section's length.
_A_MINOR, _D_MINOR, _E_MINOR = (57, 60, 64), (50, 53, 57), (52, 55, 59)
_F_MAJOR, _C_MAJOR, _G_MAJOR = (53, 57, 60), (48, 52, 55), (55, 59, 62)
PROGRESSIONS: dict[str, list[tuple[int, ...]]] = {
    "intro": [_A_MINOR, _D_MINOR, _A_MINOR, _E_MINOR],
    "verse": [_A_MINOR, _F_MAJOR, _C_MAJOR, _G_MAJOR],
    "chorus": [_F_MAJOR, _G_MAJOR, _E_MINOR, _A_MINOR],
    "outro": [_C_MAJOR, _G_MAJOR],
}
# Section level (linear gain) and pad brightness (number of harmonics).
SECTION_GAIN = {"intro": 0.45, "verse": 0.7, "chorus": 1.0, "outro": 0.45}
PAD_HARMONICS = {"intro": 3, "verse": 4, "chorus": 10, "outro": 3}

WRITABLE_SUFFIXES = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


class DemoTruth(BaseModel):
    """What the demo song really contains. Times in seconds from the start of the file."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    duration_s: float
    sample_rate_hz: int
    tempo_bpm: float = Field(description="Median tempo; the starting tempo of a drifting song is tempo_start_bpm.")
    tempo_start_bpm: float
    tempo_end_bpm: float
    beats_per_bar: int = BEATS_PER_BAR
    beats_s: list[float]
    downbeats_s: list[float]
    sections: list[tuple[float, float, str, str]] = Field(description="(start_s, end_s, label, role), tiling the song.")
    seed: int


def truth_path(audio_path: Path) -> Path:
    """Where the ground truth of the demo song at ``audio_path`` is saved."""
    audio_path = Path(audio_path)
    return audio_path.with_name(audio_path.name + ".truth.json")


def load_truth(audio_path: Path) -> DemoTruth:
    return DemoTruth.model_validate_json(truth_path(audio_path).read_text(encoding="utf-8"))


def synthesize_demo_song(
    path: Path,
    duration_s: float = DEFAULT_DURATION_S,
    tempo_bpm: float = 120.0,
    sample_rate_hz: int = 44100,
    seed: int = 0,
    tempo_end_bpm: float | None = None,
) -> DemoTruth:
    """Write the demo song to ``path`` and its ground truth to ``truth_path(path)``.

    Args:
        path: output file; its suffix picks the format (``.wav`` float32, ``.flac``, ``.ogg``).
            Other formats can be made from the WAV with PyAV.
        duration_s: target length in seconds; the song is a whole number of bars, so the
            result is close to it (see ``DemoTruth.duration_s``). At least one bar per section.
        tempo_bpm: tempo at the start, beats per minute.
        sample_rate_hz: sample rate of the file.
        seed: seeds the chorus melody and the drums' noise; the same arguments always give
            the same file.
        tempo_end_bpm: when set, the tempo ramps linearly (per beat) from ``tempo_bpm`` to this.

    Returns:
        The ground truth, also saved as JSON beside the audio.
    """
    path = Path(path)
    fmt = WRITABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot write the demo song as {path.suffix or 'a file without suffix'}; "
            f"use one of {', '.join(sorted(WRITABLE_SUFFIXES))} (convert other formats with PyAV)"
        )
    if tempo_bpm <= 0 or (tempo_end_bpm is not None and tempo_end_bpm <= 0):
        raise ValueError(f"tempo must be positive, got {tempo_bpm} and {tempo_end_bpm}")
    end_bpm = tempo_bpm if tempo_end_bpm is None else tempo_end_bpm

    # 1. Lay out the form in bars, then the beat grid in seconds.
    section_bars = _section_bars(duration_s, (tempo_bpm + end_bpm) / 2)
    total_bars = sum(bars for _, _, bars in section_bars)
    # Beat 0 is the pickup; bar i starts at beat PICKUP_BEATS + BEATS_PER_BAR * i; the final
    # chord falls on the downbeat after the last bar.
    n_beats = PICKUP_BEATS + BEATS_PER_BAR * total_bars + 1
    beat_bpm = np.linspace(tempo_bpm, end_bpm, n_beats)
    beat_times_s = LEAD_IN_S + np.concatenate([[0.0], np.cumsum(60.0 / beat_bpm[:-1])])
    song = _Song(beat_times_s, sample_rate_hz, RING_OUT_S, seed)

    # 2. Play every section; repeated sections render the same material.
    sections: list[tuple[float, float, str, str]] = []
    bar = 0
    for index, (role, label, bars) in enumerate(section_bars):
        first_beat = PICKUP_BEATS + BEATS_PER_BAR * bar
        song.play_section(role, first_beat, bars)
        start_s = 0.0 if index == 0 else float(beat_times_s[first_beat])
        sections.append((start_s, 0.0, label, role))
        bar += bars
    song.play_pickup()
    song.play_final_chord(PICKUP_BEATS + BEATS_PER_BAR * total_bars)

    audio = song.mix()
    duration = audio.shape[1] / sample_rate_hz
    sections = [
        (start, sections[i + 1][0] if i + 1 < len(sections) else duration, label, role)
        for i, (start, _, label, role) in enumerate(sections)
    ]

    # 3. Write the audio and its truth, each atomically.
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.T, sample_rate_hz, format=fmt, subtype="FLOAT" if fmt == "WAV" else None)
    downbeat_indices = range(PICKUP_BEATS, n_beats, BEATS_PER_BAR)
    truth = DemoTruth(
        duration_s=duration,
        sample_rate_hz=sample_rate_hz,
        tempo_bpm=float(60.0 / np.median(np.diff(beat_times_s))),
        tempo_start_bpm=tempo_bpm,
        tempo_end_bpm=end_bpm,
        beats_s=[round(float(t), 6) for t in beat_times_s],
        downbeats_s=[round(float(beat_times_s[i]), 6) for i in downbeat_indices],
        sections=[(round(s, 6), round(e, 6), label, role) for s, e, label, role in sections],
        seed=seed,
    )
    write_json_atomic(truth_path(path), truth)
    return truth


def _section_bars(duration_s: float, mean_bpm: float) -> list[tuple[str, str, int]]:
    """SECTION_PLAN scaled so the song lasts about ``duration_s`` (at least one bar each)."""
    bar_s = BEATS_PER_BAR * 60.0 / mean_bpm
    default_bars = sum(bars for _, _, bars in SECTION_PLAN)
    music_s = max(0.0, duration_s - LEAD_IN_S - RING_OUT_S)
    scale = music_s / bar_s / default_bars
    return [(role, label, max(1, round(bars * scale))) for role, label, bars in SECTION_PLAN]


# ------------------------------------------------------------------------------------------
# Synthesis


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


class _Song:
    """A stereo buffer plus the instruments, placed by beat position (float beats)."""

    def __init__(self, beat_times_s: np.ndarray, rate_hz: int, ring_out_s: float, seed: int):
        self.beat_times_s = beat_times_s
        self.rate_hz = rate_hz
        self.seed = seed
        self.length = int(np.ceil((beat_times_s[-1] + ring_out_s) * rate_hz))
        self.buffer = np.zeros((2, self.length))
        rng = np.random.default_rng(seed)
        # Drum noises are fixed samples (like a drum machine), so every hit sounds the same.
        self.hat_noise = _highpass(rng.standard_normal(int(0.3 * rate_hz)), 7000.0, rate_hz)
        self.crash_noise = _highpass(rng.standard_normal(int(2.0 * rate_hz)), 4000.0, rate_hz)
        self.snare_noise = _bandpass(rng.standard_normal(int(0.25 * rate_hz)), 1500.0, 8000.0, rate_hz)
        self.click_noise = rng.standard_normal(int(0.004 * rate_hz))
        # The chorus melody: 8th and quarter notes from the chord tones, fixed per seed so
        # that both choruses play the same tune.
        self.melody = self._compose_melody(rng)
        self._note_cache: dict[tuple, np.ndarray] = {}

    # Time -------------------------------------------------------------------------------

    def time_s(self, beat: float) -> float:
        """Time of a (fractional) beat position; linear beyond the last beat."""
        times, n = self.beat_times_s, len(self.beat_times_s)
        if beat >= n - 1:
            return float(times[-1] + (beat - (n - 1)) * (times[-1] - times[-2]))
        return float(np.interp(beat, np.arange(n), times))

    def add(self, beat: float, signal: np.ndarray, gain: float, pan: float = 0.0) -> None:
        """Mix ``signal`` (mono) in at ``beat``; pan -1 (left) .. 1 (right), constant power."""
        start = int(round(self.time_s(beat) * self.rate_hz))
        if start >= self.length:
            return
        end = min(self.length, start + len(signal))
        angle = (pan + 1) * np.pi / 4
        piece = signal[: end - start] * gain
        self.buffer[0, start:end] += np.cos(angle) * piece
        self.buffer[1, start:end] += np.sin(angle) * piece

    def span_s(self, beat: float, beats: float) -> float:
        return self.time_s(beat + beats) - self.time_s(beat)

    # Form -------------------------------------------------------------------------------

    def play_section(self, role: str, first_beat: int, bars: int) -> None:
        gain = SECTION_GAIN[role]
        progression = PROGRESSIONS[role]
        for bar in range(bars):
            downbeat = first_beat + BEATS_PER_BAR * bar
            chord = progression[bar % len(progression)]
            self.play_drums(role, downbeat, first_bar=bar == 0, gain=gain)
            self.play_bass(role, downbeat, chord, gain)
            if role != "outro":
                self.play_pad(role, downbeat, chord, gain)
            if role in ("verse", "outro"):
                self.play_keys(downbeat, chord, gain * (2.0 if role == "outro" else 1.0))
            if role == "chorus":
                self.play_melody(downbeat, bar, gain)

    def play_pickup(self) -> None:
        """Beat 4 before the first bar: a snare fill (two 8th notes) over a bass note that leads
        into the downbeat. Loud enough to be heard as a beat, but with no kick: it is not a bar start."""
        gain = SECTION_GAIN["verse"]
        self.add(0, self.bass_note(_midi_hz(40), self.span_s(0, 0.9)), 0.5 * gain)
        self.add(0, self.snare(), 0.6 * gain)
        self.add(0.5, self.snare(), 0.45 * gain)
        self.add(0, self.hat(0.05), 0.3 * gain, pan=0.3)

    def play_final_chord(self, beat: int) -> None:
        gain = SECTION_GAIN["outro"]
        ring_s = (self.length / self.rate_hz) - self.time_s(beat)
        self.add(beat, self.kick(), 1.0 * gain)
        self.add(beat, self.crash(), 0.35 * gain)
        self.add(beat, self.bass_note(_midi_hz(33), ring_s), 0.6 * gain)
        self.add(beat, self.chord(_A_MINOR, ring_s, PAD_HARMONICS["outro"]), 0.25 * gain)

    # Parts ------------------------------------------------------------------------------

    def play_drums(self, role: str, downbeat: int, first_bar: bool, gain: float) -> None:
        if first_bar and role in ("verse", "chorus"):
            self.add(downbeat, self.crash(), 0.35 * gain)
        if role in ("intro", "outro"):
            # Sparse: a soft kick on the downbeat; quarter-note hats in the intro only.
            self.add(downbeat, self.kick(), 0.7 * gain)
            if role == "intro":
                for beat in range(BEATS_PER_BAR):
                    self.add(downbeat + beat, self.hat(0.04), 0.25 * gain, pan=0.3)
            return
        # Kick on 1 (accented) and 3, snare on 2 and 4, hats on 8ths (16ths in the chorus).
        self.add(downbeat, self.kick(), 1.0 * gain)
        self.add(downbeat + 2, self.kick(), 0.7 * gain)
        for beat in (1, 3):
            self.add(downbeat + beat, self.snare(), 0.6 * gain, pan=-0.05)
            if role == "chorus":
                self.add(downbeat + beat, self.snare(), 0.25 * gain, pan=0.4)  # clap-like double
        subdivision = 4 if role == "chorus" else 2
        for step in range(BEATS_PER_BAR * subdivision):
            on_beat = step % subdivision == 0
            open_hat = role == "chorus" and step % subdivision == subdivision // 2
            hat = self.hat(0.25 if open_hat else 0.04)
            self.add(downbeat + step / subdivision, hat, (0.3 if on_beat else 0.18) * gain, pan=0.35)

    def play_bass(self, role: str, downbeat: int, chord: tuple[int, ...], gain: float) -> None:
        root_hz = _midi_hz(chord[0] - 24)
        if role in ("intro", "outro"):
            self.add(downbeat, self.bass_note(root_hz, self.span_s(downbeat, 3.8)), 0.55 * gain)
            return
        # 8th notes on the root, the one on the downbeat held longer and louder.
        for step in range(BEATS_PER_BAR * 2):
            beat = downbeat + step / 2
            length = 0.9 if step == 0 else 0.4
            self.add(beat, self.bass_note(root_hz, self.span_s(beat, length)), (0.6 if step == 0 else 0.4) * gain)

    def play_pad(self, role: str, downbeat: int, chord: tuple[int, ...], gain: float) -> None:
        pad = self.chord(chord, self.span_s(downbeat, BEATS_PER_BAR), PAD_HARMONICS[role])
        self.add(downbeat, pad, 0.16 * gain, pan=-0.2)

    def play_keys(self, downbeat: int, chord: tuple[int, ...], gain: float) -> None:
        """Verse only: an arpeggio of plucked chord tones on 8th notes."""
        pattern = [0, 1, 2, 1, 0, 1, 2, 1]
        for step, tone in enumerate(pattern):
            self.add(downbeat + step / 2, self.pluck(_midi_hz(chord[tone] + 12)), 0.12 * gain, pan=0.25)

    def play_melody(self, downbeat: int, bar: int, gain: float) -> None:
        """Chorus only: the lead melody, two bars long, repeated."""
        phrase = self.melody[bar % 2]
        for start_beat, length_beats, note in phrase:
            beat = downbeat + start_beat
            self.add(beat, self.lead(_midi_hz(note), self.span_s(beat, length_beats)), 0.14 * gain, pan=-0.1)

    def _compose_melody(self, rng: np.random.Generator) -> list[list[tuple[float, float, int]]]:
        scale = [69, 71, 72, 74, 76, 77, 79, 81]  # A minor, A4 to A5
        phrases = []
        for _ in range(2):
            notes, beat = [], 0.0
            while beat < BEATS_PER_BAR:
                length = float(rng.choice([0.5, 0.5, 1.0]))
                length = min(length, BEATS_PER_BAR - beat)
                notes.append((beat, length * 0.9, int(rng.choice(scale))))
                beat += length
            phrases.append(notes)
        return phrases

    # Instruments ------------------------------------------------------------------------
    # Each returns a mono float64 signal at the song's rate, cached by its parameters because
    # repeated sections play the same notes.

    def _cached(self, key: tuple, make) -> np.ndarray:
        if key not in self._note_cache:
            self._note_cache[key] = make()
        return self._note_cache[key]

    def _t(self, duration_s: float) -> np.ndarray:
        return np.arange(int(duration_s * self.rate_hz)) / self.rate_hz

    def kick(self) -> np.ndarray:
        def make():
            t = self._t(0.35)
            freq = 45.0 + 85.0 * np.exp(-t / 0.03)
            body = np.sin(2 * np.pi * np.cumsum(freq) / self.rate_hz) * np.exp(-t / 0.12)
            body[: len(self.click_noise)] += 0.3 * self.click_noise * np.linspace(1, 0, len(self.click_noise))
            return body

        return self._cached(("kick",), make)

    def snare(self) -> np.ndarray:
        def make():
            t = self._t(0.25)
            tone = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05)
            return 0.5 * tone + 0.8 * self.snare_noise[: len(t)] * np.exp(-t / 0.07)

        return self._cached(("snare",), make)

    def hat(self, decay_s: float) -> np.ndarray:
        def make():
            t = self._t(min(0.3, 6 * decay_s))
            return self.hat_noise[: len(t)] * np.exp(-t / decay_s)

        return self._cached(("hat", decay_s), make)

    def crash(self) -> np.ndarray:
        def make():
            t = self._t(2.0)
            return self.crash_noise[: len(t)] * np.exp(-t / 0.6)

        return self._cached(("crash",), make)

    def bass_note(self, freq_hz: float, duration_s: float) -> np.ndarray:
        def make():
            t = self._t(duration_s)
            wave = sum(np.sin(2 * np.pi * k * freq_hz * t) / k for k in range(1, 7))
            return wave * _envelope(t, attack_s=0.005, decay_s=0.4, sustain=0.6, release_s=0.03)

        return self._cached(("bass", round(freq_hz, 3), round(duration_s, 4)), make)

    def chord(self, notes: tuple[int, ...], duration_s: float, harmonics: int) -> np.ndarray:
        def make():
            t = self._t(duration_s)
            wave = np.zeros_like(t)
            for note in notes:
                for detune in (-0.08, 0.08):  # two slightly detuned voices per note: a chorus effect
                    freq = _midi_hz(note + detune)
                    for k in range(1, harmonics + 1):
                        if k * freq < self.rate_hz / 2:
                            wave += np.sin(2 * np.pi * k * freq * t) / k
            return wave * _envelope(t, attack_s=0.06, decay_s=1.0, sustain=0.8, release_s=0.12)

        return self._cached(("chord", notes, round(duration_s, 4), harmonics), make)

    def pluck(self, freq_hz: float) -> np.ndarray:
        def make():
            t = self._t(0.3)
            wave = sum(np.sin(2 * np.pi * k * freq_hz * t) * np.exp(-t * (8 + 6 * k)) / k for k in range(1, 6))
            return wave

        return self._cached(("pluck", round(freq_hz, 3)), make)

    def lead(self, freq_hz: float, duration_s: float) -> np.ndarray:
        def make():
            t = self._t(duration_s)
            vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t)
            phase = 2 * np.pi * freq_hz * np.cumsum(vibrato) / self.rate_hz
            wave = sum(np.sin(k * phase) / k for k in range(1, 12, 2) if k * freq_hz < self.rate_hz / 2)
            return wave * _envelope(t, attack_s=0.01, decay_s=0.2, sustain=0.7, release_s=0.04)

        return self._cached(("lead", round(freq_hz, 3), round(duration_s, 4)), make)

    def mix(self) -> np.ndarray:
        """The finished stereo mix, (2, n) float32, peak at ``PEAK_LEVEL``."""
        peak = np.max(np.abs(self.buffer))
        return (self.buffer * (PEAK_LEVEL / peak if peak > 0 else 1.0)).astype(np.float32)


def _envelope(t: np.ndarray, attack_s: float, decay_s: float, sustain: float, release_s: float) -> np.ndarray:
    """Attack-decay-sustain-release amplitude envelope over the note's samples ``t`` (seconds)."""
    if len(t) == 0:
        return t
    duration_s = t[-1]
    attack = np.clip(t / attack_s, 0, 1)
    decay = sustain + (1 - sustain) * np.exp(-np.maximum(t - attack_s, 0) / decay_s)
    release = np.clip((duration_s - t) / release_s, 0, 1)
    return attack * decay * release


def _highpass(signal: np.ndarray, cutoff_hz: float, rate_hz: int) -> np.ndarray:
    sos = scipy.signal.butter(4, min(cutoff_hz, 0.45 * rate_hz), "highpass", fs=rate_hz, output="sos")
    return scipy.signal.sosfilt(sos, signal) * 0.5


def _bandpass(signal: np.ndarray, low_hz: float, high_hz: float, rate_hz: int) -> np.ndarray:
    sos = scipy.signal.butter(2, [low_hz, min(high_hz, 0.45 * rate_hz)], "bandpass", fs=rate_hz, output="sos")
    return scipy.signal.sosfilt(sos, signal)
