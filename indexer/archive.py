"""Articles written over HTTP (or by ``salon add`` / ``salon delete``): a durable log beside the index.

Every accepted write is a row of ``index_dir/archive.sqlite`` (WAL journal, ``synchronous=FULL``:
a committed transaction is on disk) before the server answers 202. A build folds the log into
the generation it makes and records the last sequence number it folded
(``Manifest.archive_seq``); a server replays the rows past it into its live segment at start, so
a write acknowledged an instant before ``kill -9`` is searchable again after the restart.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from indexer.corpus import Article, CorpusReport

ARCHIVE = "archive.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
  enqueued_at TEXT NOT NULL, finished_at TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS writes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, op TEXT NOT NULL, id TEXT NOT NULL,
  article TEXT);
CREATE INDEX IF NOT EXISTS writes_task ON writes(task);
CREATE INDEX IF NOT EXISTS writes_id ON writes(id);
CREATE TABLE IF NOT EXISTS applied (target TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
# ``applied``: for a store that takes writes directly (Milvus), the last write applied to it.
Op = Literal["put", "delete"]
TaskState = Literal["enqueued", "indexed", "failed"]


@dataclass(frozen=True)
class Write:
    seq: int
    task: str
    op: Op
    id: str
    article: Article | None  # None for a delete


@dataclass
class Task:
    """One accepted request: a put, a delete or a bulk load, indexed (or failed) as a whole."""

    id: str
    kind: str  # put | delete | bulk
    state: TaskState
    ids: list[str] = field(default_factory=list)
    reason: str = ""
    enqueued_at: str = ""
    finished_at: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def article_json(a: Article) -> str:
    return json.dumps(asdict(a), ensure_ascii=False)


def article_of(text: str) -> Article:
    return Article(**json.loads(text))


class Archive:
    """The write log of one index folder. Thread-safe: one connection, one lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: each commit syncs the WAL, so a 202 is only sent for a write on disk
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(SCHEMA)

    @classmethod
    def of(cls, index_dir: Path) -> Archive:
        return cls(Path(index_dir) / ARCHIVE)

    @classmethod
    def existing(cls, index_dir: Path) -> Archive | None:
        """The folder's archive if anything was ever written to it (a build never creates one)."""
        path = Path(index_dir) / ARCHIVE
        return cls(path) if path.is_file() else None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------------
    def submit(self, kind: str, writes: Sequence[tuple[Op, str, Article | None]]) -> Task:
        """Log ``writes`` as one task, durably, in one transaction; return the task (enqueued)."""
        task = Task("t-" + secrets.token_hex(8), kind, "enqueued", [w[1] for w in writes], "", _now())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO tasks (id, kind, state, enqueued_at) VALUES (?,?,?,?)",
                    (task.id, kind, task.state, task.enqueued_at),
                )
                self._db.executemany(
                    "INSERT INTO writes (task, op, id, article) VALUES (?,?,?,?)",
                    [(task.id, op, i, article_json(a) if a is not None else None) for op, i, a in writes],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return task

    def finish(self, task_ids: Iterable[str], state: TaskState, reason: str = "") -> None:
        ids = list(task_ids)
        if not ids:
            return
        with self._lock:
            self._db.executemany(
                "UPDATE tasks SET state = ?, reason = ?, finished_at = ? WHERE id = ?",
                [(state, reason, _now(), i) for i in ids],
            )

    # -- reading ---------------------------------------------------------------------------
    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM writes").fetchone()
        return int(row[0] or 0)

    def since(self, seq: int, until: int | None = None) -> list[Write]:
        """The writes after ``seq`` (up to ``until``), in order; those of failed tasks left out."""
        q = (
            "SELECT w.seq, w.task, w.op, w.id, w.article FROM writes w JOIN tasks t ON t.id = w.task "
            "WHERE w.seq > ? AND w.seq <= ? AND t.state != 'failed' ORDER BY w.seq"
        )
        with self._lock:
            rows = self._db.execute(q, (seq, until if until is not None else 1 << 62)).fetchall()
        return [Write(s, t, op, i, article_of(a) if a is not None else None) for s, t, op, i, a in rows]

    def task(self, task_id: str) -> Task | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, kind, state, reason, enqueued_at, finished_at FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
            if row is None:
                return None
            ids = [r[0] for r in self._db.execute("SELECT id FROM writes WHERE task = ? ORDER BY seq", (task_id,))]
        return Task(row[0], row[1], row[2], ids, row[3], row[4], row[5])

    def applied(self, target: str) -> int:
        """The last write applied to ``target`` (a store taking writes directly), 0 if none."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM applied WHERE target = ?", (target,)).fetchone()
        return int(row[0]) if row else 0

    def set_applied(self, target: str, seq: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO applied (target, seq) VALUES (?, ?) ON CONFLICT(target) DO UPDATE SET seq = excluded.seq",
                (target, seq),
            )

    def counts(self) -> dict[str, int]:
        """Tasks by state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall()
        return {s: int(n) for s, n in rows}

    def fold(self, report: CorpusReport, until: int | None = None) -> tuple[CorpusReport, int]:
        """``report``'s articles with the archive's writes (up to ``until``) applied, last write of
        an id winning: what a build indexes. Also the last sequence number folded."""
        last = self.last_seq() if until is None else until
        latest: dict[str, Article | None] = {}
        for w in self.since(0, last):
            latest[w.id] = w.article
        if not latest:
            return report, last
        by_id = {a.id: a for a in report.articles}
        for i, a in latest.items():
            if a is None:
                by_id.pop(i, None)
            else:
                by_id[i] = a
        return CorpusReport(list(by_id.values()), list(report.problems)), last
