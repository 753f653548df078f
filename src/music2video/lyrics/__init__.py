"""Lyrics for vocal songs: where the voice is, what it sings and when.

The stage between *listen* and *write*: it reads the run folder's ``audio.wav`` (and, if given,
the user's lyrics file) and writes ``lyrics.json`` (:class:`Lyrics`) and ``lyrics.srt``. The
storyboard writers get the lines sung in each shot from :func:`lyrics_by_shot`; the assembler
can add them as soft or burned-in subtitles (:mod:`music2video.subtitles`).

Modules, in the order the stage uses them:

* :mod:`.vocals` - a DSP vocal detector (REPET-SIM foreground + HPSS, voice band) and the
  vocal separation that feeds Whisper (REPET foreground, or Demucs when installed);
* :mod:`.whisper` - Whisper through transformers, per 30 s window, with word times, temperature
  fallback and the filters that drop what Whisper invents over music;
* :mod:`.user` - user lyrics: checks, LRC parsing, plain text with repeat markers, alignment to
  the transcription, or placement on the vocal spans by syllables;
* :mod:`.align` - forced alignment of plain-text lyrics with a CTC model (wav2vec2 / MMS);
* :mod:`.lrc_check` - LRC times checked against the voice (offset, line ends);
* :mod:`.srt` - SubRip subtitles;
* :mod:`.stage` - :func:`make_lyrics` and :func:`lyrics_by_shot`.
"""

from music2video.lyrics.artifact import DroppedLine, LyricLine, Lyrics, LyricsSettings, LyricWord
from music2video.lyrics.srt import lyrics_cues, read_srt, srt_timestamp, write_srt
from music2video.lyrics.stage import lyrics_by_shot, make_lyrics
from music2video.lyrics.user import parse_lrc, parse_plain, read_user_lyrics
from music2video.lyrics.vocals import VocalActivity, detect_vocals

__all__ = [
    "DroppedLine",
    "LyricLine",
    "LyricWord",
    "Lyrics",
    "LyricsSettings",
    "VocalActivity",
    "detect_vocals",
    "lyrics_by_shot",
    "lyrics_cues",
    "make_lyrics",
    "parse_lrc",
    "parse_plain",
    "read_srt",
    "read_user_lyrics",
    "srt_timestamp",
    "write_srt",
]
