"""Command line: a thin layer that parses flags and calls :func:`music2video.pipeline.make_video`.

``music2video SONG`` is short for ``music2video make SONG``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from music2video import __version__
from music2video.errors import Music2VideoError
from music2video.progress import ProgressCallback

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
console = Console(stderr=True)

# -- options shared by the commands ----------------------------------------------------------

Song = Annotated[Path, typer.Argument(help="Audio or video file: mp3, wav, flac, ogg, opus, m4a, mp4, mkv, webm ...", show_default=False)]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Video to write. Default: ./SONG.mp4", show_default=False)]
Workdir = Annotated[Path | None, typer.Option(help="Run folder for the stage artifacts. Default: beside the output, OUTPUT.music2video/", show_default=False)]
Config = Annotated[Path | None, typer.Option(help="TOML config file. Default: ./music2video.toml if present.", show_default=False)]
Pipeline = Annotated[str | None, typer.Option(help="Preset of backends: auto, preview, clap or lalm. auto: preview without a GPU, clap with one.", show_default=False)]
Listener = Annotated[str | None, typer.Option(help="Override the listener: dsp, clap or lalm.", show_default=False)]
Writer = Annotated[str | None, typer.Option(help="Override the storyboard writer: template or llm.", show_default=False)]
Renderer = Annotated[str | None, typer.Option(help="Override the renderer: animatic or diffusers.", show_default=False)]
Seed = Annotated[int | None, typer.Option(help="Seed for the storyboard and every random choice. [default: 0]", show_default=False)]
Resolution = Annotated[str | None, typer.Option(help="Output size WIDTHxHEIGHT. [default: 640x360]", show_default=False)]
Fps = Annotated[float | None, typer.Option(help="Output frame rate. [default: 24]", show_default=False)]
Style = Annotated[str | None, typer.Option(help="Your brief for the look or story, e.g. 'stop-motion, 1970s, a lighthouse keeper'.", show_default=False)]
MinShot = Annotated[float | None, typer.Option("--min-shot", help="Shortest shot in seconds. [default: 1.5]", show_default=False)]
MaxShot = Annotated[float | None, typer.Option("--max-shot", help="Longest shot in seconds. [default: 5.0]", show_default=False)]
Device = Annotated[str | None, typer.Option(help="Device for every model: auto, cuda, cuda:1, mps or cpu.", show_default=False)]
Dtype = Annotated[str | None, typer.Option(help="Precision for every model: auto, float32, float16 or bfloat16.", show_default=False)]
ClapModel = Annotated[str | None, typer.Option(help="CLAP model: Hugging Face id or local folder.", show_default=False)]
LalmModel = Annotated[str | None, typer.Option(help="Audio-language model: Hugging Face id or local folder.", show_default=False)]
LlmModel = Annotated[str | None, typer.Option(help="Chat model for the storyboard: Hugging Face id, local folder, or model name at --llm-base-url.", show_default=False)]
LlmBaseUrl = Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp ...). Key from MUSIC2VIDEO_LLM__API_KEY.", show_default=False)]
VideoModel = Annotated[str | None, typer.Option(help="Text-to-video model: registry name, Hugging Face id or local folder.", show_default=False)]
LyricsFile = Annotated[Path | None, typer.Option("--lyrics", help="Your lyrics: plain text (aligned to the song) or LRC (times kept).", show_default=False)]
Subtitles = Annotated[str | None, typer.Option(help="Lyrics in the video: none, soft (a track players can switch on) or burned. [default: none]", show_default=False)]
WhisperModel = Annotated[str | None, typer.Option(help="Whisper model for the lyrics: Hugging Face id or local folder.", show_default=False)]
Language = Annotated[str | None, typer.Option(help="Language of the lyrics (en, de, ja ...). Default: detected.", show_default=False)]
VocalSeparation = Annotated[str | None, typer.Option(help="What Whisper hears: none (the mix), foreground (REPET) or demucs.", show_default=False)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")]


def _settings_overrides(
    pipeline: str | None = None,
    listener: str | None = None,
    writer: str | None = None,
    renderer: str | None = None,
    seed: int | None = None,
    resolution: str | None = None,
    fps: float | None = None,
    style: str | None = None,
    min_shot: float | None = None,
    max_shot: float | None = None,
    device: str | None = None,
    dtype: str | None = None,
    clap_model: str | None = None,
    lalm_model: str | None = None,
    llm_model: str | None = None,
    llm_base_url: str | None = None,
    video_model: str | None = None,
    lyrics: Path | None = None,
    subtitles: str | None = None,
    whisper_model: str | None = None,
    language: str | None = None,
    vocal_separation: str | None = None,
) -> dict[str, Any]:
    """Flags -> keyword arguments of ``load_settings`` (flags not given are left to config/env)."""
    from music2video.settings import parse_resolution

    overrides: dict[str, Any] = dict(
        pipeline=pipeline, listener=listener, writer=writer, renderer=renderer, seed=seed, fps=fps, style=style,
        subtitles=subtitles,
    )  # fmt: skip
    if resolution:
        overrides["width"], overrides["height"] = parse_resolution(resolution)
    # Nested sections are deep-merged with the config file and environment, field by field.
    nested = {
        "shots": {"min_shot_s": min_shot, "max_shot_s": max_shot},
        "clap": {"model": clap_model, "device": device, "dtype": dtype},
        "lalm": {"model": lalm_model, "device": device, "dtype": dtype},
        "llm": {"model": llm_model, "base_url": llm_base_url, "device": device, "dtype": dtype},
        "video": {"model": video_model, "device": device, "dtype": dtype},
        "lyrics": {
            "user_lyrics": lyrics, "model": whisper_model, "language": language, "separation": vocal_separation,
            "device": device, "dtype": dtype,
        },
    }  # fmt: skip
    for section, values in nested.items():
        given = {name: value for name, value in values.items() if value is not None}
        if given:
            overrides[section] = given
    return overrides


class RichPipelineProgress:
    """Draws one bar per stage."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def stage(self, name: str) -> ProgressCallback:
        task = self.progress.add_task(name, total=None)

        def update(done: int, total: int, message: str = "") -> None:
            self.progress.update(task, completed=done, total=total or None, description=f"{name} {message}".strip())

        return update


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("numba", "matplotlib", "PIL", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(song: Path, output: Path | None, workdir: Path | None, config: Path | None, until: str, overrides: dict[str, Any]):
    from music2video.pipeline import make_video
    from music2video.settings import load_settings

    settings = load_settings(config, **overrides)
    if settings.pipeline == "auto":
        chosen = settings.resolved_pipeline()
        reason = "a CUDA GPU is present" if chosen != "preview" else "no CUDA GPU was found"
        console.print(f"[dim]pipeline auto → {chosen} ({reason})[/dim]")
    with _progress_bar() as bar:
        return make_video(song, output, workdir=workdir, config=config, progress=RichPipelineProgress(bar), until=until, **overrides)


def _print_warnings(*artifacts: Any) -> None:
    for artifact in artifacts:
        for warning in getattr(artifact, "warnings", None) or []:
            console.print(f"[yellow]warning:[/yellow] {warning}")


# -- commands --------------------------------------------------------------------------------


@app.command()
def make(
    song: Song,
    output: Output = None,
    workdir: Workdir = None,
    config: Config = None,
    pipeline: Pipeline = None,
    listener: Listener = None,
    writer: Writer = None,
    renderer: Renderer = None,
    seed: Seed = None,
    resolution: Resolution = None,
    fps: Fps = None,
    style: Style = None,
    min_shot: MinShot = None,
    max_shot: MaxShot = None,
    device: Device = None,
    dtype: Dtype = None,
    clap_model: ClapModel = None,
    lalm_model: LalmModel = None,
    llm_model: LlmModel = None,
    llm_base_url: LlmBaseUrl = None,
    video_model: VideoModel = None,
    lyrics: LyricsFile = None,
    subtitles: Subtitles = None,
    whisper_model: WhisperModel = None,
    language: Language = None,
    vocal_separation: VocalSeparation = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Analyse and print the shot plan and the render cost estimate; render nothing.")] = False,
    verbose: Verbose = False,
) -> None:
    """Make the whole music video (the default command)."""
    _configure_logging(verbose)
    overrides = _settings_overrides(
        pipeline, listener, writer, renderer, seed, resolution, fps, style, min_shot, max_shot,
        device, dtype, clap_model, lalm_model, llm_model, llm_base_url, video_model,
        lyrics, subtitles, whisper_model, language, vocal_separation,
    )  # fmt: skip
    if dry_run:
        result = _run(song, output, workdir, config, "shots", overrides)
        _print_plan(result)
        return
    result = _run(song, output, workdir, config, "assemble", overrides)
    _print_warnings(result.audio, result.analysis, result.plan, result.descriptions, result.storyboard, result.video)
    video = result.video
    console.print(
        f"[green]wrote[/green] {video.video_path}  ({video.duration_s:.2f} s, {len(result.plan.shots)} shots, "
        f"{video.width}x{video.height} @ {video.fps:g} fps)\n[dim]run folder: {result.run_folder}[/dim]"
    )
    report_path = result.run_folder / "report.html"
    if report_path.exists():
        console.print(f"[dim]report: {report_path}[/dim]")


@app.command()
def analyze(
    song: Song,
    output: Output = None,
    workdir: Workdir = None,
    config: Config = None,
    min_shot: MinShot = None,
    max_shot: MaxShot = None,
    verbose: Verbose = False,
) -> None:
    """Decode and analyse the song (tempo, beats, bars, sections) and plan the shots."""
    _configure_logging(verbose)
    overrides = _settings_overrides(min_shot=min_shot, max_shot=max_shot)
    result = _run(song, output, workdir, config, "shots", overrides)
    _print_warnings(result.audio, result.analysis, result.plan)
    _print_analysis(result)


@app.command()
def storyboard(
    song: Song,
    output: Output = None,
    workdir: Workdir = None,
    config: Config = None,
    pipeline: Pipeline = None,
    listener: Listener = None,
    writer: Writer = None,
    seed: Seed = None,
    style: Style = None,
    device: Device = None,
    dtype: Dtype = None,
    clap_model: ClapModel = None,
    lalm_model: LalmModel = None,
    llm_model: LlmModel = None,
    llm_base_url: LlmBaseUrl = None,
    lyrics: LyricsFile = None,
    whisper_model: WhisperModel = None,
    language: Language = None,
    vocal_separation: VocalSeparation = None,
    verbose: Verbose = False,
) -> None:
    """Analyse, listen and write storyboard.json (edit it, then run make or render)."""
    _configure_logging(verbose)
    overrides = _settings_overrides(
        pipeline, listener, writer, None, seed, None, None, style, None, None, device, dtype,
        clap_model, lalm_model, llm_model, llm_base_url, None,
        lyrics, None, whisper_model, language, vocal_separation,
    )  # fmt: skip
    result = _run(song, output, workdir, config, "write", overrides)
    _print_warnings(result.descriptions, result.storyboard)
    board = result.storyboard
    console.print(f"[bold]{board.title}[/bold]: {board.concept}")
    console.print(f"[green]wrote[/green] {result.run_folder / 'storyboard.json'} ({len(board.shots)} shots)")


@app.command()
def render(
    song: Song,
    output: Output = None,
    workdir: Workdir = None,
    config: Config = None,
    pipeline: Pipeline = None,
    listener: Listener = None,
    writer: Writer = None,
    renderer: Renderer = None,
    seed: Seed = None,
    resolution: Resolution = None,
    fps: Fps = None,
    style: Style = None,
    device: Device = None,
    dtype: Dtype = None,
    video_model: VideoModel = None,
    verbose: Verbose = False,
) -> None:
    """Render every shot of the storyboard into clips/ (only shots whose entry changed)."""
    _configure_logging(verbose)
    overrides = _settings_overrides(
        pipeline, listener, writer, renderer, seed, resolution, fps, style, None, None, device, dtype,
        None, None, None, None, video_model,
    )  # fmt: skip
    result = _run(song, output, workdir, config, "render", overrides)
    _print_warnings(result.render)
    console.print(f"[green]rendered[/green] {len(result.render.clips)} clips in {result.run_folder / 'clips'}")


@app.command()
def assemble(
    song: Song,
    output: Output = None,
    workdir: Workdir = None,
    config: Config = None,
    resolution: Resolution = None,
    fps: Fps = None,
    verbose: Verbose = False,
) -> None:
    """Join the rendered clips with the song into the final MP4 (renders what is missing)."""
    _configure_logging(verbose)
    result = _run(song, output, workdir, config, "assemble", _settings_overrides(resolution=resolution, fps=fps))
    _print_warnings(result.video)
    console.print(f"[green]wrote[/green] {result.video.video_path}")


@app.command("demo-song")
def demo_song(
    output: Annotated[Path, typer.Argument(help="Where to write the demo song (WAV).")] = Path("demo-song.wav"),
    duration: Annotated[float, typer.Option(help="Length in seconds.")] = 60.0,
    tempo: Annotated[float, typer.Option(help="Tempo in beats per minute.")] = 120.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthesis.")] = 0,
) -> None:
    """Synthesise a demo song with known tempo, bars and sections (and OUTPUT.truth.json)."""
    from music2video.demo import synthesize_demo_song

    truth = synthesize_demo_song(output, duration_s=duration, tempo_bpm=tempo, seed=seed)
    console.print(f"[green]wrote[/green] {output} ({len(truth.sections)} sections at {truth.tempo_bpm:g} BPM)")


from music2video.cli_evaluate import evaluate, report  # noqa: E402  (they import cli lazily)

app.command()(evaluate)
app.command()(report)

# -- printing ---------------------------------------------------------------------------------


def _print_analysis(result) -> None:
    analysis, plan = result.analysis, result.plan
    console.print(
        f"{result.audio.duration_s:.1f} s, {analysis.tempo_bpm:.1f} BPM, {analysis.beats_per_bar}/4, "
        f"{len(analysis.beats_s)} beats, {len(analysis.downbeats_s)} bars, {len(plan.shots)} shots"
    )
    table = Table("section", "label", "role", "start", "end", "energy", "shots")
    for section in analysis.sections:
        count = sum(1 for shot in plan.shots if shot.section_index == section.index)
        table.add_row(str(section.index), section.label, section.role, f"{section.start_s:.2f}", f"{section.end_s:.2f}", f"{section.energy:.2f}", str(count))
    console.print(table)
    console.print(f"[dim]run folder: {result.run_folder}[/dim]")


def _print_plan(result) -> None:
    from music2video.estimate import estimate_render

    _print_analysis(result)
    table = Table("shot", "start", "end", "length", "cut", "section")
    for shot in result.plan.shots:
        table.add_row(shot.id, f"{shot.start_s:.2f}", f"{shot.end_s:.2f}", f"{shot.duration_s:.2f}", shot.cut, str(shot.section_index))
    console.print(table)
    console.print(estimate_render(result.plan, result.settings))


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns a Music2VideoError into one line and exit code 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    if args and not args[0].startswith("-") and args[0] not in commands:
        args.insert(0, "make")  # music2video SONG == music2video make SONG
    if args in (["--version"], ["-V"]):
        print(f"music2video {__version__}")
        return
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
    except Exception as error:  # click's usage errors
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            raise SystemExit(error.exit_code) from None
        if isinstance(error, click.exceptions.Abort):
            raise SystemExit(1) from None
        raise


if __name__ == "__main__":
    main()
