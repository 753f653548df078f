"""Assemble: join the shot clips on their frame-exact cuts and lay the song under them.

The result is one MP4 that plays everywhere: H.264 (High profile, yuv420p, from the clips),
AAC-LC stereo at 192 kb/s, and the ``moov`` index at the front of the file (faststart) so that
browsers start playing before the whole file has arrived.

Every clip written by :class:`~music2video.videofile.ClipWriter` has the same encoder settings,
no B-frames and a keyframe on its first frame, so the clips are joined by copying their
compressed packets and renumbering their timestamps: no frame is decoded or encoded again. A clip
that does not match those settings (another size, another encoder) is decoded and re-encoded
with the common settings first, with a warning; one with the wrong number of frames is an error,
because it would shift every cut after it.

Timestamps are counted in frames (the video time base is ``1 / fps``), so the video lasts exactly
``frames / fps`` seconds, which is the song's duration to within half a frame.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from itertools import accumulate
from pathlib import Path

import av
import numpy as np
import soundfile

from music2video.artifacts import AssemblyResult, RenderedClip, RenderResult
from music2video.errors import Music2VideoError
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import atomic_path
from music2video.videofile import ClipWriter, fps_fraction

log = logging.getLogger(__name__)

AUDIO_CODEC = "aac"  # FFmpeg's native encoder: AAC-LC, bundled in the PyAV wheel
AUDIO_BIT_RATE = 192_000  # bits per second, stereo
AUDIO_LAYOUT = "stereo"  # mono songs are upmixed, so every player puts sound in both speakers
# The 'fast' quantiser search instead of 'twoloop': about 2.3x faster here (a 3-minute song
# encodes in ~1.5 s instead of ~3.5 s) with the same error against the source at 192 kb/s; at
# such rates FFmpeg's developers found it sounds no worse (they made it the default in 2018).
AUDIO_OPTIONS = {"aac_coder": "fast"}
AUDIO_BLOCK_SAMPLES = 1024 * 32  # samples per channel read from audio.wav at a time (AAC frames are 1024)


def assemble_video(
    render: RenderResult,
    run_root: Path,
    audio_wav: Path,
    output: Path,
    duration_s: float,
    cut_times_s: list[float],
    progress: ProgressCallback = no_progress,
) -> AssemblyResult:
    """Join ``render.clips`` in order, add ``audio_wav`` and write ``output`` atomically.

    ``run_root``: the run folder the clip paths are relative to. ``duration_s``: the song's length
    in seconds; the video gets ``round(duration_s * fps)`` frames. ``cut_times_s``: the planned
    start time of every shot after the first, in seconds; each must land on the first frame of
    its clip. Returns the :class:`AssemblyResult`, whose ``video_path`` is relative to
    ``run_root`` when ``output`` lies inside it and absolute otherwise; its ``duration_s`` is the
    video file's, ``frames / fps`` with fps as the exact fraction the file carries (23.976 is
    written as 24000/1001).

    Raises :class:`Music2VideoError` when the clips do not add up to the song, a cut is off its
    frame, a clip is missing or holds the wrong number of frames, or the audio is not the song.
    """
    run_root, audio_wav, output = Path(run_root), Path(audio_wav), Path(output)
    clips = render.clips
    fps, rate = render.fps, fps_fraction(render.fps)

    # 1. Check the plan: the clips tile the song and every cut sits on its frame.
    if not clips:
        raise Music2VideoError("there are no clips to assemble; run the render stage first")
    total_frames = round(duration_s * fps)
    clip_frames = sum(clip.frames for clip in clips)
    if clip_frames != total_frames:
        raise Music2VideoError(
            f"the clips hold {clip_frames} frames but the song needs {total_frames} "
            f"({duration_s:.3f} s at {fps:g} fps); render again with the current shot plan"
        )
    if len(cut_times_s) != len(clips) - 1:
        raise Music2VideoError(
            f"{len(cut_times_s)} cut times were given for {len(clips)} clips; expected {len(clips) - 1}"
        )
    cut_frames = list(accumulate(clip.frames for clip in clips[:-1]))
    for clip, frame, time_s in zip(clips[1:], cut_frames, cut_times_s, strict=True):
        if frame != round(time_s * fps):
            raise Music2VideoError(
                f"{clip.shot_id} starts on frame {frame} but its cut at {time_s:.3f} s belongs on frame "
                f"{round(time_s * fps)}; the clips do not match the shot plan, render again"
            )

    # 2. Check the audio: it is the song, so it lasts as long as the song.
    try:
        audio_info = soundfile.info(str(audio_wav))
    except (OSError, RuntimeError) as error:  # soundfile raises LibsndfileError, a RuntimeError
        raise Music2VideoError(f"cannot read the song's audio {audio_wav}: {error}") from None
    audio_s = audio_info.frames / audio_info.samplerate
    if abs(audio_s - duration_s) > 1 / fps:
        raise Music2VideoError(
            f"{audio_wav.name} lasts {audio_s:.3f} s but the song lasts {duration_s:.3f} s; decode the song again"
        )

    warnings: list[str] = []
    output.parent.mkdir(parents=True, exist_ok=True)
    # Scratch space for the reference clip and re-encoded clips (small files): the system's
    # temporary folder, which is cleaned even when a killed run cannot clean up after itself.
    with tempfile.TemporaryDirectory(prefix="music2video-assemble-") as scratch_name:
        scratch = Path(scratch_name)
        # 3. What a ClipWriter clip of this size and rate looks like: the parameters every copied
        #    clip must share, because the output file describes them once for all its frames.
        reference_path = scratch / "reference.mp4"
        _write_reference_clip(reference_path, render.width, render.height, fps)
        reference = _codec_parameters(reference_path)

        with atomic_path(output) as tmp:
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
                # 4. Streams: video copied from the reference's description, audio encoded here.
                with av.open(str(reference_path)) as template:
                    video = container.add_stream_from_template(template.streams.video[0])
                # Timestamps count frames. The muxer may pick a finer time base for the file (MP4
                # likes >= 10000 ticks a second) and rescales them exactly; keep our own unit.
                frame_time_base = 1 / rate
                video.time_base = frame_time_base
                audio = container.add_stream(
                    AUDIO_CODEC, rate=audio_info.samplerate, layout=AUDIO_LAYOUT, options=AUDIO_OPTIONS
                )
                audio.bit_rate = AUDIO_BIT_RATE
                audio_packets = _Peekable(_encode_audio(audio, audio_wav, warnings))

                # 5. Clips in order, each packet renumbered to its frame in the video; audio packets
                #    are interleaved by time so a player streaming the file never waits for sound.
                first_frame = 0
                progress(0, len(clips), "joining clips")
                for index, clip in enumerate(clips):
                    packets = _clip_packets(clip, run_root, scratch, reference, render, warnings)
                    for k, packet in enumerate(packets):
                        frame = first_frame + k
                        while audio_packets.peek() is not None and _seconds(audio_packets.peek()) <= frame / rate:
                            container.mux(next(audio_packets))
                        packet.stream = video
                        packet.time_base = frame_time_base
                        packet.pts = packet.dts = frame
                        packet.duration = 1
                        container.mux(packet)
                    first_frame += len(packets)
                    progress(index + 1, len(clips), f"joined {clip.shot_id}")
                for packet in audio_packets:
                    container.mux(packet)
            # 6. Check what was written before it replaces anything.
            _check_written(tmp, total_frames, rate, audio_s)

    try:
        video_path = str(output.resolve().relative_to(run_root.resolve()))
    except ValueError:
        video_path = str(output.resolve())
    return AssemblyResult(
        video_path=video_path,
        duration_s=float(total_frames / rate),  # as the file says: 23.976 fps is really 24000/1001
        fps=fps,
        frames=total_frames,
        width=render.width,
        height=render.height,
        cut_frames=cut_frames,
        cut_times_s=list(cut_times_s),
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------------
# Video: copy packets, or re-encode a clip that does not match


def _write_reference_clip(path: Path, width: int, height: int, fps: float) -> None:
    """A one-frame ClipWriter clip: its stream description is what every clip must match."""
    with ClipWriter(path, width, height, fps) as writer:
        writer.write(np.zeros((height, width, 3), np.uint8))


def _codec_parameters(path: Path) -> tuple:
    """What must be equal for two clips' packets to share one stream: codec, size, pixel format
    and the H.264 parameter sets (extradata), which also carry the profile, level and frame rate."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            return ("no video",)
        context = container.streams.video[0].codec_context
        return (context.name, context.width, context.height, context.pix_fmt, bytes(context.extradata or b""))


