"""Publish logs: with ``fsync_method = "log"``, a single publish is one flushed block.

A durable publish that writes the job's own file costs a file and a rename on top of its flush,
and on most disks those directory changes make the flush itself dearer. With publish logs the
publisher instead writes the job as one 4 KiB block into a log file of its own, preallocated
and written in place (``O_DIRECT | O_DSYNC`` where the file system allows), so the flush
changes no metadata. The job becomes a file in ``ready/`` shortly after, when a worker (or any
process that looks at the queue) *materializes* the log.

Layout, under ``<base_path>/logs/``::

    <n>.log    slots of 4 KiB; slot ``seq % slots`` holds record ``seq``
    <n>.pos    two numbers: ``materialized`` (records below it are files) and ``synced``
               (records below it are files flushed to disk, so their slots may be reused)

A record is ``magic, crc32, seq, ready time, id length, data length, id, data``; the checksum
covers everything after it, so a block torn by a crash, or left over from an earlier lap of the
log, never reads as a record. The publisher holds an exclusive ``flock`` on its ``.log`` for as
long as it writes it, so one process writes a log; whoever materializes holds the ``flock`` of
the ``.pos`` file. A slot is reused only below ``synced``, which only a checkpoint moves (after
flushing the file system, and never after a reboot before the first worker has replayed the
logs). Workers run a checkpoint after making half a log into files and when they find nothing
new (once a second at most); the journal runs one when it starts a new segment. A publisher
whose log has no room runs one if files were made of it since, else takes another log, or a new
one, and leaves the full one to the workers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import stat
import struct
import time
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from pulpo_file.files import flush, open_private, remove_if_unlocked

SLOT = 4096
MAGIC = b"PLOG"
_HEAD = struct.Struct("<4sIQQHI")  # magic, crc32, seq, ready time (ns), id length, data length
_POSITIONS = struct.Struct("<QQ")  # materialized, synced
#: Bytes of a queue's first publish log; each new log is twice the largest, up to the limit.
FIRST_SIZE = 1 << 20
#: Slots read at a time when materializing.
_CHUNK = 32
LOG = ".log"
POS = ".pos"
#: The name a new log is written under before it is linked into place.
NEW = "new."
#: Seconds after which a new log not yet linked into place is taken for abandoned.
ABANDONED_S = 60.0


class Entry(NamedTuple):
    """One published job, as its record holds it."""

    seq: int
    job_id: str
    ready_ns: int
    data: bytes


def encode(seq: int, job_id: str, ready_ns: int, data: bytes) -> bytes | None:
    """The record for a job; ``None`` when it does not fit in one slot."""
    name = job_id.encode("ascii")
    body = struct.pack("<QQHI", seq, ready_ns, len(name), len(data)) + name + data
    if _HEAD.size + len(name) + len(data) > SLOT:
        return None
    return MAGIC + struct.pack("<I", zlib.crc32(body)) + body


def decode(block: bytes | memoryview, seq: int) -> Entry | None:
    """The record ``seq`` in ``block``, or ``None`` when the block holds no such record."""
    if len(block) < _HEAD.size:
        return None
    magic, crc, found, ready_ns, id_length, data_length = _HEAD.unpack_from(block)
    end = _HEAD.size + id_length + data_length
    if magic != MAGIC or found != seq or end > len(block):
        return None
    if zlib.crc32(block[8:end]) != crc:
        return None
    name = bytes(block[_HEAD.size : _HEAD.size + id_length])
    try:
        job_id = name.decode("ascii")
    except UnicodeDecodeError:
        return None
    return Entry(seq, job_id, ready_ns, bytes(block[_HEAD.size + id_length : end]))


def log_numbers(folder: str) -> list[int]:
    """The numbers of the publish logs in ``folder``, ascending."""
    numbers = []
    for name in os.listdir(folder):
        stem, dot, suffix = name.partition(".")
        # Only names this module writes ("0.log", "12.log"): not "007.log" nor other digits.
        if (dot and "." + suffix == LOG and stem.isascii() and stem.isdigit()
                and str(int(stem)) == stem):
            numbers.append(int(stem))
    return sorted(numbers)


class LogFile:
    """One publish log as its readers see it: its records and its two positions."""

    def __init__(self, folder: str, number: int, fix_mode: bool) -> None:
        self.number = number
        self.path = os.path.join(folder, f"{number}{LOG}")
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            status = os.fstat(self._fd)
            if not stat.S_ISREG(status.st_mode):
                raise OSError(errno.EINVAL, "not a publish log (not a regular file)", self.path)
            self.slots = status.st_size // SLOT
            pos_path = os.path.join(folder, f"{number}{POS}")
            try:
                self._pos = open_private(pos_path, os.O_RDWR, fix_mode)
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                # A queue this process may only read: it can count, not make files.
                self._pos = os.open(pos_path, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(self._fd)
            raise

    def is_current(self) -> bool:
        """Whether the log's name still names the file this reader has open (a retired log's
        readers let it go, so its disk space is freed)."""
        return _same_file(self._fd, self.path)

    def drained(self) -> bool:
        """Whether every record is a file flushed to the disk (materialized and synced) and
        no record waits past the position: the log holds nothing any more."""
        materialized, synced = self._stored()
        return synced >= materialized and self.read(materialized) is None

    def read(self, seq: int) -> Entry | None:
        """Record ``seq``, or ``None`` if it is not (yet) written."""
        if not self.slots:
            return None
        return decode(os.pread(self._fd, SLOT, (seq % self.slots) * SLOT), seq)

    def all_from(self, start: int) -> list[Entry]:
        """Every record in the log numbered ``start`` or later, in order, wherever it is: what
        a replay after a reboot needs, whatever the positions on the disk say."""
        found = []
        for first in range(0, self.slots, _CHUNK):
            count = min(_CHUNK, self.slots - first)
            chunk = memoryview(os.pread(self._fd, count * SLOT, first * SLOT))
            for index in range(count):
                block = chunk[index * SLOT : (index + 1) * SLOT]
                if len(block) < _HEAD.size:
                    break
                seq = _HEAD.unpack_from(block)[2]
                entry = decode(block, seq) if seq >= start else None
                if entry is not None and seq % self.slots == first + index:
                    found.append(entry)
        return sorted(found)

    def entries(self, start: int) -> Iterator[Entry]:
        """The records from ``start`` on, up to the first slot that holds no next record."""
        seq = start
        while self.slots and seq < start + self.slots:
            slot = seq % self.slots
            count = min(_CHUNK, self.slots - slot, start + self.slots - seq)
            chunk = memoryview(os.pread(self._fd, count * SLOT, slot * SLOT))
            for index in range(count):
                entry = decode(chunk[index * SLOT : (index + 1) * SLOT], seq)
                if entry is None:
                    return
                yield entry
                seq += 1

    def positions(self) -> tuple[int, int]:
        """``(materialized, synced)``."""
        materialized, synced = self._stored()
        return materialized, min(synced, materialized)

    def _stored(self) -> tuple[int, int]:
        data = os.pread(self._pos, _POSITIONS.size, 0)  # a new log's file may be shorter
        materialized, synced = _POSITIONS.unpack(data.ljust(_POSITIONS.size, b"\0"))
        return materialized, synced

    def set_materialized(self, seq: int) -> None:
        os.pwrite(self._pos, struct.pack("<Q", seq), 0)

    def set_synced(self, seq: int) -> None:
        """Record that the records below ``seq`` are files on the disk (never moving back), and
        flush that, so that after a power cut the replay starts no earlier than it must."""
        if seq > self._stored()[1]:
            os.pwrite(self._pos, struct.pack("<Q", seq), 8)
            os.fdatasync(self._pos)

    @contextlib.contextmanager
    def materializing(self, wait: bool) -> Iterator[bool]:
        """Hold the right to materialize this log; ``False`` when another process has it
        (and ``wait`` is false)."""
        try:
            fcntl.flock(self._pos, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(self._pos, fcntl.LOCK_UN)

    def close(self) -> None:
        for fd in (self._fd, self._pos):
            with contextlib.suppress(OSError):
                os.close(fd)


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
                if not _same_file(lock_fd, os.path.join(folder, f"{number}{LOG}")):
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
        seq = log.positions()[0]
        for entry in log.entries(seq):
            seq = entry.seq + 1
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
        if not _same_file(lock_fd, log_file.path):
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


def _same_file(fd: int, path: str) -> bool:
    try:
        opened, named = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


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
