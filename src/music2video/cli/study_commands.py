"""``music2video study create|serve|results|prescreen``: a human-evaluation study of any videos.

Thin commands over :mod:`music2video.study`: ``create`` makes the study folder
(:func:`~music2video.study.design.create_study`), ``serve`` runs the local page participants
use (:func:`~music2video.study.server.serve_study`), ``results`` writes the statistics and
plots (:func:`~music2video.study.results.write_results`), ``prescreen`` scores the videos with
a vision-language model (:func:`~music2video.study.prescreen.prescreen_study`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from music2video.cli.show import console
from music2video.study import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_PRESCREEN_FRAMES, DEFAULT_PRESCREEN_MODEL

STUDY_EXAMPLES = """[bold]Examples[/bold]

  music2video study create ours.mp4 theirs.mp4 --name pilot
  music2video study create a.mp4 b.mp4 -n ab --condition ours --condition baseline
  music2video study create *.mp4 --name bench --preset automv
  music2video study serve pilot.study      [dim]# http://127.0.0.1:8766/[/dim]
  music2video study results pilot.study    [dim]# pilot.study/results/[/dim]
"""

study_app = typer.Typer(
    name="study",
    help="Rate videos with real people: make a blinded study, serve it on a local page, analyse the answers.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    epilog=STUDY_EXAMPLES,
)

StudyFolder = Annotated[Path, typer.Argument(help="The study folder (NAME.study, made by study create).", show_default=False, metavar="STUDY")]


@study_app.command()
def create(
    videos: Annotated[list[Path], typer.Argument(help="The videos to rate (ours or any others).", show_default=False, metavar="VIDEO")],
    name: Annotated[str, typer.Option("--name", "-n", help="The study's name; the folder is NAME.study unless --output says otherwise.", show_default=False, metavar="NAME")],
    condition: Annotated[list[str] | None, typer.Option(help="The condition of each video, once per video in the same order (default: the pipeline in the video's run folder).", show_default=False, metavar="LABEL")] = None,
    song: Annotated[list[str] | None, typer.Option(help="The song of each video, once per video (default: from the run folder, else the file name).", show_default=False, metavar="LABEL")] = None,
    preset: Annotated[str, typer.Option(help="Rating dimensions: default (storytelling, visual coherence, emotional alignment, sync, overall) or automv (AutoMV's 12 criteria).", metavar="default|automv")] = "default",
    dimension: Annotated[list[str] | None, typer.Option(help="A dimension of your own, 'Label' or 'Label=Question' (repeat; replaces the preset's).", show_default=False, metavar="TEXT")] = None,
    scale: Annotated[int, typer.Option(help="Likert scale points: 5 or 7.", metavar="5|7")] = 5,
    design: Annotated[str, typer.Option(help="within: everyone rates every video; between: each participant rates one condition.", metavar="within|between")] = "within",
    seed: Annotated[int, typer.Option(help="Seed of the blinded names and the presentation orders.", metavar="N")] = 0,
    attention_check: Annotated[bool, typer.Option("--attention-check/--no-attention-check", help="Ask one instructed-response question per participant; those who fail it are left out of the results.", metavar="")] = True,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The study folder to make (default: NAME.study here).", show_default=False, metavar="FOLDER")] = None,
) -> None:
    """Make a study folder: blinded copies of the videos, their conditions, the questions and the orders."""
    from music2video.study.design import create_study, parse_dimension

    if design not in ("within", "between"):
        raise typer.BadParameter(f"{design!r} is not within or between", param_hint="--design")
    if scale not in (5, 7):
        raise typer.BadParameter(f"{scale} is not 5 or 7", param_hint="--scale")
    if preset not in ("default", "automv"):
        raise typer.BadParameter(f"{preset!r} is not default or automv", param_hint="--preset")
    if not name.strip():
        raise typer.BadParameter("the name is empty", param_hint="--name")
    folder = output or Path(f"{_slug(name)}.study")
    study = create_study(
        videos,
        folder,
        name=name,
        conditions=condition or None,
        songs=song or None,
        preset=preset,
        dimensions=[parse_dimension(text) for text in dimension] if dimension else None,
        scale_points=scale,
        design=design,  # type: ignore[arg-type]
        seed=seed,
        attention_check=attention_check,
    )
    table = Table("video", "condition", "song", "source")
    for video in study.videos:
        table.add_row(video.code, video.condition, video.song, video.source)
    Console().print(table)
    if len(study.conditions) == 1 and len(study.videos) > 1:
        console.print(f"[yellow]warning:[/yellow] every video is '{study.conditions[0]}': results will describe it but compare nothing; give --condition once per video to compare")
    conditions = f"{len(study.conditions)} condition{'s' if len(study.conditions) != 1 else ''}"
    console.print(
        f"[green]made[/green] {folder}  [dim]({len(study.videos)} videos, {conditions}, "
        f"{len(study.dimensions)} dimensions on 1-{study.scale_points}, {study.design}-subject)[/dim]"
    )
    console.print(f"next: music2video study serve {folder}")


@study_app.command()
def serve(
    study: StudyFolder,
    host: Annotated[str, typer.Option(help="Address to listen on. Only this computer can open the page at 127.0.0.1; 0.0.0.0 lets anyone on the network take part.", metavar="ADDRESS")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.", metavar="PORT")] = DEFAULT_PORT,
) -> None:
    """Serve the study's page: participants watch each video and rate it; answers are saved as they are given."""
    from music2video.study.design import load_study
    from music2video.study.server import serve_study
    from music2video.studio.safety import is_loopback

    if not 0 < port < 65536:
        raise typer.BadParameter(f"{port} is not a port number (1-65535)", param_hint="--port")
    loaded = load_study(study)
    if not is_loopback(host):
        console.print(f"[yellow]warning:[/yellow] listening on {host}: anyone who can reach this machine can open the study and add answers")

    def ready(url: str) -> None:
        console.print(f"[green]serving[/green] {loaded.name} at [bold]{url}[/bold]  [dim](Ctrl+C to stop; answers are saved in {study / 'answers.sqlite'})[/dim]")

    serve_study(study, host=host, port=port, on_ready=ready)


