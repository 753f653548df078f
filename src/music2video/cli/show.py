"""What the command line draws: progress bars per stage, warnings, tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from music2video.progress import ProgressCallback

console = Console(stderr=True)


class RichPipelineProgress:
    """Draws one bar per stage, each described as ``prefix`` + the stage's name and message."""

    def __init__(self, progress: Progress, prefix: str = ""):
        self.progress = progress
        self.prefix = prefix
        self.tasks: list[TaskID] = []

    def stage(self, name: str) -> ProgressCallback:
        task = self.progress.add_task(f"{self.prefix}{name}", total=None)
        self.tasks.append(task)

        def update(done: int, total: int, message: str = "") -> None:
            description = f"{self.prefix}{name} {message}".strip()
            self.progress.update(task, completed=done, total=total or None, description=description)

        return update

    def remove(self) -> None:
        """Take this run's bars off the display."""
        for task in self.tasks:
            self.progress.remove_task(task)
        self.tasks = []


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def print_warnings(*artifacts: Any) -> None:
    for artifact in artifacts:
        for warning in getattr(artifact, "warnings", None) or []:
            console.print(f"[yellow]warning:[/yellow] {warning}")


def print_analysis(result) -> None:  # result: RunResult
    from music2video.settings import meter_label

    analysis, plan = result.analysis, result.plan
    console.print(
        f"{result.audio.duration_s:.1f} s, {analysis.tempo_bpm:.1f} BPM, {meter_label(analysis.beats_per_bar)}, "
        f"{len(analysis.beats_s)} beats, {len(analysis.downbeats_s)} bars, {len(plan.shots)} shots"
    )
    table = Table("section", "label", "role", "start", "end", "energy", "shots")
    for section in analysis.sections:
        count = sum(1 for shot in plan.shots if shot.section_index == section.index)
        table.add_row(str(section.index), section.label, section.role, f"{section.start_s:.2f}", f"{section.end_s:.2f}", f"{section.energy:.2f}", str(count))
    console.print(table)
    console.print(f"[dim]run folder: {result.run_folder}[/dim]")


def print_plan(result) -> None:  # result: RunResult
    from music2video.estimate import estimate_keyframes, estimate_render

    print_analysis(result)
    table = Table("shot", "start", "end", "length", "cut", "section")
    for shot in result.plan.shots:
        table.add_row(shot.id, f"{shot.start_s:.2f}", f"{shot.end_s:.2f}", f"{shot.duration_s:.2f}", shot.cut, str(shot.section_index))
    console.print(table)
    console.print(estimate_keyframes(result.plan, result.settings, [s.label for s in result.analysis.sections]))
    console.print(estimate_render(result.plan, result.settings))


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


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
