"""The worker's index: which job to claim next, without listing ``ready/``.

A worker keeps two heaps fed by the journal (see :mod:`pulpo_file.journal`): delayed jobs by
``(ready time, priority, id)`` and ready jobs by ``(priority, ready time, id)``. A dequeue first
moves the delayed jobs that came due to the ready heap, then pops the ready heap; a delayed job
never hides a ready one. An entry that is out of date (the job was taken, deleted or
rescheduled by another process) is recognised when its claim fails, and skipped. Every
``rescan_interval`` (and when the journal lost track) the index is rebuilt from the names and
modification times in ``ready/``; no file is opened.
"""

from __future__ import annotations

import heapq
import logging
import os
import time

from pulpo_file.ids import is_id, priority_of
from pulpo_file.journal import Journal, ready_line
from pulpo_file.layout import JSON, Folder

log = logging.getLogger("pulpo.file")


class ReadyIndex:
    """The heaps of one worker, and the announcements that feed every worker's."""

    def __init__(self, folder: Folder, journal: Journal) -> None:
        self.folder = folder
        self.journal = journal
        #: Whether this process reads the queue (it started on its first dequeue): only then
        #: are announced jobs noted here too.
        self.active = False
        self.heap: list[tuple[int, int, str]] = []  # ready: (priority, ready time, id)
        self.delayed: list[tuple[int, int, str]] = []  # not yet due: (ready time, priority, id)
        self.entries: dict[str, int] = {}  # id -> ready time of its newest heap entry
        self.next_rescan = 0.0

    def announce(self, jobs: list[tuple[str, int]]) -> None:
        """Tell every worker (through the journal, and this one at once) the jobs
        ``(id, ready time)`` are ready, in one journal write."""
        if not jobs:
            return
        with self.folder.lock:
            if self.active:
                for job_id, ready_ns in jobs:
                    self.note(job_id, ready_ns)
            try:
                self.journal.append(b"".join(ready_line(j, r) for j, r in jobs))
            except OSError as error:
                # The jobs are safely in ready/; other workers find them when they next rescan.
                log.warning("%d job(s) queued (the first %s) but the journal could not record "
                            "them (%s); workers will find them on their next rescan",
                            len(jobs), jobs[0][0], error.strerror or error)

    def note(self, job_id: str, ready_ns: int, now_ns: int | None = None) -> None:
        """Index the job at its ready time, on the ready or the delayed heap as of ``now_ns``
        (the clock when None)."""
        if self.entries.get(job_id) == ready_ns:
            return
        self.entries[job_id] = ready_ns
        if ready_ns > (time.time_ns() if now_ns is None else now_ns):
            heapq.heappush(self.delayed, (ready_ns, priority_of(job_id), job_id))
        else:
            heapq.heappush(self.heap, (priority_of(job_id), ready_ns, job_id))

    def follow_journal(self) -> bool:
        """Note what the journal announced since the last look; whether it lost track (then
        the caller rescans)."""
        jobs, gap = self.journal.read()
        for job_id, ready_ns in jobs:
            self.note(job_id, ready_ns)
        return gap

    def promote(self, now_ns: int) -> None:
        """Move the delayed jobs that are due now to the ready heap."""
        delayed, heap, entries = self.delayed, self.heap, self.entries
        while delayed and delayed[0][0] <= now_ns:
            ready_ns, priority, job_id = heapq.heappop(delayed)
            if entries.get(job_id) == ready_ns:
                heapq.heappush(heap, (priority, ready_ns, job_id))

    def pop(self) -> str | None:
        """The id of the next ready job to try (its entry removed), or ``None``."""
        heap, entries = self.heap, self.entries
        while heap:
            _, ready_ns, job_id = heapq.heappop(heap)
            if entries.get(job_id) != ready_ns:
                continue  # superseded by a newer entry for the same job
            del entries[job_id]
            return job_id
        return None

    def rescan(self, rescan_interval: float) -> None:
        """Rebuild the index from the names and mtimes in ``ready/`` (no file is opened); set
        aside what is not a job's file."""
        heap: list[tuple[int, int, str]] = []
        delayed: list[tuple[int, int, str]] = []
        entries: dict[str, int] = {}
        foreign = []
        now_ns = time.time_ns()
        with os.scandir(self.folder.ready) as found:
            for entry in found:
                name = entry.name
                job_id = name[: -len(JSON)]
                if not name.endswith(JSON) or not is_id(job_id):
                    foreign.append(name)
                    continue
                try:
                    ready_ns = entry.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                entries[job_id] = ready_ns
                if ready_ns > now_ns:
                    delayed.append((ready_ns, priority_of(job_id), job_id))
                else:
                    heap.append((priority_of(job_id), ready_ns, job_id))
        heapq.heapify(heap)
        heapq.heapify(delayed)
        self.heap, self.delayed, self.entries = heap, delayed, entries
        self.next_rescan = time.monotonic() + rescan_interval
        for name in foreign:
            self.folder.set_aside(
                os.path.join(self.folder.ready, name), name, "the file name is not a job id"
            )
        self.folder.spares.trim()