def _warn(warnings: list[str], message: str) -> None:
    """Log a fallback now and keep it for the artifact (and so the report)."""
    log.warning("%s", message)
    warnings.append(message)


def _describe(parameters: tuple) -> str:
    name, width, height, pix_fmt = parameters[:4]
    return f"{name} {width}x{height} {pix_fmt}"


def _clip_packets(
    clip: RenderedClip, run_root: Path, scratch: Path, reference: tuple, render: RenderResult, warnings: list[str]
) -> list[av.Packet]:
    """The clip's video packets in order, exactly ``clip.frames`` of them, ready to copy."""
    path = run_root / clip.path
    if not path.is_file():
        raise Music2VideoError(f"{clip.shot_id}: clip {clip.path} is missing; render again")
    try:
        matches = _codec_parameters(path) == reference
        packets, regular = _read_packets(path, render.fps) if matches else ([], False)
    except av.error.FFmpegError as error:
        raise Music2VideoError(
            f"{clip.shot_id}: clip {clip.path} cannot be read ({error}); delete it and render again"
        ) from None
    if matches and len(packets) != clip.frames:
        raise Music2VideoError(
            f"{clip.shot_id}: clip {clip.path} has {len(packets)} frames, expected {clip.frames}; "
            "delete it and render again"
        )
    if matches and regular:
        return packets
    # Another size or encoder, or irregular timestamps: bring it to the common settings.
    if matches:
        why = "its timestamps are irregular"
    else:
        found = _codec_parameters(path)
        if len(found) < 4:
            raise Music2VideoError(f"{clip.shot_id}: clip {clip.path} has no video stream; delete it and render again")
        why = f"it is {_describe(found)}, not {_describe(reference)}"
        if found[:4] == reference[:4]:
            why = f"it was encoded with other {found[0]} settings"
    _warn(warnings, f"{clip.shot_id}: clip {clip.path} was re-encoded to join the others: {why}")
    reencoded = scratch / f"{Path(clip.path).stem}.mp4"
    _reencode(path, reencoded, clip, render)
    packets, regular = _read_packets(reencoded, render.fps)
    if _codec_parameters(reencoded) != reference or not regular or len(packets) != clip.frames:
        raise Music2VideoError(f"{clip.shot_id}: clip {clip.path} could not be brought to the common encoding")
    return packets


