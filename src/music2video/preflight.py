"""Checks a run makes before any heavy import: the song is there, and the video can be written
without destroying a file music2video did not make.

Light on purpose (no numpy, librosa or torch), so that a mistake is answered in well under a
second, from the CLI and from :func:`music2video.make_video` alike.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from music2video.errors import InputError, Music2VideoError

RUN_FOLDER_SUFFIX = ".music2video"


def default_output(song: Path) -> Path:
    """``song.mp3`` -> ``./song.mp4`` in the current directory."""
    return Path.cwd() / f"{Path(song).stem}.mp4"


def default_run_folder(output: Path) -> Path:
    """The run folder sits beside the output: ``song.mp4`` -> ``song.music2video/``."""
    return output.with_name(output.stem + RUN_FOLDER_SUFFIX)


def check_run(
    song: str | Path,
    output: str | Path | None = None,
    workdir: str | Path | None = None,
    *,
    writes_video: bool = True,
    overwrite: bool = False,
) -> None:
    """Every check :func:`music2video.make_video` makes before it starts (raises InputError or
    Music2VideoError with one line naming the path and what to do)."""
    song = Path(song)
    check_song(song)
    if writes_video:
        output = Path(output) if output else default_output(song)
        check_output(song, output, Path(workdir) if workdir else default_run_folder(output), overwrite)


def check_song(song: Path) -> None:
    """The song must be an existing file."""
    if not song.exists():
        raise InputError(f"{song}: no such file")
    if song.is_dir():
        raise InputError(f"{song} is a folder; give an audio or video file")


def check_output(song: Path, output: Path, run_folder: Path, overwrite: bool = False) -> None:
    """Refuse to write ``output`` over the song, or over any file that is not a video of this
    run folder, unless ``overwrite``; and say at once when its folder cannot be written.

    Symlinks and relative paths count by the file they lead to.
    """
    if output.exists():
        if output.is_dir():
            raise InputError(f"{output} is a folder; give the video's file name, e.g. {output / (song.stem + '.mp4')}")
        if not overwrite:
            if song.exists() and os.path.samefile(song, output):
                raise InputError(
                    f"{output} is the song itself; give another output with -o, or --overwrite to replace the song"
                )
            if not _made_by_this_run(output, run_folder):
                raise InputError(
                    f"{output} exists and is not a video this run made; give another output with -o, or --overwrite to replace it"
                )
    _check_writable(output)


def _made_by_this_run(output: Path, run_folder: Path) -> bool:
    """True when the run folder's video.json names ``output``: a rerun may replace its own video."""
    try:
        written = json.loads((run_folder / "video.json").read_text(encoding="utf-8"))["video_path"]
        return os.path.samefile(written, output)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check_writable(output: Path) -> None:
    """Create and delete a file in the output's folder (or its nearest existing parent, which
    the run will create the rest of): the one test that read-only disks, permissions and
    pseudo file systems such as /proc all answer truthfully."""
    folder = output.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise Music2VideoError(f"cannot write {output}: {folder} is not writable ({error.strerror or error})") from None
