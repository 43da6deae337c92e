"""Leases: claiming a ready job, renewing the claim, and taking back jobs whose lease ran out.

The deadline is part of the reserved file's name (``<id>.<deadline ms>.<token>.json``).
Claiming renames ``ready/<id>.json`` there, which only one process can do. Renewing renames the
file to a later deadline. Any process that finds a deadline in the past renames the file to a
name of its own (so only one does) and puts the job back in ``ready/`` with ``attempts + 1``.
Each job's lease is its own ``ttr``; the claim's first name uses the ``ttr`` of the last job
claimed, so a stream of jobs with one ``ttr`` costs one rename per claim. The token names the
claiming process (see :mod:`pulpo_file.owners`): a claim whose process is gone is taken back at
the next lease check, whatever its deadline.
"""

from __future__ import annotations

import logging
import os
import time

import attrs

from pulpo_core.errors import AdapterError
from pulpo_core.message import DEFAULT_TTR, Message
from pulpo_file.durability import Unflushed
from pulpo_file.index import ReadyIndex
from pulpo_file.layout import (
    JSON,
    Folder,
    Unreadable,
    parse_reserved,
    reserved_name,
    without_reason,
)
from pulpo_file.owners import claimant, is_gone, owner_token
from pulpo_file.recovery import Recovery

log = logging.getLogger("pulpo.file")

#: Lease taken while moving a buried or expired job (a crash mid-move returns it after this).
MOVE_LEASE_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ttr_of(message: Message) -> int:
    """A job's lease in seconds: its own ``ttr`` (the core sets one at publish)."""
    return message.ttr or DEFAULT_TTR


