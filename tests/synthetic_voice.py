"""Speech with exact word times, for the lyrics tests and benchmark.

espeak-ng (the PyPI wheel espeakng-loader, driven through ctypes, or the Debian package's
``espeak-ng`` command) speaks each word to its own buffer; the words are trimmed of espeak's
silence and placed one after another with short gaps, lines with long gaps, so every word's
start and end in the finished track is known exactly. Callers mix the track over music.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile

TRIM_SHARE = 0.01  # espeak pads with silence: samples below this share of the peak are cut off the ends
WORD_GAP_S = (0.03, 0.12)  # pause between the words of a line
LINE_GAP_S = (2.0, 4.0)  # pause between lines, as in the reproduction


def espeak_available() -> bool:
    try:
        import espeakng_loader  # noqa: F401

        return True
    except ImportError:
        return shutil.which("espeak-ng") is not None


def speak(text: str, path: Path | None = None) -> tuple[np.ndarray, int] | None:
    """Synthesised speech of ``text`` as (samples, rate), or None when no espeak-ng is installed."""
    try:
        import espeakng_loader
    except ImportError:
        espeakng_loader = None
    if espeakng_loader is not None:
        return _speak_with_library(text)
    binary = shutil.which("espeak-ng")
    if binary:
        with tempfile.TemporaryDirectory() as folder:
            target = Path(path) if path is not None else Path(folder) / "speech.wav"
            subprocess.run([binary, "-v", "en", "-w", str(target), text], check=True, capture_output=True, timeout=60)
            samples, rate = soundfile.read(target, dtype="float32")
        return samples, rate
    return None


@lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL, int, list[np.ndarray], object]:
    import espeakng_loader as loader

    library = ctypes.CDLL(loader.get_library_path())
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    synchronous = 2  # AUDIO_OUTPUT_SYNCHRONOUS: samples come to the callback
    rate = library.espeak_Initialize(synchronous, 0, loader.get_data_path().encode(), 0)
    chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def collect(wav, count, events):
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    callback = callback_type(collect)  # kept alive in the cache: espeak holds the pointer
    library.espeak_SetSynthCallback(callback)
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetVoiceByName(b"en")
    library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
    return library, rate, chunks, callback


def _speak_with_library(text: str) -> tuple[np.ndarray, int]:
    library, rate, chunks, _ = _library()
    chunks.clear()
    data = text.encode()
    library.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None)
    library.espeak_Synchronize()
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
    return samples, rate


@lru_cache(maxsize=4096)
def spoken_word(word: str, rate_hz: int) -> np.ndarray:
    """One word, trimmed of silence, at ``rate_hz``, peak 1."""
    speech = speak(word)
    if speech is None:
        raise RuntimeError("no espeak-ng: pip install espeakng-loader, or apt-get install espeak-ng")
    samples, rate = speech
    if rate != rate_hz:
        import soxr

        samples = soxr.resample(samples, rate, rate_hz).astype(np.float32)
    loud = np.flatnonzero(np.abs(samples) > TRIM_SHARE * np.abs(samples).max())
    samples = samples[loud[0] : loud[-1] + 1]
    return samples / max(1e-9, float(np.abs(samples).max()))


@dataclass
class SpokenLyrics:
    """A voice track and its truth: (start, end) per line and per word, seconds."""

    samples: np.ndarray
    rate_hz: int
    texts: list[str]
    lines_s: list[tuple[float, float]] = field(default_factory=list)
    words_s: list[list[tuple[str, float, float]]] = field(default_factory=list)


def spoken_lyrics(
    texts: list[str], duration_s: float, rate_hz: int, first_s: float = 3.0, seed: int = 0,
    line_gap_s: tuple[float, float] = LINE_GAP_S,
) -> SpokenLyrics:  # fmt: skip
    """``texts`` spoken word by word from ``first_s``, with ``line_gap_s`` between lines."""
    rng = np.random.default_rng(seed)
    track = np.zeros(int(duration_s * rate_hz), np.float32)
    result = SpokenLyrics(track, rate_hz, list(texts))
    t = first_s
    for text in texts:
        words = []
        for k, word in enumerate(text.split()):
            if k:
                t += rng.uniform(*WORD_GAP_S)
            audio = spoken_word(word, rate_hz)
            start = int(round(t * rate_hz))
            if start + audio.size > track.size:
                raise ValueError(f"{duration_s} s is too short for the lyrics")
            track[start : start + audio.size] += audio
            words.append((word, start / rate_hz, (start + audio.size) / rate_hz))
            t = (start + audio.size) / rate_hz
        result.words_s.append(words)
        result.lines_s.append((words[0][1], words[-1][2]))
        t += rng.uniform(*line_gap_s)
    return result
