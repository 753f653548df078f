"""One contract per protocol, run over every backend (diffusers' PipelineTesterMixin, here).

A listener (:func:`music2video.listen.describe`) returns ``Descriptions`` aligned with the shot
plan and the analysis; a renderer (:func:`music2video.render.open_renderer`) writes exactly
``frame_count`` frames per shot at the output size. Each backend class below says only how to
build its settings (tiny random-weight models for the neural ones); the checks are shared.
Each backend runs once per class (class-scoped fixtures) and every check reads that result.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from music2video.artifacts import (
    Analysis,
    Descriptions,
    Section,
    SectionTreatment,
    Shot,
    ShotPlan,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.errors import Music2VideoError
from music2video.runfolder import RunFolder, stable_hash

sys.path.insert(0, str(Path(__file__).parent))

RATE_HZ = 48_000
SONG_S = 12.0
SECTIONS = [(0.0, 4.0, "A", "intro"), (4.0, 12.0, "B", "verse")]
SHOT_EDGES_S = [0.0, 2.0, 4.0, 7.0, 9.5, 12.0]  # uneven shots, one per cut


# --------------------------------------------------------------------------------------------
# A song, its analysis and its shot plan, shared by every listener


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """12 s of stereo 48 kHz: a quiet chord, then a louder one with clicks on the beat."""
    import soundfile

    t = np.arange(int(SONG_S * RATE_HZ)) / RATE_HZ
    quiet = 0.15 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 329.6 * t)) / 2
    clicks = (np.sin(2 * np.pi * 2 * t) > 0.6) * 0.2 * np.random.default_rng(0).standard_normal(t.size)
    loud = 0.3 * np.sin(2 * np.pi * 196 * t) + clicks
    mono = np.where(t >= 4.0, loud, quiet).astype(np.float32)
    path = tmp_path_factory.mktemp("conformance-song") / "audio.wav"
    soundfile.write(path, np.stack([mono, 0.9 * mono], axis=1), RATE_HZ, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    curve_rate_hz = 10.0
    frames = int(SONG_S * curve_rate_hz)
    return Analysis(
        duration_s=SONG_S,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=[round(b, 3) for b in np.arange(0.0, SONG_S, 0.5)],
        downbeats_s=[round(b, 3) for b in np.arange(0.0, SONG_S, 2.0)],
        sections=[
            Section(index=i, start_s=start, end_s=end, label=label, role=role, energy=0.8 if label == "B" else 0.3)
            for i, (start, end, label, role) in enumerate(SECTIONS)
        ],
        curve_rate_hz=curve_rate_hz,
        energy=[0.8 if i >= 4.0 * curve_rate_hz else 0.3 for i in range(frames)],
        brightness=[0.5] * frames,
        onset_strength=[0.4] * frames,
    )


@pytest.fixture(scope="module")
def plan(analysis: Analysis) -> ShotPlan:
    shots = []
    for i, (start, end) in enumerate(zip(SHOT_EDGES_S, SHOT_EDGES_S[1:])):
        section = next(s for s in analysis.sections if s.start_s <= start < s.end_s)
        shots.append(Shot(index=i, id=f"shot-{i:03d}", start_s=start, end_s=end, section_index=section.index, cut="beat"))
    return ShotPlan(duration_s=SONG_S, shots=shots)


# --------------------------------------------------------------------------------------------
# Listeners


class ListenerConformance:
    """The listener contract. A backend class sets ``listener`` and defines ``make_settings``."""

    listener: str

    @pytest.fixture(scope="class")
    def settings(self, tmp_path_factory):
        return self.make_settings(tmp_path_factory)

    def make_settings(self, tmp_path_factory):
        """The listener's own settings section, pointing at a tiny model; None for dsp."""
        return None

    @pytest.fixture(scope="class")
    def described(self, settings, song, analysis, plan, tmp_path_factory) -> Descriptions:
        from music2video import listen

        with pytest.MonkeyPatch.context() as patch:  # the clap text cache goes to a temporary folder
            patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
            reports: list[tuple[int, int]] = []
            descriptions = listen.describe(
                self.listener, song, analysis, plan, settings, lambda done, total, message="": reports.append((done, total))
            )
        assert reports, "the listener reports its progress"
        return descriptions

    def test_names_itself(self, described: Descriptions):
        assert described.listener == self.listener

    def test_one_description_per_shot_with_the_plans_times(self, described: Descriptions, plan: ShotPlan):
        assert [(d.start_s, d.end_s) for d in described.shots] == [(s.start_s, s.end_s) for s in plan.shots]

    def test_one_description_per_section_with_the_analysis_times(self, described: Descriptions, analysis: Analysis):
        assert [(d.start_s, d.end_s) for d in described.sections] == [(s.start_s, s.end_s) for s in analysis.sections]

    def test_the_song_description_spans_the_song(self, described: Descriptions):
        assert described.song.start_s == 0.0 and described.song.end_s == pytest.approx(SONG_S)

    def test_every_span_has_words_and_finite_numbers(self, described: Descriptions):
        for description in [described.song, *described.sections, *described.shots]:
            assert description.text.strip()
            assert description.features and all(math.isfinite(value) for value in description.features.values())
            for labels in description.tags.values():
                assert all(0.0 <= label.score <= 1.0 and label.label for label in labels)

    def test_the_artifact_round_trips_through_json(self, described: Descriptions):
        assert Descriptions.model_validate_json(described.model_dump_json()) == described

    def test_fingerprint_is_stable_and_hashable(self, settings):
        from music2video import listen

        first, again = listen.fingerprint(self.listener, settings), listen.fingerprint(self.listener, settings)
        assert stable_hash(*first) == stable_hash(*again)


