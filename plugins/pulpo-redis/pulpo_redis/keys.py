"""Key names of a queue: every one carries the queue's hash tag, so a queue is one cluster slot."""

from __future__ import annotations

import attrs

#: The names after ``<prefix>:{<queue>}:``, in the order the scripts take them as ``KEYS``.
SET_NAMES = ("ready", "delayed", "reserved", "buried", "seq", "wake", "foreign")


@attrs.frozen
class QueueKeys:
    """The keys of one queue."""

    queue: str
    prefix: str

    @property
    def tag(self) -> str:
        """``<prefix>:{<queue>}:``: the start of every key of this queue."""
        return f"{self.prefix}:{{{self.queue}}}:"

    @property
    def all(self) -> list[str]:
        """The scripts' ``KEYS``: ready, delayed, reserved, buried, seq, wake, foreign."""
        return [self.tag + name for name in SET_NAMES]

    @property
    def jobs(self) -> str:
        """The start of every job hash's key (the job number follows)."""
        return self.tag + "j:"

    def job(self, number: str) -> str:
        return self.jobs + number

    def key(self, name: str) -> str:
        return self.tag + name


def job_id(queue: str, number: str | int) -> str:
    """A message id: ``<queue>:<number>``, so an id names its queue."""
    return f"{queue}:{number}"


def parse_id(message_id: object) -> tuple[str, str]:
    """``(queue, number)`` of a message id; ``ValueError`` for anything else."""
    queue, _, number = str(message_id).rpartition(":")
    if not queue or not (number.isascii() and number.isdigit()) or int(number) == 0:
        raise ValueError(f"{message_id!r} is not a redis job id (<queue>:<number>)")
    return queue, str(int(number))
