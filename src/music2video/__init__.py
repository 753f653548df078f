"""music2video: turn any song, instrumental or vocal, into a music video.

The Python API is the same code path as the CLI::

    from music2video import make_video
    result = make_video("song.mp3", "song.mp4", pipeline="preview")
    print(result.video.video_path, len(result.plan.shots))
"""

from typing import Any

from music2video.caches import use_user_numba_cache

__version__ = "0.1.0"

# Before anything imports numba (through librosa): its compiled code then lands in the user's
# cache folder and is reused by every later run (caches.py says why).
use_user_numba_cache()

__all__ = ["Music2VideoError", "RunResult", "Settings", "load_settings", "make_video", "__version__"]

# Imported on first use, so that `import music2video` (and every stage module) stays light.
_LAZY = {
    "make_video": "music2video.pipeline",
    "RunResult": "music2video.pipeline",
    "Settings": "music2video.settings",
    "load_settings": "music2video.settings",
    "Music2VideoError": "music2video.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'music2video' has no attribute {name!r}")
