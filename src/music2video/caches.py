"""Compiled code cached in the user's cache folder, so a user's own runs reuse it.

Nothing on music2video's own paths compiles: its audio front end is numpy
(``music2video.spectral``), because librosa's feature functions compile numba kernels on first
use (about 14 s on two idle cores, 2 minutes under load). Libraries a user adds beside it may
still use numba (librosa itself in a notebook, an opt-in beat tracker): numba keeps what it
compiles in ``NUMBA_CACHE_DIR``, by default ``__pycache__`` beside the library, lost with every
new environment and unwritable in a system one. :func:`use_user_numba_cache` runs when
``music2video`` is imported, before numba is.
"""

from __future__ import annotations

import os
from pathlib import Path

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def use_user_numba_cache() -> Path:
    """Set ``NUMBA_CACHE_DIR`` to ``<user cache>/music2video/numba`` unless it is set already
    (the Makefile and the tests choose their own); returns the folder in use."""
    if not os.environ.get(NUMBA_CACHE_ENV):
        from platformdirs import user_cache_dir

        os.environ[NUMBA_CACHE_ENV] = str(Path(user_cache_dir("music2video")) / "numba")
    return Path(os.environ[NUMBA_CACHE_ENV])
