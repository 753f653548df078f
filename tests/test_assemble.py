"""The assembler: clips joined frame-exactly by packet copy, the song muxed as AAC, faststart,
foreign clips re-encoded, broken plans refused."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from music2video.artifacts import (
    Analysis,
    RenderedClip,
    RenderResult,
    Section,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.assemble import assemble_video
from music2video.errors import Music2VideoError
from music2video.render import render_storyboard
from music2video.render.animatic import AnimaticRenderer
from music2video.runfolder import RunFolder
from music2video.videofile import ClipWriter, fps_fraction, write_clip

WIDTH, HEIGHT = 64, 36
SAMPLE_RATE_HZ = 48_000
DURATION_S = 4.0
CUTS_S = [0.0, 1.5, 2.25, 3.0, 4.0]  # shot boundaries; the cut times are the inner ones
COLOURS = [(230, 30, 30), (30, 220, 40), (40, 60, 230), (240, 240, 240)]


def write_song(path: Path, duration_s: float = DURATION_S, channels: int = 2) -> Path:
    t = np.arange(round(duration_s * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    tones = [0.3 * np.sin(2 * np.pi * f * t) for f in (220.0, 330.0)[:channels]]
    soundfile.write(path, np.stack(tones, axis=1).astype(np.float32), SAMPLE_RATE_HZ, subtype="FLOAT")
    return path


def frame_counts(fps: float) -> list[int]:
    return [round(CUTS_S[i + 1] * fps) - round(CUTS_S[i] * fps) for i in range(len(CUTS_S) - 1)]


def solid_clips(run_root: Path, fps: float, counts: list[int] | None = None) -> RenderResult:
    """One solid-colour ClipWriter clip per shot, so a shot can be recognised by its colour."""
    counts = counts or frame_counts(fps)
    clips = []
    for i, (count, colour) in enumerate(zip(counts, COLOURS, strict=True)):
        path = run_root / "clips" / f"shot-{i:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, np.full((count, HEIGHT, WIDTH, 3), colour, np.uint8), fps)
        clips.append(
            RenderedClip(shot_id=f"shot-{i:03d}", path=f"clips/{path.name}", frames=count, fps=fps, width=WIDTH, height=HEIGHT, shot_hash="h")
        )
    return RenderResult(renderer="test", fps=fps, width=WIDTH, height=HEIGHT, clips=clips)


def shot_of_each_frame(video: Path) -> list[int]:
    """Index of the nearest test colour for every decoded frame."""
    palette = np.array(COLOURS, np.float32)
    with av.open(str(video)) as container:
        centres = [frame.to_ndarray(format="rgb24")[HEIGHT // 2, WIDTH // 2].astype(np.float32) for frame in container.decode(video=0)]
    return [int(np.argmin(np.abs(palette - c).sum(axis=1))) for c in centres]


def assemble(run_root: Path, render: RenderResult, output: Path | None = None, **changes):
    arguments = dict(
        render=render,
        run_root=run_root,
        audio_wav=run_root / "audio.wav",
        output=output or run_root / "video.mp4",
        duration_s=DURATION_S,
        cut_times_s=CUTS_S[1:-1],
    )
    arguments.update(changes)
    return assemble_video(**arguments)


@pytest.fixture
def run_root(tmp_path: Path) -> Path:
    write_song(tmp_path / "audio.wav")
    return tmp_path


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [24.0, 25.0, 23.976])
def test_joined_video_is_frame_exact_and_plays_everywhere(run_root: Path, fps: float):
    render = solid_clips(run_root, fps)
    calls = []
    result = assemble(run_root, render, progress=lambda done, total, message="": calls.append((done, total)))
    video = run_root / "video.mp4"
    total = round(DURATION_S * fps)

    assert result.video_path == "video.mp4"
    assert result.frames == total and result.fps == fps and (result.width, result.height) == (WIDTH, HEIGHT)
    assert result.cut_frames == [round(t * fps) for t in CUTS_S[1:-1]]
    assert result.cut_times_s == CUTS_S[1:-1]
    assert not result.warnings
    assert calls[-1] == (4, 4)

    with av.open(str(video)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        stream, sound = container.streams.video[0], container.streams.audio[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.profile in ("High", "Main")
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.frames == total
        # exact: the file's time base counts whole frames of the exact rate (24000/1001 for 23.976)
        assert stream.duration * stream.time_base == total / fps_fraction(fps)
        assert result.duration_s == pytest.approx(float(total / fps_fraction(fps)))
        assert sound.codec_context.name == "aac" and sound.codec_context.profile == "LC"
        assert sound.codec_context.channels == 2 and sound.codec_context.sample_rate == SAMPLE_RATE_HZ
        assert abs(float(sound.duration * sound.time_base) - DURATION_S) < 1 / fps
        assert abs(float(stream.duration * stream.time_base) - DURATION_S) <= 0.5 / fps

    shots = shot_of_each_frame(video)
    assert len(shots) == total
    first_frames = [shots.index(i) for i in range(4)]
    assert first_frames == [0, *result.cut_frames]
    assert shots == sorted(shots)  # no frame of a shot strays into another

    data = video.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat"), "moov must precede mdat (faststart)"
    assert [p.name for p in run_root.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def test_audio_decodes_to_the_song(run_root: Path):
    assemble(run_root, solid_clips(run_root, 24.0))
    with av.open(str(run_root / "video.mp4")) as container:
        samples = np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
    song, _ = soundfile.read(run_root / "audio.wav", dtype="float32")
    # the decoder drops the encoder's priming; at most one AAC frame of padding is left at the end
    assert 0 <= samples.shape[1] - len(song) < 1024
    # left and right kept apart: 220 Hz on the left, 330 Hz on the right
    spectrum = np.abs(np.fft.rfft(samples[:, 48000:96000], axis=1))
    assert np.argmax(spectrum[0]) == 220 and np.argmax(spectrum[1]) == 330


def test_mono_song_is_upmixed_to_stereo(run_root: Path):
    write_song(run_root / "audio.wav", channels=1)
    assemble(run_root, solid_clips(run_root, 25.0))
    with av.open(str(run_root / "video.mp4")) as container:
        assert container.streams.audio[0].codec_context.channels == 2


def _write_mpeg4_clip(path: Path, count: int, colour: tuple[int, int, int]) -> None:
    """A clip from 'another tool': MPEG-4 Part 2 at another frame rate."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.full((HEIGHT, WIDTH, 3), colour, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("odd_one", ["larger", "other encoder", "other x264 settings"])
