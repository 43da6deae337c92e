"""Publish logs on the adapter's side: a publisher's own log, and making their records files.

A single durable publish (``fsync_method = "log"``) is one flushed record in the publisher's own
log (:mod:`pulpo_file.publog`). Whoever looks at the queue next — a worker, ``peek``, ``delete``,
``stats`` — *materializes* the logs: each new record becomes ``tmp/<id>.pending``, then the
log's position moves past it, then it is renamed into ``ready/`` and announced. A process killed
anywhere leaves it made once, or to be made by whoever materializes next (who first finishes a
pending rename). A *checkpoint* flushes the file system so the records made files may be
overwritten: their slots are free for the publisher again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable

from pulpo_file import boot
from pulpo_file.durability import Unflushed
from pulpo_file.files import open_private, sync_file_system
from pulpo_file.ids import is_id
from pulpo_file.index import ReadyIndex
from pulpo_file.layout import PENDING, Folder
from pulpo_file.logwriter import LogWriter, retire
from pulpo_file.publog import FIRST_SIZE, SLOT, Damaged, Entry, LogFile, log_numbers

log = logging.getLogger("pulpo.file")

#: The suffix of a damaged publish-log record's bytes, kept in ``buried/``.
DAMAGED = ".damaged"
#: Seconds before a publisher tries again to take a publish log after failing to.
LOG_RETRY_S = 10.0
#: Seconds between two flushes of the files made from publish logs, when workers are idle.
LOG_SYNC_INTERVAL_S = 1.0
#: The most records a worker makes files of per look at the queue (see ``materialize_all``).
LOOK_BUDGET = 256
#: Seconds between two looks for publish logs that hold nothing any more, to remove them.
RETIRE_INTERVAL_S = 5.0
#: Seconds between two warnings about the same publish log.
WARN_INTERVAL_S = 60.0


class PublishLogSet:
    """Every publish log of one queue as this process sees it, and its own log to publish to."""

    def __init__(self, folder: Folder, durability: Unflushed, index: ReadyIndex) -> None:
        self.folder = folder
        self.durability = durability
        self.index = index
        self.settings = folder.settings
        self.writer: LogWriter | None = None  # this process's publish log, once it has one
        self._writer_retry_at = 0.0
        self.files: dict[int, LogFile] = {}  # every publish log of the queue, by number
        self._mtime = -1
        self._pid = os.getpid()
        self._next_sync = 0.0
        self._next_listing = 0.0
        self._next_retire = 0.0
        self._seen: dict[int, int] = {}  # the position this process last saw, by log
        self._warned: dict[int, float] = {}  # when to warn again about a log, by number

    # -- publishing ----------------------------------------------------------------------

    def publish(self, job_id: str, ready_ns: int, data: bytes) -> bool:
        """Write the job as one flushed record into this process's publish log; ``False``
        (nothing written) when it cannot go there: the journal takes it instead."""
        with self.folder.lock:
            writer = self._writer()
            if writer is None:
                return False
            if not writer.has_room():
                materialized, synced = writer.log.positions()
                if materialized > synced:
                    self.checkpoint()  # workers made files of it, not flushed yet: flush them
            if not writer.has_room():  # workers have not caught up: another log, or a new one
                writer.close()
                self.writer = None
                writer = self._writer()
                if writer is None:
                    return False
            return writer.append(job_id, ready_ns, data)

    def _writer(self) -> LogWriter | None:
        writer = self.writer
        if writer is not None and writer.pid == os.getpid():
            return writer
        if writer is not None:  # inherited from the parent process, whose log it stays
            writer.close()
            self.writer = None
        if time.monotonic() < self._writer_retry_at:
            return None
        try:
            self.writer = LogWriter.open(
                self.folder.logs, self.settings.publish_log_size, self.folder.fix_mode
            )
        except OSError as error:
            log.warning("no publish log in %s (%s): single publishes use the journal",
                        self.folder.logs, error.strerror or error)
            self._writer_retry_at = time.monotonic() + LOG_RETRY_S
            return None
        return self.writer

    # -- reading -------------------------------------------------------------------------

    def known(self) -> dict[int, LogFile]:
        """Every publish log of the queue, opened for reading (listed again when the folder
        changed, and every ``rescan_interval`` in case a change fell within one clock tick)."""
        if self._pid != os.getpid():
            # Inherited from the parent process: a lock taken through its descriptors would be
            # the parent's lock too, so this process opens the logs again.
            self.close_readers()
            self._mtime, self._pid = -1, os.getpid()
        logs = self.folder.logs
        mtime = os.stat(logs).st_mtime_ns
        now = time.monotonic()
        if mtime != self._mtime or now >= self._next_listing:
            self._mtime = mtime
            self._next_listing = now + self.settings.rescan_interval
            for number, log_file in list(self.files.items()):
                if not log_file.is_current():  # retired by another process: let it go
                    log_file.close()
                    del self.files[number]
            for number in log_numbers(logs):
                if number in self.files:
                    continue
                try:
                    self.files[number] = LogFile(logs, number, self.folder.fix_mode)
                except FileNotFoundError:
                    continue
                except OSError as error:
                    self.warn(number, f"the publish log {logs}/{number}.log cannot be read "
                                      f"({error.strerror or error})")
        return self.files

    def warn(self, number: int, text: str) -> None:
        """Log ``text`` about a publish log, once a minute at most."""
        now = time.monotonic()
        if now >= self._warned.get(number, 0.0):
            self._warned[number] = now + WARN_INTERVAL_S
            log.warning("%s", text)

    def materialize_all(self, wait: bool, budget: int | None = None) -> None:
        """Make files of the jobs waiting in publish logs (skipping a log another process is
        at, unless ``wait``), so that they are in ``ready/`` and announced; at most ``budget``
        of them (the rest at the next look), so a worker starting on a deep backlog of logs
        runs its first job at once."""
        for number, log_file in list(self.known().items()):
            if budget is not None and budget <= 0:
                break
            try:
                position, synced = log_file.positions()
                moved = self._seen.get(number) != position  # (recorded under its lock)
                if not wait and not moved and not log_file.has_news(position):
                    if position > synced and time.monotonic() >= self._next_sync:
                        # Quiet now: flush the files made, so that publishers reuse the slots.
                        self._next_sync = time.monotonic() + LOG_SYNC_INTERVAL_S
                        self.checkpoint()
                    continue
                # (Another process moved the position: it may have died before its rename.)
                made = self.materialize(log_file, wait, budget=budget)
                budget = None if budget is None else budget - made
            except OSError as error:
                self.warn(number, f"jobs in the publish log {log_file.path} cannot be queued "
                                  f"yet ({error.strerror or error}); they stay safe in the log")
        if not wait and time.monotonic() >= self._next_retire:
            self._next_retire = time.monotonic() + RETIRE_INTERVAL_S
            self.retire_idle()

    def retire_idle(self) -> None:
        """Remove the publish logs that hold nothing and that no process writes, all but one
        of the smallest size, which the next publisher takes instead of writing a new one
        (see :func:`pulpo_file.publog.retire`): the folder is back to a few MiB once the
        publishers are gone and the workers have caught up."""
        own = self.writer.log.number if self.writer is not None else None
        kept = False
        for number, log_file in sorted(self.known().items(), key=lambda item: item[1].slots):
            if number == own or not log_file.drained():
                continue
            if not kept and log_file.slots * SLOT <= FIRST_SIZE:
                kept = True
                continue
            if retire(log_file):
                log_file.close()
                del self.files[number]

    def materialize_waiting(self) -> None:
        """Before looking at the folders (peek, delete, stats): every job in a publish log
        becomes a file first, so none is missed."""
        with self.folder.lock:
            self.materialize_all(wait=True)

    def materialize(
        self, log_file: LogFile, wait: bool, replay_skipping: set[str] | None = None,
        budget: int | None = None,
    ) -> int:
        """Make files of the log's records not yet made files (at most ``budget``); how many
        records it took.

        With ``replay_skipping`` (after a reboot) take every record from the last flushed
        position on, wherever it is in the log, skipping the ids given (gone or reserved) and
        the jobs that are files.
        """
        taken = 0
        with log_file.materializing(wait) as mine:
            if not mine:
                return 0
            position, synced = log_file.positions()
            entries: Iterable[Entry | Damaged]
            if replay_skipping is not None:
                position = synced
                log_file.set_materialized(position)
                entries = log_file.all_from(synced)
            else:
                if position:
                    # Its last materializer may have died between the position and the rename.
                    last = log_file.read(position - 1)
                    if last is not None and is_id(last.job_id):
                        self.finish_pending(last.job_id, last.ready_ns)
                entries = log_file.entries(position)
            for entry in entries:
                if budget is not None and taken >= budget:
                    break
                taken += 1
                position = entry.seq + 1
                if isinstance(entry, Damaged) or not is_id(entry.job_id):
                    self._keep_damaged(log_file, entry)
                    log_file.set_materialized(position)
                    continue
                job_id = entry.job_id
                skipped = replay_skipping is not None and (
                    job_id in replay_skipping or self.folder.exists(job_id)
                )
                if skipped:
                    log_file.set_materialized(position)
                    continue
                pending = os.path.join(self.folder.tmp, job_id + PENDING)
                self.durability.write_over(pending, job_id, entry.data, entry.ready_ns)
                log_file.set_materialized(position)
                self.finish_pending(job_id, entry.ready_ns)
            self._seen[log_file.number] = position
        if position - synced >= log_file.slots // 2:
            self.checkpoint()  # the flushed files free the log's slots for its publisher
        return taken

    def _keep_damaged(self, log_file: LogFile, entry: Entry | Damaged) -> None:
        """A record that cannot be a job — damaged, with later records after it, or naming no
        job id — is buried: its slot's bytes are kept as ``buried/publog-<log>-<seq>.damaged``
        with a ``.reason``, at WARNING, before its slot may ever be written again."""
        data = entry.data if isinstance(entry, Damaged) else log_file.block(entry.seq)
        if not data:
            log.warning("record %d of the publish log %s is missing (the log was cut short): "
                        "that job is lost", entry.seq, log_file.path)
            return
        folder = self.folder
        name = f"publog-{log_file.number}-{entry.seq}{DAMAGED}"
        path = os.path.join(folder.buried, name)
        reason = (f"record {entry.seq} of the publish log {log_file.path} is damaged (its "
                  f"checksum or its job id does not hold); its {len(data)} bytes are kept here")
        fd = open_private(path, os.O_WRONLY | os.O_TRUNC, folder.fix_mode)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        folder.write_reason(path, reason)
        log.warning("%s: %s", reason, path)

    def finish_pending(self, job_id: str, ready_ns: int) -> None:
        """Rename ``tmp/<id>.pending`` into ``ready/`` and announce it (unless it is gone:
        another process finished it)."""
        try:
            os.rename(os.path.join(self.folder.tmp, job_id + PENDING),
                      self.folder.job(self.folder.ready, job_id))
        except FileNotFoundError:
            return
        self.index.announce([(job_id, ready_ns)])

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Make every job file written so far durable, before old journal segments go and
        log slots are reused; refuse (``False``: they stay) until a worker has replayed the
        journal since the last reboot, since their records may be all that is left of jobs a
        power cut took the files of."""
        if not boot.recovered_this_boot(self.folder.base):
            return False
        logs = self.known()
        materialized = {number: log_file.positions()[0] for number, log_file in logs.items()}
        fd = os.open(self.folder.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            sync_file_system(fd)
        finally:
            os.close(fd)
        for number, position in materialized.items():
            logs[number].set_synced(position)  # their files are on disk: the slots may be reused
        return True

    def close_readers(self) -> None:
        for log_file in self.files.values():
            log_file.close()
        self.files.clear()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.close_readers()
