"""The ``file`` adapter: a durable job queue in a local folder shared by many worker processes.

Layout (every folder 0700, every file 0600)::

    <base_path>/
        ready/     <id>.json                        ready and delayed jobs; mtime = ready time
        reserved/  <id>.<lease deadline ms>.<token>.json   claimed jobs
        buried/    <id>.json [+ <id>.json.reason]   buried jobs (the reason is in the header;
                                                    a file that could not be read has a .reason)
        archive/   <id>.json                        successful jobs, with ``enable_archive``
        spare/     <id>.<token>                     finished jobs' files, kept for reuse
        journal/   0000000000.log ...               "job X is ready at T", one line per event
        logs/      <n>.log, <n>.pos                 publish logs (``fsync_method = "log"``)
        tmp/                                        files being written
        boot_id                                     the boot the queue was last recovered in

How a job moves: every state change is a ``rename``, which is atomic, so a job is claimed by
exactly one process (the others' renames fail with "no such file") and no global lock is needed.
New content is written under ``tmp/`` and renamed into place, so a crash leaves the whole file or
nothing; the file written is preferably a spare (see :mod:`pulpo_file.spares`). How a worker
finds its next job without listing ``ready/``: it keeps two heaps fed by the journal (see
:mod:`pulpo_file.journal`): delayed jobs by ``(ready time, priority, id)`` and ready jobs by
``(priority, ready time, id)``. A dequeue first moves the delayed jobs that came due to the ready
heap, then pops the ready heap and renames the job's file into ``reserved/``; a delayed job never
hides a ready one. A heap entry that is out of date (the job was taken, deleted or rescheduled
by another process) is recognised when its rename fails or the claimed file's ready time (its
modification time, the only one that counts) is still in the future, and skipped.

Leases: the deadline is part of the reserved file's name. ``touch`` renames the file to a later
deadline; any process that finds a deadline in the past renames the file to a name of its own
(so only one does) and puts the job back in ``ready/`` with ``attempts + 1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import logging
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from pulpo_core.config import load_section
from pulpo_core.errors import AdapterError, PartialEnqueue
from pulpo_core.message import DEFAULT_PRIORITY, Message
from pulpo_file.config import SECTION, FileQueueConfig
from pulpo_file.files import (
    current_umask,
    flush,
    make_private_folder,
    open_private,
    sync_file_system,
    write_job_file,
)
from pulpo_file.ids import check_id, is_id, make_id, priority_of
from pulpo_file.journal import (
    BURIED,
    GONE,
    Journal,
    Record,
    gone_line,
    intent_line,
    ready_line,
)
from pulpo_file.publog import Entry, LogFile, LogWriter, log_numbers
from pulpo_file.recovery import MARKER, boot_instant, current_boot_id
from pulpo_file.spares import SparePool
from pulpo_file.unique import UniqueClaims

log = logging.getLogger("pulpo.file")

JSON = ".json"
REASON = ".reason"
BURIED_REASON = "buried_reason"
#: Lease taken while moving a buried or expired job (a crash mid-move returns it after this).
MOVE_LEASE_MS = 60_000
#: Leftovers in ``tmp/`` older than this are files whose writer died; they were never jobs.
STALE_TEMPORARY_S = 3600.0
#: A job taken from a publish log, in ``tmp/`` between its record and ``ready/``.
PENDING = ".pending"
#: Seconds before a publisher tries again to take a publish log after failing to.
LOG_RETRY_S = 10.0
#: Seconds between two flushes of the files made from publish logs, when workers are idle.
LOG_SYNC_INTERVAL_S = 1.0


def _reserved_name(job_id: str, deadline_ms: int, token: str) -> str:
    return f"{job_id}.{deadline_ms}.{token}{JSON}"


def _parse_reserved(name: str) -> tuple[str, int, str] | None:
    """``(id, deadline ms, token)`` of a reserved file's name, or ``None``."""
    parts = name.split(".")
    if len(parts) != 4 or parts[3] != "json" or not is_id(parts[0]) or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def _without_reason(message: Message) -> Message:
    if BURIED_REASON not in message.extra_header:
        return message
    extras = {k: v for k, v in message.extra_header.items() if k != BURIED_REASON}
    return attrs.evolve(message, extra_header=extras)


class _Unreadable(Exception):
    """A job file that cannot be read or parsed; the message says why."""