def test_a_mismatched_clip_is_reencoded_not_corrupted(run_root: Path, odd_one: str, caplog: pytest.LogCaptureFixture):
    fps = 24.0
    render = solid_clips(run_root, fps)
    clip = render.clips[1]
    path = run_root / clip.path
    if odd_one == "larger":
        write_clip(path, np.full((clip.frames, HEIGHT * 2, WIDTH * 2, 3), COLOURS[1], np.uint8), fps)
    elif odd_one == "other encoder":
        _write_mpeg4_clip(path, clip.frames, COLOURS[1])
    else:  # CAVLC instead of CABAC: same size and codec, incompatible parameter sets
        with ClipWriter(path, WIDTH, HEIGHT, fps, options={"preset": "ultrafast"}) as writer:
            for _ in range(clip.frames):
                writer.write(np.full((HEIGHT, WIDTH, 3), COLOURS[1], np.uint8))

    with caplog.at_level(logging.WARNING, logger="music2video.assemble"):
        result = assemble(run_root, render)
    assert len(result.warnings) == 1 and "shot-001" in result.warnings[0] and "re-encoded" in result.warnings[0]
    assert "shot-001" in caplog.text

    shots = shot_of_each_frame(run_root / "video.mp4")
    assert len(shots) == round(DURATION_S * fps)
    assert [shots.index(i) for i in range(4)] == [0, *result.cut_frames]
    assert shots == sorted(shots)


def test_a_clip_with_the_wrong_frame_count_is_refused(run_root: Path):
    render = solid_clips(run_root, 24.0)
    clip = render.clips[2]
    write_clip(run_root / clip.path, np.full((clip.frames - 1, HEIGHT, WIDTH, 3), COLOURS[2], np.uint8), 24.0)
    with pytest.raises(Music2VideoError, match=r"shot-002.*has 17 frames, expected 18"):
        assemble(run_root, render)
    assert not (run_root / "video.mp4").exists()


