"""Listeners: what the song sounds like, in numbers and words.

Every listener returns the same :class:`~music2video.artifacts.Descriptions` (one description
for the whole song, one per analysis section, one per planned shot), so the writers never
need to know which one ran:

* ``dsp`` (:mod:`music2video.listen.dsp`): offline signal descriptors and plain words; no model.
* ``clap`` (:mod:`music2video.listen.clap`): a CLAP model scores each span against label
  vocabularies.
* ``lalm`` (:mod:`music2video.listen.lalm`): a large audio-language model describes each span
  in sentences.

:func:`describe` runs the one called by name with its own settings section; :func:`fingerprint`
says what besides the shot plan decides its result, so the listen stage's key follows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from music2video.artifacts import Analysis, Descriptions, ShotPlan
from music2video.errors import Music2VideoError
from music2video.listen.dsp import describe_dsp
from music2video.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from music2video.settings import ClapSettings, LalmSettings

LISTENERS = ("dsp", "clap", "lalm")


def describe(
    listener: str,
    audio_wav: Path,
    analysis: Analysis,
    plan: ShotPlan,
    settings: ClapSettings | LalmSettings | None = None,
    progress: ProgressCallback = no_progress,
    *,
    samples: np.ndarray | None = None,
) -> Descriptions:
    """Describe the song, its sections and the shots of ``plan`` with the listener called ``listener``.

    Args:
        listener: one of :data:`LISTENERS`.
        audio_wav: the run folder's canonical WAV.
        analysis, plan: the song's structure and the shots to describe.
        settings: the listener's own section (``[clap]`` or ``[lalm]``; dsp has none); None
            uses that section's defaults.
        progress: called as ``progress(done, total, message)``.
        samples: the song as mono at ``decode.ANALYSIS_RATE_HZ`` when the caller has read it
            already (the dsp listener reads ``audio_wav`` otherwise).

    Returns:
        ``Descriptions`` with ``shots`` aligned to ``plan.shots`` and ``sections`` to
        ``analysis.sections``.
    """
    if listener == "dsp":
        from music2video import decode

        if samples is None:
            samples = decode.load_audio(Path(audio_wav), sample_rate_hz=decode.ANALYSIS_RATE_HZ)
        return describe_dsp(samples, decode.ANALYSIS_RATE_HZ, analysis, plan, progress)
    if listener == "clap":
        from music2video.listen.clap import describe_clap
        from music2video.settings import ClapSettings

        return describe_clap(Path(audio_wav), analysis, plan, _section(settings, ClapSettings), progress)
    if listener == "lalm":
        from music2video.listen.lalm import describe_lalm
        from music2video.settings import LalmSettings

        return describe_lalm(Path(audio_wav), analysis, plan, _section(settings, LalmSettings), progress)
    raise Music2VideoError(f"unknown listener {listener!r}; choose {', '.join(LISTENERS[:-1])} or {LISTENERS[-1]}")


def fingerprint(listener: str, settings: ClapSettings | LalmSettings | None = None) -> list[Any]:
    """What besides the shot plan decides ``listener``'s descriptions (its settings and the data
    files it reads), as parts of the listen stage's key."""
    if listener == "dsp":
        return [None, None]
    if listener == "clap":
        from music2video.listen import clap
        from music2video.settings import ClapSettings

        return clap.fingerprint(_section(settings, ClapSettings))
    if listener == "lalm":
        from music2video.listen import lalm
        from music2video.settings import LalmSettings

        return lalm.fingerprint(_section(settings, LalmSettings))
    raise Music2VideoError(f"unknown listener {listener!r}; choose {', '.join(LISTENERS[:-1])} or {LISTENERS[-1]}")


def _section(settings: Any, expected: type) -> Any:
    if settings is None:
        return expected()
    if not isinstance(settings, expected):
        raise TypeError(f"expected {expected.__name__} settings, got {type(settings).__name__}")
    return settings


__all__ = ["LISTENERS", "describe", "describe_dsp", "fingerprint"]
