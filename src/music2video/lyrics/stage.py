"""The lyrics stage: from the run folder's ``audio.wav`` (and optional user lyrics) to :class:`Lyrics`.

Steps of :func:`make_lyrics`:

1. Read the song as 16 kHz mono; separate the vocals if asked (Demucs or the REPET foreground).
2. Detect where someone sings (:mod:`.vocals`).
3. An LRC file needs nothing more: its times are the user's.
4. Without vocals and without user lyrics: no lyrics, no Whisper (an instrumental costs only
   the detector).
5. Whisper transcribes windows around the vocals (:mod:`.whisper`), the model is freed, and the
   hallucination filters drop what is not sung; windows Whisper calls silent leave the vocal spans.
6. Plain-text user lyrics are aligned to the heard words, or, without a transcription, spread
   over the vocals by syllable count (:mod:`.user`).

A Whisper model that cannot be loaded is a warning, not an error: the song still gets a video,
with user lyrics spread over the vocals or without lyrics; the warning is in ``lyrics.json``
and the report.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from music2video.artifacts import ShotPlan
from music2video.errors import MissingDependencyError, ModelLoadError
from music2video.lyrics.artifact import DroppedLine, LyricLine, Lyrics, LyricsSettings
from music2video.lyrics.align import align_with_ctc, load_aligner
from music2video.lyrics.lrc_check import check_lrc
from music2video.lyrics.user import align_lines, distributed_lines, read_user_lyrics, syllables
from music2video.lyrics.vocals import (
    SAMPLE_RATE_HZ,
    demucs_vocals,
    detect_vocals,
    foreground_audio,
    remove_windows,
)
from music2video.lyrics.whisper import filter_hallucinations, load_whisper, plan_windows, transcribe_windows
from music2video.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

LINE_SEPARATOR = " / "  # lines sung in one shot, as the storyboard shows them
# With a lyrics file given, less voice than this share of the song, or than the lyrics need at
# FASTEST_SYLLABLES_PER_S (fast rap), gets a warning that the song sounds instrumental. The
# detector finds 1-15 s of "voice" in 50 s instrumentals of the development set (a lead
# instrument, median 6 s), so a share much lower than this would never fire.
INSTRUMENTAL_VOICE_SHARE = 0.1
FASTEST_SYLLABLES_PER_S = 6.0


def make_lyrics(
    audio_wav: Path,
    settings: LyricsSettings | None = None,
    user_lyrics: Path | None = None,
    progress: ProgressCallback = no_progress,
) -> Lyrics:
    """Lyrics of the song in ``audio_wav`` (any file soundfile reads), with times in seconds.

    ``user_lyrics`` (default ``settings.user_lyrics``): a plain-text or LRC file. Raises
    :class:`~music2video.errors.InputError` for an unreadable lyrics file; a Whisper that cannot
    be loaded becomes a warning.
    """
    from music2video.decode import load_audio

    settings = settings or LyricsSettings()
    user_lyrics = user_lyrics if user_lyrics is not None else settings.user_lyrics
    warnings: list[str] = []
    if not settings.enabled:
        import soundfile

        info = soundfile.info(str(audio_wav))
        duration_s = round(info.frames / info.samplerate, 3)
        return Lyrics(source="none", has_vocals=False, duration_s=duration_s, warnings=["lyrics: turned off"])

    # 1. Audio, and what Whisper will hear.
    progress(0, 4, "reading audio")
    samples = load_audio(Path(audio_wav), sample_rate_hz=SAMPLE_RATE_HZ)
    duration_s = samples.size / SAMPLE_RATE_HZ
    # A bad lyrics file fails now, before minutes of separation and transcription.
    user = read_user_lyrics(Path(user_lyrics), duration_s) if user_lyrics is not None else None
    if user is not None:
        warnings.extend(user.warnings)
    stem = None
    separation = settings.separation
    if separation == "auto":
        # Demucs where installed, in the pipelines that load models anyway (preview downloads nothing).
        separation = "demucs" if settings.transcribe and importlib.util.find_spec("demucs") is not None else "none"
    if separation == "demucs":
        progress(0, 4, "separating vocals (demucs)")
        try:
            from music2video.torch_device import resolve_device

            stem = demucs_vocals(Path(audio_wav), settings.demucs_model, str(resolve_device(settings.device)))
            stem = np.pad(stem, (0, max(0, samples.size - stem.size)))[: samples.size]
        except (MissingDependencyError, ModelLoadError) as error:
            if settings.separation == "auto":
                separation = "none"
                warnings.append(f"lyrics: {error}; the mix was used without separation")
            else:
                warnings.append(f"lyrics: {error}; the REPET foreground was used instead")
            log.warning("%s", warnings[-1])

    # 2. Where someone sings.
    progress(1, 4, "detecting vocals")
    vocals = detect_vocals(samples, SAMPLE_RATE_HZ, settings.vocal_threshold, vocal_stem=stem, method=settings.vocal_detector)
    spans = vocals.spans_s

    voiced_s = sum(b - a for a, b in spans)
    needed_s = 0.0
    if user is not None:
        written = user.texts if user.kind == "text" else [line.text for line in user.lines]
        needed_s = sum(syllables(text) for text in written) / FASTEST_SYLLABLES_PER_S
    if user is not None and voiced_s < max(INSTRUMENTAL_VOICE_SHARE * duration_s, needed_s):
        warnings.append(
            f"lyrics: you gave lyrics, but only {voiced_s:.1f} s of voice was detected in this {duration_s:.1f} s "
            "song: is it an instrumental? The lines are placed anyway; check lyrics.srt"
        )
        log.warning("%s", warnings[-1])

    # 3. LRC: the user's times, checked against the voice.
    if user is not None and user.kind == "lrc":
        lines, lrc_warnings = check_lrc(user.lines, spans, duration_s, settings.offset)
        warnings.extend(lrc_warnings)
        for warning in lrc_warnings:
            log.warning("%s", warning)
        return Lyrics(
            source="user", language=settings.language, has_vocals=bool(spans), vocal_spans_s=spans,
            duration_s=round(duration_s, 3), lines=lines, warnings=warnings,
        )  # fmt: skip

    # 4. Instrumental: nothing to transcribe.
    if not spans and settings.vocal_gate and user is None:
        return Lyrics(source="none", has_vocals=False, duration_s=round(duration_s, 3), warnings=warnings)

    listen_to = samples  # what the models hear
    if settings.transcribe:
        if stem is not None:
            listen_to = stem
        elif separation in ("foreground", "demucs"):
            listen_to = foreground_audio(samples)

    # 5. Plain-text lyrics and a CTC aligner: every word forced onto the voice, no Whisper needed.
    aligned: list[LyricLine] = []
    aligner_used = None
    if user is not None and settings.transcribe and settings.aligner_model:
        progress(2, 4, "aligning lyrics")
        try:
            aligner = load_aligner(settings.aligner_model, settings.device)
        except (ModelLoadError, MissingDependencyError) as error:
            warnings.append(f"lyrics: {error}; the lyrics were aligned to Whisper's words instead")
            log.warning("%s", warnings[-1])
        else:
            try:
                aligned = align_with_ctc(aligner, listen_to, user.texts, duration_s)
                aligner_used = settings.aligner_model
            finally:
                aligner.free()

    # 6. Whisper.
    heard: list[LyricLine] = []
    dropped: list[DroppedLine] = []
    language = settings.language
    model_used = aligner_used
    if settings.transcribe and not aligned:
        windows = plan_windows(spans if settings.vocal_gate else [(0.0, duration_s)], duration_s)
        whisper = None
        if windows:  # nobody sings: no model to load
            try:
                whisper = load_whisper(settings.model, settings.device, settings.dtype)
            except (ModelLoadError, MissingDependencyError) as error:
                warnings.append(f"lyrics: {error}; lyrics were not transcribed")
                log.warning("%s", warnings[-1])
        if whisper is not None:
            model_used = settings.model
            try:
                transcripts = transcribe_windows(whisper, listen_to, windows, settings, _sub_progress(progress, 2, 4))
            finally:
                whisper.free()
            kept, dropped, silent = filter_hallucinations(transcripts, vocals if settings.vocal_gate else None, settings)
            if silent:
                spans = remove_windows(spans, silent)
            language = language or next((t.language for t in transcripts if t.language), None)
            heard = [
                LyricLine(
                    start_s=s.start_s, end_s=s.end_s, text=s.text, words=s.words, timing="whisper",
                    confidence=round(float(np.mean([w.confidence or 0.0 for w in s.words])), 4) if s.words else None,
                )  # fmt: skip
                for s in kept
            ]
            if dropped:
                log.info("lyrics: dropped %d transcribed line(s) as not sung", len(dropped))

    # 7. Lines.
    progress(3, 4, "timing lines")
    if user is not None:
        if aligned:
            lines = aligned
        elif heard:
            lines, align_warnings = align_lines(user.texts, [w for line in heard for w in line.words], spans, duration_s)
            warnings.extend(align_warnings)
        else:
            lines = distributed_lines(user.texts, spans, duration_s)
            if not spans:
                warnings.append("lyrics: no singing was detected, so your lyrics were spread over the whole song")
            warnings.append(
                "lyrics: your lyrics were spread over the detected vocals by syllable count (no transcription to align "
                "them to); check the times in lyrics.srt"
            )
        source = "user"
    else:
        lines, source = heard, ("whisper" if heard else "none")
    # Vocals: the detector's spans that Whisper did not call silent, or lines Whisper heard. A
    # user's lyrics file alone does not make a song vocal (an instrumental given lyrics).
    has_vocals = bool(spans) or bool(heard)
    progress(4, 4, "done")
    return Lyrics(
        source=source, model=model_used, language=language if lines else settings.language,
        has_vocals=has_vocals, vocal_spans_s=spans, duration_s=round(duration_s, 3),
        lines=lines, dropped=dropped, warnings=warnings,
    )  # fmt: skip


def lyrics_by_shot(lyrics: Lyrics | None, plan: ShotPlan) -> dict[str, str]:
    """The words sung during each shot, keyed by shot id (every shot; ``""`` when none).

    Split by time at word boundaries: a word belongs to the shot holding its middle, so a line
    sung across a cut gives its first words to one shot and the rest to the next, and each
    shot's text is what is heard while it is on screen. Words of one line are joined by spaces,
    pieces of different lines by ``LINE_SEPARATOR``. A line without word times counts as one word.
    """
    result = {shot.id: "" for shot in plan.shots}
    if lyrics is None or not plan.shots:
        return result
    starts = np.array([shot.start_s for shot in plan.shots])
    pieces: dict[str, list[list[str]]] = {shot.id: [] for shot in plan.shots}
    for index, line in enumerate(sorted(lyrics.lines, key=lambda item: item.start_s)):
        words = [(w.text, w.start_s, w.end_s) for w in line.words if w.text.strip()]
        if not words and line.text.strip():
            words = [(line.text.strip(), line.start_s, line.end_s)]
        last_line_in: dict[str, int] = {}
        for text, start_s, end_s in words:
            middle = (start_s + max(end_s, start_s)) / 2
            shot = plan.shots[int(np.clip(np.searchsorted(starts, middle, side="right") - 1, 0, len(starts) - 1))]
            if last_line_in.get(shot.id) == index:
                pieces[shot.id][-1].append(text.strip())
            else:
                pieces[shot.id].append([text.strip()])
                last_line_in[shot.id] = index
    return {shot_id: LINE_SEPARATOR.join(" ".join(words) for words in lines) for shot_id, lines in pieces.items()}


def _sub_progress(progress: ProgressCallback, done: int, total: int) -> ProgressCallback:
    """Report a sub-task's progress as a fraction of one step of the stage."""

    def report(sub_done: int, sub_total: int, message: str = "") -> None:
        fraction = sub_done / sub_total if sub_total else 1.0
        progress(done, total, f"{message} ({fraction:.0%})".strip())

    return report
