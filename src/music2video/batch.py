"""Many songs in one go: every song through :func:`~music2video.pipeline.make_video` with the
same settings, sharing one executor (on Ray: the same actors, their models loaded once).

A song that fails (not audio, a model error, its run folder busy) is recorded and the next
one starts; only Ctrl-C stops the batch. Songs run one after another: each song's render is
spread over all the workers, and its other stages run in this process.

    from music2video.batch import list_songs, make_videos
    items = make_videos(list_songs(Path("album/")), Path("videos/"), load_settings(executor="ray"))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from music2video.errors import InputError, Music2VideoError
from music2video.preflight import default_run_folder
from music2video.progress import PipelineProgress
from music2video.render.executors import ShotExecutor, executor_for
from music2video.settings import Settings

log = logging.getLogger(__name__)

# What a folder's songs are named like (any file given in a list is tried, whatever its name).
SONG_SUFFIXES = frozenset(
    {".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".wma", ".mp4", ".m4v", ".mkv", ".mov", ".webm"}
)
VIDEO_SUFFIX = ".mp4"


@dataclass
class BatchItem:
    """One song's outcome: its video, or why it failed."""

    song: Path
    output: Path
    seconds: float = 0.0
    shots: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def list_songs(source: Path) -> list[Path]:
    """The songs of a folder (its audio and video files, sorted by name; videos that music2video
    made there, which have a run folder beside them, are left out), or of a list file (one path
    per line, relative to the list's folder; blank lines and ``#`` comments skipped)."""
    source = Path(source)
    if source.is_dir():
        songs = sorted(
            path
            for path in source.iterdir()
            if path.is_file() and path.suffix.lower() in SONG_SUFFIXES and not default_run_folder(path).is_dir()
        )
        if not songs:
            raise InputError(f"{source} holds no audio or video files ({', '.join(sorted(SONG_SUFFIXES))})")
        return songs
    if not source.is_file():
        raise InputError(f"{source}: no such folder or list file")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as error:
        raise InputError(f"{source} is not a folder nor a text file listing songs ({error})") from None
    songs = [source.parent / line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not songs:
        raise InputError(f"{source} lists no songs; write one path per line")
    return songs


def outputs_for(songs: list[Path], output_dir: Path) -> list[Path]:
    """``output_dir/<song name>.mp4`` for each song; two songs of one name are refused."""
    outputs = [output_dir / (song.stem + VIDEO_SUFFIX) for song in songs]
    seen: dict[Path, Path] = {}
    for song, output in zip(songs, outputs, strict=True):
        if output in seen:
            raise InputError(f"{seen[output]} and {song} would both become {output}; rename one of them")
        seen[output] = song
    return outputs


def make_videos(
    songs: list[Path],
    output_dir: Path,
    settings: Settings,
    *,
    executor: ShotExecutor | None = None,
    progress: Callable[[Path], PipelineProgress] | None = None,
    on_song: Callable[[BatchItem], None] | None = None,
    wait: bool = False,
    overwrite: bool = False,
) -> list[BatchItem]:
    """Make a video of each song in ``output_dir`` (``<song name>.mp4``, its run folder beside
    it); return one :class:`BatchItem` per song, in order. ``executor`` (default: the one
    ``settings.executor`` names, started once for the whole batch) renders every song's shots.
    ``progress(song)`` gives the progress of one song's run; ``on_song`` hears each outcome."""
    from music2video.pipeline import make_video

    outputs = outputs_for(songs, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    items: list[BatchItem] = []
    with executor_for(settings, executor) as shared:
        connect = getattr(shared, "connect", None)
        if connect is not None:  # a cluster that cannot be reached fails the batch once, not each song
            connect()
        for song, output in zip(songs, outputs, strict=True):
            item = BatchItem(song, output)
            started = time.perf_counter()
            try:
                result = make_video(
                    song, output, settings=settings, executor=shared, progress=progress(song) if progress else None,
                    wait=wait, overwrite=overwrite,
                )  # fmt: skip
                item.shots = len(result.plan.shots)
            except Music2VideoError as error:
                item.error = " ".join(str(error).split())
            except Exception as error:  # one song's bug must not cost the others their videos
                log.exception("%s failed", song)
                item.error = f"{type(error).__name__}: {error}"
            item.seconds = time.perf_counter() - started
            if item.error:
                log.error("%s failed: %s", song, item.error)
            items.append(item)
            if on_song is not None:
                on_song(item)
    return items
