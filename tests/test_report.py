"""report.html from a run folder built by hand from the artifact models (no pipeline needed)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

from synthetic_video import PALETTE, click_track, solid, write_video

from music2video.artifacts import (
    Analysis,
    AssemblyResult,
    AudioInfo,
    Character,
    Descriptions,
    RenderedClip,
    RenderResult,
    RunSummary,
    ScoredLabel,
    Section,
    SectionTreatment,
    SegmentDescription,
    Shot,
    ShotPlan,
    StageRecord,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.evaluate import evaluate_run
from music2video.report import ASSETS_FOLDER, REPORT_FILE, write_report
from music2video.runfolder import write_json_atomic

FPS = 12.0
WIDTH, HEIGHT = 128, 72


def build_run_folder(
    tmp_path: Path, duration_s: float = 6.0, shot_s: float = 1.0, fps: float = FPS, width: int = WIDTH, height: int = HEIGHT
) -> Path:
    """A finished run folder: every artifact, clips/, the video and audio.wav; shots of ``shot_s`` on 120 BPM beats."""
    run = tmp_path / "song.music2video"
    run.mkdir(parents=True)
    beats = [round(i * 0.5, 6) for i in range(int(duration_s / 0.5))]
    click_track(run / "audio.wav", beats, duration_s)
    half = duration_s / 2
    sections = [
        Section(index=0, start_s=0.0, end_s=half, label="A", role="verse", energy=0.4),
        Section(index=1, start_s=half, end_s=duration_s, label="B", role="chorus", energy=0.9),
    ]
    curve_n = int(duration_s * 10)
    analysis = Analysis(
        key="an", duration_s=duration_s, tempo_bpm=120.0, beats_per_bar=4, beats_s=beats, downbeats_s=beats[::4],
        sections=sections, curve_rate_hz=10.0,
        energy=list(np.linspace(0.1, 1.0, curve_n).round(3)), brightness=list(np.linspace(0.8, 0.2, curve_n).round(3)),
        onset_strength=[0.2] * curve_n, warnings=["structure: tempo fell back to a steady grid (test)"],
    )  # fmt: skip
    times = [(round(i * shot_s, 6), round(min(duration_s, (i + 1) * shot_s), 6)) for i in range(int(round(duration_s / shot_s)))]
    shots = [
        Shot(index=i, id=f"shot-{i:03d}", start_s=s, end_s=e, section_index=0 if s < half else 1, cut="start" if i == 0 else ("downbeat" if i % 2 == 0 else "beat"))
        for i, (s, e) in enumerate(times)
    ]
    plan = ShotPlan(key="pl", duration_s=duration_s, shots=shots)
    descriptions = Descriptions(
        key="de", listener="dsp",
        song=SegmentDescription(start_s=0, end_s=duration_s, text="A steady click at 120 BPM.", tags={"key": [ScoredLabel(label="A minor", score=0.7)]}),
        sections=[SegmentDescription(start_s=s.start_s, end_s=s.end_s, text=f"section {s.label}") for s in sections],
        shots=[
            SegmentDescription(
                start_s=s.start_s, end_s=s.end_s, text=f"shot {s.index}",
                features={"valence": round(-0.5 + 0.2 * s.index, 2), "arousal": round(0.1 * s.index, 2), "energy": 0.5},
                tags={"mood": [ScoredLabel(label="tense" if s.index % 2 else "calm", score=0.8)], "energy": [ScoredLabel(label="driving", score=0.6)]},
            )
            for s in shots
        ],
    )  # fmt: skip
    storyboard = Storyboard(
        key="sb", writer="template", title="Clicks & <Lights>", concept="A lighthouse blinks to the beat.",
        style=StyleBible(look="grainy 16 mm film", palette=["#223344", "#ddaa33"], medium="animation"),
        characters=[Character(name="Keeper", description="an old keeper in a yellow coat")],
        sections=[
            SectionTreatment(section_index=0, label="A", role="verse", palette=["#223344"], motif="the lamp", setting="lamp room"),
            SectionTreatment(section_index=1, label="B", role="chorus", palette=["#ddaa33"], motif="the beam", setting="cliff"),
        ],
        shots=[
            StoryboardShot(
                id=s.id, start_s=s.start_s, end_s=s.end_s, section_index=s.section_index,
                scene=f"Scene {s.index}: the keeper turns the lamp & waits",
                prompt=f"prompt-{s.index}: a lighthouse lamp room at night, <warm> light, 16 mm film",
                seed=s.index, palette=["#223344"], motif="the lamp", characters=["Keeper"] if s.index % 2 == 0 else [],
                lyrics="la la" if s.index == 1 else "",
            )
            for s in shots
        ],
    )  # fmt: skip
    clips = []
    (run / "clips").mkdir()
    all_frames = []
    for s in shots:
        count = s.frame_count(fps)
        frames = [solid(PALETTE[s.index % len(PALETTE)], width, height)] * count
        path = run / "clips" / f"{s.id}-abc.mp4"
        write_video(path, frames, fps)
        all_frames.extend(frames)
        clips.append(RenderedClip(shot_id=s.id, path=f"clips/{path.name}", frames=count, fps=fps, width=width, height=height, shot_hash="abc"))
    render = RenderResult(
        key="re", renderer="animatic", fps=fps, width=width, height=height, clips=clips[:-1],  # the last clip is missing: from the video
        failed_shots={shots[-1].id: "out of memory (test)"},
    )  # fmt: skip
    video_path = tmp_path / "song.mp4"
    write_video(video_path, all_frames, fps)
    cut_frames = [s.frame_range(fps)[0] for s in shots[1:]]
    video = AssemblyResult(
        key="vi", video_path=str(video_path), duration_s=duration_s, fps=fps, frames=len(all_frames), width=width, height=height,
        cut_frames=cut_frames, cut_times_s=[s.start_s for s in shots[1:]],
    )  # fmt: skip
    audio = AudioInfo(
        key="au", source_path=str(tmp_path / "song.wav"), source_sha256="0" * 64, container="wav", codec="pcm_s16le",
        source_sample_rate_hz=22050, source_channels=1, duration_s=duration_s, sample_rate_hz=22050, channels=1,
        peak_dbfs=-1.0, rms_dbfs=-20.0, loudness_lufs=-18.0,
    )  # fmt: skip
    summary = RunSummary(
        key="ru", song=str(tmp_path / "song.wav"), output=str(video_path), pipeline="preview",
        backends={"listener": "dsp", "writer": "template", "renderer": "animatic"}, settings={"fps": fps, "seed": 0},
        stages=[StageRecord(name=n, seconds=sec, reused=n == "decode", artifact=None) for n, sec in
                [("decode", 0.2), ("structure", 1.5), ("shots", 0.01), ("listen", 0.8), ("write", 0.05), ("render", 3.0), ("assemble", 0.4)]],
        finished=True,
    )  # fmt: skip
    for name, artifact in [
        ("audio.json", audio), ("analysis.json", analysis), ("shots.json", plan), ("descriptions.json", descriptions),
        ("storyboard.json", storyboard), ("clips.json", render), ("video.json", video), ("run.json", summary),
    ]:  # fmt: skip
        write_json_atomic(run / name, artifact)
    return run


class _StrictHTML(HTMLParser):
    """Fails on mis-nested or unclosed elements; collects src/href attributes and text."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr", "col", "area", "base", "embed", "track"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.sources: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):  # "#shots": a link inside the page
                self.sources.append(value)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _StrictHTML:
    parser = _StrictHTML()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.doctype, "no <!DOCTYPE html>"
    assert not parser.errors, parser.errors
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def test_report_shows_every_shot_its_prompt_and_images_that_exist(tmp_path: Path):
    run = build_run_folder(tmp_path)
    evaluate_run(run)

    report = write_report(run)

    assert report == run / REPORT_FILE
    parsed = _parse(report)
    text = " ".join(parsed.text)
    for i in range(6):
        assert f"shot-{i:03d}" in text
        assert f"prompt-{i}: a lighthouse lamp room at night, <warm> light, 16 mm film" in text  # escaped in the file, intact as text
    assert "Clicks & <Lights>" in text
    # header facts, warnings of every kind, models and timings
    for expected in ("120.0 BPM", "A minor", "4/4", "preview", "animatic", "template", "dsp"):
        assert expected in text
    assert "tempo fell back to a steady grid" in text  # an artifact's warning is visible
    assert "shot-005 could not be rendered" in text  # a failed shot is visible
    assert "cuts on a beat" in text and "AV-Align" in text  # metrics from evaluation.json
    assert "render" in text and "3.00 s" in text  # time per stage
    # every referenced file exists (images and the video), all relative and offline
    images = [src for src in parsed.sources if src.endswith((".png", ".jpg"))]
    assert len([s for s in images if "/shots/" in s]) == 6  # one frame per shot, the last from the video
    assert any(s.endswith("timeline.png") for s in images) and any(s.endswith("curves.png") for s in images)
    for src in parsed.sources:
        assert not re.match(r"^[a-z]+://", src), f"network reference {src}"
        assert (run / src).resolve().is_file(), f"missing {src}"


