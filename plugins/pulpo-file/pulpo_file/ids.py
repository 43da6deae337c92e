"""Job ids of the file queue: safe as file names, and carrying what ordering needs.

An id is ``<created>-<priority>-<random>``: the creation time in microseconds since the epoch
(16 hex digits), the priority (8 hex digits) and 32 random bits (8 hex digits), for example
``00062f3a9b1c2d3e-80000000-9f3ac1b2``. Both the priority and the age are fixed for a job's life,
so a worker can order the ``ready/`` folder from the file names alone, without opening a file.
Nothing else is accepted as an id, so an id can never name a path outside the queue's folder.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

ID_PATTERN = re.compile(r"[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{8}")
#: An example, for error messages.
EXAMPLE_ID = "00062f3a9b1c2d3e-80000000-9f3ac1b2"


def make_id(created_us: int, priority: int, random_bits: int) -> str:
    """The id of a job created at ``created_us`` (microseconds since the epoch)."""
    return f"{created_us:016x}-{priority:08x}-{random_bits:08x}"


def is_id(value: str) -> bool:
    """Whether ``value`` is a file queue id."""
    return ID_PATTERN.fullmatch(value) is not None


def check_id(value: object) -> str:
    """``value`` if it is a file queue id; otherwise ``ValueError`` naming it."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise ValueError(
            f"{value!r} is not a file queue job id (ids look like {EXAMPLE_ID!r})"
        )
    return value


def priority_of(job_id: str) -> int:
    """The priority written into a (checked) id."""
    return int(job_id[17:25], 16)


class IdMaker:
    """Mints the ids of one adapter: creation times strictly increase, so two jobs published
    by one process in the same microsecond still keep their order (callers hold a lock)."""

    def __init__(self, random_bits: Callable[[int], int]) -> None:
        self._random_bits = random_bits
        self._last_created_us = 0

    def next(self, priority: int) -> str:
        created_us = max(time.time_ns() // 1000, self._last_created_us + 1)
        self._last_created_us = created_us
        return make_id(created_us, priority, self._random_bits(32))
