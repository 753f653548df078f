"""Decode stage: any audio or video file in, one canonical WAV and an ``AudioInfo`` out.

Every input goes through PyAV (FFmpeg), so anything FFmpeg reads works: MP3, Ogg Vorbis, Opus,
FLAC, WAV of any sample width, AAC/M4A, and the audio track of MP4, MKV or WebM videos.
librosa cannot read MP4/M4A, which is why nothing here relies on it for decoding.

The canonical audio is a float32 WAV at ``CANONICAL_RATE_HZ``, mono or stereo. Decoding streams
frame by frame straight into that file (a 20-minute song never sits in memory as several
copies), and the statistics of ``AudioInfo`` (peak, RMS, BS.1770 loudness) are accumulated on
the way.

Analysis stages read it back with :func:`load_audio`, usually as mono at ``ANALYSIS_RATE_HZ``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import scipy.signal
import soundfile as sf
import soxr

from music2video.artifacts import AudioInfo
from music2video.errors import InputError
from music2video.runfolder import atomic_path, file_sha256

log = logging.getLogger(__name__)

CANONICAL_RATE_HZ = 48_000
"""Rate of the canonical ``audio.wav``: what CLAP models and video muxers expect."""

ANALYSIS_RATE_HZ = 22_050
"""Rate the structure analysis works at (librosa's default; plenty for beats and sections)."""

MIN_DURATION_S = 1.0
"""Shortest audio that can become a video; anything shorter is refused at decode."""

SILENCE_PEAK_DBFS = -60.0
"""Audio whose peak stays below this level is reported as silent (``is_silent``)."""

FLOOR_DBFS = -120.0
"""Levels are clamped to this floor so that digital silence gives a number, not -inf (JSON has no -inf)."""

TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_FRACTION = 0.1
"""Decoded audio shorter than the container's header promises by more than the larger of these
(seconds, fraction of the header's duration) is reported as truncated. The fraction allows for
headers that only estimate the duration (VBR MP3 without a Xing header)."""

WAV_SUBTYPE = "FLOAT"
"""Canonical sample format: float32 keeps the headroom of lossy decoders (peaks above 0 dBFS)."""

_WRITE_BLOCK_FRAMES = CANONICAL_RATE_HZ
"""Decoded audio is written and measured in blocks of about this many sample frames (1 s)."""

# ITU-R BS.1770-4: 400 ms gating blocks with 75 % overlap, i.e. a new block every 100 ms.
_LOUDNESS_STEP_S = 0.1
_LOUDNESS_BLOCK_STEPS = 4
_LOUDNESS_ABSOLUTE_GATE_LUFS = -70.0
_LOUDNESS_RELATIVE_GATE_LU = -10.0


def decode_audio(source: Path, output_wav: Path) -> AudioInfo:
    """Decode ``source`` (any audio or video container) into the canonical WAV ``output_wav``.

    Args:
        source: the user's file. Any container and codec FFmpeg can read; the first (or
            default) audio stream is used.
        output_wav: where the canonical audio goes: float32 WAV at ``CANONICAL_RATE_HZ``,
            mono for mono input, stereo otherwise (more than two channels are downmixed with
            FFmpeg's standard matrix). Written atomically: it is either complete or absent.

    Returns:
        ``AudioInfo`` with the source's container, codec, rate and channels, and the duration
        (seconds, counted from the decoded samples, not the header), peak and RMS level
        (dBFS), integrated loudness (LUFS, None when silent) of the canonical audio.
        ``warnings`` lists anything repaired on the way (downmix, NaN samples, truncation).

    Raises:
        InputError: the file is missing, empty, not a media file, has no audio stream, holds
            no decodable audio, or is shorter than ``MIN_DURATION_S``.
    """
    source = Path(source)
    output_wav = Path(output_wav)

    # 1. Check the file before FFmpeg sees it, so the common mistakes get plain messages.
    if not source.exists():
        raise InputError(f"{source} does not exist; check the path and the file name")
    if not source.is_file():
        raise InputError(f"{source} is not a file; give the path of an audio or video file")
    if source.stat().st_size == 0:
        raise InputError(f"{source} is empty (0 bytes); the download or copy probably failed, get the file again")

    # 2. Open the container and pick its audio stream.
    try:
        container = av.open(str(source), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise InputError(
            f"{source} is not an audio or video file FFmpeg can read ({_ffmpeg_reason(error)}); "
            "give an audio file such as MP3, WAV, FLAC, Ogg or M4A, or a video with sound"
        ) from None

    with container:
        stream = container.streams.best("audio")
        if stream is None:
            kind = "a video without sound" if container.streams.video else "no audio in it"
            raise InputError(
                f"{source} has no audio stream ({kind}); give a file that contains the music"
            )
        codec_context = stream.codec_context
        header_duration_s = _header_duration_s(container, stream)
        warnings: list[str] = []

        # 3. Decode frame by frame into the canonical WAV. The WAV writer is created with the
        # first decoded frame, because some streams only know their channel count then.
        with atomic_path(output_wav) as tmp_wav:
            writer = _CanonicalWriter(tmp_wav)
            try:
                decode_errors = _decode_into(container, stream, writer)
            finally:
                writer.close()

            source_channels = writer.source_channels or codec_context.channels
            source_rate_hz = writer.source_rate_hz or codec_context.sample_rate
            duration_s = writer.frames_written / CANONICAL_RATE_HZ

            # 4. Decide whether what came out is usable; on any error the temporary file is
            # deleted by atomic_path, so nothing half-written is left at output_wav.
            if writer.frames_written == 0:
                raise InputError(
                    f"{source} contains no decodable audio (the file is corrupt or truncated); "
                    "get the file again or convert it to WAV or FLAC"
                )
            if decode_errors:
                warnings.append(
                    f"{source.name} is damaged: {decode_errors} part(s) could not be decoded and were skipped"
                )
            if header_duration_s is not None and duration_s < header_duration_s - max(
                TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * header_duration_s
            ):
                warnings.append(
                    f"{source.name} ends early: its header promises {header_duration_s:.1f} s but only "
                    f"{duration_s:.1f} s could be decoded (truncated file?)"
                )
            if duration_s < MIN_DURATION_S:
                raise InputError(
                    f"{source} is {duration_s:.1f} s long; music2video needs at least {MIN_DURATION_S:g} s of audio"
                )
            if source_channels > 2:
                warnings.append(
                    f"downmixed {source_channels} channels to stereo with FFmpeg's standard downmix matrix"
                )
            if writer.non_finite_samples:
                warnings.append(
                    f"{source.name} contains NaN or infinite samples; replaced {writer.non_finite_samples} "
                    f"of them (counted at {CANONICAL_RATE_HZ} Hz) with silence"
                )

        container_name = container.format.name
        codec_name = codec_context.codec.canonical_name

    for message in warnings:
        log.warning(message)

    peak_dbfs = _to_dbfs(writer.peak)
    rms_dbfs = _to_dbfs(math.sqrt(writer.sum_of_squares / max(1, writer.frames_written * writer.channels)))
    is_silent = peak_dbfs < SILENCE_PEAK_DBFS
    loudness_lufs = None if is_silent else writer.loudness.integrated_lufs()

    return AudioInfo(
        warnings=warnings,
        source_path=str(source),
        source_sha256=file_sha256(source),
        container=container_name,
        codec=codec_name,
        source_sample_rate_hz=int(source_rate_hz),
        source_channels=int(source_channels),
        duration_s=duration_s,
        sample_rate_hz=CANONICAL_RATE_HZ,
        channels=writer.channels,
        peak_dbfs=peak_dbfs,
        rms_dbfs=rms_dbfs,
        loudness_lufs=loudness_lufs,
        is_silent=is_silent,
    )


def load_audio(wav: Path, sample_rate_hz: int | None = None, mono: bool = True) -> np.ndarray:
    """Read a canonical WAV back as float32 samples.

    Args:
        wav: a WAV written by :func:`decode_audio` (any file soundfile reads works).
        sample_rate_hz: resample to this rate (with soxr, high quality); None keeps the file's.
        mono: average the channels into one.

    Returns:
        shape ``(n,)`` when ``mono``, else ``(channels, n)``.

    Raises:
        InputError: the file cannot be read.
    """
    try:
        return _read_wav(wav, sample_rate_hz, mono)
    except (OSError, RuntimeError) as error:  # soundfile's LibsndfileError is a RuntimeError
        raise InputError(f"cannot read the audio file {wav} ({error})") from None


def _read_wav(wav: Path, sample_rate_hz: int | None, mono: bool) -> np.ndarray:
    with sf.SoundFile(str(wav)) as handle:
        file_rate_hz = handle.samplerate
        target_rate_hz = sample_rate_hz or file_rate_hz
        channels = 1 if mono else handle.channels
        resampler = (
            soxr.ResampleStream(file_rate_hz, target_rate_hz, channels, dtype="float32")
            if target_rate_hz != file_rate_hz
            else None
        )
        # Read in blocks and downmix/resample each, so a long song is held once, at the
        # output rate, instead of as full-rate multichannel copies.
        pieces = []
        block_frames = 10 * file_rate_hz
        while True:
            block = handle.read(block_frames, dtype="float32", always_2d=True)
            last = len(block) < block_frames
            if mono:
                block = block.mean(axis=1, keepdims=True)
            if resampler is not None:
                block = resampler.resample_chunk(np.ascontiguousarray(block), last=last)
            pieces.append(block)
            if last:
                break
    samples = np.concatenate(pieces, axis=0) if pieces else np.zeros((0, channels), np.float32)
    samples = samples.astype(np.float32, copy=False)
    return samples[:, 0].copy() if mono else np.ascontiguousarray(samples.T)


# ------------------------------------------------------------------------------------------
# Decoding


def _decode_into(container: av.container.InputContainer, stream: av.AudioStream, writer: _CanonicalWriter) -> int:
    """Demux and decode ``stream`` into ``writer``; returns how many packets failed to decode.

    A damaged packet is skipped (FFmpeg's decoders resynchronise on the next one) and a
    demuxer error ends the file early; the caller decides whether what was decoded is enough.
    """
    decode_errors = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                decode_errors += 1
                log.debug("skipping an undecodable packet: %s", _ffmpeg_reason(error))
                continue
            for frame in frames:
                writer.write(frame)
    except av.error.FFmpegError as error:
        decode_errors += 1
        log.debug("demuxing stopped early: %s", _ffmpeg_reason(error))
    writer.flush()
    return decode_errors


class _CanonicalWriter:
    """Resamples decoded frames to the canonical format and streams them into a WAV file,
    keeping running statistics (peak, sum of squares, BS.1770 loudness blocks)."""

    def __init__(self, path: Path):
        self.path = path
        self.source_rate_hz = 0
        self.source_channels = 0
        self.channels = 0
        self.frames_written = 0
        self.peak = 0.0
        self.sum_of_squares = 0.0
        self.non_finite_samples = 0
        self.loudness = _StreamingLoudness(CANONICAL_RATE_HZ)
        self._resampler: av.AudioResampler | None = None
        self._file: sf.SoundFile | None = None
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self._input_signature: tuple[str, str, int] = ("", "", 0)

    def write(self, frame: av.AudioFrame) -> None:
        if self._resampler is None:
            self._start(frame)
        elif _frame_signature(frame) != self._input_signature:
            # A stream may change its sample format, layout or rate midway (concatenated
            # recordings, broadcast captures); FFmpeg's resampler is set up for one input, so
            # drain it and set up another that feeds the same output.
            self.flush_resampler()
            self._resampler = self._new_resampler(frame)
        assert self._resampler is not None
        for out in self._resampler.resample(frame):
            self._collect(out.to_ndarray())

    def flush_resampler(self) -> None:
        if self._resampler is not None:
            for out in self._resampler.resample(None):
                self._collect(out.to_ndarray())

    def flush(self) -> None:
        self.flush_resampler()
        self._write_pending()

    def _collect(self, planar: np.ndarray) -> None:
        # Decoders hand out frames of a few thousand samples; writing and measuring in blocks
        # of about a second costs a tenth of the per-call overhead.
        self._pending.append(planar)
        self._pending_frames += planar.shape[1]
        if self._pending_frames >= _WRITE_BLOCK_FRAMES:
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
            self._pending, self._pending_frames = [], 0
            self._write_samples(block)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _start(self, frame: av.AudioFrame) -> None:
        self.source_rate_hz = frame.sample_rate
        self.source_channels = frame.layout.nb_channels
        self.channels = 1 if self.source_channels == 1 else 2
        self._resampler = self._new_resampler(frame)
        self._file = sf.SoundFile(
            str(self.path), "w", samplerate=CANONICAL_RATE_HZ, channels=self.channels, format="WAV", subtype=WAV_SUBTYPE
        )

    def _new_resampler(self, frame: av.AudioFrame) -> av.AudioResampler:
        """FFmpeg's resampler (swresample) for ``frame``'s format: converts rate and sample format
        and applies the standard downmix matrix when the source has more than two channels."""
        self._input_signature = _frame_signature(frame)
        return av.AudioResampler(format="fltp", layout="mono" if self.channels == 1 else "stereo", rate=CANONICAL_RATE_HZ)

    def _write_samples(self, planar: np.ndarray) -> None:
        """``planar``: float32 of shape (channels, n) at the canonical rate."""
        if planar.size == 0:
            return
        interleaved = np.ascontiguousarray(planar.T)
        flat = interleaved.ravel()
        sum_of_squares = float(np.dot(flat, flat))  # not finite if any sample is not (or overflowed)
        if not math.isfinite(sum_of_squares):
            # NaN and infinity would poison every statistic and every later filter; they were
            # non-finite in the source (the resampler only spreads them over a few samples).
            finite = np.isfinite(flat)
            self.non_finite_samples += int(flat.size - np.count_nonzero(finite))
            flat[~finite] = 0.0
            sum_of_squares = float(np.dot(flat.astype(np.float64), flat))
        assert self._file is not None
        self._file.write(interleaved)
        self.frames_written += interleaved.shape[0]
        self.peak = max(self.peak, float(flat.max()), -float(flat.min()))
        self.sum_of_squares += sum_of_squares
        self.loudness.add(interleaved)


class _StreamingLoudness:
    """ITU-R BS.1770-4 integrated loudness, computed block by block.

    pyloudnorm's ``Meter.integrated_loudness`` needs the whole signal in memory (and copies it
    twice in float64), too much for a 20-minute song. This applies the same K-weighting filters
    (pyloudnorm's ``IIRfilter`` with BS.1770's coefficients) with carried-over filter state, keeps
    the mean square of every 100 ms step, and applies BS.1770's gating at the end. A test checks
    it against ``pyloudnorm.Meter`` on a short signal.
    """

    def __init__(self, rate_hz: int):
        stages = [
            pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate_hz, "high_shelf"),
            pyloudnorm.IIRfilter(0.0, 0.5, 38.0, rate_hz, "high_pass"),
        ]
        self._sos = np.array([np.concatenate([stage.b, stage.a]) for stage in stages])
        self._step_samples = int(round(_LOUDNESS_STEP_S * rate_hz))
        self._state: np.ndarray | None = None
        self._pending = np.zeros((0,))
        self._step_energies: list[np.ndarray] = []

    def add(self, interleaved: np.ndarray) -> None:
        """``interleaved``: (n, channels) samples, in order."""
        channels = interleaved.shape[1]
        if self._state is None:
            self._state = np.zeros((len(self._sos), 2, channels))
            self._pending = np.zeros((0, channels))
        weighted, self._state = scipy.signal.sosfilt(self._sos, interleaved, axis=0, zi=self._state)
        # Channel gains are 1.0 for left and right (and mono); sum the channels' squares.
        squares = np.concatenate([self._pending, weighted**2])
        whole = len(squares) // self._step_samples * self._step_samples
        if whole:
            self._step_energies.append(squares[:whole].reshape(-1, self._step_samples, channels).sum(axis=(1, 2)))
        self._pending = squares[whole:]

    def integrated_lufs(self) -> float | None:
        """Gated loudness in LUFS; None when shorter than one 400 ms block or below the gate."""
        if not self._step_energies:
            return None
        steps = np.concatenate(self._step_energies)
        if len(steps) < _LOUDNESS_BLOCK_STEPS:
            return None
        block_samples = _LOUDNESS_BLOCK_STEPS * self._step_samples
        blocks = np.convolve(steps, np.ones(_LOUDNESS_BLOCK_STEPS), mode="valid") / block_samples
        with np.errstate(divide="ignore"):
            block_lufs = -0.691 + 10 * np.log10(blocks)
        gated = blocks[block_lufs > _LOUDNESS_ABSOLUTE_GATE_LUFS]
        if gated.size == 0:
            return None
        relative_gate_lufs = -0.691 + 10 * np.log10(gated.mean()) + _LOUDNESS_RELATIVE_GATE_LU
        gated = blocks[(block_lufs > _LOUDNESS_ABSOLUTE_GATE_LUFS) & (block_lufs > relative_gate_lufs)]
        if gated.size == 0:
            return None
        return float(-0.691 + 10 * np.log10(gated.mean()))


# ------------------------------------------------------------------------------------------
# Helpers


def _header_duration_s(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """Duration the container's header claims, in seconds, or None when it does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _frame_signature(frame: av.AudioFrame) -> tuple[str, str, int]:
    return frame.format.name, frame.layout.name, frame.sample_rate


def _to_dbfs(amplitude: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(amplitude)) if amplitude > 0 else FLOOR_DBFS


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's reason without the errno and the repeated file name."""
    reason = getattr(error, "strerror", None) or str(error)
    return str(reason).strip().splitlines()[0] if str(reason).strip() else type(error).__name__
