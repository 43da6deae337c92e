"""The ``file`` adapter: a durable job queue in a local folder shared by many worker processes.

This module is the facade: the queue adapter protocol's methods, each a few lines over the
parts that do the work (see ``docs/architecture.md``):

- :mod:`pulpo_file.layout` — the folders, the names of job files, reading and moving them;
- :mod:`pulpo_file.durability` — what a change needs to survive a power cut, per ``fsync_method``;
- :mod:`pulpo_file.index` — the worker's ready and delayed heaps, fed by the journal;
- :mod:`pulpo_file.materialize` — publish logs: publishing into one, making files of them;
- :mod:`pulpo_file.leases` — claims, their renewal, and jobs whose lease ran out;
- :mod:`pulpo_file.operate` — peek, delete, kick, stats;
- :mod:`pulpo_file.activity` — publishes counted and the oldest ready job's age (``pulpo top``);
- :mod:`pulpo_file.listing` — jobs by state, page by page (``list_jobs``);
- :mod:`pulpo_file.recovery` — after a reboot, a power cut's lost renames, dead writers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from pulpo_core.config import load_section
from pulpo_core.errors import AdapterError
from pulpo_core.message import BURIED_REASON, DEFAULT_PRIORITY, Message
from pulpo_file import boot
from pulpo_file.activity import PublishCounter, oldest_ready_age
from pulpo_file.batch import Batches
from pulpo_file.config import SECTION, FileQueueConfig
from pulpo_file.durability import durability_for
from pulpo_file.ids import IdMaker, check_id
from pulpo_file.index import ReadyIndex
from pulpo_file.journal import Journal
from pulpo_file.layout import PENDING, Folder, publish_ready_ns, storage_errors, without_reason
from pulpo_file.leases import Leases
from pulpo_file.listing import Listing
from pulpo_file.materialize import LOOK_BUDGET, PublishLogSet
from pulpo_file.operate import Operations
from pulpo_file.recovery import Recovery, stale_before_ns
from pulpo_file.unique import UniqueClaims

__all__ = ["PENDING", "FileQueueAdapter"]

log = logging.getLogger("pulpo.file")


class FileQueueAdapter:
    """A job queue in a folder: durable, ordered, shared by any number of worker processes.

    :param section: the ``file_queue_adapter`` configuration section (see
        :class:`pulpo_file.config.FileQueueConfig`).
    :raises ConfigError: naming ``file_queue_adapter.<key>`` for a bad setting.
    :raises AdapterError: when the queue's folders cannot be created.
    """

    #: Every pool slot of a process shares one adapter: each method holds the folder lock, and one
    #: index and one journal reader serve all the slots (16 adapters would each read the journal
    #: and race for the same files).
    thread_safe = True

    def __init__(self, section: Mapping[str, Any] | None = None) -> None:
        self.settings = load_section(SECTION, dict(section or {}), FileQueueConfig)
        self._folder = folder = Folder(self.settings)
        self.path = folder.path
        boot.mark_new_queue(folder.base, folder.fix_mode)
        # The journal runs a checkpoint when it starts a segment (the publish logs' own).
        self._journal = Journal(folder.journal, self.settings.journal_segment_size,
                                folder.fix_mode, lambda: self._logs.checkpoint())
        self._durability = durability_for(self.settings, folder, self._journal)
        self._index = ReadyIndex(folder, self._journal)
        self._logs = PublishLogSet(folder, self._durability, self._index)
        self._recovery = Recovery(folder, self._durability, self._journal, self._index,
                                  self._logs)
        self._leases = Leases(folder, self._durability, self._index, self._recovery)
        self._operations = Operations(folder, self._durability, self._logs, self._leases,
                                      self._recovery)
        self._listing = Listing(folder, self._logs, self._operations.peek_file)
        self._batches = Batches(folder, self._durability, self._index)
        self._ids = IdMaker(folder.rng.getrandbits)
        self._publishes: PublishCounter | None = None
        self._closed = False

    # -- publishing ----------------------------------------------------------------------

    def _new_job(self, message: Message) -> tuple[str, Message, int, bytes]:
        """The job's id, the message with it, its ready time and its JSON (under the lock)."""
        priority = DEFAULT_PRIORITY if message.priority is None else message.priority
        job_id = self._ids.next(priority)
        message = message.with_id(job_id)
        return job_id, message, publish_ready_ns(job_id, message), message.to_json().encode()

    def enqueue(self, message: Message) -> Message:
        """Write the job to ``ready/`` (flushed to disk with ``fsync``) and return it with its id.

        :raises AdapterError: when the job cannot be written (disk full, read-only folder); no
            partial file is left behind.
        """
        with self._folder.lock:
            self._check_open()
            job_id, message, ready_ns, data = self._new_job(message)
        durability = self._durability
        with storage_errors(f"the file queue could not store a job in {self._folder.ready!r}"):
            if durability.publish_logs and self._logs.publish(job_id, ready_ns, data):
                return message
            segment = durability.intent(job_id, ready_ns, data)
            try:
                durability.write(self._folder.ready, job_id, data, ready_ns)
            except BaseException:
                durability.gone(job_id, True)  # the recorded intent must not come true
                raise
            durability.flush_if_outlived(segment, self._folder.ready, [job_id])
        self._index.announce([(job_id, ready_ns)])
        return message

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """Queue several jobs, all or none of them, even when the publisher is killed (see
        :mod:`pulpo_file.batch`); with ``fsync`` their records are flushed together, once.

        :raises AdapterError: when the jobs could not be queued (none of them is).
        """
        with self._folder.lock:
            self._check_open()
            batch = [self._new_job(message) for message in messages]
        if not batch:
            return []
        with storage_errors(f"the file queue could not store {len(batch)} jobs (none of them "
                            f"is queued)"):
            self._batches.publish([(job_id, ready_ns, data) for job_id, _, ready_ns, data in batch])
        return [message for _, message, _, _ in batch]

    def enqueue_unique(self, message: Message) -> tuple[Message, bool]:
        """Queue the message unless a live job holds its unique key (see ``pulpo_file.unique``)."""
        return UniqueClaims(self.path / "unique").enqueue_unique(message, self.peek, self.enqueue)

    def unique_holder(self, key: str) -> str | None:
        """The id of the job that holds the unique ``key``, or ``None``."""
        held = UniqueClaims(self.path / "unique").holder(key, self.peek)
        return None if held is None else held.id

    # -- working -------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Catch up with what other processes did: publish logs, the journal, leases."""
        index, settings = self._index, self.settings
        if not index.active:
            # First: what is published from now on is read from the journal.
            position = self._journal.start_reading()
            index.active = True
            self._batches.tidy(stale_before_ns())  # first: a replay finds their files in place
            self._recovery.after_reboot(position)
            self._recovery.stale_temporaries()
            index.rescan(settings.rescan_interval)
        self._logs.materialize_all(wait=False, budget=LOOK_BUDGET)
        gap = index.follow_journal()
        self._journal.retire_quiet()
        now = time.monotonic()
        if gap or now >= index.next_rescan:
            self._batches.tidy(None)
            index.rescan(settings.rescan_interval)
        if now >= self._leases.next_check:
            self._leases.next_check = now + settings.lease_check_interval
            self._leases.expire()

    def dequeue(self) -> Message | None:
        """Claim the next ready job (priority, then ready time, then age); ``None`` if none.

        Delayed jobs are invisible until due, whatever their priority.
        """
        with self._folder.lock:
            self._check_open()
            with storage_errors(f"the file queue in {str(self.path)!r} could not be read"):
                self._refresh()
                now_ns = time.time_ns()
                self._index.promote(now_ns)
                while (job_id := self._index.pop()) is not None:
                    message = self._leases.claim(job_id, now_ns)
                    if message is not None:
                        return message
                return None

    def touch(self, message: Message) -> None:
        """Extend the lease on a job this adapter reserved by another ``ttr`` seconds."""
        job_id = check_id(message.id)
        with self._folder.lock:
            self._leases.touch(message, job_id)

    def commit(self, message: Message) -> bool:
        """The job is done: remove it (to ``archive/`` with ``enable_archive``); ``False`` when
        this adapter no longer holds it (nothing changed).

        Not flushed to disk: a commit lost in a power cut runs the job again (at-least-once).
        """
        job_id = check_id(message.id)
        folder, leases = self._folder, self._leases
        with folder.lock:
            self._check_open()
            name = leases.held.pop(job_id, None)
            if name is None:
                leases.not_held(job_id, "committed")
                return False
            with storage_errors(f"job {job_id!r} could not be committed"):
                try:
                    if self.settings.enable_archive:
                        os.rename(leases.path(name), folder.job(folder.archive, job_id))
                    else:
                        folder.spares.give(leases.path(name), job_id, folder.token())
                except FileNotFoundError:
                    leases.lost.discard(job_id)
                    log.warning("job %s finished after its lease ran out (or it was deleted); "
                                "it went back to the queue and may run again", job_id)
                    return False
                self._durability.gone(job_id)
        return True

    def rollback(self, message: Message, delay: float = 0) -> bool:
        """Back to ``ready/`` after ``delay`` seconds with ``attempts + 1``; ``False`` when
        this adapter no longer holds it."""
        job_id = check_id(message.id)
        with self._folder.lock:
            self._check_open()
            with storage_errors(f"job {job_id!r} could not be released"):
                source = self._leases.take_back(job_id, "retried")
                if source is None:
                    return False
                retried = attrs.evolve(without_reason(message), attempts=message.attempts + 1)
                ready_ns = time.time_ns() + int(max(0.0, delay) * 1e9)
                self._leases.move_to_ready(job_id, retried, ready_ns, source)
                self._leases.held.pop(job_id, None)
        return True

    def release(self, message: Message) -> bool:
        """Give a job this adapter holds back to ready at once, unrun and unchanged.

        Its attempts stay as they were and it keeps its ready time, so it takes its old place
        among the jobs of its priority. Used by a worker that was asked to stop after it had
        dequeued the job. A job this adapter does not hold (any more) is left alone, with a
        warning (``False``).
        """
        job_id = check_id(message.id)
        folder = self._folder
        with folder.lock:
            self._check_open()
            with storage_errors(f"job {job_id!r} could not be released"):
                path = self._leases.take_back(job_id, "released")
                if path is None:
                    return False
                mtime_ns = os.stat(path).st_mtime_ns
                ready_ns = min(mtime_ns, time.time_ns())
                if ready_ns != mtime_ns:  # the clock went back: ready now, not later
                    os.utime(path, ns=(ready_ns, ready_ns))
                os.rename(path, folder.job(folder.ready, job_id))
                self._leases.held.pop(job_id, None)
                self._durability.flush_folder(folder.ready)
            self._index.announce([(job_id, ready_ns)])
        return True

    def bury(self, message: Message, reason: str) -> bool:
        """Move the job to ``buried/``; ``peek`` shows ``reason`` as header ``buried_reason``;
        ``False`` when this adapter no longer holds it."""
        job_id = check_id(message.id)
        with self._folder.lock:
            self._check_open()
            with storage_errors(f"job {job_id!r} could not be buried"):
                source = self._leases.take_back(job_id, "buried")
                if source is None:
                    return False
                buried = attrs.evolve(
                    message, extra_header={**message.extra_header, BURIED_REASON: reason}
                )
                data = buried.to_json().encode("utf-8")
                self._durability.rewrite_and_move(
                    source, self._folder.buried, job_id, data, time.time_ns()
                )
                self._leases.held.pop(job_id, None)
        return True

    # -- operating -----------------------------------------------------------------------

    def peek(self, message_id: str) -> Message | None:
        """The job in any live state (ready, delayed, reserved, buried); ``None`` if unknown.

        :raises ValueError: when ``message_id`` is not a file queue id.
        """
        job_id = check_id(message_id)
        with storage_errors(f"job {job_id!r} could not be read"):
            return self._operations.peek(job_id)

    def delete(self, message_id: str) -> bool:
        """Delete the job in any state; ``False`` when there is no such job.

        :raises ValueError: when ``message_id`` is not a file queue id.
        """
        job_id = check_id(message_id)
        with self._folder.lock, storage_errors(f"job {job_id!r} could not be deleted"):
            return self._operations.delete(job_id)

    def kick(self, bound: int | None = None) -> int:
        """Move up to ``bound`` buried jobs (all when ``None``), oldest first, back to ready."""
        with self._folder.lock:
            self._check_open()
            with storage_errors("buried jobs could not be kicked"):
                return self._operations.kick(bound)

    def stats(self) -> dict[str, int]:
        """Counts by state, from file names and modification times alone (no file is read).

        ``ready``, ``delayed``, ``reserved``, ``buried``, ``total``, ``spare`` (files kept for
        reuse); with ``enable_archive`` also ``archived``.
        """
        with storage_errors(f"the file queue in {str(self.path)!r} could not be counted"):
            return self._operations.stats()

    def published_total(self) -> int:
        """Jobs published into this queue (by any process) since the first call, read from the
        journal (see :mod:`pulpo_file.activity`)."""
        with self._folder.lock:
            self._check_open()
            with storage_errors(f"the file queue in {str(self.path)!r} could not be read"):
                self._logs.materialize_waiting()  # jobs still in publish logs are announced
                if self._publishes is None:
                    self._publishes = PublishCounter(self._folder,
                                                     self.settings.journal_segment_size)
                return self._publishes.total()

    def oldest_ready_age(self) -> float | None:
        """Seconds since the longest-waiting ready job became ready."""
        with storage_errors(f"the file queue in {str(self.path)!r} could not be read"):
            self._logs.materialize_waiting()
            return oldest_ready_age(self._folder)

    def list_jobs(self, state: str, limit: int = 50, after: str | None = None) -> list[Message]:
        """Up to ``limit`` jobs in ``state`` in the queue's order (see :mod:`pulpo_file.listing`),
        past the job ``after``.

        :raises ValueError: naming ``state`` when it is not a job state, or ``after`` when it
            is not a file queue id.
        """
        if after is not None:
            check_id(after)
        with storage_errors(f"the {state} jobs of the file queue in {str(self.path)!r} could "
                            f"not be listed"):
            return self._listing.list_jobs(state, limit, after)

    # -- closing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError(f"the file queue in {str(self.path)!r} is closed")

    def close(self) -> None:
        """Close the journal, the publish logs and folder descriptors; jobs stay on disk."""
        with self._folder.lock:
            self._closed = True
            self._journal.close()
            if self._publishes is not None:
                self._publishes.close()
            self._logs.close()
            self._durability.close()
