"""The ``sqlite`` adapter: a durable queue in one SQLite file, shared by processes on one host."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from pulpo_core import AdapterError, Message
from pulpo_core.config import load_section
from pulpo_core.message import DEFAULT_PRIORITY

SECTION = "sqlite_queue_adapter"
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL,              -- ready | reserved | buried (delayed: ready, ready_at ahead)
    priority INTEGER NOT NULL,
    ready_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    message TEXT NOT NULL             -- Message.to_json(), never pickle
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (state, priority, ready_at, id);
"""


@attrs.frozen
class SqliteSettings:
    """The keys of ``[sqlite_queue_adapter]``."""

    #: The database file, relative to the current folder.
    path: str = "pulpo.sqlite3"
    #: Lease in seconds of a job that carries no ttr of its own.
    ttr: int = attrs.field(default=60, validator=attrs.validators.ge(1))


class SqliteQueueAdapter:
    """Implements the whole adapter protocol, ``touch`` included (the heartbeat calls it)."""

    def __init__(self, section: Mapping[str, Any]) -> None:
        settings = load_section(SECTION, section, SqliteSettings)  # names a bad key or value
        self.path = settings.path
        self.default_ttr = settings.ttr
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))  # private to its owner
            # One connection, shared by the worker and its heartbeat thread under a lock.
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                       check_same_thread=False)
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise AdapterError(f"cannot open the queue {self.path!r}: {error}") from None
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")  # one writer at a time across processes
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                raise AdapterError(f"queue {self.path!r}: {error}") from None

    @staticmethod
    def _key(message_id: str | None) -> int:
        if message_id is None or not str(message_id).isdigit():
            raise ValueError(f"{message_id!r} is not an id of the sqlite adapter")
        return int(message_id)

    def _message(self, row: tuple[Any, ...]) -> Message:
        job_id, state, attempts, reason, text = row
        message = attrs.evolve(Message.from_json(text), id=str(job_id), attempts=attempts)
        if state == "buried":
            extra = {**message.extra_header, "buried_reason": reason}
            message = attrs.evolve(message, extra_header=extra)
        return message

    def enqueue(self, message: Message) -> Message:
        ready_at = message.delay.timestamp() if message.delay else time.time()
        priority = DEFAULT_PRIORITY if message.priority is None else message.priority
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO jobs (state, priority, ready_at, message) VALUES ('ready', ?, ?, ?)",
                (priority, ready_at, message.to_json()),
            )
        return attrs.evolve(message, id=str(cursor.lastrowid))

    def dequeue(self) -> Message | None:
        now = time.time()
        with self._transaction() as db:
            # A lease that ran out: its worker is gone, and that run counts as a failed attempt.
            db.execute("UPDATE jobs SET state = 'ready', attempts = attempts + 1, ready_at = ? "
                       "WHERE state = 'reserved' AND lease_until <= ?", (now, now))
            while True:
                row = db.execute(
                    "SELECT id, state, attempts, reason, message FROM jobs WHERE state = 'ready' "
                    "AND ready_at <= ? ORDER BY priority, ready_at, id LIMIT 1", (now,)
                ).fetchone()
                if row is None:
                    return None
                try:
                    message = self._message(row)
                except ValueError as error:  # unreadable: kept aside, never deleted
                    db.execute("UPDATE jobs SET state = 'buried', reason = ? WHERE id = ?",
                               (f"unreadable job: {error}", row[0]))
                    continue
                ttr = message.ttr or self.default_ttr
                db.execute("UPDATE jobs SET state = 'reserved', lease_until = ? WHERE id = ?",
                           (now + ttr, row[0]))
                return message if message.ttr else attrs.evolve(message, ttr=ttr)

    def _settle(self, message: Message, sql: str, *args: Any) -> None:
        with self._transaction() as db:
            cursor = db.execute(f"{sql} WHERE id = ? AND state = 'reserved'",
                                (*args, self._key(message.id)))
            if cursor.rowcount == 0:
                raise AdapterError(f"job {message.id!r} is not reserved")

    def commit(self, message: Message) -> None:
        self._settle(message, "DELETE FROM jobs")

    def rollback(self, message: Message, delay: float = 0) -> None:
        self._settle(message, "UPDATE jobs SET state = 'ready', attempts = attempts + 1, "
                     "ready_at = ?", time.time() + max(0.0, delay))

    def bury(self, message: Message, reason: str) -> None:
        self._settle(message, "UPDATE jobs SET state = 'buried', reason = ?", reason)

    def touch(self, message: Message) -> None:
        ttr = message.ttr or self.default_ttr
        self._settle(message, "UPDATE jobs SET lease_until = ?", time.time() + ttr)

    def peek(self, message_id: str) -> Message | None:
        with self._transaction() as db:
            row = db.execute("SELECT id, state, attempts, reason, message FROM jobs WHERE id = ?",
                             (self._key(message_id),)).fetchone()
        return None if row is None else self._message(row)

    def delete(self, message_id: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM jobs WHERE id = ?", (self._key(message_id),))
        return cursor.rowcount > 0

    def kick(self, bound: int | None = None) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = 'ready', reason = NULL, ready_at = ? WHERE id IN "
                "(SELECT id FROM jobs WHERE state = 'buried' ORDER BY id LIMIT ?)",
                (time.time(), -1 if bound is None else bound),
            )
        return cursor.rowcount

    def stats(self) -> dict[str, int]:
        counts = {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}
        with self._transaction() as db:
            rows = db.execute(
                "SELECT CASE WHEN state = 'ready' AND ready_at > ? THEN 'delayed' ELSE state END, "
                "count(*) FROM jobs GROUP BY 1", (time.time(),)
            ).fetchall()
        counts.update(dict(rows))
        counts["total"] = sum(counts.values())
        return counts

    def close(self) -> None:
        with self._lock:
            self._db.close()