@study_app.command()
def results(
    study: StudyFolder,
    alpha: Annotated[float, typer.Option(help="Significance level, after Holm's correction over every dimension and pair of conditions.", metavar="P")] = 0.05,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for results.html, results.json, answers.csv and plots (default: STUDY/results).", show_default=False, metavar="FOLDER")] = None,
) -> None:
    """Statistics of the answers so far: distributions, means with CIs, rank tests, agreement, plots, CSV."""
    from music2video.study.results import write_results

    if not 0 < alpha < 1:
        raise typer.BadParameter(f"{alpha} is not between 0 and 1", param_hint="--alpha")
    found, page = write_results(study, alpha=alpha, output=output)
    for warning in found.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    table = Table("dimension", *found.conditions)
    cells = {(c.condition, c.dimension): c for c in found.cells}
    for dimension in [*found.dimensions, "all"]:
        row = [cells.get((c, dimension)) or next(o for o in found.overall if o.condition == c) for c in found.conditions]
        table.add_row(dimension, *("–" if c.mean is None else f"{c.mean:.2f} [{c.ci_low:.2f}, {c.ci_high:.2f}]" for c in row))
    Console().print(table)
    significant = [c for c in found.comparisons if c.significant]
    console.print(
        f"{found.participants} participants ({found.finished} finished, {found.excluded_attention} failed the attention check); "
        f"{len(significant)} of {len(found.comparisons)} tests significant at {alpha} after Holm"
    )
    console.print(f"[green]wrote[/green] {page}")


@study_app.command()
def prescreen(
    study: StudyFolder,
    model: Annotated[str, typer.Option(help="Vision-language model: Hugging Face id or local folder.", metavar="MODEL")] = DEFAULT_PRESCREEN_MODEL,
    frames: Annotated[int, typer.Option(help="Frames sampled evenly through each video.", metavar="N")] = DEFAULT_PRESCREEN_FRAMES,
    device: Annotated[str, typer.Option(help="auto, cuda, cuda:1, mps or cpu.", metavar="DEVICE")] = "auto",
) -> None:
    """Score the videos on the study's criteria with a vision-language model: a first look, NOT a substitute for people."""
    from music2video.study.design import load_study
    from music2video.study.prescreen import NOT_A_SUBSTITUTE, prescreen_study

    if not 1 <= frames <= 64:
        raise typer.BadParameter(f"{frames} is not from 1 to 64", param_hint="--frames")
    load_study(study)  # a wrong folder is said before anything else
    console.print(f"[yellow]note:[/yellow] {NOT_A_SUBSTITUTE}")
    done = prescreen_study(study, model=model, frames=frames, device=device, progress=lambda i, n: console.print(f"[dim]scored {i}/{n} videos[/dim]"))
    table = Table("video", *[d for d in done.videos[0].scores] if done.videos else [])
    for video in done.videos:
        table.add_row(video.video, *(f"{score:.2f}" for score in video.scores.values()))
    Console().print(table)
    console.print(f"[green]wrote[/green] {Path(study) / 'prescreen.json'}  [dim]({done.seconds:.1f} s; study results compares it with people)[/dim]")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.") or "study"
