"""The Typer app: its commands, the callback that sets up logging once, and :func:`main`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from music2video import __version__
from music2video.cli.evaluate_commands import evaluate, report
from music2video.cli.logs import setup_logging
from music2video.cli.run_commands import analyze, assemble, demo_song, make, render, storyboard
from music2video.cli.show import console
from music2video.errors import Music2VideoError

app = typer.Typer(
    name="music2video",
    help=(
        "Turn any song, instrumental or vocal, into a music video: analysis, storyboard, rendering "
        "and beat-exact cuts. Every stage leaves a readable artifact in the run folder beside the "
        "output, and a rerun reuses finished work.\n\n"
        "music2video SONG is short for music2video make SONG."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
for command in (make, analyze, storyboard, render, assemble):
    app.command()(command)
app.command("demo-song")(demo_song)
app.command()(evaluate)
app.command()(report)

VERBOSE_FLAGS = ("-v", "--verbose")


def _print_version(asked: bool) -> None:
    if asked:
        print(f"music2video {__version__}")
        raise typer.Exit()


@app.callback()
def callback(
    verbose: Annotated[bool, typer.Option(*VERBOSE_FLAGS, help="Log every step; show tracebacks. Also accepted after the command.")] = False,
    version: Annotated[bool, typer.Option("--version", "-V", help="Print the version and exit.", callback=_print_version, is_eager=True)] = False,
) -> None:
    setup_logging(verbose)


def _arguments(argv: list[str]) -> list[str]:
    """``music2video SONG ...`` -> ``music2video make SONG ...``, and ``-v`` moved in front of
    the command, where the callback reads it (``music2video SONG -v`` is what people type)."""
    end = argv.index("--") if "--" in argv else len(argv)
    verbose = [arg for arg in argv[:end] if arg in VERBOSE_FLAGS]
    rest = [arg for index, arg in enumerate(argv) if index >= end or arg not in VERBOSE_FLAGS]
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    if rest and not rest[0].startswith("-") and rest[0] not in commands:
        rest.insert(0, "make")
    return verbose[:1] + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns a Music2VideoError into one line and exit code 1."""
    args = _arguments(list(sys.argv[1:] if argv is None else argv))
    # Usage errors are the click exceptions typer bundles (typer._click) or, in typer < 0.22,
    # click's own: found through typer, so that a light install never imports click.
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        app(args=args, prog_name="music2video", standalone_mode=False)
    except Music2VideoError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: finished stages are kept; run the same command again to resume")
        raise SystemExit(130) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except click_exception as error:
        error.show()
        raise SystemExit(error.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
