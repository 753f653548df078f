"""Optional extras: one check that says which ``pip install`` a missing package needs.

Backends import their heavy packages lazily (the preview pipeline installs without them), and
call :func:`require` before they start work, so a missing package is one line naming the extra
instead of an ImportError from deep inside a model load.
"""

from __future__ import annotations

import importlib

from music2video.errors import MissingDependencyError


def require(*packages: str, extra: str, purpose: str) -> None:
    """Import each of ``packages``; the first one missing raises :class:`MissingDependencyError`
    naming it and ``pip install 'music2video[<extra>]'``. ``purpose`` starts the message
    ("The clap listener")."""
    for package in packages:
        try:
            importlib.import_module(package)
        except ImportError:
            raise MissingDependencyError(package, extra, purpose) from None
