"""The numpy front end (music2video.spectral) gives librosa's numbers, and the analysis path
compiles nothing: no numba, no librosa imported by ``music2video analyze``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from music2video import spectral

RATE_HZ = 22050


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    """12 s of a 120 bpm pattern: kick and hi-hat clicks over an A-minor chord and some noise."""
    rng = np.random.default_rng(7)
    t = np.arange(12 * RATE_HZ) / RATE_HZ
    y = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63))
    for beat_s in np.arange(0.25, 11.5, 0.5):
        start = int(beat_s * RATE_HZ)
        click = np.exp(-np.arange(2000) / 200.0)
        y[start : start + 2000] += 0.8 * click * np.sin(2 * np.pi * 60 * np.arange(2000) / RATE_HZ)
        y[start + RATE_HZ // 4 : start + RATE_HZ // 4 + 500] += 0.3 * rng.standard_normal(500)
    y += 0.01 * rng.standard_normal(len(y))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def librosa():
    import librosa

    return librosa


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))


@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")
def test_stft_magnitude_matches_librosa(song, librosa):
    for signal in (song, song[:1000], song[: 512 * 7 + 3]):  # whole, shorter than a frame, odd length
        ours = spectral.stft_magnitude(signal, n_fft=2048, hop_length=512)
        assert ours.dtype == np.float32
        assert _relative_error(ours, np.abs(librosa.stft(signal, n_fft=2048, hop_length=512))) < 1e-5


def test_filterbanks_match_librosa(librosa):
    for rate_hz in (RATE_HZ, 44100):
        assert _relative_error(spectral.mel_filters(rate_hz, 2048), librosa.filters.mel(sr=rate_hz, n_fft=2048)) < 1e-6
        assert _relative_error(spectral.chroma_filters(rate_hz, 2048), librosa.filters.chroma(sr=rate_hz, n_fft=2048, tuning=0.0)) < 1e-6
    ours = spectral.mel_frequencies(128, fmax_hz=RATE_HZ / 2)
    assert _relative_error(ours, librosa.mel_frequencies(n_mels=128, fmax=RATE_HZ / 2)) < 1e-9
    times = np.array([0.0, 0.01, 1.3, 100.7])
    assert np.array_equal(spectral.time_to_frames(times, RATE_HZ, 512), librosa.time_to_frames(times, sr=RATE_HZ, hop_length=512))
    frames = np.arange(50)
    assert np.allclose(spectral.frames_to_time(frames, RATE_HZ, 512), librosa.frames_to_time(frames, sr=RATE_HZ, hop_length=512))


def test_spectral_features_match_librosa(song, librosa):
    power = np.abs(librosa.stft(song)) ** 2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=RATE_HZ, n_mels=128))
    # dB: within a thousandth of a dB
    assert np.max(np.abs(spectral.power_to_db(spectral.melspectrogram(power, RATE_HZ)) - mel_db)) < 1e-3
    assert np.max(np.abs(spectral.power_to_db(power, ref=np.max) - librosa.power_to_db(power, ref=np.max))) < 1e-3
    assert _relative_error(spectral.chroma_stft(power, RATE_HZ), librosa.feature.chroma_stft(S=power, sr=RATE_HZ, tuning=0.0)) < 1e-5
    assert _relative_error(spectral.mfcc(mel_db, 14), librosa.feature.mfcc(S=mel_db, n_mfcc=14)) < 1e-5
    magnitude = np.sqrt(librosa.feature.melspectrogram(S=power, sr=RATE_HZ, n_mels=128))
    for ours, theirs in zip(spectral.hpss(magnitude, 17), librosa.decompose.hpss(magnitude, kernel_size=17)):
        assert _relative_error(ours, theirs) < 1e-5


def test_frame_features_match_librosa(song, librosa):
    magnitude = np.abs(librosa.stft(song))
    assert _relative_error(spectral.rms_from_magnitude(magnitude, 2048), librosa.feature.rms(S=magnitude, frame_length=2048)[0]) < 1e-5
    assert _relative_error(spectral.spectral_centroid(magnitude, RATE_HZ), librosa.feature.spectral_centroid(S=magnitude, sr=RATE_HZ)[0]) < 1e-5


def test_cqt_and_its_chroma_match_librosa(song, librosa):
    for bins_per_octave, n_bins in ((36, 7 * 36), (12, 84)):  # the dsp listener's, librosa's default
        ours = spectral.cqt_magnitude(song, RATE_HZ, hop_length=512, n_bins=n_bins, bins_per_octave=bins_per_octave)
        theirs = np.abs(librosa.cqt(song, sr=RATE_HZ, hop_length=512, n_bins=n_bins, bins_per_octave=bins_per_octave))
        assert _relative_error(ours, theirs) < 1e-5
        # each octave on its own scale too: the low octaves come through four rate halvings
        for lo in range(0, n_bins, bins_per_octave):
            assert _relative_error(ours[lo : lo + bins_per_octave], theirs[lo : lo + bins_per_octave]) < 1e-4
        chroma = librosa.feature.chroma_cqt(C=theirs, sr=RATE_HZ, bins_per_octave=bins_per_octave)
        assert _relative_error(spectral.chroma_cqt(theirs, bins_per_octave=bins_per_octave), chroma) < 1e-5
    chroma = spectral.chroma_cqt(spectral.cqt_magnitude(song, RATE_HZ, n_bins=7 * 36, bins_per_octave=36), bins_per_octave=36)
    assert set(np.argsort(chroma.mean(axis=1))[-3:]) == {0, 4, 9}  # C, E and A: the A-minor chord


def test_onsets_and_tempo_match_librosa(song, librosa):
    power = np.abs(librosa.stft(song)) ** 2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=RATE_HZ))
    for center in (True, False):
        ours = spectral.onset_strength(mel_db, center=center)
        assert _relative_error(ours, librosa.onset.onset_strength(S=mel_db, sr=RATE_HZ, center=center)) < 1e-6
        multi = spectral.onset_strength_multi(mel_db, channels=[0, 4, 40], center=center)
        assert _relative_error(multi, librosa.onset.onset_strength_multi(S=mel_db, sr=RATE_HZ, channels=[0, 4, 40], center=center)) < 1e-6
    ours = spectral.onset_strength_from_samples(song, RATE_HZ)
    assert _relative_error(ours, librosa.onset.onset_strength(y=song, sr=RATE_HZ)) < 1e-5

    envelope = librosa.onset.onset_strength(S=mel_db, sr=RATE_HZ, center=False)
    onsets = spectral.onset_detect(envelope, RATE_HZ)
    assert len(onsets) >= 20  # the clicks at least
    assert np.array_equal(onsets, librosa.onset.onset_detect(onset_envelope=envelope, sr=RATE_HZ))
    assert len(spectral.onset_detect(np.zeros(100), RATE_HZ)) == 0  # silence: no onsets, no division by zero
    tempogram = librosa.feature.tempogram(onset_envelope=envelope, sr=RATE_HZ)
    assert _relative_error(spectral.tempogram(envelope.astype(float)), tempogram) < 1e-6
    assert spectral.tempo(envelope, RATE_HZ) == pytest.approx(float(librosa.feature.tempo(onset_envelope=envelope, sr=RATE_HZ)[0]))
    assert spectral.tempo(envelope, RATE_HZ) == pytest.approx(120.0, rel=0.03)


def test_peak_pick_matches_librosa_on_random_signals(librosa):
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.random(300)
        settings = dict(pre_max=int(rng.integers(0, 5)), post_max=int(rng.integers(1, 5)), pre_avg=int(rng.integers(0, 8)),
                        post_avg=int(rng.integers(1, 8)), delta=float(rng.random() * 0.2), wait=int(rng.integers(0, 6)))  # fmt: skip
        assert np.array_equal(spectral.peak_pick(x, **settings), librosa.util.peak_pick(x, **settings)), settings


@pytest.mark.slow
def test_a_whole_preview_run_imports_neither_librosa_nor_numba(tmp_path):
    """``music2video SONG --pipeline preview`` (analysis, dsp listener, lyrics, render, evaluate,
    report) in a fresh process: nothing on its path may compile (a first run in a fresh install
    would stall on numba for ~15 s, ~2 minutes on a busy machine)."""
    from music2video.demo import synthesize_demo_song

    song = tmp_path / "song.wav"
    synthesize_demo_song(song, duration_s=8.0)
    argv = ["music2video", str(song), "-o", str(tmp_path / "out.mp4"), "--pipeline", "preview", "--resolution", "64x36", "--fps", "6"]
    code = (
        "import sys\n"
        "from music2video.cli import main\n"
        f"sys.argv = {argv!r}\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('librosa', 'numba')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "compiling" not in done.stdout + done.stderr


def test_the_package_imports_neither_librosa_nor_numba():
    """librosa is a dev dependency only (the reference in these tests): a module of the package
    that imports it would fail in a user's install and compile numba code on first use."""
    package = Path(spectral.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(package)}:{node.lineno} {name}" for name in names if name.split(".")[0] in ("librosa", "numba")]
    assert offenders == []
