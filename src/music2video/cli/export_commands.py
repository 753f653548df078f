"""``music2video export RUN_FOLDER --format otio|fcpxml|xml|edl``: the cut for a video editor,
a thin command over :func:`music2video.export.export_timeline`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from music2video.cli.show import console

FORMAT_HELP = (
    "otio (OpenTimelineIO), fcpxml (Final Cut Pro X, DaVinci Resolve), xml (Final Cut Pro 7 XML: Premiere Pro, "
    "Resolve) or edl (CMX 3600, video track only). FCP XML and EDL need a timecode frame rate (24, 25, 30 ...)."
)


def export(
    run_folder: Annotated[Path, typer.Argument(help="A run folder with a finished video (SONG.music2video/).", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP, metavar="otio|fcpxml|xml|edl")] = "otio",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write. Default: in the run folder, named after the video (song.otio).", show_default=False, metavar="FILE")] = None,
) -> None:
    """Export the cut as a timeline for a video editor: every clip at its frame, the song as the audio track."""
    from music2video.export import FORMATS, export_timeline, suggest_format

    if format not in FORMATS:
        raise typer.BadParameter(f"unknown format {format!r}; {suggest_format(format)}choose {', '.join(FORMATS)}", param_hint="--format")
    result = export_timeline(run_folder, format, output)
    console.print(
        f"[green]wrote[/green] {result.path}  ({result.clips} clips, {result.duration_s:.2f} s at {result.fps:g} fps)",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
