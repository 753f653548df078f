"""The pipeline: decode → structure → shots → listen → lyrics → write → references, keyframes → render → assemble.

This is the one code path behind the CLI and the Python API. Each stage is a function from the
previous stages' artifacts to its own; :class:`Run` keeps them in a run folder, keyed by hashes
of their inputs and settings, so that a rerun reuses finished work and a killed run resumes.

    from music2video import make_video
    result = make_video("song.mp3", "song.mp4", pipeline="preview", fps=24)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from music2video.artifacts import (
    Analysis,
    AssemblyResult,
    AudioInfo,
    Descriptions,
    KeyframeSet,
    ReferenceSet,
    RenderResult,
    RunSummary,
    ShotPlan,
    StageRecord,
    Storyboard,
)
from music2video.errors import InputError, Music2VideoError, WriteError
from music2video.preflight import (
    check_folder,
    check_free_space,
    check_run,
    check_song,
    default_output,
    default_run_folder,
    folder_bytes,
    is_disk_full,
    probe_duration_s,
    write_error,
)
from music2video.progress import PipelineProgress, SilentPipelineProgress
from music2video.runfolder import RunFolder, file_sha256, stable_hash
from music2video.settings import Settings, load_settings
from music2video.stages import STAGES

if TYPE_CHECKING:
    from music2video.lyrics import Lyrics
    from music2video.render.executors import ShotExecutor

log = logging.getLogger(__name__)

# Bump a stage's version when its algorithm changes, so old artifacts are not reused.
STAGE_VERSIONS = {"decode": 1, "structure": 6, "shots": 2, "listen": 1, "lyrics": 1, "assemble": 1}


# The artifacts report.html shows (run.json aside); the page is redrawn when one is newer.
REPORT_INPUTS = (
    "audio.json", "analysis.json", "shots.json", "descriptions.json", "lyrics.json", "storyboard.json",
    "references.json", "keyframes.json", "clips.json", "video.json", "evaluation.json",
)  # fmt: skip


@dataclass
class RunResult:
    """What :func:`make_video` (or a partial run) produced. Fields are None for stages not run."""

    run_folder: Path
    settings: Settings
    audio: AudioInfo
    analysis: Analysis
    plan: ShotPlan
    descriptions: Descriptions | None = None
    lyrics: Lyrics | None = None
    storyboard: Storyboard | None = None
    references: ReferenceSet | None = None
    keyframes: KeyframeSet | None = None
    render: RenderResult | None = None
    video: AssemblyResult | None = None
    summary: RunSummary | None = None

    @property
    def video_path(self) -> Path | None:
        return Path(self.video.video_path) if self.video else None


class Run:
    """One song's run folder and the stages that fill it."""

    def __init__(
        self,
        song: Path,
        settings: Settings,
        output: Path | None = None,
        workdir: Path | None = None,
        progress: PipelineProgress | None = None,
        *,
        wait: bool = False,
        executor: ShotExecutor | None = None,
    ):
        self.song = Path(song)
        self.executor = executor  # shared by several runs (a batch); None: settings.executor's own
        check_song(self.song)
        self.settings = settings
        self.output = Path(output) if output else default_output(self.song)
        self.wait = wait
        # Before any work: the run folder exists (or is made) and can be written (make_video
        # has checked the output already).
        run_root = Path(workdir) if workdir else default_run_folder(self.output)
        check_folder(run_root, "run folder")
        self.run = RunFolder(run_root)
        self.progress = progress or SilentPipelineProgress()
        self.backends = settings.backends()
        self.pipeline_name = settings.resolved_pipeline()
        self.summary = RunSummary(
            # Absolute: the studio and the edit API open this run from other working folders.
            song=str(self.song.absolute()),
            output=str(self.output.absolute()),
            pipeline=self.pipeline_name,
            backends=self.backends,
            settings=_public_settings(settings),
        )
        self._samples: np.ndarray | None = None

    # -- bookkeeping ------------------------------------------------------------------------

    @contextmanager
    def _stage(self, name: str, artifact: str | None) -> Iterator[None]:
        started = time.perf_counter()
        before = self.run.path(artifact).stat().st_mtime_ns if artifact and self.run.path(artifact).exists() else None
        yield
        after = self.run.path(artifact).stat().st_mtime_ns if artifact and self.run.path(artifact).exists() else None
        reused = before is not None and before == after
        self.summary.stages = [s for s in self.summary.stages if s.name != name]
        self.summary.stages.append(
            StageRecord(name=name, seconds=round(time.perf_counter() - started, 3), reused=reused, artifact=artifact)
        )
        self.run.save("run.json", self.summary)

    def _analysis_samples(self) -> np.ndarray:
        from music2video import decode

        if self._samples is None:
            self._samples = decode.load_audio(self.run.path("audio.wav"), sample_rate_hz=decode.ANALYSIS_RATE_HZ)
        return self._samples

    # -- stages -----------------------------------------------------------------------------

    # Each stage imports its module when it runs: a rerun that reuses everything never loads
    # librosa, scipy or PyAV, and takes about a second.

    def decode(self) -> AudioInfo:
        with self._stage("decode", "audio.json"):
            key = stable_hash(file_sha256(self.song), STAGE_VERSIONS["decode"])
            audio = self.run.load("audio.json", AudioInfo, key)
            if audio is None or not self.run.path("audio.wav").exists():
                from music2video import decode

                report = self.progress.stage("decode")
                report(0, 1, self.song.name)
                audio = decode.decode_audio(self.song, self.run.path("audio.wav"))
                report(1, 1, self.song.name)
                audio.key = key
                self.run.save("audio.json", audio)
            return audio

    def analyze(self, audio: AudioInfo) -> Analysis:
        def analyze_structure() -> Analysis:
            from music2video.decode import ANALYSIS_RATE_HZ
            from music2video.structure import analyze_structure

            return analyze_structure(
                self._analysis_samples(), ANALYSIS_RATE_HZ, self.progress.stage("structure"), grid=self.settings.grid
            )

        with self._stage("structure", "analysis.json"):
            grid = self.settings.grid
            # The user's beats file enters the key by its content, so editing it re-plans everything.
            beats_file = file_sha256(grid.beats_file) if grid.beats_file is not None and grid.beats_file.exists() else None
            key = stable_hash(audio.key, grid, beats_file, STAGE_VERSIONS["structure"])
            return self.run.cached("analysis.json", Analysis, key, analyze_structure)

    def plan_shots(self, analysis: Analysis) -> ShotPlan:
        def plan_shots() -> ShotPlan:
            from music2video.shots import plan_shots

            # Shots a person locked in the plan this one replaces keep their cuts.
            previous = self.run.load("shots.json", ShotPlan)
            locked = [shot for shot in previous.shots if shot.locked] if previous is not None else []
            return plan_shots(analysis, self.settings.shots, locked)

        with self._stage("shots", "shots.json"):
            key = stable_hash(analysis.key, self.settings.shots, STAGE_VERSIONS["shots"])
            return self.run.cached("shots.json", ShotPlan, key, plan_shots)

    def listen(self, audio: AudioInfo, analysis: Analysis, plan: ShotPlan) -> Descriptions:
        from music2video import listen

        name = self.backends["listener"]
        settings = getattr(self.settings, name, None)  # the listener's own section; dsp has none
        with self._stage("listen", "descriptions.json"):
            key = stable_hash(plan.key, name, *listen.fingerprint(name, settings), STAGE_VERSIONS["listen"])
            return self.run.cached(
                "descriptions.json",
                Descriptions,
                key,
                lambda: listen.describe(
                    name,
                    self.run.path("audio.wav"),
                    analysis,
                    plan,
                    settings,
                    self.progress.stage("listen"),
                    samples=self._analysis_samples() if name == "dsp" else None,
                ),
            )

    def check_lyrics_file(self, audio: AudioInfo) -> None:
        """Refuse a lyrics file that is missing, not text, empty, or too long for the song (one line each)."""
        from music2video.lyrics import read_user_lyrics

        settings = self.settings.lyrics
        if not settings.enabled or settings.user_lyrics is None:
            return
        user = Path(settings.user_lyrics)
        if not user.is_file():
            raise InputError(f"lyrics file {user} does not exist")
        read_user_lyrics(user, audio.duration_s)

    def lyrics(self, audio: AudioInfo) -> Lyrics | None:
        """lyrics.json and lyrics.srt: where the voice is, and what it sings when."""
        from music2video.lyrics import Lyrics, make_lyrics, write_srt
        from music2video.lyrics.ass import write_ass

        settings = self.settings.lyrics
        if not settings.enabled:
            return None
        user = settings.user_lyrics
        if user is not None and not Path(user).is_file():
            raise InputError(f"lyrics file {user} does not exist")
        if self.backends["lyrics"] != "whisper" and settings.transcribe:
            # The preview pipeline downloads nothing: lyrics only from the user's file.
            settings = settings.model_copy(update={"transcribe": False})
        with self._stage("lyrics", "lyrics.json"):
            key = stable_hash(
                audio.key,
                settings.model_dump(mode="json", exclude={"user_lyrics"}),
                file_sha256(Path(user)) if user else None,
                STAGE_VERSIONS["lyrics"],
            )
            lyrics = self.run.cached(
                "lyrics.json",
                Lyrics,
                key,
                lambda: make_lyrics(self.run.path("audio.wav"), settings, progress=self.progress.stage("lyrics")),
            )
            write_srt(lyrics, self.run.path("lyrics.srt"))  # cheap; follows hand edits of lyrics.json
            write_ass(lyrics, self.run.path("lyrics.ass"))  # karaoke: a \\k timing tag per word
            return lyrics

    def write(
        self, analysis: Analysis, plan: ShotPlan, descriptions: Descriptions, lyrics: Lyrics | None = None
    ) -> Storyboard:
        from music2video.lyrics import lyrics_by_shot
        from music2video.write import storyboard_fingerprint, write_storyboard

        settings = self.settings
        fingerprint = storyboard_fingerprint(
            self.backends["writer"], settings.write, settings.llm, settings.style, settings.seed
        )
        with self._stage("write", "storyboard.json"):
            key = stable_hash(descriptions.key, lyrics.key if lyrics else None, *fingerprint)
            existing = self._load_storyboard(key, plan)
            if existing is not None:
                return existing
            # The llm writer reports its passes; the template writer nothing: the bar ends full
            # either way, in the writer's own count if it gave one, else in shots.
            report, passes = self.progress.stage("write"), [0]

            def report_passes(done: int, total: int, message: str = "") -> None:
                passes[0] = total
                report(done, total, message)

            report(0, len(plan.shots), f"{self.backends['writer']} writer")
            storyboard = write_storyboard(
                analysis,
                plan,
                descriptions,
                writer=self.backends["writer"],
                settings=settings.write,
                llm=settings.llm,
                style=settings.style,
                seed=settings.seed,
                lyrics_by_shot=lyrics_by_shot(lyrics, plan) if lyrics is not None and lyrics.lines else None,
                log_dir=self.run.path("llm"),
                progress=report_passes,
            )
            total = passes[0] or len(plan.shots)
            report(total, total, f"{len(storyboard.shots)} shots")
            if any(shot.locked for shot in plan.shots):
                from music2video.edit import keep_locked_entries

                storyboard = keep_locked_entries(storyboard, plan, self.run.load("storyboard.json", Storyboard))
            self.run.save_keyed("storyboard.json", storyboard, key)
            return storyboard

    def _load_storyboard(self, key: str, plan: ShotPlan) -> Storyboard | None:
        """The storyboard on disk if it was written for these inputs; a person's edits win.

        A storyboard edited into something invalid is an error to fix, not a reason to throw
        the person's work away and write a new one.
        """
        path = self.run.path("storyboard.json")
        if self.run.was_edited("storyboard.json"):
            try:
                storyboard = Storyboard.model_validate_json(path.read_text(encoding="utf-8"))
            except ValueError as error:
                raise Music2VideoError(
                    f"{path} was edited and is no longer valid ({_one_line(error)}); fix it, or delete it to write a new one"
                ) from None
            if self.run.key_matches("storyboard.json", storyboard.key, key):
                check_storyboard_matches_plan(storyboard, plan, path)
                log.info("using your edited storyboard.json")
                return storyboard
            return None
        storyboard = self.run.load("storyboard.json", Storyboard, key)
        if storyboard is not None:
            check_storyboard_matches_plan(storyboard, plan, path)
        return storyboard

    def keyframes(self, storyboard: Storyboard) -> tuple[ReferenceSet | None, KeyframeSet | None]:
        """references.json and keyframes.json, where this run animates pictures (see
        :func:`music2video.keyframes.keyframes_wanted`); (None, None) where it renders from text.

        The image models load one at a time and the last is freed before the video model
        loads; every keyframe is made before the first clip."""
        from music2video.keyframes import (
            KEYFRAMES_ARTIFACT,
            REFERENCES_ARTIFACT,
            ImageModels,
            keyframe_size,
            keyframes_wanted,
            make_keyframes,
            make_references,
        )

        wanted, why = keyframes_wanted(self.settings)
        if not wanted:
            log.info("no references or keyframes: %s", why)
            return None, None
        settings = self.settings.keyframes
        with ImageModels(settings) as models:
            with self._stage("references", REFERENCES_ARTIFACT):
                references = make_references(storyboard, self.run, settings, models, self.progress.stage("references"))
                self._save_if_changed(REFERENCES_ARTIFACT, references)
            with self._stage("keyframes", KEYFRAMES_ARTIFACT):
                size = keyframe_size(self.settings)
                keyframes = make_keyframes(
                    storyboard, references, self.run, settings, size, models, self.progress.stage("keyframes")
                )
                self._save_if_changed(KEYFRAMES_ARTIFACT, keyframes)
        return references, keyframes

    def _save_if_changed(self, name: str, artifact: ReferenceSet | KeyframeSet) -> None:
        """Save an artifact keyed by its own content; left alone (and its stage reused) when unchanged.

        Both are listings of the pictures on disk, where hand edits live (a replaced keyframe,
        your reference); music2video.edit updates keyframes.json at once. Rewriting them keeps
        no ``.edited`` copy: the pictures themselves are never overwritten."""
        artifact.key = stable_hash(artifact.model_dump(mode="json", exclude={"key"}))
        if self.run.load(name, type(artifact), artifact.key) is None:
            self.run.save(name, artifact, keep_edits=False)

    def render(self, storyboard: Storyboard, analysis: Analysis, keyframes: KeyframeSet | None = None) -> RenderResult:
        from music2video.render import open_renderer, render_storyboard
        from music2video.render.executors import executor_for

        settings = self.settings
        with self._stage("render", "clips.json"), executor_for(settings, self.executor) as executor:
            renderer = open_renderer(self.backends["renderer"], settings.width, settings.height, settings.fps, settings.video)
            result = render_storyboard(
                renderer,
                storyboard,
                analysis,
                self.run,
                settings.fps,
                settings.width,
                settings.height,
                self.progress.stage("render"),
                executor=executor,
                keyframes=keyframes.paths(self.run.root) if keyframes is not None else None,
            )
            result.key = stable_hash(storyboard, renderer.settings_fingerprint())
            if self.run.load("clips.json", RenderResult, result.key) != result:
                self.run.save("clips.json", result)
            return result

    def assemble(
        self, audio: AudioInfo, plan: ShotPlan, render: RenderResult, lyrics: Lyrics | None = None
    ) -> AssemblyResult:
        from music2video.assemble import assemble_video

        subtitles = self.settings.subtitles if lyrics is not None and lyrics.lines else "none"
        with self._stage("assemble", "video.json"):
            key = stable_hash(
                audio.key,
                render.clips,
                str(self.output.resolve()),
                subtitles,
                lyrics.key if subtitles != "none" else None,
                STAGE_VERSIONS["assemble"],
            )
            existing = self.run.load("video.json", AssemblyResult, key)
            if existing is not None and self.output.exists():
                return existing
            # Subtitles are added after joining, to a copy, so the join itself stays one video
            # and one audio stream copied packet for packet.
            joined = self.output if subtitles == "none" else self.run.path("video-without-subtitles.mp4")
            cut_times = [shot.start_s for shot in plan.shots[1:]]
            video = assemble_video(
                render,
                self.run.root,
                self.run.path("audio.wav"),
                joined,
                audio.duration_s,
                cut_times,
                self.progress.stage("assemble"),
            )
            if subtitles != "none":
                self._add_subtitles(joined, subtitles, lyrics)
                video.video_path = str(self.output.resolve())
            video.key = key
            video.warnings = [*render.warnings, *video.warnings]
            self.run.save("video.json", video)
            return video

    def _add_subtitles(self, joined: Path, mode: str, lyrics: Lyrics) -> None:
        from music2video.runfolder import atomic_path
        from music2video.subtitles import add_soft_subtitles, burn_subtitles, iso639_2

        srt = self.run.path("lyrics.srt")
        if mode == "karaoke":
            # Burned lines with the current word highlighted, plus a soft track whose cues change
            # at each word (players that honour its colours highlight the word too).
            ass = self.run.path("lyrics.ass")
            burned = self.run.path("video-karaoke.mp4")
            burn_subtitles(joined, ass, burned, self.progress.stage("subtitles"))
            with atomic_path(self.output) as tmp:
                add_soft_subtitles(burned, ass, tmp, language=iso639_2(lyrics.language))
            burned.unlink(missing_ok=True)
            joined.unlink(missing_ok=True)
            return
        with atomic_path(self.output) as tmp:
            if mode == "soft":
                add_soft_subtitles(joined, srt, tmp, language=iso639_2(lyrics.language))
            else:
                burn_subtitles(joined, srt, tmp, self.progress.stage("subtitles"))
        joined.unlink(missing_ok=True)

    def evaluate(self) -> None:
        """evaluation.json: how the finished video follows the music; never fails the run."""
        from music2video.evaluate import evaluate_run

        options = self.settings.evaluate
        with self._stage("evaluate", "evaluation.json"):
            try:
                evaluate_run(
                    self.run.root,
                    options.sigma_s,
                    clip_model=options.clip_model,
                    clap_model=options.clap_model,
                    identity_model=options.identity_model,
                    motion=options.motion,
                    progress=self.progress.stage("evaluate"),
                )
            except Music2VideoError as error:
                log.warning("evaluation skipped: %s", error)

    def report(self) -> Path | None:
        """report.html in the run folder, from whatever artifacts exist; left alone when it is
        newer than all of them and than the code that draws it."""
        from importlib.util import find_spec

        with self._stage("report", "report.html"):
            page = self.run.path("report.html")
            code = Path(find_spec("music2video.report").origin)  # without importing it (matplotlib)
            inputs = [self.run.path(name) for name in REPORT_INPUTS] + [code]
            newest_input_ns = max(path.stat().st_mtime_ns for path in inputs if path.exists())
            # run.json is no input here: a rerun that changed nothing only adds its own timings.
            if page.exists() and page.stat().st_mtime_ns > newest_input_ns:
                return page
            try:
                from music2video.report import write_report

                return write_report(self.run.root, progress=self.progress.stage("report"))
            except Exception as error:  # the video is done; a broken report must not undo that
                log.warning("report not written: %s", error)
                return None

    # -- whole runs -------------------------------------------------------------------------

    def until(self, last_stage: str) -> RunResult:
        """Run every stage up to and including ``last_stage``; reuse what is already done."""
        if last_stage not in STAGES:
            raise Music2VideoError(f"unknown stage {last_stage!r}; choose one of {', '.join(STAGES)}")
        stop = STAGES.index(last_stage)
        try:
            with self.run.locked(wait=self.wait):
                return self._until(stop)
        except InputError:
            # A file that is not a song leaves no trace: remove the run folder we just made.
            if self.run.root.is_dir() and not any(self.run.root.iterdir()):
                self.run.root.rmdir()
            raise
        except OSError as error:  # a file-system error anywhere: one line naming the path
            raise write_error(error, self.run.root) from error
        except Music2VideoError as error:
            if is_disk_full(error) and not isinstance(error, WriteError):
                raise write_error(_disk_error(error), self.run.root) from error
            raise

    def _until(self, stop: int) -> RunResult:
        if stop >= STAGES.index("render"):
            self._check_free_space()
        audio = self.decode()
        if stop >= STAGES.index("lyrics"):
            self.check_lyrics_file(audio)  # a bad lyrics file fails now, not after the analysis
        if stop >= STAGES.index("keyframes"):
            from music2video.keyframes import check_user_references

            check_user_references(self.settings.keyframes)
        analysis = self.analyze(audio)
        plan = self.plan_shots(analysis)
        result = RunResult(self.run.root, self.settings, audio, analysis, plan, summary=self.summary)
        if stop >= STAGES.index("listen"):
            result.descriptions = self.listen(audio, analysis, plan)
        if stop >= STAGES.index("lyrics"):
            result.lyrics = self.lyrics(audio)
        if stop >= STAGES.index("write"):
            result.storyboard = self.write(analysis, plan, result.descriptions, result.lyrics)
        if stop >= STAGES.index("keyframes"):
            result.references, result.keyframes = self.keyframes(result.storyboard)
        if stop >= STAGES.index("render"):
            result.render = self.render(result.storyboard, analysis, result.keyframes)
        if stop >= STAGES.index("assemble"):
            result.video = self.assemble(audio, plan, result.render, result.lyrics)
            if self.settings.evaluate.enabled:
                self.evaluate()
            self.summary.finished = True
            self.run.save("run.json", self.summary)
            if self.settings.evaluate.enabled:
                self.report()
        return result

    def _check_free_space(self) -> None:
        """Stop now, not hours into rendering, when the disks cannot hold this run."""
        from music2video.estimate import estimate_disk_bytes

        duration_s = probe_duration_s(self.song)
        if duration_s is None:  # not a file the container layer knows: decode says why
            return
        settings = self.settings
        run_bytes, video_bytes = estimate_disk_bytes(duration_s, settings.width, settings.height, settings.fps)
        already = folder_bytes(self.run.root)  # a resumed run has much of it already
        check_free_space(self.run.root, max(run_bytes - already, 0), "run folder")
        if self.output.parent.resolve() != self.run.root.parent.resolve() or self.output.exists():
            check_free_space(self.output.parent, video_bytes, "output folder")
        else:  # same file system in the usual layout (song.mp4 beside song.music2video/)
            check_free_space(self.output.parent, max(run_bytes - already, 0) + video_bytes, "output folder")


