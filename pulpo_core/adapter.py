"""The queue adapter protocol every adapter implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from pulpo_core.message import Message

#: The counts every adapter's ``stats()`` reports.
STATS_KEYS = ("ready", "delayed", "reserved", "buried")


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

    def commit(self, message: Message) -> None:
        """The job is done: delete it."""
        ...

    def rollback(self, message: Message, delay: float = 0) -> None:
        """Release the job for a retry after ``delay`` seconds; its attempts go up by one."""
        ...

    def bury(self, message: Message, reason: str) -> None:
        """Keep the job aside with the reason until it is kicked or deleted."""
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