def test_semantic_scores_appear_beside_their_shots(tmp_path: Path):
    from music2video.evaluate import EVALUATION_ARTIFACT, ConsistencyGroup, Evaluation, SemanticScores, ShotSemantics

    run = build_run_folder(tmp_path)
    evaluation = evaluate_run(run)
    evaluation.semantic = SemanticScores(
        clip_model="tiny-clip", clap_model="tiny-clap",
        shots=[ShotSemantics(shot_id=f"shot-{i:03d}", frames=[i], clip_similarity=0.1 + i / 100, clap_similarity=-0.2) for i in range(6)],
        groups=[ConsistencyGroup(kind="character", name="Keeper", shot_ids=["shot-000", "shot-002"], within=0.9, between=0.4, margin=0.5)],
        mean_clip_similarity=0.125, mean_clap_similarity=-0.2,
    )  # fmt: skip
    write_json_atomic(run / EVALUATION_ARTIFACT, Evaluation.model_validate(evaluation.model_dump()))
    text = " ".join(_parse(write_report(run)).text)
    assert "CLIP 0.130 · CLAP -0.200" in text  # shot-003's own scores on its card
    assert "CLIP prompt match" in text and "0.125" in text and "tiny-clip" in text
    assert "Keeper" in text and "0.500" in text  # the consistency table


