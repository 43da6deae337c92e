"""Jobs by state, page by page (the ``JobListing`` capability), from the folders' names alone.

The order is the adapter's own, read from file names and modification times (no file is opened
but those on the page):

- ``ready``: as workers claim them, by priority, then ready time, then id (see
  :mod:`pulpo_file.index`);
- ``delayed``: by the time they are due, then priority, then id;
- ``reserved``: oldest published first (a claim's deadline moves with each renewal, so it
  would not keep a page's place);
- ``buried``: oldest published first, the order ``kick`` takes them in.

``after`` is a job id: the page starts past that job's place. A job that left the state since
(taken, deleted, kicked) still has a place for ready, reserved and buried jobs, worked out from
its id (its priority and age); a delayed job that left has none known, so the list starts again
from the first delayed job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pulpo_core.adapter import JOB_STATES
from pulpo_core.message import Message
from pulpo_file.ids import is_id, priority_of
from pulpo_file.layout import JSON, Folder, parse_reserved
from pulpo_file.materialize import PublishLogSet

#: A sort key: a job's place in its state's order.
Key = tuple[int, int, str]


def created_ns(job_id: str) -> int:
    """When the job was published (from its id), in nanoseconds since the epoch."""
    return int(job_id[:16], 16) * 1000


class Listing:
    """``list_jobs`` over one adapter's folders; ``read(job_id, path)`` reads one job's file
    as ``peek`` does (an unreadable file is shown with its bytes), ``None`` when it is gone."""

    def __init__(
        self, folder: Folder, logs: PublishLogSet,
        read: Callable[[str, str], Message | None],
    ) -> None:
        self.folder = folder
        self.logs = logs
        self.read = read

    def list_jobs(self, state: str, limit: int, after: str | None) -> list[Message]:
        """Up to ``limit`` jobs in ``state`` in the adapter's order, past the job ``after``.

        :raises ValueError: naming ``state`` when it is not a job state.
        """
        if state not in JOB_STATES:
            raise ValueError(f"{state!r} is not a job state (one of {', '.join(JOB_STATES)})")
        if limit <= 0:
            return []
        self.logs.materialize_waiting()  # jobs still in publish logs are listed too
        places = self._places(state)
        start = self._start(state, places, after)
        found: list[Message] = []
        for key, path in sorted(places.values()):
            if start is not None and key <= start:
                continue
            message = self.read(key[2], path)
            if message is not None:  # else it moved on meanwhile
                found.append(message)
                if len(found) >= limit:
                    break
        return found

    def _places(self, state: str) -> dict[str, tuple[Key, str]]:
        """Every job in ``state``: id -> (its sort key, its file's path)."""
        if state in ("ready", "delayed"):
            return self._ready_or_delayed(state == "delayed")
        if state == "reserved":
            return self._reserved()
        return self._buried()

    def _ready_or_delayed(self, delayed: bool) -> dict[str, tuple[Key, str]]:
        places: dict[str, tuple[Key, str]] = {}
        now_ns = time.time_ns()
        with os.scandir(self.folder.ready) as entries:
            for entry in entries:
                job_id = entry.name[: -len(JSON)]
                if not entry.name.endswith(JSON) or not is_id(job_id):
                    continue
                try:
                    ready_ns = entry.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                if (ready_ns > now_ns) != delayed:
                    continue
                key = ((ready_ns, priority_of(job_id), job_id) if delayed
                       else (priority_of(job_id), ready_ns, job_id))
                places[job_id] = (key, entry.path)
        return places

    def _reserved(self) -> dict[str, tuple[Key, str]]:
        places: dict[str, tuple[Key, str]] = {}
        for name in os.listdir(self.folder.reserved):
            parsed = parse_reserved(name)
            if parsed is None:
                continue
            job_id = parsed[0]
            places[job_id] = ((created_ns(job_id), 0, job_id),
                              os.path.join(self.folder.reserved, name))
        return places

    def _buried(self) -> dict[str, tuple[Key, str]]:
        places: dict[str, tuple[Key, str]] = {}
        for name in os.listdir(self.folder.buried):
            job_id = name[: -len(JSON)]
            if name.endswith(JSON) and is_id(job_id):
                places[job_id] = ((created_ns(job_id), 0, job_id),
                                  os.path.join(self.folder.buried, name))
        return places

    @staticmethod
    def _start(state: str, places: dict[str, tuple[Key, str]], after: str | None) -> Key | None:
        """The place the page starts past: ``after``'s own, else one worked out from its id."""
        if after is None or not is_id(after):
            return None
        if after in places:
            return places[after][0]
        if state == "ready":
            return (priority_of(after), created_ns(after), after)
        if state == "delayed":
            return None  # its due time is gone with it: from the first delayed job
        return (created_ns(after), 0, after)
