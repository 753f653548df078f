"""``music2video evaluate VIDEO`` and ``music2video report RUN_FOLDER``.

``evaluate``: sync and quality metrics of any video, as a table and a JSON file; a thin command
over :func:`music2video.evaluate.evaluate_video` whose flag names equal its keyword names.
``report``: (re)builds ``report.html`` of a run folder with :func:`music2video.report.write_report`,
evaluating the run first if asked. Registered in ``cli.py`` with ``app.command()(evaluate)``
and ``app.command()(report)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from music2video.errors import InputError


def evaluate(
    video: Annotated[Path, typer.Argument(help="The video to evaluate (mp4, mkv, webm ...).", show_default=False)],
    audio: Annotated[Path | None, typer.Option(help="The song, if not the video's own audio track.", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSON file to write. Default: VIDEO.evaluation.json beside the video.", show_default=False)] = None,
    sigma: Annotated[float, typer.Option(help="Beat Alignment Score tolerance sigma, seconds.")] = 0.1,
    analysis: Annotated[Path | None, typer.Option(help="analysis.json of a run: use its beats instead of analysing the audio.", show_default=False)] = None,
    storyboard: Annotated[Path | None, typer.Option(help="storyboard.json of a run: needed for --clip-model and --clap-model.", show_default=False)] = None,
    clip_model: Annotated[str | None, typer.Option(help="CLIP model (Hugging Face id or local folder), e.g. openai/clip-vit-base-patch32: score each shot's frames against its prompt.", show_default=False)] = None,
    clap_model: Annotated[str | None, typer.Option(help="CLAP model (Hugging Face id or local folder), e.g. laion/larger_clap_music: score each shot's audio against its scene.", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="Device for CLIP/CLAP: auto, cuda, cuda:1, mps or cpu.")] = "auto",
    motion: Annotated[str, typer.Option(help="Motion measure: flow (OpenCV Farnebäck), difference (frame difference) or auto.")] = "auto",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False,
) -> None:
    """Measure how well a video follows its music: cuts on beats, beat alignment, AV-Align, tempo."""
    from music2video.artifacts import Analysis, Storyboard
    from music2video.cli import _configure_logging
    from music2video.evaluate import evaluate_video
    from music2video.runfolder import write_json_atomic

    _configure_logging(verbose)
    beats = downbeats = tempo = None
    if analysis is not None:
        loaded = _load(analysis, Analysis)
        beats, downbeats, tempo = loaded.beats_s, loaded.downbeats_s, loaded.tempo_bpm
    board = _load(storyboard, Storyboard) if storyboard is not None else None
    result = evaluate_video(
        video,
        audio,
        beats,
        downbeats,
        sigma,
        tempo_bpm=tempo,
        storyboard=board,
        clip_model=clip_model,
        clap_model=clap_model,
        device=device,
        motion=motion,  # type: ignore[arg-type]
    )
    output = output or video.with_name(f"{video.stem}.evaluation.json")
    write_json_atomic(output, result)

    err = Console(stderr=True)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    Console().print(evaluation_table(result))
    err.print(f"[green]wrote[/green] {output}  [dim]({result.seconds:.1f} s)[/dim]")


def report(
    run_folder: Annotated[Path, typer.Argument(help="A run folder (SONG.music2video/ beside the video).", show_default=False)],
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Measure the finished video first (evaluation.json), if the run has one.")] = True,
    sigma: Annotated[float, typer.Option(help="Beat Alignment Score tolerance sigma, seconds.")] = 0.1,
    clip_model: Annotated[str | None, typer.Option(help="CLIP model for prompt similarity (Hugging Face id or local folder).", show_default=False)] = None,
    clap_model: Annotated[str | None, typer.Option(help="CLAP model for scene similarity (Hugging Face id or local folder).", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="Device for CLIP/CLAP: auto, cuda, cuda:1, mps or cpu.")] = "auto",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False,
) -> None:
    """Write report.html in a run folder: plots, contact sheet, metrics, warnings, models and timings."""
    from music2video.cli import _configure_logging
    from music2video.evaluate import evaluate_run
    from music2video.report import write_report

    _configure_logging(verbose)
    if not run_folder.is_dir():
        raise InputError(f"{run_folder} is not a folder; give the run folder, e.g. song.music2video")
    err = Console(stderr=True)
    if evaluate and (run_folder / "video.json").is_file():
        result = evaluate_run(run_folder, sigma, clip_model=clip_model, clap_model=clap_model, device=device)
        Console().print(evaluation_table(result))
    elif evaluate:
        err.print("[dim]no finished video in this run folder: the report has no sync metrics[/dim]")
    path = write_report(run_folder)
    err.print(f"[green]wrote[/green] {path}")


def evaluation_table(result) -> Table:  # result: Evaluation
    """The headline numbers of an :class:`~music2video.evaluate.Evaluation` as a rich table."""
    table = Table("metric", "value", "meaning", title=f"{Path(result.video_path).name}: {result.duration_s:.1f} s, {result.fps:g} fps")
    on_beat, on_bar = result.cut_on_beat.beat, result.cut_on_beat.downbeat
    bas = result.beat_alignment
    rows = [
        ("cuts", str(result.cut_on_beat.cuts), "hard cuts found in the picture"),
        ("cuts on a beat (±1 frame)", _pct(on_beat.within_frame), f"of {result.beats} beats ({result.beats_source})"),
        ("cuts on a beat (±50 ms)", _pct(on_beat.within_50ms), f"mean offset {_num(on_beat.mean_offset_ms, 1)} ms"),
        ("cuts on a downbeat (±1 frame)", _pct(on_bar.within_frame), f"of {result.downbeats} downbeats"),
        ("cuts on a downbeat (±50 ms)", _pct(on_bar.within_50ms), ""),
        ("beat alignment (AIST++)", _num(bas.visual_to_music), f"visual beats → nearest music beat, σ = {bas.sigma_s:g} s"),
        ("beat alignment (Bailando)", _num(bas.music_to_visual), "music beats → nearest visual beat"),
    ]
    if result.av_align is not None:
        av = result.av_align
        rows.append(("AV-Align", _num(av.score), f"{av.matched} of {av.audio_peaks} onsets matched, {av.video_peaks} {av.motion_method} peaks"))
    tempo = result.tempo
    rows.append(("visual tempo", f"{_num(tempo.visual_bpm, 1)} BPM", f"music {_num(tempo.music_bpm, 1)} BPM, ratio {_num(tempo.ratio, 2)} ({tempo.match or 'no simple ratio'})"))
    if result.cuts.recall is not None:
        rows.append(("planned cuts found", _pct(result.cuts.recall), f"precision {_pct(result.cuts.precision)}"))
    if result.semantic is not None:
        rows.append(("CLIP prompt similarity", _num(result.semantic.mean_clip_similarity), "mean over shots, cosine"))
        rows.append(("CLAP scene similarity", _num(result.semantic.mean_clap_similarity), "mean over shots, cosine"))
        for group in result.semantic.groups:
            rows.append((f"consistency: {group.kind} {group.name}", _num(group.margin), f"{len(group.shot_ids)} shots, within {group.within:.3f}"))
    for row in rows:
        table.add_row(*row)
    return table


def _load(path: Path, model):
    try:
        return model.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {path} as {model.__name__} ({' '.join(str(error).split())[:200]})") from None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
