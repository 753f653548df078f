"""The Typer app: its commands, the callback that sets up logging once, and :func:`main`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from music2video import __version__
from music2video.cli.batch_commands import batch
from music2video.cli.evaluate_commands import evaluate, report
from music2video.cli.export_commands import export
from music2video.cli.logs import setup_logging
from music2video.cli.run_commands import analyze, assemble, demo_song, keyframes, make, render, storyboard
from music2video.cli.show import console
from music2video.cli.studio_commands import STUDIO_EXAMPLES, studio
from music2video.cli.study_commands import study_app
from music2video.errors import Music2VideoError



class _PlainHelp:
    """--help reads ``--help``, not ``--help <bool>``."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _Command(_PlainHelp, TyperCommand):
    pass


class _Group(_PlainHelp, TyperGroup):
    pass


MAKE_EXAMPLES = """[bold]Examples[/bold]

  music2video song.mp3                  [dim]# ./song.mp4 and ./song.music2video/[/dim]
  music2video song.mp3 --dry-run        [dim]# the shot plan and a time estimate[/dim]
  music2video song.mp3 -o clip.mp4 --resolution 1280x720 --fps 30
  music2video song.mp3 --style "stop-motion, 1970s, a lighthouse keeper"
  music2video song.mp3 --lyrics words.lrc --subtitles soft
  music2video song.mp3 -v               [dim]# log every step[/dim]
"""

app = typer.Typer(
    cls=_Group,
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
app.command(cls=_Command, epilog=MAKE_EXAMPLES)(make)
for command in (analyze, storyboard, keyframes, render, assemble, evaluate, report, export, batch):
    app.command(cls=_Command)(command)
app.command("demo-song", cls=_Command)(demo_song)
app.command(cls=_Command, epilog=STUDIO_EXAMPLES)(studio)
for command in study_app.registered_commands:
    command.cls = _Command
app.add_typer(study_app, name="study", cls=_Group)

VERBOSE_FLAGS = ("-v", "--verbose")
APP_OPTIONS = ("--version", "-V", "--help", *VERBOSE_FLAGS)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"music2video {__version__}")
        raise typer.Exit()


@app.callback()
def callback(
    verbose: Annotated[bool, typer.Option(*VERBOSE_FLAGS, help="Log every step; show tracebacks. Also accepted after the command.", metavar="")] = False,
    version: Annotated[bool, typer.Option("--version", "-V", help="Print the version and exit.", callback=_print_version, is_eager=True, metavar="")] = False,
) -> None:
    setup_logging(verbose)


def _arguments(argv: list[str]) -> list[str]:
    """``music2video SONG ...`` -> ``music2video make SONG ...``, and ``-v`` moved in front of
    the command, where the callback reads it (``music2video SONG -v`` is what people type)."""
    end = argv.index("--") if "--" in argv else len(argv)
    verbose = [arg for arg in argv[:end] if arg in VERBOSE_FLAGS]
    rest = [arg for index, arg in enumerate(argv) if index >= end or arg not in VERBOSE_FLAGS]
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    commands |= {group.name for group in app.registered_groups}
    if rest and rest[0] not in commands and rest[0] not in APP_OPTIONS and not _mistyped_command(rest[0]):
        rest.insert(0, "make")  # a song, or a flag of make: music2video --fps 30 song.mp3
    return verbose[:1] + rest


def _mistyped_command(word: str) -> bool:
    """A bare word that is no file (``music2video publish``): typer then says "no such command"."""
    return word.isidentifier() and not Path(word).exists()


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error ends as one line on stderr.

    Exit codes: 0 done (or help shown), 1 a problem with the inputs, the models or the
    machine, 2 a usage error (click's convention), 130 interrupted. ``--verbose`` adds the
    traceback of errors that are not music2video's own, and of the file-system error behind
    one of its own.
    """
    args = _arguments(list(sys.argv[1:] if argv is None else argv))
    verbose = bool(args) and args[0] in VERBOSE_FLAGS
    # Usage errors are the click exceptions typer bundles (typer._click) or, in typer < 0.22,
    # click's own: found through typer, so that a light install never imports click.
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        app(args=args, prog_name="music2video", standalone_mode=False)
    except Music2VideoError as error:
        if verbose and isinstance(error.__cause__, OSError):  # the machine's error behind the line
            import traceback

            traceback.print_exception(error.__cause__, file=sys.stderr)
        _error_line(str(error))
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: finished stages are kept; run the same command again to resume")
        raise SystemExit(130) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except click_exception as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # a bare `music2video`: help is the answer
            error.show()
            raise SystemExit(0) from None
        _error_line(_usage_message(error))
        raise SystemExit(error.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except OSError as error:  # the machine: permissions, a full disk, a vanished folder ...
        if verbose:
            raise
        where = f"{error.filename}: " if error.filename else ""
        _error_line(f"{where}{error.strerror or error}")
        raise SystemExit(1) from None
    except Exception as error:
        if verbose:
            raise
        _error_line(f"{type(error).__name__}: {error} (a bug in music2video: --verbose shows where; please report it)")
        raise SystemExit(1) from None


def _error_line(message: str) -> None:
    from rich.markup import escape  # the message's own brackets (pip install 'music2video[ray]') are text

    console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True, markup=True)


def _usage_message(error) -> str:  # error: click's UsageError (or another ClickException)
    """click's message on one line, a "did you mean" for a near-miss flag, and where help is."""
    message = error.format_message() if not hasattr(error, "possibilities") else f"No such option: {error.option_name}"
    possibilities = sorted(getattr(error, "possibilities", None) or [])
    if possibilities:
        message += f"; did you mean {' or '.join(possibilities)}?"
    context = getattr(error, "ctx", None)
    if context is not None:
        message += f" (see {context.command_path} --help)"
    return message
