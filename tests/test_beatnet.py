"""BeatNet in numpy (music2video.beatnet): the network against a stored torch output and, when
installed, torch itself; the features and the benchmark's DBN against madmom when installed;
beats of a drum track; the tracker through the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from music2video import beatnet
from music2video.settings import GridSettings
from music2video.structure import analyze_structure

RATE = beatnet.RATE_HZ
FIXTURE = Path(__file__).parent / "data" / "beatnet_forward.json"


def _fixed_input() -> np.ndarray:
    return (2 * np.random.default_rng(2021).random((16, 272))).astype(np.float32)


def test_network_gives_the_stored_reference_output():
    """The expected softmax was computed by torch (Conv1d, LSTM, Linear as in BeatNet's BDA)
    from the packaged weights; see _torch_forward below."""
    expected = np.array(json.loads(FIXTURE.read_text())["softmax"])
    assert np.abs(beatnet.network(_fixed_input(), 3) - expected).max() < 1e-4


def _torch_forward(features: np.ndarray, model: int) -> np.ndarray:
    """BeatNet's BDA.forward + final_pred, built from torch layers with the packaged weights."""
    import torch

    w = {name: torch.from_numpy(value) for name, value in beatnet._weights(model).items()}
    conv, linear0 = torch.nn.Conv1d(1, 2, 10), torch.nn.Linear(262, 150)
    lstm, linear = torch.nn.LSTM(150, 150, 2, batch_first=True), torch.nn.Linear(150, 3)
    with torch.no_grad():
        conv.weight.copy_(w["conv1_weight"])
        conv.bias.copy_(w["conv1_bias"])
        linear0.weight.copy_(w["linear0_weight"])
        linear0.bias.copy_(w["linear0_bias"])
        for name, parameter in lstm.named_parameters():
            parameter.copy_(w["lstm_" + name])
        linear.weight.copy_(w["linear_weight"])
        linear.bias.copy_(w["linear_bias"])
        x = torch.nn.functional.max_pool1d(torch.relu(conv(torch.from_numpy(features).unsqueeze(1))), 2).flatten(1)
        x, _ = lstm(linear0(x).unsqueeze(0))
        return torch.softmax(linear(x)[0], dim=1).numpy()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize("model", beatnet.MODELS)
def test_network_equals_torch_on_song_like_features(model):
    features = beatnet.log_filtered_features(_drum_track(120.0, 8.0)[0])
    assert np.abs(beatnet.network(features, model) - _torch_forward(features, model)).max() < 1e-4


def _madmom():
    try:
        import madmom.audio.signal  # noqa: F401
    except Exception as error:  # ImportError, or madmom's PackageNotFoundError without its dist-info
        pytest.skip(f"madmom not usable: {error}")


def test_features_equal_madmoms_processors_as_beatnet_configures_them():
    _madmom()
    from madmom.audio.signal import FramedSignalProcessor, SignalProcessor
    from madmom.audio.spectrogram import (
        FilteredSpectrogramProcessor,
        LogarithmicSpectrogramProcessor,
        SpectrogramDifferenceProcessor,
    )
    from madmom.audio.stft import ShortTimeFourierTransformProcessor
    from madmom.processors import SequentialProcessor

    samples = _drum_track(100.0, 6.0)[0]
    reference = SequentialProcessor(
        (
            SignalProcessor(num_channels=1, sample_rate=RATE),
            FramedSignalProcessor(frame_size=beatnet.FRAME, hop_size=beatnet.HOP),
            ShortTimeFourierTransformProcessor(),
            FilteredSpectrogramProcessor(num_bands=24, fmin=30, fmax=17000, norm_filters=True),
            LogarithmicSpectrogramProcessor(mul=1, add=1),
            SpectrogramDifferenceProcessor(diff_ratio=0.5, positive_diffs=True, stack_diffs=np.hstack),
        )
    )(samples)
    ours = beatnet.log_filtered_features(samples)
    assert ours.shape == reference.shape == (int(np.ceil(len(samples) / beatnet.HOP)), 272)
    assert np.abs(ours - reference).max() < 1e-5


def test_benchmark_dbn_decodes_as_madmom():
    _madmom()
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "beatnet"))
    import dbn

    acts = beatnet.activations(*_drum_track(132.0, 12.0)[::2])
    reference = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=beatnet.FPS)(acts)
    ours = dbn.decode_bars(acts, (3, 4))
    assert ours is not None
    np.testing.assert_allclose(ours.beats_s, reference[:, 0])
    np.testing.assert_array_equal(ours.positions, reference[:, 1].astype(int))


