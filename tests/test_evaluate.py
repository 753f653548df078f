"""The evaluate stage on synthetic videos with known cuts, flashes, motion and onsets."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

from synthetic_video import FPS, click_track, jolt_frames, mux_audio, segment_frames, solid, texture, write_video

from music2video.artifacts import (
    Analysis,
    AssemblyResult,
    Character,
    Section,
    SectionTreatment,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.evaluate import EVALUATION_ARTIFACT, Evaluation, evaluate_run, evaluate_video
from music2video.metrics import sync
from music2video.metrics.cuts import detect_cuts
from music2video.metrics.frames import VideoScan, flow_available, scan_video
from music2video.runfolder import write_json_atomic

BEAT_S = 0.5  # 120 BPM
MOTION_METHODS = ["difference", pytest.param("flow", marks=pytest.mark.skipif(not flow_available(), reason="needs opencv-python-headless"))]


def beats_until(duration_s: float, period_s: float = BEAT_S) -> list[float]:
    return [round(i * period_s, 6) for i in range(int(duration_s / period_s) + 1)]


# -- cut detection ------------------------------------------------------------------------------


def test_cut_detector_finds_exactly_the_constructed_cuts(tmp_path: Path):
    cuts = [10, 31, 50, 77, 100]
    frames = segment_frames(cuts, 120)
    for k in range(31, 50):  # a shot with steady motion
        frames[k] = np.roll(texture(5), k, axis=1)
    for k in range(100, 120):  # a faster one
        frames[k] = np.roll(texture(6), 2 * k, axis=1)
    frames[88] = solid((255, 255, 255))  # a one-frame flash ...
    frames[60] = frames[61] = solid((255, 255, 255))  # ... a two-frame flash ...
    frames[40] = np.clip(frames[40].astype(int) + 120, 0, 255).astype(np.uint8)  # ... one on moving texture ...
    for i in range(14):  # ... and a beat pulse that fades (0.13 s), as the animatic draws on downbeats
        frames[104 + i] = np.clip(frames[104 + i] * (1 + 0.6 * math.exp(-i / (0.13 * FPS))), 0, 255).astype(np.uint8)
    video = write_video(tmp_path / "cuts.mp4", frames)

    scan = scan_video(video, motion="difference")
    found = detect_cuts(scan)

    assert scan.frame_count == 120 and scan.fps == FPS
    assert found.frames == cuts
    assert found.times_s == pytest.approx([k / FPS for k in cuts])


def test_cut_rules_on_handmade_curves():
    n, fps = 130, 24.0
    change, before, after, drift = (np.full(n, 1.0, np.float32) for _ in range(4))
    change[0] = 0.0

    def spike(k, value, persist_before, persist_after, drift_after):
        change[k], before[k], after[k], drift[k] = value, persist_before, persist_after, drift_after

    spike(20, 30.0, 30.0, 30.0, 5.0)  # a cut
    spike(40, 30.0, 30.0, 30.0, 50.0)  # the picture after it changes more by itself: a pulse on motion (rule 4)
    spike(60, 30.0, 30.0, 4.0, 5.0)  # back to the old picture: a flash (rule 3)
    spike(80, 6.0, 6.0, 6.0, 1.0)  # too small (rule 1)
    change[98:103] = 15.0  # fast motion around 100 ...
    spike(100, 30.0, 30.0, 30.0, 5.0)  # ... so a change of 30 does not stand out (rule 2)
    spike(120, 30.0, 30.0, 30.0, 5.0)
    spike(123, 40.0, 40.0, 40.0, 5.0)  # two candidates within 0.2 s: the stronger wins (rule 5)
    scan = VideoScan(
        path=Path("x.mp4"), fps=fps, frame_count=n, width=16, height=16, change=change, change_before=before,
        change_after=after, drift_after=drift, motion=np.zeros(n, np.float32), motion_method="difference", persist_frames=6,
    )  # fmt: skip
    assert detect_cuts(scan).frames == [20, 123]


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_very_short_videos_scan_without_error(tmp_path: Path, frames: int):
    video = write_video(tmp_path / "short.mp4", segment_frames([1] if frames > 1 else [], frames))
    scan = scan_video(video, motion="difference")
    assert scan.frame_count == frames and len(scan.change) == len(scan.change_after) == len(scan.drift_after) == frames
    assert detect_cuts(scan).frames == ([1] if frames > 1 else [])


def test_evaluation_reports_cut_frames_times_and_planned_recall(tmp_path: Path):
    cuts = [12, 30, 55]
    video = write_video(tmp_path / "v.mp4", segment_frames(cuts, 72))
    evaluation = evaluate_video(video, beats_s=beats_until(3.0), downbeats_s=[0.0, 2.0], planned_cut_frames=[12, 30, 56, 60])

    assert evaluation.cuts.frames == cuts
    assert evaluation.cuts.times_s == pytest.approx([k / FPS for k in cuts])
    assert evaluation.cuts.precision == 1.0  # 55 is within one frame of the planned 56
    assert evaluation.cuts.recall == 0.75  # 60 was never cut
    # the recall is a figure, not a warning: the reader can do nothing about our detector
    assert not any("cut detector" in w for w in evaluation.warnings)
    assert evaluation.frames == 72 and evaluation.duration_s == pytest.approx(3.0)
    Evaluation.model_validate_json(evaluation.model_dump_json())  # round-trips as an artifact


# -- cut-on-beat rate ---------------------------------------------------------------------------


def test_cut_on_beat_rate_is_exactly_as_constructed(tmp_path: Path):
    # Beats every 12 frames (0.5 s at 24 fps), downbeats every 2 s. Four cuts on beats (two of
    # them on downbeats), one cut 0.25 s off any beat: 4/5 on beats, 2/5 on downbeats.
    cuts = [24, 48, 72, 96, 114]
    video = write_video(tmp_path / "v.mp4", segment_frames(cuts, 144))
    beats = beats_until(6.0)
    evaluation = evaluate_video(video, beats_s=beats, downbeats_s=beats[::4])

    assert evaluation.cuts.frames == cuts
    rates = evaluation.cut_on_beat
    assert rates.cuts == 5
    assert rates.beat.within_frame == 0.8
    assert rates.beat.within_50ms == 0.8
    assert rates.downbeat.within_frame == 0.4
    assert rates.downbeat.within_50ms == 0.4
    assert rates.beat.mean_offset_ms == pytest.approx(250.0 / 5)


def test_cut_on_beat_tolerances_at_the_edges():
    fps = 24.0
    # one frame late counts within a frame (41.7 ms, also within 50 ms); two frames late neither
    rates = sync.cut_on_beat_rates([13, 26], fps, [0.5, 1.0])
    assert rates.within_frame == 0.5
    assert rates.within_50ms == 0.5
    # 50 ms exactly is inside the ±50 ms window
    assert sync.cut_on_beat_rates([5], 100.0, [0.1]).within_50ms == 1.0
    assert sync.cut_on_beat_rates([], fps, [0.5]).within_frame is None


# -- sync metrics: on the beat beats off the beat -----------------------------------------------


@pytest.mark.parametrize("motion", MOTION_METHODS)
def test_cutting_off_the_beat_scores_lower_on_every_sync_metric(tmp_path: Path, motion: str):
    duration_s = 8.0
    total = int(duration_s * FPS)
    beats = beats_until(duration_s - 0.01)
    clicks = click_track(tmp_path / "clicks.wav", beats, duration_s)
    on_cuts = [round(b * FPS) for b in beats[1:]]
    off_cuts = [round((b + 0.2) * FPS) for b in beats[1:] if (b + 0.2) * FPS < total - 2]
    on = write_video(tmp_path / "on.mp4", segment_frames(on_cuts, total, textured=True))
    off = write_video(tmp_path / "off.mp4", segment_frames(off_cuts, total, textured=True))

    good = evaluate_video(on, clicks, beats, beats[::4], motion=motion)
    bad = evaluate_video(off, clicks, beats, beats[::4], motion=motion)

    assert good.cuts.frames == on_cuts and bad.cuts.frames == off_cuts
    assert good.cut_on_beat.beat.within_frame == 1.0 > bad.cut_on_beat.beat.within_frame
    assert good.cut_on_beat.beat.within_50ms == 1.0 > bad.cut_on_beat.beat.within_50ms
    assert good.cut_on_beat.downbeat.within_frame > bad.cut_on_beat.downbeat.within_frame
    assert good.beat_alignment.visual_to_music > bad.beat_alignment.visual_to_music
    assert good.beat_alignment.music_to_visual > bad.beat_alignment.music_to_visual
    assert good.av_align.score > bad.av_align.score
    assert good.av_align.motion_method == motion
    for evaluation in (good, bad):
        for value in (evaluation.beat_alignment.visual_to_music, evaluation.beat_alignment.music_to_visual, evaluation.av_align.score):
            assert 0.0 <= value <= 1.0
    # A cut on every beat moves at the music's tempo (the tempo is not a sync metric: shifting
    # every cut by 200 ms keeps it).
    assert good.tempo.music_bpm == pytest.approx(120.0)
    assert good.tempo.match == "1x"


# -- Beat Alignment Score -----------------------------------------------------------------------


def test_beat_alignment_score_definition_and_direction():
    sigma = 0.1
    music = [0.0, 0.5, 1.0, 1.5]
    assert sync.beat_alignment_score([0.5, 1.0], music, sigma) == pytest.approx(1.0)  # AIST++: every visual beat is on a beat
    assert sync.beat_alignment_score(music, [0.5, 1.0], sigma) == pytest.approx(0.5 + 0.5 * math.exp(-(0.5**2) / (2 * sigma**2)))
    assert sync.beat_alignment_score([0.6], music, sigma) == pytest.approx(math.exp(-0.5))  # one sigma off
    assert sync.beat_alignment_score([], music, sigma) is None
    assert sync.beat_alignment_score([0.3], [], sigma) == 0.0
    rng = np.random.default_rng(1)
    for _ in range(20):
        value = sync.beat_alignment_score(rng.uniform(0, 10, 7), rng.uniform(0, 10, 5), float(rng.uniform(0.01, 1)))
        assert 0.0 <= value <= 1.0
    with pytest.raises(ValueError):
        sync.beat_alignment_score([0.1], [0.1], 0.0)


# -- AV-Align -----------------------------------------------------------------------------------


def test_av_align_is_the_reference_intersection_over_union():
    fps = 24.0
    result = sync.av_align([1.0, 2.0, 3.0], [1.01, 5.0], fps)
    assert (result.matched, result.audio_peaks, result.video_peaks) == (1, 3, 2)
    assert result.score == pytest.approx(1 / (3 + 2 - 1))
    assert sync.av_align([1.0], [1.0 + 1 / fps], fps).matched == 0  # the window is open: exactly one frame is out
    assert sync.av_align([], [], fps).score == 0.0


@pytest.mark.parametrize("motion", MOTION_METHODS)
def test_av_align_is_higher_for_motion_on_onsets_than_off_onsets(tmp_path: Path, motion: str):
    duration_s = 6.0
    total = int(duration_s * FPS)
    onsets = [0.75 + i for i in range(5)]  # one click a second
    clicks = click_track(tmp_path / "clicks.wav", onsets, duration_s)
    on = write_video(tmp_path / "on.mp4", jolt_frames([round(t * FPS) for t in onsets], total))
    off = write_video(tmp_path / "off.mp4", jolt_frames([round((t + 0.3) * FPS) for t in onsets], total))

    good = evaluate_video(on, clicks, beats_s=onsets, motion=motion)
    bad = evaluate_video(off, clicks, beats_s=onsets, motion=motion)

    # librosa also reports an onset where the quiet noise starts (as the reference does), so
    # 5 of 6 audio peaks can match at best.
    assert good.av_align.audio_peaks in (5, 6)
    assert good.av_align.video_peaks == 5 and good.av_align.matched == 5
    assert good.av_align.score == pytest.approx(5 / good.av_align.audio_peaks)
    assert bad.av_align.score == 0.0


# -- beats from the audio -----------------------------------------------------------------------


def test_beats_come_from_the_videos_own_audio_when_not_given(tmp_path: Path):
    duration_s = 8.0
    beats = beats_until(duration_s - 0.01)
    clicks = click_track(tmp_path / "clicks.wav", beats, duration_s)
    cuts = [round(b * FPS) for b in beats[1::2]]
    silent = write_video(tmp_path / "silent.mp4", segment_frames(cuts, int(duration_s * FPS)))
    video = mux_audio(silent, clicks, tmp_path / "with-audio.mp4")

    evaluation = evaluate_video(video)

    assert evaluation.beats_source == "analysis"
    assert evaluation.tempo.music_bpm == pytest.approx(120.0, rel=0.03)
    assert evaluation.beats >= 12
    assert evaluation.av_align is not None and evaluation.av_align.audio_peaks >= 12
    assert evaluation.cut_on_beat.beat.within_50ms >= 0.8
    # Graded too against an independent tracker's beats, not only the grid that placed the cuts.
    assert evaluation.cut_on_beat.reference_beat is not None
    assert evaluation.cut_on_beat.reference_beat.within_50ms >= 0.8


def test_a_given_grid_off_the_music_is_caught_by_the_independent_reference(tmp_path: Path):
    """Cuts placed on a grid half a beat off the clicks score 100 % against that grid, and
    poorly against the reference tracker that listens to the audio."""
    duration_s = 8.0
    beats = beats_until(duration_s - 0.01)
    clicks = click_track(tmp_path / "clicks.wav", beats, duration_s)
    shifted = [b + 0.25 for b in beats if b + 0.25 < duration_s - 0.1]
    cuts = [round(b * FPS) for b in shifted[1::2]]
    silent = write_video(tmp_path / "silent.mp4", segment_frames(cuts, int(duration_s * FPS)))
    video = mux_audio(silent, clicks, tmp_path / "with-audio.mp4")

    evaluation = evaluate_video(video, beats_s=shifted)

    assert evaluation.cut_on_beat.beat.within_50ms == 1.0
    assert evaluation.cut_on_beat.reference_beat is not None
    assert evaluation.cut_on_beat.reference_beat.within_50ms <= 0.2


def test_a_video_without_audio_needs_beats(tmp_path: Path):
    video = write_video(tmp_path / "v.mp4", segment_frames([12], 24))
    from music2video.errors import InputError

    with pytest.raises(InputError, match="beats"):
        evaluate_video(video)
    evaluation = evaluate_video(video, beats_s=[0.0, 0.5])  # beats given: AV-Align is skipped, with a warning
    assert evaluation.av_align is None
    assert any("AV-Align is skipped" in w for w in evaluation.warnings)


# -- semantic scores with tiny models ------------------------------------------------------------


def _storyboard(shot_times: list[tuple[float, float]]) -> Storyboard:
    shots = []
    for i, (start, end) in enumerate(shot_times):
        shots.append(
            StoryboardShot(
                id=f"shot-{i:03d}",
                start_s=start,
                end_s=end,
                section_index=0 if i < 2 else 1,
                scene=f"scene {i}: a lighthouse keeper walks in the rain",
                prompt=f"a lighthouse keeper walks along a stormy coast at night, shot {i}",
                seed=i,
                palette=["#112233"],
                motif="lighthouse",
                characters=["Keeper"] if i != 1 else [],
            )
        )
    return Storyboard(
        writer="template",
        title="Test",
        concept="A keeper and the sea.",
        style=StyleBible(look="grainy film", palette=["#112233"]),
        characters=[Character(name="Keeper", description="an old lighthouse keeper in a yellow coat")],
        sections=[
            SectionTreatment(section_index=0, label="A", role="verse", palette=["#112233"], motif="lighthouse", setting="stormy coast"),
            SectionTreatment(section_index=1, label="B", role="chorus", palette=["#445566"], motif="waves", setting="lamp room"),
        ],
        shots=shots,
    )


@pytest.fixture(scope="module")
def tiny_clip_folder(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.mark.slow
def test_clip_and_clap_scores_are_the_cosines_of_each_shots_own_frames_audio_and_text(tmp_path: Path, tiny_clip_folder: Path):
    """Each score is recomputed here straight from transformers, from the shot's own frames,
    audio and text: a score taken from the wrong shot, frame, window or text fails."""
    pytest.importorskip("music2video.listen.clap")
    import torch
    from tiny_clap import build_tiny_clap
    from transformers import ClapModel, ClapProcessor, CLIPModel, CLIPProcessor

    from music2video.listen.clap import read_mono
    from music2video.metrics.semantic import CLIP_FRAME_WIDTH_PX

    clap_folder = build_tiny_clap(tmp_path / "tiny-clap")
    times = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    cuts = [24, 48, 72]
    video = write_video(tmp_path / "v.mp4", segment_frames(cuts, 96, textured=True))
    clicks = click_track(tmp_path / "clicks.wav", beats_until(4.0), 4.0)
    board = _storyboard(times)

    evaluation = evaluate_video(
        video, clicks, beats_until(4.0), storyboard=board, clip_model=str(tiny_clip_folder), clap_model=str(clap_folder), device="cpu"
    )

    scores = evaluation.semantic
    assert scores is not None
    assert [s.shot_id for s in scores.shots] == [shot.id for shot in board.shots]

    def unit(tensor) -> np.ndarray:
        array = getattr(tensor, "pooler_output", tensor).float().numpy()
        return array / np.linalg.norm(array, axis=-1, keepdims=True)

    # The pictures CLIP saw: decoded and scaled as the evaluation does (that part is scan_video's).
    wanted = [k for shot in scores.shots for k in shot.frames]
    frames = scan_video(video, motion="difference", keep_frames=wanted, keep_width_px=CLIP_FRAME_WIDTH_PX).kept
    clip, clip_processor = CLIPModel.from_pretrained(tiny_clip_folder).eval(), CLIPProcessor.from_pretrained(tiny_clip_folder)
    clap, clap_processor = ClapModel.from_pretrained(clap_folder).eval(), ClapProcessor.from_pretrained(clap_folder)
    rate = int(clap_processor.feature_extractor.sampling_rate)
    audio, _, _ = read_mono(clicks, rate)
    expected_clip, expected_clap = [], []
    with torch.inference_mode():
        for shot, scored, (start, end) in zip(board.shots, scores.shots, times, strict=True):
            # CLIP: three frames inside the shot; the mean of their unit image embeddings against the prompt.
            assert len(scored.frames) == 3 and all(round(start * FPS) <= k < round(end * FPS) for k in scored.frames)
            pixels = clip_processor(images=[frames[k] for k in scored.frames], return_tensors="pt")["pixel_values"]
            images = unit(clip.get_image_features(pixel_values=pixels)).mean(axis=0)
            text = clip_processor.tokenizer([shot.prompt], padding=True, return_tensors="pt")
            prompt = unit(clip.get_text_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"]))[0]
            expected_clip.append(float(images @ prompt / np.linalg.norm(images)))
            # CLAP: the shot's own second of audio (one window) against its scene text.
            span = audio[round(start * rate) : round(end * rate)]
            features = clap_processor.feature_extractor([span], sampling_rate=rate, truncation="rand_trunc", return_tensors="pt")
            sound = unit(clap.get_audio_features(input_features=features["input_features"]))[0]
            text = clap_processor.tokenizer([shot.scene or shot.prompt], padding=True, return_tensors="pt")
            scene = unit(clap.get_text_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"]))[0]
            expected_clap.append(float(sound @ scene))
    assert [shot.clip_similarity for shot in scores.shots] == pytest.approx(expected_clip, abs=1e-4)
    assert [shot.clap_similarity for shot in scores.shots] == pytest.approx(expected_clap, abs=1e-4)
    assert scores.mean_clip_similarity == pytest.approx(np.mean(expected_clip), abs=1e-4)
    groups = {(g.kind, g.name): g for g in scores.groups}
    assert groups[("character", "Keeper")].shot_ids == ["shot-000", "shot-002", "shot-003"]
    assert groups[("setting", "stormy coast")].shot_ids == ["shot-000", "shot-001"]
    keeper = groups[("character", "Keeper")]
    assert -1.0 <= keeper.within <= 1.0 and keeper.margin == pytest.approx(keeper.within - keeper.between, abs=1e-5)


def test_semantic_scores_need_a_storyboard(tmp_path: Path):
    from music2video.errors import InputError

    video = write_video(tmp_path / "v.mp4", segment_frames([12], 24))
    with pytest.raises(InputError, match="storyboard"):
        evaluate_video(video, beats_s=[0.0], clip_model="anything")


# -- a run folder and the CLI --------------------------------------------------------------------


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "song.music2video"
    run.mkdir()
    beats = beats_until(4.0)
    cuts = [24, 48, 72]
    video = write_video(tmp_path / "song.mp4", segment_frames(cuts, 96))
    click_track(run / "audio.wav", beats, 4.0)
    analysis = Analysis(
        key="a1",
        duration_s=4.0,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=beats,
        downbeats_s=beats[::4],
        sections=[Section(index=0, start_s=0.0, end_s=4.0, label="A", role="verse", energy=0.5)],
        curve_rate_hz=10.0,
        energy=[0.5] * 40,
        brightness=[0.5] * 40,
        onset_strength=[0.1] * 40,
    )
    write_json_atomic(run / "analysis.json", analysis)
    assembly = AssemblyResult(
        key="v1", video_path=str(video), duration_s=4.0, fps=FPS, frames=96, width=96, height=54,
        cut_frames=cuts, cut_times_s=[1.0, 2.0, 3.0],
    )  # fmt: skip
    write_json_atomic(run / "video.json", assembly)
    return run


def test_evaluate_run_saves_and_reuses_evaluation_json(tmp_path: Path):
    run = _run_folder(tmp_path)
    first = evaluate_run(run)
    saved = Evaluation.model_validate_json((run / EVALUATION_ARTIFACT).read_text())
    assert saved.key == first.key != ""
    assert first.cuts.recall == 1.0 and first.cuts.precision == 1.0
    assert first.cut_on_beat.beat.within_frame == 1.0
    assert first.cut_on_beat.downbeat.within_frame == pytest.approx(1 / 3)
    mtime = (run / EVALUATION_ARTIFACT).stat().st_mtime_ns
    again = evaluate_run(run)
    assert again == first and (run / EVALUATION_ARTIFACT).stat().st_mtime_ns == mtime
    evaluate_run(run, sigma_s=0.05)  # another setting: evaluated again
    assert json.loads((run / EVALUATION_ARTIFACT).read_text())["beat_alignment"]["sigma_s"] == 0.05


def test_cli_evaluate_prints_a_table_and_writes_json(tmp_path: Path):
    import typer
    from typer.testing import CliRunner

    from music2video.cli.evaluate_commands import evaluate

    run = _run_folder(tmp_path)
    app = typer.Typer()
    app.command()(evaluate)
    app.command("unused")(lambda: None)  # two commands, so typer keeps the command name
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "song.mp4"), "--audio", str(run / "audio.wav"), "--analysis", str(run / "analysis.json"), "--sigma", "0.05"]
    )
    assert result.exit_code == 0, result.output
    written = Evaluation.model_validate_json((tmp_path / "song.evaluation.json").read_text())
    assert written.beat_alignment.sigma_s == 0.05 and written.beats_source == "given"
    assert "cuts on a beat" in result.output and "AV-Align" in result.output


def test_cli_report_evaluates_the_run_and_writes_the_page(tmp_path: Path):
    import typer
    from typer.testing import CliRunner

    from music2video.cli.evaluate_commands import evaluate, report

    run = _run_folder(tmp_path)
    app = typer.Typer()
    app.command()(evaluate)
    app.command()(report)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / EVALUATION_ARTIFACT).is_file() and (run / "report.html").is_file()