def _disk_error(error: BaseException) -> OSError:
    """The OSError behind a disk-full Music2VideoError (see :func:`is_disk_full`)."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def check_storyboard_matches_plan(storyboard: Storyboard, plan: ShotPlan, path: Path) -> None:
    """Shots in the storyboard must be the planned shots: the cuts are the music's, not the text's."""
    planned = [(shot.id, round(shot.start_s, 6), round(shot.end_s, 6)) for shot in plan.shots]
    written = [(shot.id, round(shot.start_s, 6), round(shot.end_s, 6)) for shot in storyboard.shots]
    if planned != written:
        raise Music2VideoError(
            f"{path} has {len(written)} shots whose ids or times differ from the shot plan's {len(planned)}; "
            "edit scenes and prompts, not ids or times (delete the file to write a new one)"
        )


def make_video(
    song: str | Path,
    output: str | Path | None = None,
    *,
    workdir: str | Path | None = None,
    config: str | Path | None = None,
    progress: PipelineProgress | None = None,
    until: str = "assemble",
    wait: bool = False,
    settings: Settings | None = None,
    overwrite: bool = False,
    executor: ShotExecutor | None = None,
    **overrides: Any,
) -> RunResult:
    """Turn ``song`` into a music video at ``output`` (default ``./<song>.mp4``).

    ``overrides`` are the fields of :class:`music2video.settings.Settings` (``pipeline``,
    ``fps``, ``width``, ``seed``, ``style`` ...); the config file and ``MUSIC2VIDEO_*``
    environment variables fill in the rest. Or pass ``settings`` already loaded with
    :func:`~music2video.settings.load_settings` (then neither ``config`` nor overrides).
    ``until`` stops after a stage (``structure``, ``shots``, ``listen``, ``write``, ``keyframes``,
    ``render``);
    finished stages are reused. ``output`` may replace only a video this run made before (not
    the song, not any other file) unless ``overwrite``.

    One run at a time works in a run folder: when another holds it, this raises
    :class:`~music2video.errors.RunFolderBusy` naming the owner, or with ``wait=True`` waits
    for it to finish. Places that cannot be written raise :class:`~music2video.errors.WriteError`
    before any work starts. ``executor`` renders the shots instead of the one ``settings.executor``
    names (a :class:`~music2video.render.executors.RayExecutor` shared by several songs).
    """
    # 1. Check the inputs: settings, the song, the output, before any heavy work.
    if settings is not None and (config or overrides):
        raise TypeError("make_video: give either settings or config and setting keywords, not both")
    resolved = settings or load_settings(Path(config) if config else None, **overrides)
    check_run(song, output, workdir, writes_video=until == "assemble", overwrite=overwrite)
    if resolved.executor == "ray" and executor is None and STAGES.index(until) >= STAGES.index("render"):
        from music2video.optional import require

        require("ray", extra="ray", purpose="--executor ray")  # now, not after the analysis
    # 2. Run the stages.
    run = Run(
        Path(song), resolved, Path(output) if output else None, Path(workdir) if workdir else None, progress,
        wait=wait, executor=executor,
    )  # fmt: skip
    return run.until(until)


def _public_settings(settings: Settings) -> dict:
    data = settings.model_dump(mode="json")
    data.get("llm", {}).pop("api_key", None)
    return data


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300]
