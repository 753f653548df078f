"""``make``, ``analyze``, ``storyboard``, ``keyframes``, ``render`` and ``assemble``: one
pipeline, stopped at different stages, and ``demo-song``.

Each command receives the flags of the stages it runs as ``**flags`` (see ``flags.py``) and
hands them, by name, to :func:`music2video.pipeline.make_video`, the function the Python API
exposes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from music2video.cli.flags import SPEED, flag_error, pipeline_command, split_settings, to_keywords
from music2video.cli.show import console, print_analysis, print_plan, print_warnings, progress_bar, RichPipelineProgress

Song = Annotated[Path, typer.Argument(help="Audio or video file: mp3, wav, flac, ogg, opus, m4a, mp4, mkv, webm ...", show_default=False, metavar="SONG")]


def run_pipeline(song: Path, until: str, flags: dict[str, Any]):  # -> RunResult
    """Load the settings once from the flags given, then run ``make_video`` up to ``until``."""
    from music2video.preflight import check_run

    settings, keywords = settings_from_flags(flags)
    # make_video makes the same checks; made here too, they answer before torch (--pipeline
    # auto) and the pipeline's imports cost seconds.
    check_run(song, keywords.get("output"), keywords.get("workdir"), writes_video=until == "assemble", overwrite=bool(keywords.get("overwrite")))
    from music2video.pipeline import make_video

    if settings.pipeline == "auto":
        chosen = settings.resolved_pipeline()
        reason = "a CUDA GPU is present" if chosen != "preview" else "no CUDA GPU was found"
        console.print(f"[dim]pipeline auto → {chosen} ({reason})[/dim]")
    with progress_bar() as bar:
        return make_video(song, settings=settings, progress=RichPipelineProgress(bar), until=until, **keywords)


def settings_from_flags(flags: dict[str, Any]):  # -> (Settings, the other keywords)
    """The settings the flags given make (with the config file and the environment), loaded once;
    and the flags that are ``make_video`` keywords instead, by name."""
    from music2video.settings import SettingsError, load_settings

    setting_keywords, keywords = split_settings(to_keywords(flags))
    try:
        return load_settings(keywords.pop("config", None), **setting_keywords), keywords
    except SettingsError as error:
        raise flag_error(error, flags) from None


@pipeline_command(until="assemble")
def make(
    song: Song,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Analyse and print the shot plan and the render cost estimate; render nothing.", rich_help_panel=SPEED, metavar="")] = False,
    **flags: Any,
) -> None:
    """Make the whole music video (the default command)."""
    if dry_run:
        print_plan(run_pipeline(song, "shots", flags))
        return
    result = run_pipeline(song, "assemble", flags)
    print_warnings(result.audio, result.analysis, result.plan, result.descriptions, result.storyboard, result.video)
    video = result.video
    if all(stage.reused for stage in result.summary.stages):
        console.print(f"nothing changed: {video.video_path} is up to date\n[dim]run folder: {result.run_folder}[/dim]")
        return
    console.print(
        f"[green]wrote[/green] {video.video_path}  ({video.duration_s:.2f} s, {len(result.plan.shots)} shots, "
        f"{video.width}x{video.height} @ {video.fps:g} fps)\n[dim]run folder: {result.run_folder}[/dim]"
    )
    report_path = result.run_folder / "report.html"
    if report_path.exists():
        console.print(f"[dim]report: {report_path}[/dim]")
    _say_what_the_preview_is(result.render)


def _say_what_the_preview_is(render: Any) -> None:
    """Once per run that drew animatics: what a preview takes from the storyboard, and what it cannot."""
    if render is not None and render.renderer == "animatic":
        from music2video.render.animatic import PREVIEW_NOTE

        console.print(f"[dim]{PREVIEW_NOTE}[/dim]")


@pipeline_command(until="shots")
def analyze(song: Song, **flags: Any) -> None:
    """Decode and analyse the song (tempo, beats, bars, sections) and plan the shots."""
    result = run_pipeline(song, "shots", flags)
    print_warnings(result.audio, result.analysis, result.plan)
    print_analysis(result)


@pipeline_command(until="write")
def storyboard(song: Song, **flags: Any) -> None:
    """Analyse, listen and write storyboard.json (edit it, then run make or render)."""
    result = run_pipeline(song, "write", flags)
    print_warnings(result.descriptions, result.storyboard)
    board = result.storyboard
    console.print(f"[bold]{board.title}[/bold]: {board.concept}")
    console.print(f"[green]wrote[/green] {result.run_folder / 'storyboard.json'} ({len(board.shots)} shots)")


@pipeline_command(until="keyframes")
def keyframes(song: Song, **flags: Any) -> None:
    """Write the storyboard, then references/ and keyframes/ (look, replace a picture, then run make or render)."""
    result = run_pipeline(song, "keyframes", flags)
    print_warnings(result.storyboard, result.references, result.keyframes)
    if result.keyframes is None:
        from music2video.keyframes import keyframes_wanted

        console.print(f"no keyframes: {keyframes_wanted(result.settings)[1]} (--keyframes on makes them anyway)")
        return
    made = len(result.keyframes.shots)
    console.print(
        f"[green]wrote[/green] {len(result.references.references)} references in {result.run_folder / 'references'} "
        f"and {made} keyframes in {result.run_folder / 'keyframes'}"
    )


@pipeline_command(until="render")
def render(song: Song, **flags: Any) -> None:
    """Render every shot of the storyboard into clips/ (only shots whose entry changed)."""
    result = run_pipeline(song, "render", flags)
    print_warnings(result.render)
    console.print(f"[green]rendered[/green] {len(result.render.clips)} clips in {result.run_folder / 'clips'}")
    _say_what_the_preview_is(result.render)


@pipeline_command(until="assemble")
def assemble(song: Song, **flags: Any) -> None:
    """Join the rendered clips with the song into the final MP4 (renders what is missing)."""
    result = run_pipeline(song, "assemble", flags)
    print_warnings(result.video)
    console.print(f"[green]wrote[/green] {result.video.video_path}")


def demo_song(
    output: Annotated[Path, typer.Argument(help="Where to write the demo song (WAV).")] = Path("demo-song.wav"),
    duration: Annotated[float, typer.Option(help="Length in seconds.", metavar="SECONDS")] = 60.0,
    tempo: Annotated[float, typer.Option(help="Tempo in beats per minute.", metavar="BPM")] = 120.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthesis.", metavar="N")] = 0,
) -> None:
    """Synthesise a demo song with known tempo, bars and sections (and OUTPUT.truth.json)."""
    from music2video.demo import synthesize_demo_song

    truth = synthesize_demo_song(output, duration_s=duration, tempo_bpm=tempo, seed=seed)
    console.print(f"[green]wrote[/green] {output} ({len(truth.sections)} sections at {truth.tempo_bpm:g} BPM)")
