"""The queue adapter protocol every adapter implements, and the optional capabilities.

:class:`QueueAdapter` is what every adapter must do. An adapter that can do more says so by
implementing one of the capability protocols below (checked with ``isinstance``, never by
probing for a method's name): :class:`LeaseKeeping`, :class:`Releasing`,
:class:`BatchPublishing`, :class:`Flushing`, :class:`JobListing` (and :class:`PartialListing`),
:class:`PublishCounting`, :class:`ReadyAging`, :class:`UniquePublishing`, :class:`UniqueLookup`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pulpo_core.message import Message

#: The counts every adapter's ``stats()`` reports.
STATS_KEYS = ("ready", "delayed", "reserved", "buried")
#: The states :meth:`JobListing.list_jobs` takes.
JOB_STATES = STATS_KEYS

#: ``factory(section) -> adapter``: builds an adapter from its config section (registered
#: through the ``pulpo_register_adapters`` hook).
AdapterFactory = Callable[[Mapping[str, Any]], "QueueAdapter"]


@runtime_checkable
class QueueAdapter(Protocol):
    """Where jobs wait. Methods raise :class:`pulpo_core.errors.AdapterError` on failure."""

    def enqueue(self, message: Message) -> Message:
        """Store the message; return it with its ``id`` set."""
        ...

    def dequeue(self) -> Message | None:
        """Reserve the next ready job by priority, then age; ``None`` when there is none.

        The returned message carries its ``attempts`` and its effective ``ttr``.
        """
        ...

    def commit(self, message: Message) -> bool | None:
        """The job is done: delete it.

        ``commit``, ``rollback`` and ``bury`` return ``False`` when the job was no longer this
        worker's to settle (its lease ran out and it went back to the queue, or it was
        deleted): nothing was changed, and the worker logs that instead of the action. ``None``
        (or ``True``) means the action was applied.
        """
        ...

    def rollback(self, message: Message, delay: float = 0) -> bool | None:
        """Release the job for a retry after ``delay`` seconds; its attempts go up by one."""
        ...

    def bury(self, message: Message, reason: str) -> bool | None:
        """Keep the job aside with the reason (header ``buried_reason``) until it is kicked
        or deleted."""
        ...

    def peek(self, message_id: str) -> Message | None:
        """The job in any live state (ready, delayed, reserved, buried); ``None`` if unknown."""
        ...

    def delete(self, message_id: str) -> bool:
        """Delete the job in any state; ``False`` when there is no such job."""
        ...

    def kick(self, bound: int | None = None) -> int:
        """Move up to ``bound`` buried jobs (all when ``None``) back to ready; return how many."""
        ...

    def stats(self) -> Mapping[str, int]:
        """At least ``ready``, ``delayed``, ``reserved`` and ``buried``."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class LeaseKeeping(Protocol):
    """Adapters whose reservations expire implement ``touch`` so long jobs keep their lease."""

    def touch(self, message: Message) -> None:
        """Renew the lease on a reserved job for another ``ttr`` seconds."""
        ...


@runtime_checkable
class Releasing(Protocol):
    """Adapters that can hand a reserved job back unrun implement ``release``.

    A worker asked to stop while it waited in ``dequeue`` releases the job it got; without
    ``release`` it falls back to ``rollback(message, 0)``, which counts an attempt.
    """

    def release(self, message: Message) -> None:
        """Give a job this adapter holds back to ready at once, as it was: attempts
        unchanged (it did not run), no delay."""
        ...


@runtime_checkable
class BatchPublishing(Protocol):
    """Adapters that queue many jobs in fewer round trips or flushes than one each."""

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """Queue the messages; return them with their ids, in order.

        :raises AdapterError: when none was queued.
        :raises PartialEnqueue: when some were queued and the others not (it lists them).
        """
        ...


