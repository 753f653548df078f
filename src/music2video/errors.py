"""The one exception type that the CLI turns into a one-line message and exit code 1."""


class Music2VideoError(Exception):
    """A problem the user can act on: bad input, a missing model, an impossible setting.

    The message is shown as-is on one line, so it should name the value at fault and say what
    to do about it.
    """


class InputError(Music2VideoError):
    """The input file cannot be turned into a video (not audio, empty, too short, ...)."""


class ModelLoadError(Music2VideoError):
    """A model could not be loaded from its Hugging Face id or local folder."""


class MissingDependencyError(Music2VideoError):
    """An optional extra is needed for the chosen backend but is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the '{package}' package: install it with "
            f"pip install 'music2video[{extra}]'"
        )


class RunFolderBusy(Music2VideoError):
    """Another process holds the run folder's lock (it is making a video there right now)."""


class WriteError(Music2VideoError):
    """A file-system problem: a place to write is not a folder, read-only or full, or a file
    cannot be opened. The message names the path and the cause."""