class TestDspListener(ListenerConformance):
    listener = "dsp"


class TestClapListener(ListenerConformance):
    listener = "clap"

    def make_settings(self, tmp_path_factory):
        from tiny_clap import build_tiny_clap

        from music2video.settings import ClapSettings

        pytest.importorskip("transformers")
        return ClapSettings(model=str(build_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))), device="cpu", dtype="float32")

    def test_fingerprint_follows_the_settings(self, settings):
        from music2video import listen

        other = settings.model_copy(update={"batch_size": settings.batch_size + 1})
        assert stable_hash(*listen.fingerprint("clap", settings)) != stable_hash(*listen.fingerprint("clap", other))


class TestLalmListener(ListenerConformance):
    """The tiny Qwen2-Audio; every family's tiny model runs through ``describe_lalm`` in test_listen_lalm.py."""

    listener = "lalm"

    def make_settings(self, tmp_path_factory):
        from tiny_lalm import build_tiny_qwen2_audio

        from music2video.settings import LalmSettings

        pytest.importorskip("transformers")
        folder = build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"))
        return LalmSettings(model=str(folder), device="cpu", dtype="float32", max_new_tokens=16, window_s=6.0)

    def test_fingerprint_follows_the_settings(self, settings):
        from music2video import listen

        other = settings.model_copy(update={"window_s": 5.0})
        assert stable_hash(*listen.fingerprint("lalm", settings)) != stable_hash(*listen.fingerprint("lalm", other))


def test_an_unknown_listener_names_the_choices(song, analysis, plan):
    from music2video import listen

    with pytest.raises(Music2VideoError, match="dsp, clap or lalm"):
        listen.describe("ears", song, analysis, plan)
    with pytest.raises(Music2VideoError, match="dsp, clap or lalm"):
        listen.fingerprint("ears")


def test_a_listener_refuses_another_listeners_settings(song, analysis, plan):
    from music2video import listen
    from music2video.settings import LalmSettings

    with pytest.raises(TypeError, match="ClapSettings"):
        listen.describe("clap", song, analysis, plan, LalmSettings())


# --------------------------------------------------------------------------------------------
# Renderers

FPS = 24.0
WIDTH, HEIGHT = 48, 32
SHOT_FRAMES = [6, 13, 9]  # at 24 fps: 0.25 s, 0.54 s, 0.375 s; uneven on purpose