@runtime_checkable
class Flushing(Protocol):
    """Adapters that leave work pending (answers owed, buffered acknowledgements) and finish
    it when the worker stops."""

    def flush(self) -> None:
        """Finish what is pending; called once when a worker stops."""
        ...


@runtime_checkable
class JobListing(Protocol):
    """Adapters that can list the jobs in one state (the dashboard's pages)."""

    def list_jobs(self, state: str, limit: int = 50, after: str | None = None) -> Sequence[Message]:
        """Up to ``limit`` jobs in ``state`` (one of :data:`JOB_STATES`), in the order the
        adapter keeps them, starting after the job ``after`` (``None``: from the first).

        :raises ValueError: naming ``state`` when it is not a state.
        """
        ...


@runtime_checkable
class PublishCounting(Protocol):
    """Adapters that count the jobs published into their queue (``pulpo top``'s publish rate,
    and from it the drain rate)."""

    def published_total(self) -> int:
        """How many jobs were published into the queue(s) this adapter works on, counted from
        an origin of the adapter's choosing (its server's start, the first call): only the
        difference between two calls means something, and it never goes down while the origin
        holds."""
        ...


@runtime_checkable
class ReadyAging(Protocol):
    """Adapters that can say how long the oldest ready job has waited (``pulpo top``)."""

    def oldest_ready_age(self) -> float | None:
        """Seconds since the ready job that has waited longest became ready (or, where the
        adapter cannot tell when a job became ready, since it was published: its page says);
        ``None`` when no job is ready."""
        ...


@runtime_checkable
class PartialListing(Protocol):
    """Job listings that show only part of each state (beanstalkd can peek at the next job of
    a state, no further): what the listing leaves out, for the dashboard to say."""

    def listing_note(self) -> str:
        """One sentence saying what :meth:`JobListing.list_jobs` shows and what it cannot."""
        ...


@runtime_checkable
class UniquePublishing(Protocol):
    """Adapters that refuse a second job with the same ``unique_key`` by themselves."""

    def enqueue_unique(self, message: Message) -> tuple[Message, bool]:
        """Queue the message unless a live job holds its ``unique_key``; return ``(job,
        created)``: the new job and ``True``, or the job that holds the key and ``False``.

        A key is held by the job published with it while that job is queued, delayed or
        running (reserved), and, when the message has ``unique_for``, for that many seconds
        after it was published, whatever became of the job. A job that was committed, deleted
        or buried (once ``unique_for`` has passed) no longer holds its key. Atomic against other
        publishers of the same key, in this process or any other.
        """
        ...


@runtime_checkable
class UniqueLookup(Protocol):
    """Adapters that can say which job holds a unique key (``pulpo schedules`` shows it)."""

    def unique_holder(self, key: str) -> str | None:
        """The id of the job that holds ``key`` now, or ``None``."""
        ...


class TickLedger(Protocol):
    """One scheduler's seat in an election among every scheduler of a queue, and the record of
    the last tick published per schedule (see :class:`ScheduleLeadership`)."""

    def lead(self, wait: float) -> bool:
        """Whether this scheduler leads now: renew its lease when it holds it, else wait at
        most ``wait`` seconds to take it. At most one scheduler leads at a time."""
        ...

    def last_tick(self, schedule: str) -> float | None:
        """The latest tick recorded for ``schedule`` (a POSIX timestamp), or ``None``."""
        ...

    def record_tick(self, schedule: str, tick: float) -> None:
        """Record that the leader published ``schedule``'s ``tick``."""
        ...

    def close(self) -> None:
        """Give up the lease (another scheduler takes it at once) and close."""
        ...


@runtime_checkable
class ScheduleLeadership(Protocol):
    """Adapters that cannot refuse a duplicate job but can elect one scheduler to publish the
    ticks and keep the last tick of each schedule, for the next leader to go on from."""

    def schedule_ledger(self) -> TickLedger:
        """A new seat in the election, with a connection of its own."""
        ...