class Leases:
    """The claims of one adapter, and the look for claims that ran out."""

    def __init__(
        self, folder: Folder, durability: Unflushed, index: ReadyIndex, recovery: Recovery
    ) -> None:
        self.folder = folder
        self.durability = durability
        self.index = index
        self.recovery = recovery
        self.held: dict[str, str] = {}  # id -> reserved file name, for jobs claimed here
        self.lost: set[str] = set()  # jobs held here whose lease ran out, until settled
        self._guess_ttr = DEFAULT_TTR
        self.next_check = 0.0

    def path(self, name: str) -> str:
        return os.path.join(self.folder.reserved, name)

    def claim(self, job_id: str, now_ns: int) -> Message | None:
        """Claim the ready job; ``None`` when another process was first, it was not a job
        (set aside) or it is not due after all."""
        folder = self.folder
        token = owner_token(folder.token())
        name = reserved_name(job_id, now_ns // 1_000_000 + self._guess_ttr * 1000, token)
        try:
            os.rename(folder.job(folder.ready, job_id), self.path(name))
        except FileNotFoundError:
            return None  # another worker took it, or it was deleted
        try:
            message, mtime_ns = folder.read(self.path(name))
        except Unreadable as error:
            folder.set_aside(self.path(name), job_id + JSON, str(error))
            return None
        if self.recovery.misplaced(self.path(name), job_id, message):
            return None
        # The file's modification time is the job's ready time, the only one that counts (the
        # header's delay keeps the moment the job was published for; an operator may `touch`).
        if mtime_ns > now_ns:
            # The index was out of date: the job was retried with a delay since. Put it back on
            # the delayed heap as of `now_ns`, whatever the clock says by now: a job due
            # between then and now must not come round again in this dequeue.
            os.rename(self.path(name), folder.job(folder.ready, job_id))
            self.index.note(job_id, mtime_ns, now_ns)
            return None
        ttr = ttr_of(message)
        if ttr != self._guess_ttr:
            renamed = reserved_name(job_id, now_ns // 1_000_000 + ttr * 1000, token)
            os.rename(self.path(name), self.path(renamed))
            name, self._guess_ttr = renamed, ttr
        self.held[job_id] = name
        self.lost.discard(job_id)
        if message.id != job_id or message.ttr is None:
            message = attrs.evolve(message, id=job_id, ttr=ttr)
        return message

    def _renew(self, job_id: str, name: str, deadline_ms: int) -> str | None:
        """Rename this adapter's claim ``name`` to ``deadline_ms``; its new name, or ``None``
        (forgotten here) when the claim is gone: its lease ran out, or it was deleted."""
        parsed = parse_reserved(name)
        assert parsed is not None
        renewed = reserved_name(job_id, deadline_ms, parsed[2])
        try:  # (even onto its own name: the rename fails when the claim is gone)
            os.rename(self.path(name), self.path(renewed))
        except FileNotFoundError:
            self.held.pop(job_id, None)
            return None
        self.held[job_id] = renewed
        return renewed

    def touch(self, message: Message, job_id: str) -> None:
        """Extend the lease on a job this adapter holds by another ``ttr`` seconds."""
        name = self.held.get(job_id)
        if name is None:
            raise AdapterError(f"job {job_id!r} is not reserved by this worker")
        try:
            renewed = self._renew(job_id, name, now_ms() + ttr_of(message) * 1000)
        except OSError as error:
            raise AdapterError(
                f"the lease of job {job_id!r} could not be renewed: {error.strerror or error}"
            ) from error
        if renewed is None:
            self.lost.add(job_id)
            raise AdapterError(f"job {job_id!r} is no longer reserved by this worker (its "
                               f"lease ran out or it was deleted)")

    def take_back(self, job_id: str, verb: str) -> str | None:
        """Renew the lease just before settling, so a lease that ran out is noticed; the
        claimed file's path, or ``None`` (with a warning naming the job, nothing touched) when
        this adapter does not hold the job (any more)."""
        name = self.held.get(job_id)
        if name is None:
            self.not_held(job_id, verb)
            return None
        renewed = self._renew(job_id, name, now_ms() + MOVE_LEASE_MS)
        if renewed is None:
            self.lost.discard(job_id)
            log.warning("job %s cannot be %s: its lease ran out (or it was deleted) and it "
                        "went back to the queue, so it may run again", job_id, verb)
            return None
        return self.path(renewed)

    def not_held(self, job_id: str, verb: str) -> None:
        """Warn that a job this adapter does not hold (any more) cannot be ``verb``."""
        if job_id in self.lost:
            self.lost.discard(job_id)
            log.warning("job %s cannot be %s: its lease ran out and it went back to the queue, "
                        "so it may run again", job_id, verb)
        else:
            log.warning("job %s cannot be %s: this worker does not hold it (it was not "
                        "dequeued here, or it was already settled); nothing was changed",
                        job_id, verb)

    def move_to_ready(self, job_id: str, message: Message, ready_ns: int, source: str) -> None:
        """Move the job from ``source`` to ``ready/`` with new content, and announce it."""
        data = message.to_json().encode("utf-8")
        self.durability.rewrite_and_move(source, self.folder.ready, job_id, data, ready_ns)
        self.index.announce([(job_id, ready_ns)])

    def move_lease(self, job_id: str) -> str:
        """A claimed file's path for moving a job out of ``buried/`` or an expired claim."""
        token = owner_token(self.folder.token())
        return self.path(reserved_name(job_id, now_ms() + MOVE_LEASE_MS, token))

    def expire(self) -> None:
        """Put every job whose lease ran out, or whose claimant is gone, back in ``ready/``
        with ``attempts + 1``."""
        folder = self.folder
        now = now_ms()
        gone: dict[int, bool] = {}
        for name in os.listdir(folder.reserved):
            parsed = parse_reserved(name)
            if parsed is None:
                continue
            pid = None
            if parsed[1] >= now:  # not run out: taken back only when its claimant is gone
                pid = claimant(parsed[2])
                if pid is not None and pid not in gone:
                    gone[pid] = is_gone(pid)  # one look per process and pass
                if pid is None or not gone[pid]:
                    continue
            job_id = parsed[0]
            claimed = self.move_lease(job_id)
            try:
                os.rename(self.path(name), claimed)
            except FileNotFoundError:
                continue  # renewed, settled or taken by another process meanwhile
            if self.held.get(job_id) == name:
                del self.held[job_id]
                self.lost.add(job_id)
            try:
                message, _ = folder.read(claimed)
            except Unreadable as error:
                folder.set_aside(claimed, job_id + JSON, str(error))
                continue
            except FileNotFoundError:
                continue
            if self.recovery.misplaced(claimed, job_id, message):
                continue
            if pid is None:
                log.warning("the lease of job %s ran out (its worker died or hung): back to "
                            "ready", job_id)
            else:
                log.warning("the worker holding job %s (process %d) is gone: back to ready",
                            job_id, pid)
            message = attrs.evolve(
                without_reason(message), id=job_id, attempts=message.attempts + 1
            )
            self.move_to_ready(job_id, message, time.time_ns(), claimed)
