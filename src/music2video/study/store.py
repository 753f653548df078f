"""The answers of a study: an embedded SQLite database, ``answers.sqlite`` in the study folder.

Every video's ratings are committed in one transaction the moment the participant submits
them, in WAL mode with ``synchronous=FULL``: a closed tab, a killed server or a power cut loses
at most the video being rated. Participants are known only by a random id the server makes
(no name, no address, no IP is stored).
"""

from __future__ import annotations

import datetime
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from music2video.errors import InputError
from music2video.study.design import DATABASE_FILE, Study, attention_item, presentation

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,            -- random, anonymous
    seq INTEGER NOT NULL UNIQUE,    -- 0, 1, 2 ...: the Latin-square row
    started_utc TEXT NOT NULL,
    finished_utc TEXT,
    attention_video TEXT,           -- the video the attention check comes with (NULL: no check)
    attention_expected INTEGER,
    attention_given INTEGER
);
CREATE TABLE IF NOT EXISTS answers (
    participant TEXT NOT NULL REFERENCES participants(id),
    video TEXT NOT NULL,            -- the blinded code
    dimension TEXT NOT NULL,
    rating INTEGER NOT NULL,
    watched_s REAL,                 -- seconds of the video played before rating
    answered_utc TEXT NOT NULL,
    PRIMARY KEY (participant, video, dimension)
);
"""


class AnswerError(InputError):
    """A submitted answer the study cannot take (unknown participant or video, a value off the scale)."""


@dataclass(frozen=True)
class Participant:
    id: str
    seq: int
    order: list[str]
    attention: tuple[str, int] | None
    done: list[str]
    finished: bool


@dataclass(frozen=True)
class Answer:
    participant: str
    seq: int
    video: str
    dimension: str
    rating: int
    watched_s: float | None
    answered_utc: str


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class AnswerStore:
    """The study's database. Thread-safe: one connection, one lock (uvicorn serves the few
    requests of a study from a thread pool)."""

    def __init__(self, folder: Path, study: Study):
        self.study = study
        self.path = Path(folder) / DATABASE_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._dimensions = {dimension.id for dimension in study.dimensions}

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- participants ---------------------------------------------------------------------

    def new_participant(self) -> Participant:
        """A new anonymous participant with the next Latin-square row."""
        with self._transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM participants").fetchone()[0]
            attention = attention_item(self.study, seq)
            participant_id = secrets.token_hex(8)
            db.execute(
                "INSERT INTO participants (id, seq, started_utc, attention_video, attention_expected) VALUES (?, ?, ?, ?, ?)",
                (participant_id, seq, _now(), *(attention or (None, None))),
            )
        return self.participant(participant_id)

    def participant(self, participant_id: str) -> Participant:
        with self._lock:
            row = self._db.execute(
                "SELECT seq, finished_utc, attention_video, attention_expected FROM participants WHERE id = ?", (participant_id,)
            ).fetchone()
            if row is None:
                raise AnswerError(f"no participant {participant_id!r} in this study")
            done = {video for (video,) in self._db.execute("SELECT DISTINCT video FROM answers WHERE participant = ?", (participant_id,))}
        seq, finished, attention_video, expected = row
        order = presentation(self.study, seq)
        return Participant(
            id=participant_id,
            seq=seq,
            order=order,
            attention=(attention_video, expected) if attention_video else None,
            done=[code for code in order if code in done],
            finished=finished is not None,
        )

    # -- answers --------------------------------------------------------------------------

    def answer(self, participant_id: str, video: str, ratings: dict[str, int], *, attention: int | None = None, watched_s: float | None = None) -> Participant:
        """Store one video's ratings (every dimension) in one transaction.

        A second answer for a video already rated is refused: the first one stands.
        """
        participant = self.participant(participant_id)
        if video not in participant.order:
            raise AnswerError(f"video {video!r} is not one this participant rates")
        if video in participant.done:
            raise AnswerError(f"video {video!r} is already rated by this participant")
        if set(ratings) != self._dimensions:
            missing = sorted(self._dimensions - set(ratings))
            extra = sorted(set(ratings) - self._dimensions)
            raise AnswerError(f"ratings must cover every dimension (missing: {', '.join(missing) or '-'}; unknown: {', '.join(extra) or '-'})")
        for dimension, rating in ratings.items():
            if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= self.study.scale_points:
                raise AnswerError(f"{dimension}: {rating!r} is not a whole number from 1 to {self.study.scale_points}")
        checks_here = participant.attention is not None and participant.attention[0] == video
        if checks_here and attention is None:
            raise AnswerError("this video comes with the attention question: answer it too")
        now = _now()
        try:
            self._insert(participant, video, ratings, attention if checks_here else None, watched_s, now)
        except sqlite3.IntegrityError:  # the same video sent twice at once (a double click, two tabs)
            raise AnswerError(f"video {video!r} is already rated by this participant") from None
        return self.participant(participant_id)

    def _insert(self, participant: Participant, video: str, ratings: dict[str, int], attention: int | None, watched_s: float | None, now: str) -> None:
        """One video's ratings, the attention answer and whether that finished the study, in one transaction."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO answers (participant, video, dimension, rating, watched_s, answered_utc) VALUES (?, ?, ?, ?, ?, ?)",
                [(participant.id, video, dimension, rating, watched_s, now) for dimension, rating in ratings.items()],
            )
            if attention is not None:
                db.execute("UPDATE participants SET attention_given = ? WHERE id = ?", (attention, participant.id))
            (rated,) = db.execute("SELECT COUNT(DISTINCT video) FROM answers WHERE participant = ?", (participant.id,)).fetchone()
            if rated == len(participant.order):
                db.execute("UPDATE participants SET finished_utc = ? WHERE id = ?", (now, participant.id))


def read_answers(folder: Path) -> tuple[list[Answer], dict[str, dict]]:
    """Every stored answer, and per participant: seq, finished, attention expected and given.

    Reads without writing (results never change the database); an absent database reads as
    no answers yet.
    """
    path = Path(folder) / DATABASE_FILE
    if not path.is_file():
        return [], {}
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        participants = {
            pid: {"seq": seq, "finished": finished is not None, "attention_expected": expected, "attention_given": given}
            for pid, seq, finished, expected, given in db.execute(
                "SELECT id, seq, finished_utc, attention_expected, attention_given FROM participants ORDER BY seq"
            )
        }
        answers = [
            Answer(participant=pid, seq=participants[pid]["seq"], video=video, dimension=dimension, rating=rating, watched_s=watched, answered_utc=when)
            for pid, video, dimension, rating, watched, when in db.execute(
                "SELECT participant, video, dimension, rating, watched_s, answered_utc FROM answers ORDER BY answered_utc, participant, video, dimension"
            )
        ]
    finally:
        db.close()
    return answers, participants