def test_contact_sheet_frames_are_the_shots_middle_frames(tmp_path: Path):
    from PIL import Image

    run = build_run_folder(tmp_path)
    write_report(run)
    for i in range(6):
        picture = np.asarray(Image.open(run / ASSETS_FOLDER / "shots" / f"shot-{i:03d}.jpg").convert("RGB"), dtype=float)
        assert picture.shape[1] == 240
        assert np.abs(picture.mean(axis=(0, 1)) - PALETTE[i % len(PALETTE)]).max() < 12  # the shot's own colour


def test_report_tolerates_missing_and_broken_artifacts(tmp_path: Path):
    run = build_run_folder(tmp_path)
    for name in ("clips.json", "video.json", "descriptions.json", "run.json"):
        (run / name).unlink()
    (run / "storyboard.json").write_text("{ not json", encoding="utf-8")
    (run / "audio.wav").unlink()

    parsed = _parse(write_report(run))
    text = " ".join(parsed.text)
    assert "storyboard.json" in text and "unreadable" in text  # said, not hidden
    assert "shot-000" in text  # the plan still lists the shots
    assert "No evaluation.json" in text
    for src in parsed.sources:
        assert (run / src).is_file()


def test_an_empty_folder_still_gets_a_page(tmp_path: Path):
    parsed = _parse(write_report(tmp_path))
    assert "music2video report" in " ".join(parsed.text)


def test_rewriting_the_report_removes_stale_images(tmp_path: Path):
    run = build_run_folder(tmp_path)
    stale = run / ASSETS_FOLDER / "shots" / "shot-999.jpg"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"old")
    write_report(run)
    assert not stale.exists()


def test_report_of_a_three_minute_run_has_every_frame_and_stays_small(tmp_path: Path):
    # 60 shots of 3 s, as a 3-minute song has; small frames keep building the folder quick.
    # Its speed is a benchmark's (benchmarks/bench_evaluate.py, bench_cli.py), not a test's: a
    # shared machine's load would fail a wall-clock assertion.
    run = build_run_folder(tmp_path, duration_s=180.0, shot_s=3.0, fps=12.0, width=160, height=90)
    report = write_report(run)
    assert len(list((run / ASSETS_FOLDER / "shots").glob("*.jpg"))) == 60
    assert report.stat().st_size < 500_000


def test_the_style_preamble_is_shown_once_and_each_card_shows_its_own_words(tmp_path: Path):
    from music2video.artifacts import Storyboard

    run = build_run_folder(tmp_path)
    board = Storyboard.model_validate_json((run / "storyboard.json").read_text(encoding="utf-8"))
    preamble = "Grainy 16 mm film, warm tungsten light, long shadows."
    for shot in board.shots:
        # the writers spell each character out in the prompt; the report names them once, in the style bible
        who = "Keeper, an old keeper in a yellow coat," if shot.characters else "The lamp"
        shot.prompt = f"{preamble} {who} turns slowly in shot {shot.id}. Camera {shot.id} pushes in."
    write_json_atomic(run / "storyboard.json", board)

    text = " ".join(_parse(write_report(run)).text)
    # once under "In every prompt"; each card's folded "full prompt" keeps it whole as well
    assert text.count(preamble) == 1 + len(board.shots)
    assert "In every prompt" in text
    assert "Keeper turns slowly in shot shot-000. Camera shot-000 pushes in." in text  # the card's own words
    assert "an old keeper in a yellow coat" in text  # in the style bible's characters


def test_every_warning_says_what_to_do(tmp_path: Path):
    run = build_run_folder(tmp_path)
    text = " ".join(_parse(write_report(run)).text)
    assert "check them on the timeline below" in text  # analysis.json's warning
    assert "failed shots are retried" in text  # the failed shot-005
    assert "This is a preview." in text  # the animatic says once what it draws
    assert text.count("take effect with a video model") == 1


def test_key_and_mood_come_from_the_analysis(tmp_path: Path):
    """The analysis' key wins over a listener's key tag, and its mood is shown beside it."""
    from music2video.music import Key, mood_from_cues

    run = build_run_folder(tmp_path)
    analysis = Analysis.model_validate_json((run / "analysis.json").read_text())
    mood = mood_from_cues({"loudness_dbfs": -15.0, "spectral_flux": 1.3, "major_strength": 1.0, "key_clarity": 0.9})
    analysis = analysis.model_copy(update={"musical_key": Key(tonic=2, mode="major", confidence=0.8), "mood": mood})
    write_json_atomic(run / "analysis.json", analysis)

    text = " ".join(_parse(write_report(run)).text)
    assert "D major" in text and "A minor" not in text
    assert mood.words[0] in text and f"valence {mood.valence:+.2f}" in text
