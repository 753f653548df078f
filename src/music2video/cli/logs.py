"""Logging for the command line, set up once by the app's callback (commands never do)."""

from __future__ import annotations

import logging

from rich.logging import RichHandler

from music2video.cli.show import console

# Libraries whose INFO lines say nothing a user of music2video needs, even with --verbose.
QUIET_LOGGERS = ("numba", "matplotlib", "PIL", "httpx", "urllib3", "filelock")


def setup_logging(verbose: bool = False) -> None:
    """Warnings (or, with ``verbose``, every step) as plain lines on stderr."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