def _drum_track(bpm: float, duration_s: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(samples at RATE, true beat times, RATE): kick on beats 1 and 3, snare on 2 and 4,
    hi-hat on every eighth note, from 0.4 s on."""
    rng = np.random.default_rng(7)
    t = np.arange(int(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.09)
    snare = 0.6 * rng.standard_normal(len(t)) * np.exp(-t / 0.06)
    hat = 0.15 * rng.standard_normal(len(t)) * np.exp(-t / 0.015)
    samples = np.zeros(int(duration_s * RATE))
    beats_s = 0.4 + np.arange(0, duration_s - 0.7, 60.0 / bpm)

    def put(time_s: float, signal: np.ndarray) -> None:
        start = int(time_s * RATE)
        end = min(len(samples), start + len(signal))
        samples[start:end] += signal[: end - start]

    for k, time_s in enumerate(beats_s):
        put(time_s, kick if k % 2 == 0 else snare)
        put(time_s, hat)
        put(time_s + 30.0 / bpm, hat)
    return (0.5 * samples / np.abs(samples).max()).astype(np.float32), beats_s, RATE


def test_the_network_fires_on_the_beats_of_a_drum_track():
    samples, beats_s, rate = _drum_track(110.0, 15.0)
    acts = beatnet.activations(samples, rate).sum(axis=1)
    on_beat = np.round(beats_s[4:] * beatnet.FPS).astype(int)  # after the first bars (the LSTM is causal)
    near = np.max([acts[np.clip(on_beat + d, 0, len(acts) - 1)] for d in (-1, 0, 1)], axis=0)
    between = acts[np.clip(on_beat + int(round(0.5 * 60 / 110 * beatnet.FPS)), 0, len(acts) - 1)]
    assert np.median(near) > 0.3
    assert np.median(near) > 3 * np.median(between)


def test_beatnet_tracker_follows_a_drum_track_and_the_report_credits_it(tmp_path):
    from music2video.report import RunArtifacts, _key_figures

    samples, beats_s, rate = _drum_track(124.0, 20.0)
    analysis = analyze_structure(samples, rate, grid=GridSettings(tracker="beatnet"))
    assert analysis.grid_source == "tracker:beatnet"
    assert mir_eval.beat.f_measure(beats_s, np.asarray(analysis.beats_s), f_measure_threshold=0.07) >= 0.9
    assert analysis.tempo_bpm == pytest.approx(124.0, rel=0.04)
    figures = _key_figures(RunArtifacts(root=tmp_path, analysis=analysis))
    tempo_note = next(note for name, _, note in figures if name == "tempo")
    assert "tracker:beatnet" in tempo_note and "BeatNet" in tempo_note and "CC BY 4.0" in tempo_note


def test_user_overrides_win_over_beatnet():
    samples, _, rate = _drum_track(124.0, 12.0)
    analysis = analyze_structure(samples, rate, grid=GridSettings(tracker="beatnet", bpm=100.0, meter=3))
    assert analysis.grid_source == "user:bpm+user:meter"
    assert analysis.tempo_bpm == pytest.approx(100.0, rel=0.01) and analysis.beats_per_bar == 3


@pytest.mark.slow
def test_cli_names_the_tracker_and_analysis_json_records_it(tmp_path):
    command = [sys.executable, "-m", "music2video", "analyze"]
    wide = dict(os.environ, COLUMNS="250")  # rich wraps the help to the terminal's width
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120, env=wide)
    help_text = " ".join(done.stdout.replace("│", " ").split())
    assert done.returncode == 0 and "dsp|beatnet|madmom|beat_this" in help_text and "CC BY 4.0" in help_text
    wav = tmp_path / "drums.wav"
    samples, _, rate = _drum_track(124.0, 12.0)
    sf.write(wav, samples, rate)
    done = subprocess.run(
        [*command, str(wav), "-o", str(tmp_path / "out.mp4"), "--beat-tracker", "beatnet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    analysis = json.loads((tmp_path / "out.music2video" / "analysis.json").read_text())
    assert analysis["grid_source"] == "tracker:beatnet"