class FileQueueAdapter:
    """A job queue in a folder: durable, ordered, shared by any number of worker processes.

    :param section: the ``file_queue_adapter`` configuration section (see
        :class:`pulpo_file.config.FileQueueConfig`).
    :raises ConfigError: naming ``file_queue_adapter.<key>`` for a bad setting.
    :raises AdapterError: when the queue's folders cannot be created.
    """

    def __init__(self, section: Mapping[str, Any] | None = None) -> None:
        self.settings = load_section(SECTION, dict(section or {}), FileQueueConfig)
        self.path = Path(os.path.expanduser(self.settings.base_path)).absolute()
        self.default_ttr = self.settings.ttr
        self._fix_mode = bool(current_umask() & 0o600)
        # With fsync: a flushed journal record per change ("journal"; "log" too, but for a
        # single publish, which goes to a publish log), or flushed files.
        self._wal = self.settings.fsync and self.settings.fsync_method in ("journal", "log")
        self._publish_log = self.settings.fsync and self.settings.fsync_method == "log"
        self._fsync = self.settings.fsync and self.settings.fsync_method == "files"
        self._fsync_folder = self._fsync and self.settings.fsync_folder
        self._rng = random.Random(os.urandom(16))
        self._lock = threading.RLock()
        self._last_created_us = 0
        self._ready = str(self.path / "ready")
        self._reserved = str(self.path / "reserved")
        self._buried = str(self.path / "buried")
        self._archive = str(self.path / "archive")
        self._spare = str(self.path / "spare")
        self._tmp = str(self.path / "tmp")
        journal = str(self.path / "journal")
        self._logs = str(self.path / "logs")
        folders = [self._ready, self._reserved, self._buried, self._spare, self._tmp, journal,
                   self._logs]
        if self.settings.enable_archive:
            folders.append(self._archive)
        try:
            for folder in folders:
                make_private_folder(Path(folder))
        except OSError as error:
            raise AdapterError(
                f"the file queue cannot create its folder {str(self.path)!r}: "
                f"{error.strerror or error}"
            ) from error
        self._mark_new_queue()
        self._folder_fds: dict[str, int] = {}
        self._journal = Journal(
            journal, self.settings.journal_segment_size, self._fix_mode, self._checkpoint
        )
        self._spares = SparePool(
            self._spare, self.settings.max_spare_files, self.settings.spare_ttl, self._rng
        )
        # The worker side starts on the first dequeue, so publishers and operator commands never
        # pay for building the index.
        self._reading = False
        self._heap: list[tuple[int, int, str]] = []  # ready: (priority, ready time, id)
        self._delayed: list[tuple[int, int, str]] = []  # not yet due: (ready time, priority, id)
        self._index: dict[str, int] = {}  # id -> ready time of its newest heap entry
        self._held: dict[str, str] = {}  # id -> reserved file name, for jobs this adapter claimed
        self._lost: set[str] = set()  # jobs this adapter held whose lease ran out, until settled
        self._next_rescan = 0.0
        self._next_lease_check = 0.0
        self._writer: LogWriter | None = None  # this process's publish log, once it has one
        self._writer_retry_at = 0.0
        self._log_files: dict[int, LogFile] = {}  # every publish log of the queue, by number
        self._logs_mtime = -1
        self._logs_pid = os.getpid()
        self._next_log_sync = 0.0
        self._next_logs_listing = 0.0
        self._log_seen: dict[int, int] = {}  # the position this process last saw, by log
        self._log_warned: dict[int, float] = {}  # when to warn again about a log, by number
        self._closed = False

    @staticmethod
    def _boot() -> str:
        return current_boot_id() or f"booted-at-minute-{int(boot_instant() // 60)}"

    def _mark_new_queue(self) -> None:
        """A new queue has nothing to replay: note the boot it was created in."""
        try:
            fd = open_private(os.path.join(self.path, MARKER), os.O_WRONLY | os.O_EXCL,
                              self._fix_mode)
        except FileExistsError:
            return
        except OSError as error:
            raise AdapterError(
                f"the file queue cannot write in {str(self.path)!r}: {error.strerror or error}"
            ) from error
        try:
            os.write(fd, self._boot().encode("ascii") + b"\n")
        finally:
            os.close(fd)

    # -- files ---------------------------------------------------------------------------

    def _token(self) -> str:
        return f"{self._rng.getrandbits(32):08x}"

    def _folder_fd(self, folder: str) -> int | None:
        """An open descriptor of ``folder`` to fsync, when folder fsync is on."""
        if not self._fsync_folder:
            return None
        fd = self._folder_fds.get(folder)
        if fd is None:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._folder_fds[folder] = fd
        return fd

    def _write(self, folder: str, job_id: str, data: bytes, ready_ns: int) -> None:
        """Write a job (its JSON) as ``folder/<id>.json`` through ``tmp/``: all of it or nothing."""
        self._write_as(os.path.join(folder, job_id + JSON), job_id, data, ready_ns,
                       self._folder_fd(folder))

    def _write_as(
        self, destination: str, job_id: str, data: bytes, ready_ns: int, folder_fd: int | None
    ) -> None:
        with self._lock:
            temporary = os.path.join(self._tmp, f"{job_id}.{self._token()}.tmp")
            spare = self._spares.take()
        write_job_file(
            destination,
            data,
            temporary=temporary,
            spare=spare,
            mtime_ns=ready_ns,
            fsync=self._fsync,
            folder_fd=folder_fd,
            fix_mode=self._fix_mode,
        )

    def _rewrite_and_move(
        self, source: str, folder: str, job_id: str, data: bytes, ready_ns: int
    ) -> None:
        """Record the job's new content (with the journal), put it in place of the claimed
        file ``source`` (one atomic rename over it), then rename that file into ``folder``: a
        process killed at any point leaves one copy of the job, never two that two workers
        could run at once."""
        segment = self._log_intent(job_id, ready_ns, data, buried=folder == self._buried)
        self._write_as(source, job_id, data, ready_ns, None)
        os.rename(source, os.path.join(folder, job_id + JSON))
        self._flush_folder(folder)
        self._flush_if_outlived(segment, folder, [job_id])

    def _flush_folder(self, folder: str) -> None:
        """With ``fsync_method = "files"``: flush ``folder`` after a rename into it."""
        folder_fd = self._folder_fd(folder)
        if folder_fd is not None:
            os.fsync(folder_fd)

    def _log_intent(self, job_id: str, ready_ns: int, data: bytes, buried: bool = False) -> int:
        """With the write-ahead journal: record the job's content and flush, before writing it;
        the record's segment (-1 without the journal), for :meth:`_flush_if_outlived`."""
        if self._wal:
            with self._lock:
                return self._journal.append(
                    intent_line(job_id, ready_ns, data, buried), flush=True
                )
        return -1

    def _flush_if_outlived(self, segment: int, folder: str, job_ids: Sequence[str]) -> None:
        """The jobs' files are written; if the journal moved on so far meanwhile (a long
        stall) that their records' segment may be gone, no replay can restore them: flush them
        instead.

        A checkpoint that removes the segment later than this look flushes the files itself."""
        if segment < 0 or not self._journal.may_be_gone(segment):
            return
        for path in [*(os.path.join(folder, job_id + JSON) for job_id in job_ids), folder]:
            flush(path)

    def _log_gone(self, job_id: str, flush: bool = False) -> None:
        """With the write-ahead journal: record that the job is done or deleted."""
        if self._wal:
            try:
                with self._lock:
                    self._journal.append(gone_line(job_id), flush=flush)
            except OSError as error:
                log.warning("could not record in the journal that job %s is gone: %s",
                            job_id, error.strerror or error)

    def _checkpoint(self) -> bool:
        """Make every job file written so far durable, before old journal segments go; refuse
        (``False``: they stay) until a worker has replayed the journal since the last reboot,
        since their records may be all that is left of jobs a power cut took the files of."""
        try:
            with open(os.path.join(self.path, MARKER), "rb") as marker:
                if not self._is_this_boot(marker.read()):
                    return False
        except OSError:
            return False
        logs = self._known_logs()
        materialized = {number: log_file.positions()[0] for number, log_file in logs.items()}
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            sync_file_system(fd)
        finally:
            os.close(fd)
        for number, position in materialized.items():
            logs[number].set_synced(position)  # their files are on disk: the slots may be reused
        return True

    def _is_this_boot(self, marker: bytes) -> bool:
        """Whether the marker's content (the boot the queue was last recovered in) is now's."""
        return marker.decode("ascii", errors="replace").strip() == self._boot()

    def _discard(self, path: str, job_id: str) -> None:
        """A job's file is no longer needed: keep it as a spare (or delete it)."""
        with contextlib.suppress(FileNotFoundError):
            self._spares.give(path, job_id, self._token())

    def _announce(self, job_id: str, ready_ns: int) -> None:
        """Tell every worker (through the journal, and this one at once) the job is ready."""
        with self._lock:
            if self._reading:
                self._note(job_id, ready_ns)
            try:
                self._journal.append(ready_line(job_id, ready_ns))
            except OSError as error:
                # The job is safely in ready/; other workers find it when they next rescan.
                log.warning("job %s is queued but the journal could not record it (%s); "
                            "workers will find it on their next rescan", job_id,
                            error.strerror or error)

    def _read(self, path: str) -> tuple[Message, int]:
        """The message in a job file and the file's mtime; ``_Unreadable`` when it is not one.

        :raises FileNotFoundError: when there is no such file.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise _Unreadable(f"the file cannot be opened: {error.strerror or error}") from None
        try:
            status = os.fstat(fd)
            data = os.read(fd, status.st_size + 1)
            if len(data) > status.st_size:  # it grew since the fstat: read the rest
                while chunk := os.read(fd, 1 << 16):
                    data += chunk
        except OSError as error:
            raise _Unreadable(f"the file cannot be read: {error.strerror or error}") from None
        finally:
            os.close(fd)
        try:
            return Message.from_json(data), status.st_mtime_ns
        except Exception as error:
            raise _Unreadable(f"the file is not a job: {error}") from None

    def _now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def _ttr_of(self, message: Message) -> int:
        return message.ttr or self.default_ttr

    @staticmethod
    def _ready_time(job_id: str, message: Message) -> int:
        """When a job written by ``publish`` is due: its delay, else its creation time."""
        if message.delay is not None:
            return int(message.delay.timestamp() * 1e9)
        return int(job_id[:16], 16) * 1000

    # -- publishing ----------------------------------------------------------------------

    def enqueue_unique(self, message: Message) -> tuple[Message, bool]:
        """Queue the message unless a live job holds its unique key (see ``pulpo_file.unique``)."""
        return UniqueClaims(self.path / "unique").enqueue_unique(message, self.peek, self.enqueue)

    def unique_holder(self, key: str) -> str | None:
        """The id of the job that holds the unique ``key``, or ``None``."""
        held = UniqueClaims(self.path / "unique").holder(key, self.peek)
        return None if held is None else held.id

    def enqueue(self, message: Message) -> Message:
        """Write the job to ``ready/`` (flushed to disk with ``fsync``) and return it with its id.

        :raises AdapterError: when the job cannot be written (disk full, read-only folder); no
            partial file is left behind.
        """
        priority = DEFAULT_PRIORITY if message.priority is None else message.priority
        with self._lock:
            self._check_open()
            created_us = max(time.time_ns() // 1000, self._last_created_us + 1)
            self._last_created_us = created_us
            job_id = make_id(created_us, priority, self._rng.getrandbits(32))
        message = message.with_id(job_id)
        ready_ns = self._ready_time(job_id, message)
        data = message.to_json().encode("utf-8")
        try:
            if self._publish_log and self._publish_to_log(job_id, ready_ns, data):
                return message
            segment = self._log_intent(job_id, ready_ns, data)
            try:
                self._write(self._ready, job_id, data, ready_ns)
            except BaseException:
                self._log_gone(job_id, flush=True)  # the recorded intent must not come true
                raise
            self._flush_if_outlived(segment, self._ready, [job_id])
        except OSError as error:
            raise AdapterError(
                f"the file queue could not store a job in {self._ready!r}: "
                f"{error.strerror or error}"
            ) from error
        self._announce(job_id, ready_ns)
        return message

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """Queue several jobs; with ``fsync`` their records are flushed together, once.

        :raises AdapterError: when nothing could be queued.
        :raises PartialEnqueue: when some jobs were written and the others not (it lists them).
        """
        batch: list[tuple[str, Message, int, bytes]] = []
        with self._lock:
            self._check_open()
            for message in messages:
                priority = DEFAULT_PRIORITY if message.priority is None else message.priority
                created_us = max(time.time_ns() // 1000, self._last_created_us + 1)
                self._last_created_us = created_us
                job_id = make_id(created_us, priority, self._rng.getrandbits(32))
                message = message.with_id(job_id)
                ready_ns = self._ready_time(job_id, message)
                batch.append((job_id, message, ready_ns, message.to_json().encode("utf-8")))
        if not batch:
            return []
        segment = -1
        try:
            if self._wal:
                lines = b"".join(intent_line(j, r, d) for j, _, r, d in batch)
                with self._lock:
                    segment = self._journal.append(lines, flush=True)
        except OSError as error:
            raise AdapterError(
                f"the file queue could not record {len(batch)} jobs in its journal: "
                f"{error.strerror or error}"
            ) from error
        queued: list[Message] = []
        for number, (job_id, message, ready_ns, data) in enumerate(batch):
            try:
                self._write(self._ready, job_id, data, ready_ns)
            except OSError as error:
                for later_id, *_ in batch[number:]:
                    self._log_gone(later_id, flush=later_id == batch[-1][0])
                self._announce_all([(j, r) for j, _, r, _ in batch[:number]])
                raise PartialEnqueue(
                    f"the file queue stored {number} of {len(batch)} jobs in {self._ready!r}, "
                    f"then failed: {error.strerror or error}",
                    [*queued, *([None] * (len(batch) - number))],
                ) from error
            queued.append(message)
        try:
            self._flush_if_outlived(segment, self._ready, [job_id for job_id, *_ in batch])
        except OSError as error:
            log.warning("%d jobs are queued but could not be flushed after a long stall (%s)",
                        len(batch), error.strerror or error)
        self._announce_all([(job_id, ready_ns) for job_id, _, ready_ns, _ in batch])
        return queued

    # -- publish logs (fsync_method = "log") -------------------------------------------

    def _publish_to_log(self, job_id: str, ready_ns: int, data: bytes) -> bool:
        """Write the job as one flushed record into this process's publish log; ``False``
        (nothing written) when it cannot go there: the journal takes it instead."""
        with self._lock:
            writer = self._log_writer()
            if writer is None:
                return False
            if not writer.has_room():
                materialized, synced = writer.log.positions()
                if materialized > synced:
                    self._checkpoint()  # workers made files of it, not flushed yet: flush them
            if not writer.has_room():  # workers have not caught up: another log, or a new one
                writer.close()
                self._writer = None
                writer = self._log_writer()
                if writer is None:
                    return False
            return writer.append(job_id, ready_ns, data)

    def _log_writer(self) -> LogWriter | None:
        writer = self._writer
        if writer is not None and writer.pid == os.getpid():
            return writer
        if writer is not None:  # inherited from the parent process, whose log it stays
            writer.close()
            self._writer = None
        if time.monotonic() < self._writer_retry_at:
            return None
        try:
            self._writer = LogWriter.open(
                self._logs, self.settings.publish_log_size, self._fix_mode
            )
        except OSError as error:
            log.warning("no publish log in %s (%s): single publishes use the journal",
                        self._logs, error.strerror or error)
            self._writer_retry_at = time.monotonic() + LOG_RETRY_S
            return None
        return self._writer

    def _known_logs(self) -> dict[int, LogFile]:
        """Every publish log of the queue, opened for reading (listed again when the folder
        changed, and every ``rescan_interval`` in case a change fell within one clock tick)."""
        if self._logs_pid != os.getpid():
            # Inherited from the parent process: a lock taken through its descriptors would be
            # the parent's lock too, so this process opens the logs again.
            for log_file in self._log_files.values():
                log_file.close()
            self._log_files.clear()
            self._logs_mtime, self._logs_pid = -1, os.getpid()
        mtime = os.stat(self._logs).st_mtime_ns
        now = time.monotonic()
        if mtime != self._logs_mtime or now >= self._next_logs_listing:
            self._logs_mtime = mtime
            self._next_logs_listing = now + self.settings.rescan_interval
            for number in log_numbers(self._logs):
                if number in self._log_files:
                    continue
                try:
                    self._log_files[number] = LogFile(self._logs, number, self._fix_mode)
                except FileNotFoundError:
                    continue
                except OSError as error:
                    self._warn_about_log(number, f"the publish log {self._logs}/{number}.log "
                                                 f"cannot be read ({error.strerror or error})")
        return self._log_files

    def _warn_about_log(self, number: int, text: str) -> None:
        """Log ``text`` about a publish log, once a minute at most."""
        now = time.monotonic()
        if now >= self._log_warned.get(number, 0.0):
            self._log_warned[number] = now + 60.0
            log.warning("%s", text)

    def _materialize_logs(self, wait: bool) -> None:
        """Make files of the jobs waiting in publish logs (skipping a log another process is
        at, unless ``wait``), so that they are in ``ready/`` and announced."""
        for number, log_file in list(self._known_logs().items()):
            try:
                position, synced = log_file.positions()
                moved = self._log_seen.get(number) != position  # (recorded under its lock)
                if not wait and not moved and log_file.read(position) is None:  # nothing new
                    if position > synced and time.monotonic() >= self._next_log_sync:
                        # Quiet now: flush the files made, so that publishers reuse the slots.
                        self._next_log_sync = time.monotonic() + LOG_SYNC_INTERVAL_S
                        self._checkpoint()
                    continue
                # (Another process moved the position: it may have died before its rename.)
                self._materialize(log_file, wait)
            except OSError as error:
                self._warn_about_log(number, f"jobs in the publish log {log_file.path} cannot "
                                             f"be queued yet ({error.strerror or error}); they "
                                             f"stay safe in the log")

    def _materialize(
        self, log_file: LogFile, wait: bool, replay_skipping: set[str] | None = None
    ) -> None:
        """Make files of the log's records not yet made files.

        Each goes to ``tmp/<id>.pending``, then the log's position moves past it, then it is
        renamed into ``ready/``: a process killed anywhere leaves it made once, or to be made
        (by whoever materializes next, which first finishes a pending rename). With
        ``replay_skipping`` (after a reboot) take every record from the last flushed position
        on, wherever it is in the log, skipping the ids given (gone or reserved) and the jobs
        that are files.
        """
        with log_file.materializing(wait) as mine:
            if not mine:
                return
            position, synced = log_file.positions()
            entries: Iterable[Entry]
            if replay_skipping is not None:
                # Every record from the last flushed position on, wherever it is in the log.
                position = synced
                log_file.set_materialized(position)
                entries = log_file.all_from(synced)
            else:
                if position:
                    # Its last materializer may have died between the position and the rename.
                    last = log_file.read(position - 1)
                    if last is not None and is_id(last.job_id):
                        self._finish_pending(last.job_id, last.ready_ns)
                entries = log_file.entries(position)
            for entry in entries:
                job_id, position = entry.job_id, entry.seq + 1
                skipped = replay_skipping is not None and (
                    job_id in replay_skipping or self._exists(job_id)
                )
                if skipped or not is_id(job_id):
                    log_file.set_materialized(position)
                    continue
                pending = os.path.join(self._tmp, job_id + PENDING)
                self._write_as(pending, job_id, entry.data, entry.ready_ns, None)
                log_file.set_materialized(position)
                self._finish_pending(job_id, entry.ready_ns)
            self._log_seen[log_file.number] = position
        if position - synced >= log_file.slots // 2:
            self._checkpoint()  # the flushed files free the log's slots for its publisher

    def _finish_pending(self, job_id: str, ready_ns: int) -> None:
        """Rename ``tmp/<id>.pending`` into ``ready/`` and announce it (unless it is gone:
        another process finished it)."""
        try:
            os.rename(os.path.join(self._tmp, job_id + PENDING),
                      os.path.join(self._ready, job_id + JSON))
        except FileNotFoundError:
            return
        self._announce(job_id, ready_ns)

    def _materialize_waiting(self) -> None:
        """Before looking at the folders (peek, delete, stats): every job in a publish log
        becomes a file first, so none is missed (on a queue this process may only read, the
        jobs still in a log are not seen: a warning says so)."""
        with self._lock:
            self._materialize_logs(wait=True)

    def _announce_all(self, entries: list[tuple[str, int]]) -> None:
        """``_announce`` for many jobs, in one journal write."""
        if not entries:
            return
        with self._lock:
            if self._reading:
                for job_id, ready_ns in entries:
                    self._note(job_id, ready_ns)
            try:
                self._journal.append(b"".join(ready_line(j, r) for j, r in entries))
            except OSError as error:
                log.warning("%d jobs are queued but the journal could not record them (%s); "
                            "workers will find them on their next rescan", len(entries),
                            error.strerror or error)

    # -- the worker's index --------------------------------------------------------------

    def _note(self, job_id: str, ready_ns: int, now_ns: int | None = None) -> None:
        """Index the job at its ready time, on the ready or the delayed heap as of ``now_ns``
        (the clock when None)."""
        if self._index.get(job_id) == ready_ns:
            return
        self._index[job_id] = ready_ns
        if ready_ns > (time.time_ns() if now_ns is None else now_ns):
            heapq.heappush(self._delayed, (ready_ns, priority_of(job_id), job_id))
        else:
            heapq.heappush(self._heap, (priority_of(job_id), ready_ns, job_id))

    def _promote(self, now_ns: int) -> None:
        """Move the delayed jobs that are due now to the ready heap."""
        delayed, heap, index = self._delayed, self._heap, self._index
        while delayed and delayed[0][0] <= now_ns:
            ready_ns, priority, job_id = heapq.heappop(delayed)
            if index.get(job_id) == ready_ns:
                heapq.heappush(heap, (priority, ready_ns, job_id))

    def _start_reading(self) -> None:
        # First: what is published from now on is read from the journal.
        position = self._journal.start_reading()
        self._reading = True
        self._recover_after_reboot(position)
        self._materialize_logs(wait=True)
        self._remove_stale_temporaries()
        self._rescan()

    def _rescan(self) -> None:
        """Rebuild the index from the names and mtimes in ``ready/`` (no file is opened)."""
        heap: list[tuple[int, int, str]] = []
        delayed: list[tuple[int, int, str]] = []
        index: dict[str, int] = {}
        foreign = []
        now_ns = time.time_ns()
        with os.scandir(self._ready) as entries:
            for entry in entries:
                name = entry.name
                job_id = name[: -len(JSON)]
                if not name.endswith(JSON) or not is_id(job_id):
                    foreign.append(name)
                    continue
                try:
                    ready_ns = entry.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                index[job_id] = ready_ns
                if ready_ns > now_ns:
                    delayed.append((ready_ns, priority_of(job_id), job_id))
                else:
                    heap.append((priority_of(job_id), ready_ns, job_id))
        heapq.heapify(heap)
        heapq.heapify(delayed)
        self._heap, self._delayed, self._index = heap, delayed, index
        self._next_rescan = time.monotonic() + self.settings.rescan_interval
        for name in foreign:
            self._set_aside(
                os.path.join(self._ready, name), name, "the file name is not a job id"
            )
        self._spares.trim()

    def _remove_stale_temporaries(self) -> None:
        """Remove what writers that died long ago left in ``tmp/`` (but see
        :meth:`_restore_pending`)."""
        self._restore_pending(int((time.time() - STALE_TEMPORARY_S) * 1e9), remove_others=True)

    def _restore_pending(self, before_ns: int, remove_others: bool = False) -> None:
        """A job taken from a publish log whose rename into ``ready/`` was lost (a power cut,
        or a process that died long ago) is a whole job: it goes to ``ready/``, unless it
        lives on elsewhere. Only files changed before ``before_ns``: none is still being
        written. With ``remove_others``, the other files changed before then go."""
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                job_id = entry.name[: -len(PENDING)]
                pending = entry.name.endswith(PENDING)
                if pending and not is_id(job_id):
                    continue  # not a name this adapter writes: left alone
                with contextlib.suppress(OSError):
                    status = entry.stat()
                    if status.st_ctime_ns >= before_ns or not (pending or remove_others):
                        continue
                    if not pending or self._exists(job_id) or self._reserved_anywhere(job_id):
                        os.unlink(entry.path)
                    else:
                        self._finish_pending(job_id, status.st_mtime_ns)

    def _refresh(self) -> None:
        if not self._reading:
            self._start_reading()
        self._materialize_logs(wait=False)
        entries, gap = self._journal.read()
        for job_id, ready_ns in entries:
            self._note(job_id, ready_ns)
        now = time.monotonic()
        if gap or now >= self._next_rescan:
            self._rescan()
        if now >= self._next_lease_check:
            self._next_lease_check = now + self.settings.lease_check_interval
            self._expire_leases()

    # -- claiming ------------------------------------------------------------------------

    def dequeue(self) -> Message | None:
        """Claim the next ready job (priority, then ready time, then age); ``None`` if none.

        Delayed jobs are invisible until due, whatever their priority.
        """
        with self._lock:
            self._check_open()
            try:
                self._refresh()
                now_ns = time.time_ns()
                self._promote(now_ns)
                heap, index = self._heap, self._index
                while heap:
                    _, ready_ns, job_id = heapq.heappop(heap)
                    if index.get(job_id) != ready_ns:
                        continue  # superseded by a newer entry for the same job
                    del index[job_id]
                    message = self._claim(job_id, now_ns)
                    if message is not None:
                        return message
                return None
            except OSError as error:
                raise AdapterError(
                    f"the file queue in {str(self.path)!r} could not be read: "
                    f"{error.strerror or error}"
                ) from error

    def _claim(self, job_id: str, now_ns: int) -> Message | None:
        token = self._token()
        name = _reserved_name(job_id, now_ns // 1_000_000 + self.default_ttr * 1000, token)
        path = os.path.join(self._reserved, name)
        try:
            os.rename(os.path.join(self._ready, job_id + JSON), path)
        except FileNotFoundError:
            return None  # another worker took it, or it was deleted
        try:
            message, mtime_ns = self._read(path)
        except _Unreadable as error:
            self._set_aside(path, job_id + JSON, str(error))
            return None
        if self._misplaced(path, job_id, message):
            return None
        # The file's modification time is the job's ready time, the only one that counts (the
        # header's delay keeps the moment the job was published for; an operator may `touch`).
        if mtime_ns > now_ns:
            # Our entry was out of date: the job was retried with a delay since. Put it back;
            # the entry for its new ready time is (or will be) in the index.
            # It goes on the delayed heap as of `now_ns`, whatever the clock says by now: a job
            # due between then and now must not come round again in this dequeue.
            os.rename(path, os.path.join(self._ready, job_id + JSON))
            self._note(job_id, mtime_ns, now_ns)
            return None
        ttr = self._ttr_of(message)
        if ttr != self.default_ttr:
            renamed = _reserved_name(job_id, now_ns // 1_000_000 + ttr * 1000, token)
            os.rename(path, os.path.join(self._reserved, renamed))
            name = renamed
        self._held[job_id] = name
        self._lost.discard(job_id)
        if message.id != job_id or message.ttr is None:
            message = attrs.evolve(message, id=job_id, ttr=ttr)
        return message

    def _misplaced(self, path: str, job_id: str, message: Message) -> bool:
        """Put right a file holding another job than its name says (only after a power cut).

        The file was reused for a newer job whose data reached the disk while the renames that
        moved it did not; the job its name says was finished before it was reused.
        """
        if message.id is None or message.id == job_id or not is_id(message.id):
            return False
        self._restore(path, message)
        return True

    def _set_aside(self, path: str, name: str, reason: str) -> None:
        """Move an unreadable file to ``buried/`` with a ``.reason`` next to it; never delete,
        nor replace a file set aside before (the later one gets a suffix)."""
        log.warning("job file %s is set aside as buried: %s", path, reason)
        destination = os.path.join(self._buried, name)
        while True:
            try:
                os.link(path, destination)  # unlike a rename, never replaces what is there
                break
            except FileExistsError:
                destination = os.path.join(self._buried, f"{name}.{self._token()}")
            except FileNotFoundError:
                return  # moved or removed by another process meanwhile
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        try:
            with open(
                open_private(destination + REASON, os.O_WRONLY | os.O_TRUNC, self._fix_mode),
                "w",
                encoding="utf-8",
            ) as note:
                note.write(reason + "\n")
        except OSError as error:
            log.warning("could not write the reason next to %s: %s", destination, error)

    # -- leases --------------------------------------------------------------------------

    def _reserved_anywhere(self, job_id: str) -> bool:
        """Whether any process (this one or another) has a claim on the job."""
        if job_id in self._held:
            return True
        return any(name.startswith(job_id + ".") for name in os.listdir(self._reserved))

    def _not_held(self, job_id: str, verb: str) -> None:
        """Warn that a job this adapter does not hold (any more) cannot be ``verb``."""
        if job_id in self._lost:
            self._lost.discard(job_id)
            log.warning("job %s cannot be %s: its lease ran out and it went back to the queue, "
                        "so it may run again", job_id, verb)
        else:
            log.warning("job %s cannot be %s: this worker does not hold it (it was not "
                        "dequeued here, or it was already settled); nothing was changed",
                        job_id, verb)

    def touch(self, message: Message) -> None:
        """Extend the lease on a job this adapter reserved by another ``ttr`` seconds."""
        job_id = check_id(message.id)
        with self._lock:
            name = self._held.get(job_id)
            if name is None:
                raise AdapterError(f"job {job_id!r} is not reserved by this worker")
            parsed = _parse_reserved(name)
            assert parsed is not None
            renewed = _reserved_name(job_id, self._now_ms() + self._ttr_of(message) * 1000,
                                     parsed[2])
            if renewed == name:
                return
            try:
                os.rename(os.path.join(self._reserved, name),
                          os.path.join(self._reserved, renewed))
            except FileNotFoundError:
                del self._held[job_id]
                self._lost.add(job_id)
                raise AdapterError(
                    f"job {job_id!r} is no longer reserved by this worker (its lease ran out "
                    f"or it was deleted)"
                ) from None
            except OSError as error:
                raise AdapterError(
                    f"the lease of job {job_id!r} could not be renewed: {error.strerror or error}"
                ) from error
            self._held[job_id] = renewed

    def _expire_leases(self) -> None:
        """Put every job whose lease ran out back in ``ready/`` with ``attempts + 1``."""
        now_ms = self._now_ms()
        for name in os.listdir(self._reserved):
            parsed = _parse_reserved(name)
            if parsed is None or parsed[1] >= now_ms:
                continue
            job_id = parsed[0]
            claimed = os.path.join(
                self._reserved, _reserved_name(job_id, now_ms + MOVE_LEASE_MS, self._token())
            )
            try:
                os.rename(os.path.join(self._reserved, name), claimed)
            except FileNotFoundError:
                continue  # renewed, settled or taken by another process meanwhile
            if self._held.get(job_id) == name:
                del self._held[job_id]
                self._lost.add(job_id)
            try:
                message, _ = self._read(claimed)
            except _Unreadable as error:
                self._set_aside(claimed, job_id + JSON, str(error))
                continue
            except FileNotFoundError:
                continue
            if self._misplaced(claimed, job_id, message):
                continue
            log.warning("the lease of job %s ran out (its worker died or hung): back to ready",
                        job_id)
            message = attrs.evolve(
                _without_reason(message), id=job_id, attempts=message.attempts + 1
            )
            self._move_to_ready(job_id, message, time.time_ns(), claimed)

    def _move_to_ready(self, job_id: str, message: Message, ready_ns: int, source: str) -> None:
        """Move the job from ``source`` to ``ready/`` with new content, and announce it."""
        data = message.to_json().encode("utf-8")
        self._rewrite_and_move(source, self._ready, job_id, data, ready_ns)
        self._announce(job_id, ready_ns)

    # -- settling ------------------------------------------------------------------------

    def _take_back(self, job_id: str, verb: str) -> str | None:
        """Renew the lease just before settling, so a lease that ran out is noticed.

        Only this adapter's own claim of the job (recorded when it dequeued it) is taken; when
        there is none, a warning names the job and ``None`` is returned: nothing is touched.
        """
        name = self._held.get(job_id)
        if name is None:
            self._not_held(job_id, verb)
            return None
        parsed = _parse_reserved(name)
        assert parsed is not None
        renewed = _reserved_name(job_id, self._now_ms() + MOVE_LEASE_MS, parsed[2])
        try:
            os.rename(os.path.join(self._reserved, name), os.path.join(self._reserved, renewed))
        except FileNotFoundError:
            self._held.pop(job_id, None)
            log.warning("job %s cannot be %s: its lease ran out (or it was deleted) and it "
                        "went back to the queue, so it may run again", job_id, verb)
            return None
        self._held[job_id] = renewed
        return os.path.join(self._reserved, renewed)

    def _exists(self, job_id: str) -> bool:
        return os.path.exists(os.path.join(self._ready, job_id + JSON)) or os.path.exists(
            os.path.join(self._buried, job_id + JSON)
        )

    def commit(self, message: Message) -> None:
        """The job is done: remove it (to ``archive/`` with ``enable_archive``).

        Not flushed to disk: a commit lost in a power cut runs the job again (at-least-once).
        """
        job_id = check_id(message.id)
        with self._lock:
            self._check_open()
            try:
                name = self._held.get(job_id)
                if name is None:
                    self._not_held(job_id, "committed")
                    return
                path = os.path.join(self._reserved, name)
                try:
                    if self.settings.enable_archive:
                        os.rename(path, os.path.join(self._archive, job_id + JSON))
                    else:
                        self._spares.give(path, job_id, self._token())
                    self._log_gone(job_id)
                except FileNotFoundError:
                    log.warning("job %s finished after its lease ran out (or it was deleted); "
                                "it went back to the queue and may run again", job_id)
                finally:
                    self._held.pop(job_id, None)
            except OSError as error:
                raise AdapterError(
                    f"job {job_id!r} could not be committed: {error.strerror or error}"
                ) from error

    def rollback(self, message: Message, delay: float = 0) -> None:
        """Back to ``ready/`` after ``delay`` seconds with ``attempts + 1``."""
        job_id = check_id(message.id)
        with self._lock:
            self._check_open()
            try:
                source = self._take_back(job_id, "retried")
                if source is None:
                    return
                retried = attrs.evolve(_without_reason(message), attempts=message.attempts + 1)
                ready_ns = time.time_ns() + int(max(0.0, delay) * 1e9)
                self._move_to_ready(job_id, retried, ready_ns, source)
                self._held.pop(job_id, None)
            except OSError as error:
                raise AdapterError(
                    f"job {job_id!r} could not be released: {error.strerror or error}"
                ) from error

    def release(self, message: Message) -> None:
        """Give a job this adapter holds back to ready at once, unrun and unchanged.

        Its attempts stay as they were and it keeps its ready time, so it takes its old place
        among the jobs of its priority. Used by a worker that was asked to stop after it had
        dequeued the job. A job this adapter does not hold (any more) is left alone, with a
        warning.
        """
        job_id = check_id(message.id)
        with self._lock:
            self._check_open()
            try:
                path = self._take_back(job_id, "released")
                if path is None:
                    return
                mtime_ns = os.stat(path).st_mtime_ns
                ready_ns = min(mtime_ns, time.time_ns())
                if ready_ns != mtime_ns:  # the clock went back: ready now, not later
                    os.utime(path, ns=(ready_ns, ready_ns))
                os.rename(path, os.path.join(self._ready, job_id + JSON))
                self._held.pop(job_id, None)
                self._flush_folder(self._ready)
            except OSError as error:
                raise AdapterError(
                    f"job {job_id!r} could not be released: {error.strerror or error}"
                ) from error
            self._announce(job_id, ready_ns)

    def bury(self, message: Message, reason: str) -> None:
        """Move the job to ``buried/``; ``peek`` shows ``reason`` as header ``buried_reason``."""
        job_id = check_id(message.id)
        with self._lock:
            self._check_open()
            try:
                source = self._take_back(job_id, "buried")
                if source is None:
                    return
                buried = attrs.evolve(
                    message, extra_header={**message.extra_header, BURIED_REASON: reason}
                )
                data = buried.to_json().encode("utf-8")
                now_ns = time.time_ns()
                self._rewrite_and_move(source, self._buried, job_id, data, now_ns)
                self._held.pop(job_id, None)
            except OSError as error:
                raise AdapterError(
                    f"job {job_id!r} could not be buried: {error.strerror or error}"
                ) from error

    # -- operating -----------------------------------------------------------------------

    def peek(self, message_id: str) -> Message | None:
        """The job in any live state (ready, delayed, reserved, buried); ``None`` if unknown.

        :raises ValueError: when ``message_id`` is not a file queue id.
        """
        job_id = check_id(message_id)
        try:
            self._materialize_waiting()
            for _ in range(2):  # a job moving between folders is found on the second round
                for path in self._candidates(job_id):
                    found = self._peek_file(job_id, path)
                    if found is not None:
                        return found
        except OSError as error:
            raise AdapterError(
                f"job {job_id!r} could not be read: {error.strerror or error}"
            ) from error
        return None

    def _candidates(self, job_id: str) -> list[str]:
        paths = [os.path.join(self._ready, job_id + JSON)]
        paths += [
            os.path.join(self._reserved, name)
            for name in os.listdir(self._reserved)
            if name.startswith(job_id + ".")
        ]
        paths.append(os.path.join(self._buried, job_id + JSON))
        return paths

    def _peek_file(self, job_id: str, path: str) -> Message | None:
        try:
            message, _ = self._read(path)
        except FileNotFoundError:
            return None
        except _Unreadable as error:
            reason = self._reason_of(path) or str(error)
            raw = self._raw(path)
            if raw is None:
                return None
            return Message(id=job_id, body={"raw": raw}, extra_header={BURIED_REASON: reason})
        if message.id != job_id:
            return None  # the file holds another job (see _misplaced)
        return message

    @staticmethod
    def _reason_of(path: str) -> str | None:
        try:
            with open(path + REASON, encoding="utf-8", errors="replace") as note:
                return note.read().strip()
        except OSError:
            return None

    @staticmethod
    def _raw(path: str) -> str | None:
        try:
            with open(path, "rb") as file:
                return file.read(64 * 1024).decode("utf-8", errors="replace").rstrip()
        except OSError:
            return None

    def delete(self, message_id: str) -> bool:
        """Delete the job in any state; ``False`` when there is no such job.

        :raises ValueError: when ``message_id`` is not a file queue id.
        """
        job_id = check_id(message_id)
        with self._lock:
            try:
                self._materialize_waiting()
                for _ in range(2):
                    for path in self._candidates(job_id):
                        try:
                            os.unlink(path)
                        except FileNotFoundError:
                            continue
                        folder_fd = self._folder_fd(os.path.dirname(path))
                        if folder_fd is not None:
                            os.fsync(folder_fd)
                        if path.startswith(self._buried):
                            self._remove_reason(path)
                        self._held.pop(job_id, None)
                        self._log_gone(job_id, flush=True)
                        return True
            except OSError as error:
                raise AdapterError(
                    f"job {job_id!r} could not be deleted: {error.strerror or error}"
                ) from error
        return False

    @staticmethod
    def _remove_reason(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + REASON)

    def kick(self, bound: int | None = None) -> int:
        """Move up to ``bound`` buried jobs (all when ``None``), oldest first, back to ready.

        A buried file that still cannot be read stays buried (fix it by hand, then kick).
        """
        kicked = 0
        with self._lock:
            self._check_open()
            try:
                names = sorted(
                    name for name in os.listdir(self._buried)
                    if name.endswith(JSON) and is_id(name[: -len(JSON)])
                )
                for name in names:
                    if bound is not None and kicked >= bound:
                        break
                    if self._kick_one(name):
                        kicked += 1
            except OSError as error:
                raise AdapterError(
                    f"buried jobs could not be kicked: {error.strerror or error}"
                ) from error
        return kicked

    def _kick_one(self, name: str) -> bool:
        job_id = name[: -len(JSON)]
        buried = os.path.join(self._buried, name)
        claimed = os.path.join(
            self._reserved,
            _reserved_name(job_id, self._now_ms() + MOVE_LEASE_MS, self._token()),
        )
        try:
            os.rename(buried, claimed)
        except FileNotFoundError:
            return False  # kicked or deleted by another process
        try:
            message, _ = self._read(claimed)
        except (_Unreadable, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.rename(claimed, buried)
            return False
        if self._misplaced(claimed, job_id, message):
            return False
        self._move_to_ready(job_id, _without_reason(message), time.time_ns(), claimed)
        self._remove_reason(buried)
        return True

    def stats(self) -> dict[str, int]:
        """Counts by state, from file names and modification times alone (no file is read).

        ``ready``, ``delayed``, ``reserved``, ``buried``, ``total``, ``spare`` (files kept for
        reuse); with ``enable_archive`` also ``archived``.
        """
        try:
            self._materialize_waiting()
            now_ns = time.time_ns()
            ready = delayed = 0
            with os.scandir(self._ready) as entries:
                for entry in entries:
                    try:
                        if entry.stat().st_mtime_ns > now_ns:
                            delayed += 1
                        else:
                            ready += 1
                    except FileNotFoundError:
                        continue
            reserved = len(os.listdir(self._reserved))
            buried = sum(not name.endswith(REASON) for name in os.listdir(self._buried))
            counts = {
                "ready": ready,
                "delayed": delayed,
                "reserved": reserved,
                "buried": buried,
                "total": ready + delayed + reserved + buried,
                "spare": len(os.listdir(self._spare)),
            }
            if self.settings.enable_archive:
                counts["archived"] = len(os.listdir(self._archive))
            return counts
        except OSError as error:
            raise AdapterError(
                f"the file queue in {str(self.path)!r} could not be counted: "
                f"{error.strerror or error}"
            ) from error

    # -- recovery ------------------------------------------------------------------------

    def _recover_after_reboot(self, until: tuple[int, int]) -> None:
        """After a reboot, replay the write-ahead records of the journal (up to ``until``).

        Jobs flushed to the journal but whose files a power cut lost or damaged are written
        again from their records, and jobs recorded as gone are removed. Only the first worker
        after a reboot replays (the others wait on the marker's lock, then find it up to date).
        """
        boot = self._boot()
        marker = os.path.join(self.path, MARKER)
        fd = open_private(marker, os.O_RDWR, self._fix_mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self._is_this_boot(os.read(fd, 4096)):
                return
            # A record written since the boot is a live process's: its publish may be writing
            # the job's file right now, and must not meet a copy written by the replay.
            booted_ns = int(boot_instant() * 1e9)
            last: dict[str, Record] = {}
            for record in self._journal.records(until):
                if record.time_ns >= booted_ns and record.kind != GONE:
                    continue  # (that a job is gone holds whenever it was recorded)
                known = last.get(record.job_id)
                if known is None or record.time_ns >= known.time_ns:
                    last[record.job_id] = record
            replayed = sum(self._replay(record) for record in last.values())
            if replayed:
                log.warning("restored %d job(s) from the journal after a reboot", replayed)
            # Jobs published into publish logs since their last flushed position: made files
            # again where a power cut took their files (not those the journal says are gone).
            skipping = {job_id for job_id, record in last.items() if record.kind == GONE}
            skipping.update(parsed[0] for name in os.listdir(self._reserved)
                            if (parsed := _parse_reserved(name)) is not None)
            for log_file in list(self._known_logs().values()):
                self._materialize(log_file, wait=True, replay_skipping=skipping)
            self._restore_pending(before_ns=booted_ns)
            os.ftruncate(fd, 0)
            os.pwrite(fd, boot.encode("ascii") + b"\n", 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _replay(self, record: Record) -> bool:
        """Make the files agree with a job's last record; whether anything was changed."""
        job_id = record.job_id
        if os.path.exists(os.path.join(self._buried, job_id + JSON + REASON)):
            return False  # set aside as unreadable before the reboot: left for the operator
        copies: list[tuple[str, bool]] = []  # (path, holds this job readably)
        for path in self._candidates(job_id):
            try:
                message, _ = self._read(path)
            except FileNotFoundError:
                continue
            except _Unreadable:
                copies.append((path, False))
                continue
            if message.id in (None, job_id):
                copies.append((path, True))
        if record.kind == GONE:
            for path, _ in copies:
                self._discard(path, job_id)
            return bool(copies)
        assert record.job is not None
        try:
            if Message.from_json(record.job).id != job_id:
                return False
        except ValueError:
            return False  # cut short by the power cut: that publish never returned
        buried = record.kind == BURIED
        expected = (self._buried,) if buried else (self._ready, self._reserved)
        if any(ok and os.path.dirname(path) in expected for path, ok in copies):
            return False
        folder = self._buried if buried else self._ready
        self._write(folder, job_id, record.job, record.ready_ns)
        destination = os.path.join(folder, job_id + JSON)
        for path, _ in copies:
            if path != destination:
                self._discard(path, job_id)
        if not buried:
            self._announce(job_id, record.ready_ns)
        return True

    def _restore(self, path: str, message: Message) -> None:
        """Move the file at ``path`` to where its content (job ``message.id``) belongs."""
        job_id = check_id(message.id)
        log.warning("job file %s holds job %s (renames lost in a power cut): moving it",
                    path, job_id)
        if self._exists(job_id) or self._reserved_anywhere(job_id):
            self._discard(path, job_id)  # the job lives on under its own name; this is older
            return
        buried = BURIED_REASON in message.extra_header
        folder = self._buried if buried else self._ready
        ready_ns = self._ready_time(job_id, message)
        os.utime(path, ns=(ready_ns, ready_ns))
        os.rename(path, os.path.join(folder, job_id + JSON))
        if not buried:
            self._announce(job_id, ready_ns)

    # -- closing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError(f"the file queue in {str(self.path)!r} is closed")

    def close(self) -> None:
        """Close the journal and folder descriptors; jobs stay on disk."""
        with self._lock:
            self._closed = True
            self._journal.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            for log_file in self._log_files.values():
                log_file.close()
            self._log_files.clear()
            for fd in self._folder_fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._folder_fds.clear()