def test_a_missing_or_unreadable_clip_is_refused(run_root: Path):
    render = solid_clips(run_root, 24.0)
    (run_root / render.clips[3].path).unlink()
    with pytest.raises(Music2VideoError, match="shot-003.*missing"):
        assemble(run_root, render)
    (run_root / render.clips[3].path).write_bytes(b"not a video at all")
    with pytest.raises(Music2VideoError, match="shot-003.*cannot be read"):
        assemble(run_root, render)


def test_clips_that_do_not_add_up_to_the_song_are_refused(run_root: Path):
    render = solid_clips(run_root, 24.0)
    with pytest.raises(Music2VideoError, match="96 frames but the song needs 120"):
        assemble(run_root, render, duration_s=5.0)


def test_a_cut_off_its_frame_is_refused(run_root: Path):
    render = solid_clips(run_root, 24.0)
    with pytest.raises(Music2VideoError, match="shot-002 starts on frame 54"):
        assemble(run_root, render, cut_times_s=[1.5, 2.5, 3.0])


def test_audio_of_another_length_is_refused(run_root: Path):
    write_song(run_root / "audio.wav", duration_s=3.5)
    with pytest.raises(Music2VideoError, match="audio.wav lasts 3.500 s"):
        assemble(run_root, solid_clips(run_root, 24.0))


def test_output_outside_the_run_folder_gets_an_absolute_path(run_root: Path, tmp_path_factory: pytest.TempPathFactory):
    elsewhere = tmp_path_factory.mktemp("videos") / "song.mp4"
    result = assemble(run_root, solid_clips(run_root, 24.0), output=elsewhere)
    assert Path(result.video_path) == elsewhere.resolve() and elsewhere.is_file()


def test_animatic_render_then_assemble(tmp_path: Path):
    """The preview's last two stages together, at 23.976 fps where rounding is least forgiving."""
    fps = 23.976
    write_song(tmp_path / "audio.wav")
    beats = [i * 0.5 for i in range(8)]
    analysis = Analysis(
        duration_s=DURATION_S,
        tempo_bpm=120.0,
        beats_per_bar=4,
        beats_s=beats,
        downbeats_s=beats[::4],
        sections=[Section(index=0, start_s=0.0, end_s=DURATION_S, label="A", role="verse", energy=0.5)],
        curve_rate_hz=10.0,
        energy=[0.5] * 40,
        brightness=[0.5] * 40,
        onset_strength=[0.5] * 40,
    )
    palette = ["#0d1b2a", "#415a77", "#e0a458"]
    shots = [
        StoryboardShot(
            id=f"shot-{i:03d}", start_s=CUTS_S[i], end_s=CUTS_S[i + 1], section_index=0, scene="s", prompt="p",
            seed=i, palette=palette, motif=motif, camera=camera,
        )
        for i, (motif, camera) in enumerate([("grid", "push in"), ("rays", "orbit left"), ("ribbons", "whip pan"), ("particles", "static")])
    ]
    storyboard = Storyboard(writer="t", title="t", concept="c", style=StyleBible(look="l", palette=palette), sections=[], shots=shots)
    render = render_storyboard(AnimaticRenderer(WIDTH, HEIGHT, fps), storyboard, analysis, RunFolder(tmp_path), fps, WIDTH, HEIGHT)
    result = assemble(tmp_path, render)
    assert not result.warnings  # every clip was copied, none re-encoded
    with av.open(str(tmp_path / "video.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == result.frames == round(DURATION_S * fps)


def test_a_song_with_more_channels_is_mixed_down_with_a_warning(run_root: Path):
    t = np.arange(round(DURATION_S * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    surround = np.stack([0.2 * np.sin(2 * np.pi * 220 * t)] * 3, axis=1).astype(np.float32)
    soundfile.write(run_root / "audio.wav", surround, SAMPLE_RATE_HZ, subtype="FLOAT")
    result = assemble(run_root, solid_clips(run_root, 24.0))
    assert any("3 channels" in warning for warning in result.warnings)
    with av.open(str(run_root / "video.mp4")) as container:
        assert container.streams.audio[0].codec_context.channels == 2