def _storyboard() -> tuple[Storyboard, Analysis]:
    edges = np.cumsum([0, *SHOT_FRAMES]) / FPS
    shots = [
        StoryboardShot(
            id=f"shot-{i:03d}",
            start_s=float(start),
            end_s=float(end),
            section_index=0,
            scene="a lighthouse at dusk",
            prompt="a lighthouse at dusk, waves, cinematic",
            seed=i,
            palette=["#203040"],
            motif="beam",
        )
        for i, (start, end) in enumerate(zip(edges, edges[1:]))
    ]
    storyboard = Storyboard(
        writer="test",
        title="t",
        concept="c",
        style=StyleBible(look="painterly", palette=["#203040"]),
        sections=[SectionTreatment(section_index=0, label="A", role="verse", palette=["#203040"], motif="beam")],
        shots=shots,
    )
    duration_s = float(edges[-1])
    analysis = Analysis(
        duration_s=duration_s,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=[0.0],
        downbeats_s=[0.0],
        sections=[Section(index=0, start_s=0.0, end_s=duration_s, label="A", role="verse", energy=0.5)],
        curve_rate_hz=10.0,
        energy=[0.5],
        brightness=[0.5],
        onset_strength=[0.5],
    )
    return storyboard, analysis


class RendererConformance:
    """The renderer contract. A backend class sets ``renderer`` and defines ``make_settings``."""

    renderer: str

    @pytest.fixture(scope="class")
    def settings(self, tmp_path_factory):
        return self.make_settings(tmp_path_factory)

    def make_settings(self, tmp_path_factory):
        """The ``[video]`` settings section (the animatic ignores it)."""
        from music2video.settings import VideoModelSettings

        return VideoModelSettings()

    @pytest.fixture(scope="class")
    def rendered(self, settings, tmp_path_factory):
        from music2video.render import open_renderer, render_storyboard

        storyboard, analysis = _storyboard()
        run = RunFolder(tmp_path_factory.mktemp(f"render-{self.renderer}"))
        renderer = open_renderer(self.renderer, WIDTH, HEIGHT, FPS, settings)
        result = render_storyboard(renderer, storyboard, analysis, run, FPS, WIDTH, HEIGHT)
        return renderer, result, run

    def test_names_itself(self, rendered):
        renderer, result, _ = rendered
        assert renderer.name == self.renderer and result.renderer == self.renderer

    def test_exactly_frame_count_frames_per_shot_at_the_output_size(self, rendered):
        from music2video.videofile import read_frames

        _, result, run = rendered
        assert not result.failed_shots
        assert [clip.frames for clip in result.clips] == SHOT_FRAMES
        for clip, frames in zip(result.clips, SHOT_FRAMES):
            pixels = read_frames(run.path(clip.path))
            assert pixels.shape == (frames, HEIGHT, WIDTH, 3)
            assert pixels.std() > 0, f"{clip.shot_id} is a flat picture"

    def test_fingerprint_is_json_and_stable(self, rendered, settings):
        from music2video.render import open_renderer

        renderer, _, _ = rendered
        fingerprint = renderer.settings_fingerprint()
        json.dumps(fingerprint)
        assert fingerprint == open_renderer(self.renderer, WIDTH, HEIGHT, FPS, settings).settings_fingerprint()
        assert fingerprint != open_renderer(self.renderer, WIDTH, HEIGHT, FPS / 2, settings).settings_fingerprint()


class TestAnimaticRenderer(RendererConformance):
    renderer = "animatic"


class TestDiffusersRenderer(RendererConformance):
    """The tiny Wan 2.1 (tests/tiny_video_models.py), generating at 32x32 in two steps."""

    renderer = "diffusers"

    def make_settings(self, tmp_path_factory):
        from tiny_video_models import build_tiny_wan

        from music2video.settings import VideoModelSettings

        pytest.importorskip("diffusers")
        folder = build_tiny_wan(tmp_path_factory.mktemp("tiny-wan"))
        return VideoModelSettings(model=str(folder), device="cpu", steps=2, generation_size="32x32")


def test_an_unknown_renderer_names_the_choices():
    from music2video.render import open_renderer
    from music2video.settings import VideoModelSettings

    with pytest.raises(Music2VideoError, match="animatic or diffusers"):
        open_renderer("paint", WIDTH, HEIGHT, FPS, VideoModelSettings())
