"""Checks a run makes before any heavy import: the song is there, and the video can be written
without destroying a file music2video did not make; the run folder can be written and the
disks have room for the run.

Light on purpose (no numpy, librosa or torch), so that a mistake is answered in well under a
second, from the CLI and from :func:`music2video.make_video` alike. Once a run works, a
file-system error anywhere becomes one line that names the path and the cause
(:func:`write_error`), with a full disk told apart: finished work is kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from music2video.errors import InputError, Music2VideoError, WriteError

RUN_FOLDER_SUFFIX = ".music2video"
# errno values that mean "no room": the disk is full, or the user's quota is.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


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


def check_folder(folder: Path, role: str) -> None:
    """Make ``folder`` if it is missing and prove that a file can be created in it.

    Args:
        folder: the folder to check.
        role: what it is for, for the message ("run folder", "output folder").

    Raises:
        WriteError: naming the path and the cause (a file in the way, read-only, no permission ...).
    """
    folder = Path(folder)
    blocker = _file_in_the_way(folder)
    if blocker is not None:
        where = "is a file" if blocker == folder else f"is under {blocker}, which is a file"
        raise WriteError(f"cannot use {folder} as the {role}: it {where}, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(error, folder, f"cannot create the {role}") from error
    # os.access says yes to root on a read-only mount or an immutable folder: try for real.
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=folder)
    except OSError as error:
        # /proc and the like say "no such file" for a folder that exists: say what it means.
        cause = "files cannot be created there" if error.errno == errno.ENOENT else _cause(error)
        raise WriteError(f"cannot write in the {role} {folder}: {cause}") from error
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_free_space(folder: Path, needed_bytes: int, role: str) -> None:
    """Raise when the file system holding ``folder`` has less than ``needed_bytes`` free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise write_error(error, folder, f"cannot check the free space of the {role}") from error
    if free < needed_bytes:
        raise WriteError(
            f"not enough free space for the {role} {folder}: {_megabytes(free)} free, "
            f"this run needs about {_megabytes(needed_bytes)}; free some space or choose another place"
        )


def probe_duration_s(song: Path) -> float | None:
    """The song's duration from its container header (no decoding); None when it has none."""
    import av

    try:
        with av.open(str(song)) as container:
            if container.duration is not None:
                return container.duration / av.time_base
            stream = next(iter(container.streams.audio), None)
            if stream is not None and stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (OSError, ValueError, av.FFmpegError):
        return None
    return None


def folder_bytes(folder: Path) -> int:
    """Bytes in the files under ``folder`` (what a resumed run already has)."""
    total = 0
    for path in Path(folder).rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, is a full disk or quota."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def write_error(error: OSError, path: Path | None = None, doing: str | None = None) -> WriteError:
    """One line for an OSError: the path it concerns and the cause, without a traceback."""
    where = error.filename or path
    cause = _cause(error)
    if error.errno in DISK_FULL_ERRNOS:
        return WriteError(
            f"the disk is full ({cause}) writing {where}; finished work is kept: free some space and run the same command again"
        )
    return WriteError(f"{doing} {where}: {cause}" if doing else f"{where}: {cause}")


def _file_in_the_way(folder: Path) -> Path | None:
    """``folder`` itself or its nearest existing ancestor, when that is not a folder."""
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def _cause(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def _megabytes(count: int) -> str:
    return f"{count / 1e6:,.0f} MB"
