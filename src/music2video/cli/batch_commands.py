"""``batch``: many songs with one set of flags, sharing one executor (see :mod:`music2video.batch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from music2video.cli.flags import INPUT_OUTPUT, pipeline_command
from music2video.cli.run_commands import settings_from_flags
from music2video.cli.show import RichPipelineProgress, console, progress_bar
from music2video.errors import Music2VideoError

@pipeline_command(until="assemble", without=("output", "workdir"))  # a batch names each song's files itself
def batch(
    songs: Annotated[
        Path,
        typer.Argument(
            help="A folder of songs (its audio and video files), or a text file listing one song per line.",
            show_default=False, metavar="FOLDER_OR_LIST",
        ),
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", help="Folder for the videos (SONG.mp4, run folder SONG.music2video/ beside it). \\[default: .]",
            rich_help_panel=INPUT_OUTPUT, metavar="FOLDER", show_default=False,
        ),
    ] = None,
    **flags: Any,
) -> None:
    """Make a video of every song in a folder or list, sharing the render workers (--executor ray).

    A song that fails is named in the summary and the others go on; the exit code is 1 if any failed.
    """
    from music2video.batch import list_songs, make_videos

    settings, keywords = settings_from_flags(flags)
    songs_found = list_songs(songs)
    console.print(f"{len(songs_found)} songs, rendered {'on Ray' if settings.executor == 'ray' else 'here'}")
    with progress_bar() as bar:
        overall = bar.add_task("songs", total=len(songs_found))
        current: list[RichPipelineProgress] = []

        def progress(song: Path) -> RichPipelineProgress:
            current.append(RichPipelineProgress(bar, prefix=f"{song.name}: "))
            return current[-1]

        def on_song(item) -> None:  # item: BatchItem
            for shown in current:
                shown.remove()
            current.clear()
            bar.advance(overall)

        items = make_videos(
            songs_found, output_dir or Path.cwd(), settings, progress=progress, on_song=on_song,
            wait=bool(keywords.get("wait")), overwrite=bool(keywords.get("overwrite")),
        )  # fmt: skip
    table = Table("song", "result", "shots", "seconds", "video, or why not", title="batch")
    for item in items:
        table.add_row(
            item.song.name,
            "[green]done[/green]" if item.ok else "[red]failed[/red]",
            "" if item.shots is None else str(item.shots),
            f"{item.seconds:.1f}",
            str(item.output) if item.ok else item.error or "",
        )
    console.print(table)
    failed = sum(not item.ok for item in items)
    if failed:
        raise Music2VideoError(f"{failed} of {len(items)} songs failed; the table above says why, and the others are made")
