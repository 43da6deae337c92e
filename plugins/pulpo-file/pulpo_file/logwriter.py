"""The publisher's side of a publish log: taking one, appending flushed records, retiring one.

See :mod:`pulpo_file.publog` for the log's layout and records.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import time

from pulpo_file.files import flush, open_private, remove_if_unlocked, same_file
from pulpo_file.publog import (
    FIRST_SIZE,
    LOG,
    POS,
    SLOT,
    LogFile,
    encode,
    log_numbers,
    looks_written,
)

#: The name a new log is written under before it is linked into place.
NEW = "new."
#: Seconds after which a new log not yet linked into place is taken for abandoned.
ABANDONED_S = 60.0


class LogWriter:
    """The publisher's side of its own log: append records, flushed, in slots it may reuse."""

    def __init__(self, log: LogFile, lock_fd: int, direct_fd: int, seq: int) -> None:
        self.log = log
        self.seq = seq
        self.pid = os.getpid()
        self._lock_fd = lock_fd
        self._direct_fd = direct_fd
        self._synced = log.positions()[1]
        self._buffer = mmap.mmap(-1, SLOT)  # page-aligned, as O_DIRECT requires

    @classmethod
    def open(cls, folder: str, limit: int, fix_mode: bool) -> LogWriter:
        """Take a log that no live process writes and that has room (see :meth:`has_room`),
        or else a new one, written full of zeros and flushed (so that later writes change no
        metadata) under a temporary name, then linked into place whole. A new log is twice
        the size of the largest one (:data:`FIRST_SIZE` for the first), up to ``limit``
        bytes: a small queue takes little disk, a deep one few logs."""
        _remove_abandoned(folder)
        numbers = log_numbers(folder)
        for number in numbers:
            try:
                lock_fd = os.open(os.path.join(folder, f"{number}{LOG}"), os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if not same_file(lock_fd, os.path.join(folder, f"{number}{LOG}")):
                    raise FileNotFoundError(errno.ENOENT, "retired meanwhile")
                writer = cls._ready(folder, number, lock_fd, fix_mode)
            except OSError:  # another process writes it, or it cannot be used: the next one
                os.close(lock_fd)
                continue
            except BaseException:
                os.close(lock_fd)
                raise
            if writer.has_room():
                return writer
            writer.close()  # full of jobs not yet made files (or not flushed): try the next
        temporary = os.path.join(folder, f"{NEW}{os.getpid()}.{os.urandom(4).hex()}")
        lock_fd = open_private(temporary, os.O_RDWR | os.O_EXCL, fix_mode)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            largest = max((_size(folder, n) for n in numbers), default=0)
            _fill(lock_fd, min(limit, max(FIRST_SIZE, 2 * largest)))
            number = numbers[-1] + 1 if numbers else 0
            while True:
                try:
                    os.link(temporary, os.path.join(folder, f"{number}{LOG}"))
                    break
                except FileExistsError:
                    number += 1
            os.close(open_private(os.path.join(folder, f"{number}{POS}"), os.O_RDWR, fix_mode))
            flush(folder)
            return cls._ready(folder, number, lock_fd, fix_mode)
        except BaseException:
            os.close(lock_fd)
            raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    @classmethod
    def _ready(cls, folder: str, number: int, lock_fd: int, fix_mode: bool) -> LogWriter:
        log = LogFile(folder, number, fix_mode)
        try:
            direct_fd = _open_direct(log.path)
        except BaseException:
            log.close()
            raise
        log.record_slots()
        seq = log.positions()[0]
        for entry in log.entries(seq):  # past a damaged record too: never write over a job
            seq = entry.seq + 1
        if log.slots and looks_written(log.block(seq), seq):
            seq += 1  # a damaged last record: kept (its reader buries it), not written over
        return cls(log, lock_fd, direct_fd, seq)

    def has_room(self) -> bool:
        """Whether the next record's slot is free: never written, or its record was made a
        file that a checkpoint has flushed (``synced``)."""
        if self.seq < self._synced + self.log.slots:
            return True
        self._synced = self.log.positions()[1]
        return self.seq < self._synced + self.log.slots

    def append(self, job_id: str, ready_ns: int, data: bytes) -> bool:
        """Write the job as the next record, on disk when this returns; ``False`` (nothing
        written) when it does not fit in a slot or there is no room (see :meth:`has_room`)."""
        record = encode(self.seq, job_id, ready_ns, data)
        if record is None or not self.has_room():
            return False
        buffer = self._buffer
        buffer[: len(record)] = record
        buffer[len(record) :] = bytes(SLOT - len(record))
        offset = (self.seq % self.log.slots) * SLOT
        try:
            written = os.pwrite(self._direct_fd, buffer, offset)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            # O_DIRECT was accepted at open but not for writing (some overlays): do without.
            os.close(self._direct_fd)
            self._direct_fd = _open_direct(self.log.path, direct=False)
            written = os.pwrite(self._direct_fd, buffer, offset)
        if written != SLOT:
            raise OSError(errno.EIO, "short write to the publish log")
        self.seq += 1
        return True

    def close(self) -> None:
        self.log.close()
        self._buffer.close()
        for fd in (self._direct_fd, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def retire(log_file: LogFile) -> bool:
    """Remove a log that holds nothing (see :meth:`LogFile.drained`) and that no process
    writes; whether it was removed.

    Safe against every other process: the retirer holds the log's writer lock (a publisher
    that opened the log meanwhile finds, once it has the lock, that the name no longer names
    its file, and takes another) and its materializer lock (no reader is between a record and
    its file) while it checks and unlinks. The ``.log`` goes first: a crash before the ``.pos``
    goes leaves positions that a new log of that number simply continues from.
    """
    try:
        lock_fd = os.open(log_file.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not same_file(lock_fd, log_file.path):
            return False
        with log_file.materializing(wait=False) as mine:
            if not mine or not log_file.drained():
                return False
            os.unlink(log_file.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(log_file.path[: -len(LOG)] + POS)
        return True
    except OSError:  # written (locked) by a publisher, or gone
        return False
    finally:
        os.close(lock_fd)


def _fill(fd: int, size: int) -> None:
    """Write ``size`` bytes of zeros (whole slots) into a new log and flush it."""
    zeros = bytes(1 << 20)
    total = max(SLOT, size // SLOT * SLOT)
    offset = 0
    while offset < total:
        offset += os.pwrite(fd, zeros[: min(len(zeros), total - offset)], offset)
    os.fsync(fd)


def _size(folder: str, number: int) -> int:
    try:
        return os.stat(os.path.join(folder, f"{number}{LOG}")).st_size
    except FileNotFoundError:
        return 0


def _remove_abandoned(folder: str) -> None:
    """Remove new logs whose creator died before linking them into place: none holds them,
    and they are a minute old (a creator takes its lock just after creating the file)."""
    limit = time.time() - ABANDONED_S
    for name in os.listdir(folder):
        if not name.startswith(NEW):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if os.stat(path).st_ctime <= limit:
                remove_if_unlocked(path)


def _open_direct(path: str, direct: bool = True) -> int:
    """The log opened for flushed writes: ``O_DIRECT | O_DSYNC``, or ``O_DSYNC`` alone where
    the file system refuses ``O_DIRECT`` (tmpfs, some overlays)."""
    flags = os.O_WRONLY | os.O_DSYNC | os.O_CLOEXEC
    if direct and hasattr(os, "O_DIRECT"):
        try:
            return os.open(path, flags | os.O_DIRECT)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
    return os.open(path, flags)
