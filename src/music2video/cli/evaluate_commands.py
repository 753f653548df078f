"""``music2video evaluate VIDEO`` and ``music2video report RUN_FOLDER``.

``evaluate``: sync and quality metrics of any video, as a table and a JSON file; a thin command
over :func:`music2video.evaluate.evaluate_video`. ``report``: (re)builds ``report.html`` of a
run folder with :func:`music2video.report.write_report`, evaluating the run first if asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from music2video.cli.show import console, evaluation_table
from music2video.errors import InputError

Sigma = Annotated[float, typer.Option(help="Beat Alignment Score tolerance sigma.", metavar="SECONDS")]
Device = Annotated[str, typer.Option(help="Device for CLIP/CLAP: auto, cuda, cuda:1, mps or cpu.", metavar="DEVICE")]
IdentityModel = Annotated[str | None, typer.Option(help="CLIP or DINOv2 model (Hugging Face id or local folder), e.g. facebook/dinov2-small: how alike each recurring character looks across its shots (and, for a run, each clip's first frame against its keyframe); for a run, auto picks facebook/dinov2-small where it has keyframes.", show_default=False, metavar="MODEL")]


def evaluate(
    video: Annotated[Path, typer.Argument(help="The video to evaluate (mp4, mkv, webm ...).", show_default=False)],
    audio: Annotated[Path | None, typer.Option(help="The song, if not the video's own audio track.", show_default=False, metavar="SONG")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSON file to write. Default: VIDEO.evaluation.json beside the video.", show_default=False, metavar="JSON")] = None,
    sigma: Sigma = 0.1,
    analysis: Annotated[Path | None, typer.Option(help="analysis.json of a run: use its beats instead of analysing the audio.", show_default=False, metavar="JSON")] = None,
    storyboard: Annotated[Path | None, typer.Option(help="storyboard.json of a run: needed for --clip-model, --clap-model and --identity-model.", show_default=False, metavar="JSON")] = None,
    clip_model: Annotated[str | None, typer.Option(help="CLIP model (Hugging Face id or local folder), e.g. openai/clip-vit-base-patch32: score each shot's frames against its prompt.", show_default=False, metavar="MODEL")] = None,
    clap_model: Annotated[str | None, typer.Option(help="CLAP model (Hugging Face id or local folder), e.g. laion/larger_clap_music: score each shot's audio against its scene.", show_default=False, metavar="MODEL")] = None,
    identity_model: IdentityModel = None,
    device: Device = "auto",
    motion: Annotated[str, typer.Option(help="Motion measure: flow (OpenCV Farnebäck), difference (frame difference) or auto.", metavar="auto|flow|difference")] = "auto",
) -> None:
    """Measure how well a video follows its music: cuts on beats, beat alignment, AV-Align, tempo."""
    from music2video.artifacts import Analysis, Storyboard
    from music2video.evaluate import evaluate_video
    from music2video.runfolder import write_json_atomic

    beats = downbeats = tempo = None
    if analysis is not None:
        loaded = _load(analysis, Analysis)
        beats, downbeats, tempo = loaded.beats_s, loaded.downbeats_s, loaded.tempo_bpm
    result = evaluate_video(
        video,
        audio=audio,
        beats_s=beats,
        downbeats_s=downbeats,
        sigma_s=sigma,
        tempo_bpm=tempo,
        storyboard=_load(storyboard, Storyboard) if storyboard is not None else None,
        clip_model=clip_model,
        clap_model=clap_model,
        identity_model=identity_model,
        device=device,
        motion=motion,  # type: ignore[arg-type]
    )
    output = output or video.with_name(f"{video.stem}.evaluation.json")
    write_json_atomic(output, result)

    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    Console().print(evaluation_table(result))  # the table is the result: stdout
    console.print(f"[green]wrote[/green] {output}  [dim]({result.seconds:.1f} s)[/dim]")


def report(
    run_folder: Annotated[Path, typer.Argument(help="A run folder (SONG.music2video/ beside the video).", show_default=False)],
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Measure the finished video first (evaluation.json), if the run has one.", metavar="")] = True,
    sigma: Sigma = 0.1,
    clip_model: Annotated[str | None, typer.Option(help="CLIP model for prompt similarity (Hugging Face id or local folder).", show_default=False, metavar="MODEL")] = None,
    clap_model: Annotated[str | None, typer.Option(help="CLAP model for scene similarity (Hugging Face id or local folder).", show_default=False, metavar="MODEL")] = None,
    identity_model: IdentityModel = "auto",
    device: Device = "auto",
) -> None:
    """Write report.html in a run folder: plots, contact sheet, metrics, warnings, models and timings."""
    from music2video.evaluate import evaluate_run
    from music2video.report import write_report

    if not run_folder.is_dir():
        raise InputError(f"{run_folder} is not a folder; give the run folder, e.g. song.music2video")
    if evaluate and (run_folder / "video.json").is_file():
        result = evaluate_run(
            run_folder, sigma_s=sigma, clip_model=clip_model, clap_model=clap_model, identity_model=identity_model, device=device
        )
        Console().print(evaluation_table(result))
    elif evaluate:
        console.print("[dim]no finished video in this run folder: the report has no sync metrics[/dim]")
    path = write_report(run_folder)
    console.print(f"[green]wrote[/green] {path}")


def _load(path: Path, model):
    try:
        return model.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {path} as {model.__name__} ({' '.join(str(error).split())[:200]})") from None
