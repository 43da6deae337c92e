"""What ``pulpo top`` asks of a file queue besides its counts: publishes, and the oldest ready job.

**Publishes** are counted from the journal (:mod:`pulpo_file.journal`): every job put into
``ready/`` is announced there with an ``R`` line, a new job as well as a retried, kicked or
taken-back one. A line counts as a publish when its id was minted (the id carries its creation
time, :mod:`pulpo_file.ids`) since the counter started and the id was not seen before; ids are
remembered for :data:`REMEMBER_S` seconds, so a job retried later than that after it was
published would count twice (retries come back far sooner with the default back-off). The
journal's lines are never flushed and a reader that sleeps through two segment changes misses
some: the count is then short for that moment, which shows as a lower rate for one refresh.
"""

from __future__ import annotations

import os
import time

from pulpo_file.journal import Journal
from pulpo_file.layout import Folder

#: Seconds an id counted as published is remembered (a later ``R`` line of it is a retry).
REMEMBER_S = 600.0


class PublishCounter:
    """Counts the jobs published into one queue since its first :meth:`total`."""

    def __init__(self, folder: Folder, segment_size: int) -> None:
        # A journal of its own: reading moves a tail, which must not be a worker's index's.
        self._journal = Journal(folder.journal, segment_size, folder.fix_mode, lambda: False)
        self._since_us: int | None = None
        self._seen: dict[str, int] = {}  # id -> creation time (us), oldest first
        self._total = 0

    def total(self) -> int:
        """Jobs published since the first call (the first call itself returns 0)."""
        if self._since_us is None:
            self._journal.start_reading()
            self._since_us = time.time_ns() // 1000
            return 0
        entries, _gap = self._journal.read()
        for job_id, _ready_ns in entries:
            created_us = int(job_id[:16], 16)
            if created_us >= self._since_us and job_id not in self._seen:
                self._seen[job_id] = created_us
                self._total += 1
        self._forget(time.time_ns() // 1000 - int(REMEMBER_S * 1_000_000))
        return self._total

    def _forget(self, before_us: int) -> None:
        # Ids arrive about in creation order: the stale ones are at the front.
        while self._seen:
            job_id, created = next(iter(self._seen.items()))
            if created >= before_us:
                return
            del self._seen[job_id]

    def close(self) -> None:
        self._journal.close()


def oldest_ready_age(folder: Folder) -> float | None:
    """Seconds since the longest-waiting job in ``ready/`` became ready (a job file's
    modification time is its ready time; later ones are delayed); ``None`` when none is."""
    now_ns = time.time_ns()
    oldest: int | None = None
    with os.scandir(folder.ready) as entries:
        for entry in entries:
            try:
                ready_ns = entry.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if ready_ns <= now_ns and (oldest is None or ready_ns < oldest):
                oldest = ready_ns
    return None if oldest is None else (now_ns - oldest) / 1e9
