"""Evaluate stage: how well a finished video follows its music, and how well it shows its storyboard.

    from music2video.evaluate import evaluate_video
    evaluation = evaluate_video(Path("song.mp4"))          # beats from the video's own audio
    print(evaluation.cut_on_beat.beat.within_frame)        # share of cuts on a beat, 0..1

``evaluate_video`` works on any video, made by music2video or not; ``evaluate_run`` evaluates a
finished run folder with the beats, cuts and storyboard the run planned, and saves
``evaluation.json`` beside the other artifacts. The metrics (definitions and references in
:mod:`music2video.metrics.sync` and :mod:`music2video.metrics.semantic`):

* **cuts** found in the picture (PySceneDetect's adaptive rule on decoded frames, flashes
  excluded; :mod:`music2video.metrics.cuts`), with precision and recall against the planned
  cuts when those are known,
* **cut-on-beat rates**: share of cuts within one frame / 50 ms of a beat, and of a downbeat,
* **Beat Alignment Score** (AIST++: each visual beat to its nearest music beat; and the
  Bailando direction, each music beat to its nearest visual beat), sigma in seconds,
* **AV-Align** (Yariv et al. 2024): IoU of audio onsets and motion peaks within one frame,
* **visual tempo** against the music's tempo,
* optional **semantic** scores: CLIP prompt similarity and character/setting consistency per
  shot, CLAP similarity of each shot's audio to its scene (needs a storyboard and a model),
* optional **identity consistency** of recurring characters and **keyframe fidelity** (first
  rendered frame against its keyframe), with CLIP or DINOv2 (:mod:`music2video.metrics.identity`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from music2video.artifacts import Analysis, Artifact, AssemblyResult, KeyframeSet, Storyboard
from music2video.errors import InputError, Music2VideoError
from music2video.metrics import semantic, sync
from music2video.metrics.cuts import ADAPTIVE_RATIO, MIN_CHANGE, MIN_CUT_GAP_S, detect_cuts
from music2video.metrics.frames import PERSIST_S, MotionMethod, scan_video
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import RunFolder, stable_hash

log = logging.getLogger(__name__)

EVALUATION_ARTIFACT = "evaluation.json"
EVALUATE_VERSION = 2  # 2: identity consistency and keyframe fidelity
"""Bump when a metric's definition changes, so a run folder's old evaluation.json is not reused."""

DEFAULT_SIGMA_S = 0.1
"""Beat Alignment Score tolerance, seconds (AIST++ used 3 frames at 60 fps = 0.05 s)."""

PLANNED_CUT_TOLERANCE_FRAMES = 1
"""A detected cut matches a planned one within this many frames (for precision and recall)."""

BEAT_END_TOLERANCE_S = 0.05
"""Beats up to this far past the end of the video still count (the last frame's span)."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectedCuts(_Part):
    frames: list[int] = Field(description="First frame of each new shot found in the picture.")
    times_s: list[float] = Field(description="frames / fps, seconds.")
    strengths: list[float] = Field(description="Frame-to-frame change at each cut, mean abs Y/U/V difference 0..255.")
    detector: dict[str, float | int | str] = Field(description="Detector and its parameters.")
    planned_frames: list[int] | None = Field(None, description="The cuts the assembler made (video.json), when known.")
    precision: float | None = Field(None, description="Share of detected cuts within one frame of a planned cut.")
    recall: float | None = Field(None, description="Share of planned cuts found within one frame.")


class OnBeat(_Part):
    within_frame: float | None = Field(description="Share of cuts within ±1 frame of one; None without cuts.")
    within_50ms: float | None = Field(description="Share of cuts within ±50 ms of one.")
    mean_offset_ms: float | None = Field(description="Mean distance from a cut to the nearest one, ms.")


class CutOnBeat(_Part):
    cuts: int
    beat: OnBeat
    downbeat: OnBeat
    reference_beat: OnBeat | None = Field(
        None,
        description="Cuts against an independent tracker's beats (tempogram + comb, not the beats that placed them); "
        "None without audio.",
    )


class BeatAlignment(_Part):
    sigma_s: float
    visual_beats_s: list[float] = Field(description="Cuts and motion peaks, seconds.")
    music_beats: int
    visual_to_music: float | None = Field(
        description="AIST++ BAS: mean over visual beats of exp(-d²/2σ²), d to the nearest music beat. 0..1."
    )
    music_to_visual: float | None = Field(
        description="Bailando's direction: mean over music beats of exp(-d²/2σ²), d to the nearest visual beat. 0..1."
    )


class AvAlignScore(_Part):
    score: float = Field(description="IoU of audio onsets and motion peaks matched within one frame, 0..1.")
    audio_peaks: int
    video_peaks: int
    matched: int
    motion_method: Literal["flow", "difference"]
    window_s: float = Field(description="Matching window: one frame, seconds.")


class TempoComparison(_Part):
    music_bpm: float | None
    visual_bpm: float | None = Field(description="Tempo of the picture's activity (motion and cuts).")
    ratio: float | None = Field(description="visual / music.")
    match: str | None = Field(description="'1x', '1/2x' or '2x' when the ratio is within 5 % of it, else None.")


class ShotSemantics(_Part):
    shot_id: str
    frames: list[int] = Field(description="Frames CLIP looked at.")
    clip_similarity: float | None = Field(None, description="Cosine of prompt and frames in CLIP space, -1..1.")
    clap_similarity: float | None = Field(None, description="Cosine of the shot's audio and its scene text in CLAP space, -1..1.")


class ConsistencyGroup(_Part):
    kind: Literal["character", "setting"]
    name: str
    shot_ids: list[str]
    within: float = Field(description="Mean pairwise cosine of the group's CLIP image embeddings.")
    between: float | None = Field(description="Mean cosine of the group's shots to all other shots.")
    margin: float | None = Field(description="within - between: positive when the group looks alike.")


class SemanticScores(_Part):
    clip_model: str | None = None
    clap_model: str | None = None
    shots: list[ShotSemantics]
    groups: list[ConsistencyGroup] = Field(default_factory=list)
    mean_clip_similarity: float | None = None
    mean_clap_similarity: float | None = None


class CharacterIdentity(_Part):
    name: str
    shot_ids: list[str]
    within: float = Field(description="Mean cosine between the shots that show the character (every pair).")
    between: float | None = Field(description="Mean cosine between those shots and the shots without the character.")
    margin: float | None = Field(description="within - between: positive when the character is recognisably the same.")


class IdentityScores(_Part):
    model: str = Field(description="Image-embedding model (CLIP or DINOv2).")
    characters: list[CharacterIdentity]
    consistency: float | None = Field(description="Mean of the characters' within cosines; None: no recurring character.")
    margin: float | None = Field(description="Mean of the characters' margins.")


class ShotFidelity(_Part):
    shot_id: str
    keyframe: str
    frame: int = Field(description="The shot's first frame in the video.")
    cosine: float = Field(description="Cosine of the first frame's and the keyframe's embeddings, -1..1.")
    colour_delta_e: float = Field(description="CIE76 Delta E between their mean Lab colours.")


class KeyframeFidelity(_Part):
    model: str
    shots: list[ShotFidelity]
    mean_cosine: float | None
    mean_colour_delta_e: float | None


class Evaluation(Artifact):
    """``evaluation.json``: sync and quality metrics of a finished video."""

    schema_version: int = 1
    video_path: str
    audio_path: str | None = Field(description="Audio the onsets (and beats) came from; None: the video's own track.")
    duration_s: float
    fps: float
    frames: int
    width: int
    height: int
    beats_source: Literal["given", "analysis"]
    beats: int
    downbeats: int
    cuts: DetectedCuts
    cut_on_beat: CutOnBeat
    beat_alignment: BeatAlignment
    av_align: AvAlignScore | None = Field(description="None when there is no audio to find onsets in.")
    tempo: TempoComparison
    semantic: SemanticScores | None = None
    identity: IdentityScores | None = None
    keyframe_fidelity: KeyframeFidelity | None = None
    seconds: float = Field(description="Time the evaluation took.")


def evaluate_video(
    video: Path,
    audio: Path | None = None,
    beats_s: Sequence[float] | None = None,
    downbeats_s: Sequence[float] | None = None,
    sigma_s: float = DEFAULT_SIGMA_S,
    *,
    tempo_bpm: float | None = None,
    storyboard: Storyboard | None = None,
    clip_model: str | None = None,
    clap_model: str | None = None,
    identity_model: str | None = None,
    keyframes: Mapping[int, Path] | None = None,
    device: str = "auto",
    dtype: str = "auto",
    motion: MotionMethod = "auto",
    planned_cut_frames: Sequence[int] | None = None,
    progress: ProgressCallback = no_progress,
) -> Evaluation:
    """Measure how ``video`` follows its music (and, optionally, its storyboard).

    Args:
        video: the video file (any container FFmpeg reads).
        audio: the music, if not the video's own audio track (any file ``decode`` reads).
        beats_s, downbeats_s: beat and downbeat times in seconds. When ``beats_s`` is None,
            the audio is analysed with :func:`music2video.structure.analyze_structure`.
            ``downbeats_s`` None with given beats means "no downbeats known".
        sigma_s: Beat Alignment Score tolerance, seconds.
        tempo_bpm: the music's tempo; None takes it from the analysis or the median beat interval.
        storyboard: enables the semantic scores (with ``clip_model`` and/or ``clap_model``).
        clip_model, clap_model: Hugging Face id or local folder; None skips that score.
        identity_model: CLIP or DINOv2 (id or folder) for identity consistency and, with
            ``keyframes`` (storyboard shot index -> PNG), keyframe fidelity; None skips both. A
            model that cannot be loaded skips them with a warning; the other metrics stand.
        device, dtype: for the semantic models, as in ``ModelSettings``.
        motion: ``flow`` (OpenCV Farnebäck), ``difference`` or ``auto``.
        planned_cut_frames: cuts the video was meant to have, for detector precision/recall.
        progress: called with (done, total, message).

    Returns:
        an :class:`Evaluation` (not saved; see :func:`evaluate_run`).

    Raises:
        InputError: unreadable video, no audio where audio is needed, bad sigma.
    """
    started = time.perf_counter()
    # 1. Check inputs
    video = Path(video)
    if not video.is_file():
        raise InputError(f"{video}: no such video file")
    if audio is not None and not Path(audio).is_file():
        raise InputError(f"{audio}: no such audio file")
    if sigma_s <= 0:
        raise InputError(f"sigma {sigma_s} must be a positive number of seconds, e.g. 0.1")
    if (clip_model or clap_model or identity_model) and storyboard is None:
        raise InputError("CLIP, CLAP and identity scores compare shots with their storyboard: give a storyboard too")
    warnings: list[str] = []

    with tempfile.TemporaryDirectory(prefix="music2video-evaluate-") as tmp:
        # 2. Audio: the onsets of AV-Align, and the beats when none are given
        samples, wav, audio_warning = _load_music(video, audio, Path(tmp), required=beats_s is None)
        if audio_warning:
            warnings.append(audio_warning)
        progress(1, 5, "audio decoded")

        # 3. Beats
        beats_source: Literal["given", "analysis"] = "given"
        if beats_s is None:
            analysis = _analyse(samples)
            beats_s, downbeats_s = analysis.beats_s, analysis.downbeats_s
            tempo_bpm = tempo_bpm or analysis.tempo_bpm
            beats_source = "analysis"
            warnings.extend(f"analysis: {w}" for w in analysis.warnings)
        downbeats_s = list(downbeats_s or [])
        beats = sorted(float(b) for b in beats_s)
        if tempo_bpm is None and len(beats) >= 2:
            tempo_bpm = 60.0 / float(np.median(np.diff(beats)))
        progress(2, 5, "beats known")

        # 4. One pass over the picture (keeping the frames CLIP will look at)
        frame_indices: dict[str, list[int]] = {}
        first_frames: dict[int, int] = {}  # storyboard shot index -> its first frame, for keyframe fidelity
        scan_probe = _probe(video)
        if storyboard is not None and (clip_model or identity_model):
            frame_indices = semantic.shot_frame_indices(storyboard.shots, scan_probe.fps, scan_probe.frames)
        if storyboard is not None and identity_model and keyframes:
            first_frames = {
                index: round(storyboard.shots[index].start_s * scan_probe.fps)
                for index in keyframes
                if 0 <= index < len(storyboard.shots)
            }
        scan = scan_video(
            video,
            motion=motion,
            keep_frames=[*(k for ks in frame_indices.values() for k in ks), *first_frames.values()],
            keep_width_px=semantic.CLIP_FRAME_WIDTH_PX,
        )
        fps = scan.fps
        duration_s = scan.duration_s
        beats = [b for b in beats if b <= duration_s + BEAT_END_TOLERANCE_S]
        downbeats = sorted(float(b) for b in downbeats_s if b <= duration_s + BEAT_END_TOLERANCE_S)
        if not beats:
            warnings.append(
                "no music beats fall inside the video, so every sync score is empty: check that the audio "
                "given is this video's song"
            )
        progress(3, 5, "frames scanned")

        # 5. Cuts
        found = detect_cuts(scan)
        cuts = DetectedCuts(
            frames=found.frames,
            times_s=[round(t, 6) for t in found.times_s],
            strengths=found.strengths,
            detector={
                "method": "adaptive YUV difference",
                "min_change": MIN_CHANGE,
                "adaptive_ratio": ADAPTIVE_RATIO,
                "persist_s": PERSIST_S,
                "min_gap_s": MIN_CUT_GAP_S,
            },
        )
        if planned_cut_frames is not None:
            cuts.planned_frames = [int(k) for k in planned_cut_frames]
            # A recall below 1 is no warning: it measures our detector as much as the video (a cut
            # between two shots that look alike is invisible to it). Its figure is in the report.
            cuts.precision, cuts.recall = _precision_recall(found.frames, cuts.planned_frames)

        # 6. Sync metrics
        cut_on_beat = CutOnBeat(
            cuts=len(found.frames),
            beat=_on_beat(found.frames, fps, beats),
            downbeat=_on_beat(found.frames, fps, downbeats),
            reference_beat=_on_beat(found.frames, fps, _reference_beats(samples)) if samples is not None else None,
        )
        peaks = sync.motion_peaks(scan.motion, fps, found.frames)
        visual_beats = sync.merge_times([k / fps for k in [*found.frames, *peaks]], 1.0 / fps)
        alignment = BeatAlignment(
            sigma_s=sigma_s,
            visual_beats_s=[round(t, 6) for t in visual_beats],
            music_beats=len(beats),
            visual_to_music=_round(sync.beat_alignment_score(visual_beats, beats, sigma_s)),
            music_to_visual=_round(sync.beat_alignment_score(beats, visual_beats, sigma_s)),
        )
        av = None
        if samples is not None:
            from music2video.decode import ANALYSIS_RATE_HZ

            onsets = sync.audio_onsets_s(samples, ANALYSIS_RATE_HZ)
            result = sync.av_align(onsets, sync.av_align_video_peaks(scan.motion, fps), fps)
            av = AvAlignScore(
                score=round(result.score, 6),
                audio_peaks=result.audio_peaks,
                video_peaks=result.video_peaks,
                matched=result.matched,
                motion_method=scan.motion_method,
                window_s=round(1.0 / fps, 6),
            )
        visual_bpm = sync.visual_tempo_bpm(sync.activity_curve(scan.motion, found.frames), fps)
        ratio, match = sync.tempo_relation(visual_bpm, tempo_bpm)
        tempo = TempoComparison(
            music_bpm=_round(tempo_bpm, 3), visual_bpm=_round(visual_bpm, 3), ratio=_round(ratio, 4), match=match
        )
        progress(4, 5, "sync metrics")

        # 7. Semantic metrics (one model at a time)
        semantics = None
        if storyboard is not None and (clip_model or clap_model):
            semantics = _semantic_scores(
                storyboard, scan.kept, frame_indices, wav, clip_model, clap_model, device, dtype, warnings
            )
        identity = fidelity = None
        if storyboard is not None and identity_model:
            identity, fidelity = _identity_scores(
                storyboard, scan.kept, frame_indices, first_frames, keyframes or {}, identity_model, device, dtype, warnings
            )
        progress(5, 5, "evaluated")

    return Evaluation(
        video_path=str(video),
        audio_path=str(audio) if audio is not None else None,
        duration_s=round(duration_s, 6),
        fps=fps,
        frames=scan.frame_count,
        width=scan.width,
        height=scan.height,
        beats_source=beats_source,
        beats=len(beats),
        downbeats=len(downbeats),
        cuts=cuts,
        cut_on_beat=cut_on_beat,
        beat_alignment=alignment,
        av_align=av,
        tempo=tempo,
        semantic=semantics,
        identity=identity,
        keyframe_fidelity=fidelity,
        seconds=round(time.perf_counter() - started, 3),
        warnings=warnings,
    )


def evaluate_run(
    run_folder: Path,
    sigma_s: float = DEFAULT_SIGMA_S,
    *,
    clip_model: str | None = None,
    clap_model: str | None = None,
    identity_model: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    motion: MotionMethod = "auto",
    progress: ProgressCallback = no_progress,
) -> Evaluation:
    """Evaluate a finished run folder and save ``evaluation.json`` in it (reused when unchanged).

    Uses the run's own ``video.json`` (video path and planned cuts), ``analysis.json`` (beats,
    downbeats, tempo), ``audio.wav`` (onsets, CLAP), ``storyboard.json`` (semantic and identity
    scores) and ``keyframes.json`` (keyframe fidelity). ``identity_model`` ``"auto"`` means
    :data:`~music2video.metrics.identity.DEFAULT_IDENTITY_MODEL` where the run has keyframes and
    nothing otherwise.

    Raises:
        InputError: the folder has no finished video or no analysis.
    """
    run = RunFolder(Path(run_folder))
    video = run.load("video.json", AssemblyResult)
    analysis = run.load("analysis.json", Analysis)
    if video is None or analysis is None:
        raise InputError(f"{run.root} has no finished video (video.json and analysis.json); run music2video first")
    video_path = Path(video.video_path)
    if not video_path.is_absolute():  # the assembler writes it relative to the run folder
        video_path = run.root / video_path
    keyframe_set = run.load("keyframes.json", KeyframeSet)
    if identity_model == "auto":
        from music2video.metrics.identity import DEFAULT_IDENTITY_MODEL

        identity_model = DEFAULT_IDENTITY_MODEL if keyframe_set is not None and keyframe_set.shots else None
    storyboard = run.load("storyboard.json", Storyboard) if (clip_model or clap_model or identity_model) else None
    keyframes = keyframe_set.paths(run.root) if keyframe_set is not None and identity_model else None
    audio_wav = run.path("audio.wav")
    key = stable_hash(
        video.key, analysis.key, storyboard.key if storyboard else None, sigma_s, clip_model, clap_model, motion,
        EVALUATE_VERSION, identity_model, [frame.sha256 for frame in keyframe_set.shots] if keyframes else None,
    )  # fmt: skip
    return run.cached(
        EVALUATION_ARTIFACT,
        Evaluation,
        key,
        lambda: evaluate_video(
            video_path,
            audio_wav if audio_wav.exists() else None,
            analysis.beats_s,
            analysis.downbeats_s,
            sigma_s,
            tempo_bpm=analysis.tempo_bpm,
            storyboard=storyboard,
            clip_model=clip_model,
            clap_model=clap_model,
            identity_model=identity_model,
            keyframes=keyframes,
            device=device,
            dtype=dtype,
            motion=motion,
            planned_cut_frames=video.cut_frames,
            progress=progress,
        ),
    )


# --------------------------------------------------------------------------------------------
# helpers


def _load_music(
    video: Path, audio: Path | None, tmp: Path, required: bool
) -> tuple[np.ndarray | None, Path | None, str | None]:
    """Mono samples at the analysis rate, a WAV of them for CLAP, and a warning when there is no audio.

    A given WAV is read as it is; anything else (and the video's own track) goes through the
    decode stage into a temporary canonical WAV.
    """
    from music2video import decode

    source = Path(audio) if audio is not None else video
    try:
        if source.suffix.lower() == ".wav":
            wav = source
        else:
            wav = tmp / "audio.wav"
            decode.decode_audio(source, wav)
        samples = decode.load_audio(wav, sample_rate_hz=decode.ANALYSIS_RATE_HZ)
    except (InputError, RuntimeError, OSError) as error:
        if required:
            raise InputError(
                f"no beats were given and the music could not be read from {source} ({error}); "
                "give the song with --audio, or the beats"
            ) from None
        return None, None, f"no audio to find onsets in ({error}): AV-Align is skipped"
    return samples, wav, None


def _reference_beats(samples: np.ndarray) -> list[float]:
    """Beats of a tracker of another family than the one that placed the cuts (see
    ``beat_grid.reference_beats``), so that the video is not graded only against its own grid."""
    from music2video.beat_grid import HOP_LENGTH, reference_beats
    from music2video.decode import ANALYSIS_RATE_HZ
    from music2video.spectral import onset_strength_from_samples

    envelope = onset_strength_from_samples(samples, ANALYSIS_RATE_HZ, HOP_LENGTH)
    _, beats = reference_beats(envelope, ANALYSIS_RATE_HZ, len(samples) / ANALYSIS_RATE_HZ)
    return [float(b) for b in beats]


def _analyse(samples: np.ndarray | None) -> Analysis:
    try:
        from music2video.structure import analyze_structure
    except ImportError:  # pragma: no cover - structure is part of the core
        raise Music2VideoError("this version of music2video has no structure analysis; pass the beats") from None
    from music2video.decode import ANALYSIS_RATE_HZ

    assert samples is not None
    return analyze_structure(samples, ANALYSIS_RATE_HZ, no_progress)


class _Probe(BaseModel):
    fps: float
    frames: int


def _probe(video: Path) -> _Probe:
    """Frame rate and a frame count from the container header (to place CLIP's frames before decoding)."""
    import av

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 1.0
            frames = stream.frames or int(float(container.duration or 0) / 1_000_000 * fps)
    except (av.error.FFmpegError, OSError, IndexError) as error:
        raise InputError(f"{video}: cannot open as a video ({error})") from None
    return _Probe(fps=fps, frames=frames)


def _on_beat(cut_frames: Sequence[int], fps: float, beats: Sequence[float]) -> OnBeat:
    rates = sync.cut_on_beat_rates(cut_frames, fps, beats)
    return OnBeat(
        within_frame=_round(rates.within_frame),
        within_50ms=_round(rates.within_50ms),
        mean_offset_ms=_round(rates.mean_offset_ms, 3),
    )


def _precision_recall(found: Sequence[int], planned: Sequence[int]) -> tuple[float | None, float | None]:
    tolerance = PLANNED_CUT_TOLERANCE_FRAMES
    precision = float(np.mean([any(abs(f - p) <= tolerance for p in planned) for f in found])) if found else None
    recall = float(np.mean([any(abs(f - p) <= tolerance for f in found) for p in planned])) if planned else None
    return _round(precision), _round(recall)


def _semantic_scores(
    storyboard: Storyboard,
    frames: dict[int, np.ndarray],
    frame_indices: dict[str, list[int]],
    wav: Path | None,
    clip_model: str | None,
    clap_model: str | None,
    device: str,
    dtype: str,
    warnings: list[str],
) -> SemanticScores:
    shots = {shot.id: ShotSemantics(shot_id=shot.id, frames=[]) for shot in storyboard.shots}
    groups: list[ConsistencyGroup] = []
    if clip_model:
        clip = semantic.clip_shot_scores(clip_model, storyboard.shots, frames, frame_indices, device, dtype)
        for shot_id, value in clip.similarities.items():
            shots[shot_id].frames = [k for k in frame_indices.get(shot_id, []) if k in frames]
            shots[shot_id].clip_similarity = _round(value)
        for group in semantic.consistency_groups(storyboard, clip.embeddings):
            groups.append(
                ConsistencyGroup(
                    kind=group.kind,  # type: ignore[arg-type]
                    name=group.name,
                    shot_ids=group.shot_ids,
                    **_cohesion(group.within, group.between),
                )
            )
    if clap_model:
        if wav is None:
            warnings.append("CLAP scores skipped: no audio")
        else:
            for shot_id, value in semantic.clap_shot_scores(clap_model, wav, storyboard.shots, device, dtype).items():
                shots[shot_id].clap_similarity = _round(value)
    values = list(shots.values())
    return SemanticScores(
        clip_model=clip_model,
        clap_model=clap_model,
        shots=values,
        groups=groups,
        mean_clip_similarity=_mean([s.clip_similarity for s in values]),
        mean_clap_similarity=_mean([s.clap_similarity for s in values]),
    )


def _identity_scores(
    storyboard: Storyboard,
    frames: dict[int, np.ndarray],
    frame_indices: dict[str, list[int]],
    first_frames: dict[int, int],
    keyframes: Mapping[int, Path],
    model_id: str,
    device: str,
    dtype: str,
    warnings: list[str],
) -> tuple[IdentityScores | None, KeyframeFidelity | None]:
    """Identity consistency and keyframe fidelity with one image model (loaded once, then freed)."""
    from music2video.errors import ModelLoadError
    from music2video.metrics import identity
    from music2video.render.colour import picture_stats
    from music2video.torch_device import free_memory, resolve_device, resolve_dtype

    torch_device = resolve_device(device)
    try:
        encoder = identity.load_image_encoder(model_id, torch_device, resolve_dtype(dtype, torch_device))
    except ModelLoadError as error:
        warnings.append(f"identity consistency and keyframe fidelity skipped: {error}")
        return None, None
    order = [(shot.id, k) for shot in storyboard.shots for k in frame_indices.get(shot.id, []) if k in frames]
    fidelity_shots = [index for index, k in first_frames.items() if k in frames and Path(keyframes[index]).is_file()]
    pictures = [identity.read_picture(Path(keyframes[index]), semantic.CLIP_FRAME_WIDTH_PX) for index in fidelity_shots]
    try:
        shot_rows = identity.embed_images(encoder, [frames[k] for _, k in order])
        first_rows = identity.embed_images(encoder, [frames[first_frames[index]] for index in fidelity_shots])
        picture_rows = identity.embed_images(encoder, pictures)
    finally:
        del encoder
        free_memory()
    embeddings = {
        shot.id: semantic.mean_unit(shot_rows[[i for i, (s, _) in enumerate(order) if s == shot.id]])
        for shot in storyboard.shots
        if any(s == shot.id for s, _ in order)
    }
    characters = [
        CharacterIdentity(name=c.name, shot_ids=c.shot_ids, **_cohesion(c.within, c.between))
        for c in identity.character_identity(storyboard, embeddings)
    ]
    scores = IdentityScores(
        model=model_id,
        characters=characters,
        consistency=_mean([c.within for c in characters]),
        margin=_mean([c.margin for c in characters]),
    )
    fidelity = None
    if keyframes:
        shots = []
        for row, index in enumerate(fidelity_shots):
            frame = frames[first_frames[index]]
            delta = picture_stats(frame.astype(np.float32) / 255).mean - picture_stats(pictures[row].astype(np.float32) / 255).mean
            shots.append(
                ShotFidelity(
                    shot_id=storyboard.shots[index].id,
                    keyframe=str(keyframes[index]),
                    frame=first_frames[index],
                    cosine=round(float(np.clip(first_rows[row] @ picture_rows[row], -1, 1)), 6),
                    colour_delta_e=round(float(np.linalg.norm(delta)), 3),
                )
            )
        fidelity = KeyframeFidelity(
            model=model_id,
            shots=shots,
            mean_cosine=_mean([s.cosine for s in shots]),
            mean_colour_delta_e=_mean([s.colour_delta_e for s in shots]),
        )
    return scores, fidelity


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 6) if present else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _cohesion(within: float, between: float | None) -> dict[str, float | None]:
    """A group's ``within`` and ``between`` cosines and its ``margin`` (within - between), rounded."""
    return {
        "within": _round(within),
        "between": _round(between),
        "margin": _round(within - between if between is not None else None),
    }