def _read_packets(path: Path, fps: float) -> tuple[list[av.Packet], bool]:
    """The video packets of ``path`` (empty flush packets dropped) and whether they are regular:
    a keyframe first, decode order equal to display order, one frame interval apart."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [packet for packet in container.demux(stream) if packet.size > 0]
        time_base = stream.time_base
    if not packets:
        return [], True
    regular = packets[0].is_keyframe
    first = packets[0].pts
    for k, packet in enumerate(packets):
        if packet.pts is None or packet.pts != packet.dts:
            return packets, False
        if abs(float((packet.pts - first) * time_base) * fps - k) > 0.01:
            regular = False
    return packets, regular


def _reencode(source: Path, target: Path, clip: RenderedClip, render: RenderResult) -> None:
    """Decode every frame of ``source``, scale it to the render's size and write it with ClipWriter."""
    count = 0
    try:
        with av.open(str(source)) as container, ClipWriter(target, render.width, render.height, render.fps) as writer:
            for frame in container.decode(video=0):
                writer.write(frame.to_ndarray(width=render.width, height=render.height, format="rgb24"))
                count += 1
    except av.error.FFmpegError as error:
        raise Music2VideoError(
            f"{clip.shot_id}: clip {clip.path} cannot be decoded ({error}); delete it and render again"
        ) from None
    if count != clip.frames:
        raise Music2VideoError(
            f"{clip.shot_id}: clip {clip.path} has {count} frames, expected {clip.frames}; delete it and render again"
        )


# --------------------------------------------------------------------------------------------
# Audio


def _encode_audio(stream: av.audio.stream.AudioStream, wav: Path, warnings: list[str]) -> Iterator[av.Packet]:
    """Encode the whole WAV to AAC, block by block; yields packets in order."""
    with soundfile.SoundFile(str(wav)) as source:
        rate, channels = source.samplerate, source.channels
        if channels > 2:
            _warn(warnings, f"{wav.name} has {channels} channels; they were mixed down to stereo")
        samples_done = 0
        for block in source.blocks(blocksize=AUDIO_BLOCK_SAMPLES, dtype="float32", always_2d=True):
            if channels == 2:
                planar = np.ascontiguousarray(block.T)
            else:  # mono is copied to both sides; more channels are averaged first
                mono = block[:, 0] if channels == 1 else block.mean(axis=1)
                planar = np.stack([mono, mono])
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=AUDIO_LAYOUT)
            frame.sample_rate = rate
            frame.pts = samples_done
            frame.time_base = Fraction(1, rate)
            samples_done += len(block)
            yield from stream.encode(frame)
    yield from stream.encode(None)


def _seconds(packet: av.Packet) -> Fraction:
    return packet.pts * packet.time_base if packet.pts is not None else Fraction(0)


class _Peekable:
    """An iterator whose next item can be looked at without taking it."""

    _END = object()

    def __init__(self, items: Iterator):
        self._items = items
        self._next = next(items, self._END)

    def peek(self):
        return None if self._next is self._END else self._next

    def __iter__(self):
        return self

    def __next__(self):
        if self._next is self._END:
            raise StopIteration
        item, self._next = self._next, next(self._items, self._END)
        return item


# --------------------------------------------------------------------------------------------
# Checks of the written file


def _check_written(path: Path, frames: int, rate: Fraction, audio_s: float) -> None:
    """The file holds one H.264 stream of ``frames`` frames lasting exactly ``frames / rate``, and
    one AAC stream as long as the song (within one frame)."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video, container.streams.audio
        if len(video) != 1 or len(audio) != 1:
            raise Music2VideoError(f"{path.name}: expected one video and one audio stream")
        stream = video[0]
        video_s = stream.duration * stream.time_base if stream.duration is not None else None
        if stream.frames != frames or video_s != frames / rate:
            raise Music2VideoError(
                f"{path.name}: video has {stream.frames} frames lasting {video_s} s; expected {frames} frames, "
                f"{float(frames / rate):.3f} s"
            )
        sound = audio[0]
        sound_s = float(sound.duration * sound.time_base) if sound.duration is not None else 0.0
        if abs(sound_s - audio_s) > float(1 / rate):
            raise Music2VideoError(f"{path.name}: audio lasts {sound_s:.3f} s; expected {audio_s:.3f} s")
