"""Decode stage: every container and codec a user might hand us, and every way a file can be bad."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from music2video.decode import (
    ANALYSIS_RATE_HZ,
    CANONICAL_RATE_HZ,
    MIN_DURATION_S,
    _CanonicalWriter,
    _StreamingLoudness,
    decode_audio,
    load_audio,
)
from music2video.demo import synthesize_demo_song, truth_path
from music2video.errors import InputError

DURATION_TOLERANCE_S = 0.05
TEST_DURATION_S = 3.0


def _tone(duration_s: float, rate_hz: int, channels: int = 2, level: float = 0.3) -> np.ndarray:
    """A chord with a little noise, (channels, n) float32; each channel slightly different."""
    t = np.arange(int(round(duration_s * rate_hz))) / rate_hz
    rng = np.random.default_rng(0)
    out = []
    for channel in range(channels):
        wave = sum(np.sin(2 * np.pi * f * (1 + 0.01 * channel) * t) for f in (220.0, 277.2, 329.6)) / 3
        out.append(level * wave + 0.01 * rng.standard_normal(len(t)))
    return np.array(out, dtype=np.float32)


def _write_with_pyav(
    path: Path,
    samples: np.ndarray,
    rate_hz: int,
    codec: str,
    video_codec: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode (channels, n) float samples with PyAV, optionally beside a tiny video stream."""
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[samples.shape[0]]
    with av.open(str(path), "w") as out:
        if video_codec:
            video = out.add_stream(video_codec, rate=24)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(codec, rate=rate_hz, layout=layout, options=options or {})
        audio.codec_context.open()
        frame_size = audio.codec_context.frame_size or 1024  # encoders like Opus need exact frames
        for start in range(0, samples.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + frame_size]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = rate_hz, start
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
        if video_codec:
            for index in range(int(samples.shape[1] / rate_hz * 24)):
                image = np.full((48, 64, 3), index * 5 % 255, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                for packet in video.encode(frame):
                    out.mux(packet)
            for packet in video.encode(None):
                out.mux(packet)
    return path


def _write_video_without_audio(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for index in range(48):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return path


def _assert_nothing_written(output_wav: Path) -> None:
    """No canonical WAV and no temporary left beside it."""
    assert not output_wav.exists()
    assert not [p for p in output_wav.parent.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


# --------------------------------------------------------------------------------------------
# Formats


ENCODED_FORMATS = [
    # (file name, audio codec, rate, video codec, encoder options)
    ("song.mp3", "libmp3lame", 44100, None, None),
    ("song.ogg", "vorbis", 44100, None, {"strict": "experimental"}),
    ("song.opus", "libopus", 48000, None, None),
    ("song.flac", "flac", 44100, None, None),
    ("song.m4a", "aac", 44100, None, None),
    ("clip.mp4", "aac", 44100, "libx264", None),
    ("clip.mkv", "libopus", 48000, "libx264", None),
    ("clip.webm", "libopus", 48000, "libvpx-vp9", None),
    ("Mötley Crüe — ça va.mp3", "libmp3lame", 44100, None, None),
]


@pytest.mark.parametrize(("name", "codec", "rate_hz", "video_codec", "options"), ENCODED_FORMATS, ids=[f[0] for f in ENCODED_FORMATS])
def test_every_container_and_codec_decodes_to_the_canonical_wav(tmp_path, name, codec, rate_hz, video_codec, options):
    samples = _tone(TEST_DURATION_S, rate_hz)
    source = _write_with_pyav(tmp_path / name, samples, rate_hz, codec, video_codec, options)
    output = tmp_path / "out" / "audio.wav"

    info = decode_audio(source, output)

    assert abs(info.duration_s - TEST_DURATION_S) < DURATION_TOLERANCE_S
    assert info.source_sample_rate_hz == rate_hz
    assert info.source_channels == 2
    assert (info.sample_rate_hz, info.channels) == (CANONICAL_RATE_HZ, 2)
    assert info.codec == {"libmp3lame": "mp3", "libopus": "opus"}.get(codec, codec)
    assert info.source_path == str(source)
    assert len(info.source_sha256) == 64
    assert not info.is_silent and info.warnings == []
    # The canonical file holds what the info says, at the level that went in.
    data, rate = sf.read(output, dtype="float32")
    assert rate == CANONICAL_RATE_HZ and data.shape == (round(info.duration_s * CANONICAL_RATE_HZ), 2)
    source_rms_dbfs = 20 * math.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert info.rms_dbfs == pytest.approx(source_rms_dbfs, abs=1.0)
    assert info.rms_dbfs < info.peak_dbfs < 0
    assert info.loudness_lufs is not None and abs(info.loudness_lufs - info.rms_dbfs) < 6


@pytest.mark.parametrize(
    ("subtype", "rate_hz", "channels"),
    [
        ("PCM_U8", 44100, 2),
        ("PCM_16", 44100, 2),
        ("PCM_24", 44100, 2),
        ("FLOAT", 44100, 2),
        ("PCM_16", 8000, 1),
        ("PCM_24", 192000, 2),
        ("PCM_16", 48000, 6),
    ],
    ids=["wav-8bit", "wav-16bit", "wav-24bit", "wav-float", "wav-8kHz-mono", "wav-192kHz", "wav-6ch"],
)
def test_wav_of_any_width_rate_and_channel_count(tmp_path, subtype, rate_hz, channels):
    source = tmp_path / "input file.wav"
    sf.write(source, _tone(TEST_DURATION_S, rate_hz, channels).T, rate_hz, subtype=subtype)

    info = decode_audio(source, tmp_path / "audio.wav")

    assert abs(info.duration_s - TEST_DURATION_S) < DURATION_TOLERANCE_S
    assert (info.source_sample_rate_hz, info.source_channels) == (rate_hz, channels)
    assert info.sample_rate_hz == CANONICAL_RATE_HZ
    assert info.channels == (1 if channels == 1 else 2)
    assert info.container == "wav"
    if channels > 2:
        assert any("downmixed 6 channels to stereo" in w for w in info.warnings)
    else:
        assert info.warnings == []


def test_load_audio_gives_mono_at_the_analysis_rate_or_the_stored_channels(tmp_path):
    source = tmp_path / "in.flac"
    sf.write(source, _tone(TEST_DURATION_S, 44100).T, 44100)
    wav = tmp_path / "audio.wav"
    decode_audio(source, wav)

    mono = load_audio(wav, ANALYSIS_RATE_HZ)
    stereo = load_audio(wav, mono=False)

    assert mono.dtype == np.float32 and mono.shape == (int(TEST_DURATION_S * ANALYSIS_RATE_HZ),)
    assert stereo.dtype == np.float32 and stereo.shape == (2, int(TEST_DURATION_S * CANONICAL_RATE_HZ))
    # Resampling keeps the level: same RMS within 0.2 dB.
    rms_mono = np.sqrt(np.mean(mono[1000:-1000] ** 2))
    rms_stereo_mixed = np.sqrt(np.mean(stereo.mean(axis=0)[2000:-2000] ** 2))
    assert abs(20 * math.log10(rms_mono / rms_stereo_mixed)) < 0.2


def test_loudness_matches_pyloudnorm(tmp_path):
    samples = _tone(5.0, CANONICAL_RATE_HZ).T.astype(np.float64)
    samples[: CANONICAL_RATE_HZ] *= 0.01  # a quiet first second exercises the relative gate
    meter = _StreamingLoudness(CANONICAL_RATE_HZ)
    for start in range(0, len(samples), 7777):  # odd chunk sizes: state must carry over
        meter.add(samples[start : start + 7777])

    expected = pyloudnorm.Meter(CANONICAL_RATE_HZ).integrated_loudness(samples)

    assert meter.integrated_lufs() == pytest.approx(expected, abs=0.05)


def test_a_stream_that_changes_format_midway_is_kept_whole(tmp_path):
    """Concatenated recordings can switch sample format and rate between frames."""
    writer = _CanonicalWriter(tmp_path / "audio.wav")
    for rate_hz, sample_format in [(44100, "s16"), (32000, "fltp"), (48000, "s16")]:
        wave = _tone(0.5, rate_hz)
        if sample_format == "s16":
            packed = (wave.T * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
        else:
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="stereo")
        frame.sample_rate = rate_hz
        writer.write(frame)
    writer.flush()
    writer.close()
    assert writer.frames_written == 3 * CANONICAL_RATE_HZ // 2
    assert sf.info(tmp_path / "audio.wav").duration == pytest.approx(1.5)


def test_demo_song_decodes_with_its_true_duration(demo_song, tmp_path):
    path, truth = demo_song
    info = decode_audio(path, tmp_path / "audio.wav")
    assert abs(info.duration_s - truth.duration_s) < DURATION_TOLERANCE_S
    assert info.source_sample_rate_hz == truth.sample_rate_hz


def test_decode_streams_instead_of_holding_the_song(demo_song, tmp_path):
    """Decoding a 3-minute song must not allocate anything like the whole song (33 MB as float32 stereo)."""
    path, truth = demo_song
    song, rate = sf.read(path, dtype="float32")
    long_path = tmp_path / "three minutes.wav"
    sf.write(long_path, np.concatenate([song] * 3), rate, subtype="PCM_16")

    tracemalloc.start()
    try:
        decode_audio(long_path, tmp_path / "audio.wav")
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 8_000_000


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_demo_song_in_other_formats_decodes_to_its_true_length(tmp_path, suffix):
    path = tmp_path / f"demo{suffix}"
    truth = synthesize_demo_song(path, duration_s=12.0)
    assert truth_path(path).exists()
    info = decode_audio(path, tmp_path / "audio.wav")
    assert abs(info.duration_s - truth.duration_s) < DURATION_TOLERANCE_S


def test_demo_song_refuses_formats_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"\.mp3"):
        synthesize_demo_song(tmp_path / "demo.mp3")


def test_an_existing_output_is_replaced_whole(tmp_path):
    source = tmp_path / "in.wav"
    sf.write(source, _tone(2.0, 44100).T, 44100)
    output = tmp_path / "audio.wav"
    output.write_bytes(b"old contents")
    decode_audio(source, output)
    assert sf.info(output).duration == pytest.approx(2.0, abs=0.01)


# --------------------------------------------------------------------------------------------
# Bad input: a one-line InputError naming the file and the problem, and nothing written.


def _bad_input_error(source: Path, tmp_path: Path) -> str:
    output = tmp_path / "out" / "audio.wav"
    output.parent.mkdir()
    with pytest.raises(InputError) as raised:
        decode_audio(source, output)
    message = str(raised.value)
    assert "\n" not in message
    assert str(source) in message
    _assert_nothing_written(output)
    return message


def test_missing_file(tmp_path):
    assert "does not exist" in _bad_input_error(tmp_path / "nope.mp3", tmp_path)


def test_empty_file(tmp_path):
    source = tmp_path / "empty.mp3"
    source.touch()
    assert "empty (0 bytes)" in _bad_input_error(source, tmp_path)


def test_text_file_renamed_to_mp3(tmp_path):
    source = tmp_path / "notes.mp3"
    source.write_text("These are my lyrics, not a song.\n" * 20)
    assert "not an audio or video file" in _bad_input_error(source, tmp_path)


def test_mp3_truncated_to_200_bytes(tmp_path):
    full = _write_with_pyav(tmp_path / "full.mp3", _tone(4.0, 44100), 44100, "libmp3lame")
    source = tmp_path / "cut.mp3"
    source.write_bytes(full.read_bytes()[:200])
    message = _bad_input_error(source, tmp_path)
    assert "not an audio or video file" in message or "no decodable audio" in message


def test_mp3_truncated_at_half_decodes_what_is_there_with_a_warning(tmp_path):
    full = _write_with_pyav(tmp_path / "full.mp3", _tone(4.0, 44100), 44100, "libmp3lame")
    data = full.read_bytes()
    source = tmp_path / "half.mp3"
    source.write_bytes(data[: len(data) // 2])

    info = decode_audio(source, tmp_path / "audio.wav")

    assert 1.5 < info.duration_s < 2.5
    assert any("ends early" in w and "truncated" in w for w in info.warnings)


def test_audio_shorter_than_one_second(tmp_path):
    source = tmp_path / "blip.wav"
    sf.write(source, _tone(0.4, 44100).T, 44100)
    message = _bad_input_error(source, tmp_path)
    assert "is 0.4 s long" in message and f"at least {MIN_DURATION_S:g} s" in message


def test_video_without_audio(tmp_path):
    source = _write_video_without_audio(tmp_path / "silent film.mp4")
    assert "no audio stream" in _bad_input_error(source, tmp_path)


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    assert "not a file" in _bad_input_error(folder, tmp_path)


def test_silence_decodes_and_is_marked_silent(tmp_path):
    source = tmp_path / "silence.wav"
    sf.write(source, np.zeros((3 * 44100, 2), np.float32), 44100)

    info = decode_audio(source, tmp_path / "audio.wav")

    assert info.is_silent
    assert info.loudness_lufs is None
    assert info.peak_dbfs == info.rms_dbfs == -120.0  # the floor, not -inf
    info.model_dump_json()  # serialisable


def test_nan_and_infinite_samples_become_silence_with_a_warning(tmp_path):
    samples = _tone(3.0, 44100).T.copy()
    samples[10000:10100, 0] = np.nan
    samples[20000, 1] = np.inf
    samples[30000, 0] = -np.inf
    source = tmp_path / "broken floats.wav"
    sf.write(source, samples, 44100, subtype="FLOAT")
    output = tmp_path / "audio.wav"

    info = decode_audio(source, output)

    assert any("NaN or infinite" in w for w in info.warnings)
    data, _ = sf.read(output)
    assert np.isfinite(data).all()
    assert math.isfinite(info.peak_dbfs) and info.peak_dbfs < 0
    assert info.loudness_lufs is not None and math.isfinite(info.loudness_lufs)
