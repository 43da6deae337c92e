"""What the adapter keeps about jobs: reservations, attempts read lazily, bury reasons."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

#: How many bury reasons a process remembers for ``peek`` (beanstalkd stores none).
REASONS_KEPT = 10_000


def failed_runs(stats: Mapping[str, Any], reserved: bool) -> int:
    """Failed runs of a job from its counters.

    ``reserves`` counts every run: those released for a retry, those whose ttr ran out and those
    whose worker died (beanstalkd counts that in no other counter). Runs that ended buried are
    not failures to retry, and a run still going on (``reserved``) has not failed.
    """
    return max(0, int(stats["reserves"]) - int(stats["buries"]) - int(reserved))


class LazyAttempts:
    """A reserved job's ``attempts``, asked of the server only when something reads it.

    A job that succeeds without anyone reading its attempts costs no ``stats-job`` round trip.
    Once the job is deleted its counters are gone: the core reads the attempts before it
    commits when a ``pulpo_after_process`` hook may want them.
    """

    __slots__ = ("_read", "job_id", "value")

    def __init__(self, read: Callable[[int], int], job_id: int) -> None:
        self._read = read
        self.job_id = job_id
        self.value: int | None = None

    def __call__(self) -> int:
        if self.value is None:
            self.value = self._read(self.job_id)
        return self.value


@attrs.define
class Reservation:
    """A job this adapter's worker connection holds."""

    #: The worker connection's generation when the job was reserved.
    generation: int
    #: The ``id`` of the beanstalkd that handed it out.
    server: str
    attempts: LazyAttempts
    #: The job's body as reserved (kept to recognise the job after a reconnection).
    body: bytes
    #: Until when (``time.monotonic()``) the server surely still holds the job for this worker:
    #: its ttr from the reserve or the last touch, less :data:`LEASE_MARGIN`.
    deadline: float = 0.0

    def renew(self, ttr: int, now: float) -> None:
        """The server has just started the job's ttr again (reserve, touch)."""
        self.deadline = now + ttr - LEASE_MARGIN


#: Seconds taken off a job's ttr to tell when the server may have taken it back: its clock
#: starts before this process reads the reserve's answer, and counts in whole seconds.
LEASE_MARGIN = 1.0


def earliest_lease(
    reserved: dict[int, Reservation],
) -> Callable[[int], tuple[float, int] | None]:
    """How to read the earliest deadline (the server's: ttr from the reserve or last touch) of
    the jobs in ``reserved`` held on the worker connection's generation ``current``, with its
    job id (for the watchdog's heartbeat thread, see :mod:`pulpo_beanstalkd.guard`)."""

    def lease(current: int) -> tuple[float, int] | None:
        earliest: tuple[float, int] | None = None
        for job_id, reservation in list(reserved.items()):
            deadline = reservation.deadline
            if reservation.generation == current and deadline > 0 and (
                    earliest is None or deadline < earliest[0]):
                earliest = (deadline, job_id)
        return None if earliest is None else (earliest[0] + LEASE_MARGIN, earliest[1])

    return lease


class Reasons:
    """The bury reasons this process knows, the :data:`REASONS_KEPT` most recent."""

    def __init__(self) -> None:
        self._reasons: dict[int, str] = {}

    def remember(self, job_id: int, reason: str) -> None:
        reasons = self._reasons
        reasons.pop(job_id, None)
        reasons[job_id] = reason
        if len(reasons) > REASONS_KEPT:
            del reasons[next(iter(reasons))]

    def get(self, job_id: int) -> str | None:
        return self._reasons.get(job_id)

    def forget(self, job_id: int) -> None:
        self._reasons.pop(job_id, None)
