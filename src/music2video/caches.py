"""Compiled code cached in the user's cache folder, so a user's own runs reuse it.

librosa compiles its numba functions the first time they run (or are imported), which costs
about 30 s of CPU once. numba keeps the result in ``NUMBA_CACHE_DIR``; by default that would be
``__pycache__`` beside librosa, lost with every new environment and unwritable in a system
one. :func:`use_user_numba_cache` runs when ``music2video`` is imported, before numba is.
"""

from __future__ import annotations

import os
from pathlib import Path

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"
# What the first analysis costs on top of later ones: `music2video analyze` on a 30 s song took
# 34 s of CPU with an empty cache and 6.6 s with a warm one (one core; 2-core machine).
NUMBA_FIRST_COMPILE_S = 30


def use_user_numba_cache() -> Path:
    """Set ``NUMBA_CACHE_DIR`` to ``<user cache>/music2video/numba`` unless it is set already
    (the Makefile and the tests choose their own); returns the folder in use."""
    if not os.environ.get(NUMBA_CACHE_ENV):
        from platformdirs import user_cache_dir

        os.environ[NUMBA_CACHE_ENV] = str(Path(user_cache_dir("music2video")) / "numba")
    return Path(os.environ[NUMBA_CACHE_ENV])


def numba_cache_is_cold() -> bool:
    """True when numba has compiled nothing into the cache yet: the next analysis compiles."""
    folder = Path(os.environ.get(NUMBA_CACHE_ENV) or use_user_numba_cache())
    return not any(folder.glob("*/*.nbi"))
