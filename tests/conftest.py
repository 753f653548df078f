"""Fixtures shared by the test modules.

Session-scoped fixtures are built once per test run (the demo song takes about a second to
synthesise and a second to analyse); tests must not modify what they return.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# librosa compiles with numba on first use; cache the compiled code somewhere writable so that
# only the first test run pays for it. Must be set before librosa is imported.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "numba_cache"))

import pytest  # noqa: E402

from music2video.artifacts import Analysis  # noqa: E402
from music2video.demo import DemoTruth, synthesize_demo_song  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Compile librosa's numba kernels once, before pytest-xdist starts its workers.

    music2video itself does not use librosa (``music2video.spectral``); the tests that compare
    with it do. Two workers compiling into the same empty cache at once crashed numba once on
    this machine; compiling here, in the controller (or the only process), leaves them a warm
    cache. The kernels those tests reach are all compiled when their modules are imported.
    """
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has warmed the cache
        return
    import importlib

    for module in ("librosa.core", "librosa.filters", "librosa.feature", "librosa.onset", "librosa.decompose"):
        importlib.import_module(module)


@pytest.fixture(scope="session")
def demo_song(tmp_path_factory) -> tuple[Path, DemoTruth]:
    """The default demo song (about 62 s, 120 bpm, intro/verse/chorus/verse/chorus/outro) as a
    float WAV, with its ground truth."""
    path = tmp_path_factory.mktemp("demo") / "demo-song.wav"
    truth = synthesize_demo_song(path)
    return path, truth


@pytest.fixture(scope="session")
def demo_analysis(demo_song, tmp_path_factory) -> Analysis:
    """The demo song decoded and analysed exactly as the pipeline does it."""
    from music2video.decode import ANALYSIS_RATE_HZ, decode_audio, load_audio
    from music2video.structure import analyze_structure

    path, _ = demo_song
    wav = tmp_path_factory.mktemp("demo-analysis") / "audio.wav"
    decode_audio(path, wav)
    return analyze_structure(load_audio(wav, ANALYSIS_RATE_HZ), ANALYSIS_RATE_HZ)


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory) -> Path:
    """A tiny random-weight chat model (see tiny_llm.py) saved to a folder, built once per session."""
    pytest.importorskip("transformers")
    pytest.importorskip("llguidance")
    from tiny_llm import build_tiny_llm

    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """On a 32-wide model, several torch threads only fight over a small machine's cores
    (ten times slower here on two); restored afterwards for the tests that follow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


