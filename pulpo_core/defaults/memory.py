"""The ``memory`` adapter: a process-local queue with priorities, delays, leases and burial.

Meant for tests and for embedding; nothing survives the process.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from pulpo_core.adapter import JOB_STATES
from pulpo_core.config import at_least, load_section
from pulpo_core.errors import AdapterError
from pulpo_core.hookspecs import RegisterAdapter, RegisterConfigSection
from pulpo_core.markers import hookimpl
from pulpo_core.message import BURIED_REASON, DEFAULT_PRIORITY, DEFAULT_TTR, Message

SECTION = "memory_queue_adapter"


@attrs.frozen
class MemorySettings:
    """The ``memory_queue_adapter`` section."""

    #: Deprecated spelling of the top-level ``ttr`` (the core applies it at publish).
    ttr: int = attrs.field(default=DEFAULT_TTR, validator=at_least(1, "second"))


@attrs.define
class _Job:
    message: Message
    seq: int
    state: str  # ready | delayed | reserved | buried
    ready_at: float
    version: int = 0
    lease_until: float = 0.0
    reason: str | None = None


class MemoryQueueAdapter:
    """An in-process queue implementing the whole adapter protocol."""

    #: Every pool slot of the process shares this one adapter (its state is the queue).
    thread_safe = True

    def __init__(self, section: Mapping[str, Any] | None = None) -> None:
        load_section(SECTION, section or {}, MemorySettings)
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._ready: list[tuple[int, float, int, str, int]] = []
        self._delayed: list[tuple[float, int, str, int]] = []
        self._leased: set[str] = set()
        self._buried: dict[str, None] = {}  # insertion-ordered, kicked oldest first
        self._unique: dict[str, tuple[str, float]] = {}  # key -> (job id, held until)
        self._unique_sweep_at = 1024
        self._ids = itertools.count(1)
        self._published = 0
        self._seq = itertools.count()

    def _now(self) -> float:
        return time.time()

    def _schedule(self, job: _Job, ready_at: float) -> None:
        job.version += 1
        job.ready_at = ready_at
        job.reason = None
        if ready_at > self._now():
            job.state = "delayed"
            heapq.heappush(self._delayed, (ready_at, job.seq, job.message.id or "", job.version))
        else:
            job.state = "ready"
            priority = job.message.priority
            key = DEFAULT_PRIORITY if priority is None else priority
            heapq.heappush(self._ready, (key, ready_at, job.seq, job.message.id or "", job.version))

    def _promote(self) -> None:
        now = self._now()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job_id, version = heapq.heappop(self._delayed)
            job = self._jobs.get(job_id)
            if job is not None and job.version == version and job.state == "delayed":
                self._schedule(job, job.ready_at)
        for job_id in list(self._leased):
            job = self._jobs[job_id]
            if job.lease_until <= now:
                self._leased.discard(job_id)
                # The worker holding it is gone: the lease that ran out counts as an attempt.
                job.message = attrs.evolve(job.message, attempts=job.message.attempts + 1)
                self._schedule(job, now)

    def enqueue(self, message: Message) -> Message:
        with self._lock:
            job_id = str(next(self._ids))
            self._published += 1
            message = attrs.evolve(message, id=job_id)
            job = _Job(message, next(self._seq), "ready", 0.0)
            self._jobs[job_id] = job
            self._schedule(job, message.delay.timestamp() if message.delay else self._now())
            return message

    def enqueue_unique(self, message: Message) -> tuple[Message, bool]:
        """Queue the message unless a live job holds its unique key (see the protocol)."""
        key = message.unique_key
        if key is None:
            return self.enqueue(message), True
        with self._lock:
            holder = self.unique_holder(key)
            if holder is not None:
                job = self._jobs.get(holder)
                return (message.with_id(holder) if job is None else job.message), False
            if len(self._unique) >= self._unique_sweep_at:
                for held in list(self._unique):
                    self.unique_holder(held)  # drops the keys that hold nothing any more
                self._unique_sweep_at = 2 * len(self._unique) + 1024
            queued = self.enqueue(message)
            self._unique[key] = (queued.id or "", self._now() + (message.unique_for or 0))
            return queued, True

    def unique_holder(self, key: str) -> str | None:
        """The job that holds ``key``: live (not buried), or within its ``unique_for``."""
        with self._lock:
            held = self._unique.get(key)
            if held is None:
                return None
            job_id, until = held
            job = self._jobs.get(job_id)
            if until > self._now() or (job is not None and job.state != "buried"):
                return job_id
            del self._unique[key]
            return None

    def dequeue(self) -> Message | None:
        with self._lock:
            self._promote()
            while self._ready:
                *_, job_id, version = heapq.heappop(self._ready)
                job = self._jobs.get(job_id)
                if job is None or job.version != version or job.state != "ready":
                    continue
                job.state = "reserved"
                job.version += 1
                self._leased.add(job_id)
                ttr = job.message.ttr or DEFAULT_TTR  # (a job the core did not publish)
                job.lease_until = self._now() + ttr
                if job.message.ttr is None:
                    job.message = attrs.evolve(job.message, ttr=ttr)
                return job.message
            return None

    def _reserved(self, message: Message) -> _Job:
        job = self._jobs.get(message.id or "")
        if job is None or job.state != "reserved":
            raise AdapterError(f"job {message.id!r} is not reserved")
        return job

    def _settle(self, message: Message) -> _Job:
        job = self._reserved(message)
        self._leased.discard(job.message.id or "")
        return job

    def commit(self, message: Message) -> None:
        with self._lock:
            self._settle(message)
            del self._jobs[message.id or ""]

    def rollback(self, message: Message, delay: float = 0) -> None:
        with self._lock:
            job = self._settle(message)
            job.message = attrs.evolve(job.message, attempts=job.message.attempts + 1)
            self._schedule(job, self._now() + max(0.0, delay))

    def release(self, message: Message) -> None:
        """Give a reserved job back to ready at once, unrun: its attempts stay as they were."""
        with self._lock:
            job = self._settle(message)
            # Its old ready time keeps its place among the jobs of its priority.
            self._schedule(job, min(job.ready_at, self._now()))

    def bury(self, message: Message, reason: str) -> None:
        with self._lock:
            job = self._settle(message)
            job.version += 1
            job.state = "buried"
            job.reason = reason
            job.message = attrs.evolve(
                job.message, extra_header={**job.message.extra_header, BURIED_REASON: reason}
            )
            self._buried[job.message.id or ""] = None

    def run_delayed_now(self) -> bool:
        """Make the delayed job that is due first ready at once (`pulpo_core.testing` uses it).

        Returns False when no job is delayed. The clock is left alone, so jobs published later
        wait their full delay.
        """
        with self._lock:
            self._promote()
            while self._delayed:
                _, _, job_id, version = heapq.heappop(self._delayed)
                job = self._jobs.get(job_id)
                if job is not None and job.version == version and job.state == "delayed":
                    self._schedule(job, self._now())
                    return True
            return False

    def touch(self, message: Message) -> None:
        with self._lock:
            job = self._reserved(message)
            job.lease_until = self._now() + (job.message.ttr or DEFAULT_TTR)

    def peek(self, message_id: str) -> Message | None:
        with self._lock:
            job = self._jobs.get(str(message_id))
            return None if job is None else job.message

    def delete(self, message_id: str) -> bool:
        with self._lock:
            job = self._jobs.pop(str(message_id), None)
            if job is None:
                return False
            job.version += 1
            self._buried.pop(str(message_id), None)
            self._leased.discard(str(message_id))
            return True

    def kick(self, bound: int | None = None) -> int:
        with self._lock:
            kicked = 0
            for job_id in list(self._buried):
                if bound is not None and kicked >= bound:
                    break
                del self._buried[job_id]
                job = self._jobs[job_id]
                extras = {k: v for k, v in job.message.extra_header.items() if k != BURIED_REASON}
                job.message = attrs.evolve(job.message, extra_header=extras)
                self._schedule(job, self._now())
                kicked += 1
            return kicked

    def stats(self) -> dict[str, int]:
        with self._lock:
            self._promote()
            counts = {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}
            for job in self._jobs.values():
                counts[job.state] += 1
            counts["total"] = len(self._jobs)
            return counts

    def list_jobs(self, state: str, limit: int = 50, after: str | None = None) -> list[Message]:
        """Up to ``limit`` jobs in ``state``, oldest published first, after the job ``after``
        (which need not exist any more: paging goes on past a job deleted meanwhile)."""
        if state not in JOB_STATES:
            raise ValueError(f"no job state {state!r} (one of {', '.join(JOB_STATES)})")
        start = _serial(after) if after is not None else 0
        with self._lock:
            self._promote()
            found = sorted(
                ((_serial(job_id), job.message) for job_id, job in self._jobs.items()
                 if job.state == state and _serial(job_id) > start),
                key=lambda pair: pair[0],
            )
        return [message for _, message in found[: max(limit, 0)]]

    def published_total(self) -> int:
        """Jobs published since this adapter was made."""
        return self._published

    def oldest_ready_age(self) -> float | None:
        """Seconds since the longest-waiting ready job became ready."""
        with self._lock:
            self._promote()
            times = [job.ready_at for job in self._jobs.values() if job.state == "ready"]
        return max(0.0, self._now() - min(times)) if times else None

    def close(self) -> None:
        """Nothing to release; the jobs stay for the life of this object."""


def _serial(job_id: str) -> int:
    """The memory queue's ids count up from 1; anything else sorts before them."""
    return int(job_id) if job_id.isdigit() else 0


@hookimpl
def pulpo_register_adapters(register: RegisterAdapter) -> None:
    register("memory", MemoryQueueAdapter, aliases=("memory_queue_adapter", "MemoryQueueAdapter"))


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    # Declared so a bad key or value is refused when the app is built, not at first use.
    register(SECTION, MemorySettings)
