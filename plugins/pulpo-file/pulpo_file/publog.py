"""Publish logs: with ``fsync_method = "log"``, a single publish is one flushed block.

A durable publish that writes the job's own file costs a file and a rename on top of its flush,
and on most disks those directory changes make the flush itself dearer. With publish logs the
publisher instead writes the job as one 4 KiB block into a log file of its own, preallocated
and written in place (``O_DIRECT | O_DSYNC`` where the file system allows), so the flush
changes no metadata. The job becomes a file in ``ready/`` shortly after, when a worker (or any
process that looks at the queue) *materializes* the log.

Layout, under ``<base_path>/logs/``::

    <n>.log    slots of 4 KiB; slot ``seq % slots`` holds record ``seq``
    <n>.pos    three numbers: ``materialized`` (records below it are files), ``synced``
               (records below it are files flushed to disk, so their slots may be reused) and
               the slots the log was written with (so that a log cut short is noticed; a log
               of an earlier layout has none, and gets it from its next publisher)

A record is ``magic, crc32, seq, ready time, id length, data length, id, data``; the checksum
covers everything after it, so a block torn by a crash, or left over from an earlier lap of the
log, never reads as a record. The publisher holds an exclusive ``flock`` on its ``.log`` for as
long as it writes it, so one process writes a log; whoever materializes holds the ``flock`` of
the ``.pos`` file. A slot is reused only below ``synced``, which only a checkpoint moves (after
flushing the file system, and never after a reboot before the first worker has replayed the
logs). Workers run a checkpoint after making half a log into files and when they find nothing
new (once a second at most); the journal runs one when it starts a new segment. A publisher
whose log has no room runs one if files were made of it since, else takes another log, or a new
one, and leaves the full one to the workers (see :mod:`pulpo_file.logwriter`).

Damage: a slot that holds no record but is followed by a later record of the same lap was
written and damaged since (the publisher writes in order): readers yield it as
:class:`Damaged` and go on with the records after it; a publisher taking the log starts after
the last record and after a damaged last one, so it never writes over a job. A log that holds
nothing and that no process writes is retired (removed) by the workers, all but one small one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import struct
import time
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from pulpo_file.files import open_private, same_file

log = logging.getLogger("pulpo.file")

SLOT = 4096
MAGIC = b"PLOG"
_HEAD = struct.Struct("<4sIQQHI")  # magic, crc32, seq, ready time (ns), id length, data length
_POSITIONS = struct.Struct("<QQ")  # materialized, synced
_SLOTS = struct.Struct("<Q")  # after the positions: the slots the log was written with
_ZERO = bytes(SLOT)
#: Slots after one that holds no record that are looked at each time, before the whole lap.
_NEAR = 4
#: Bytes of a queue's first publish log; each new log is twice the largest, up to the limit.
FIRST_SIZE = 1 << 20
#: Slots read at a time when materializing.
_CHUNK = 32
#: Seconds between two looks past a log's next free slot for a damaged record (see has_news).
DAMAGE_LOOK_S = 1.0
LOG = ".log"
POS = ".pos"


class Entry(NamedTuple):
    """One published job, as its record holds it."""

    seq: int
    job_id: str
    ready_ns: int
    data: bytes


class Damaged(NamedTuple):
    """A slot that should hold record ``seq`` — a later record of the same lap exists, so the
    publisher wrote it — but does not: bits flipped, or cut off by a truncation. ``data`` is
    the slot's bytes (empty where the log was cut short)."""

    seq: int
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


def looks_written(block: bytes, seq: int) -> bool:
    """Whether a slot that holds no record ``seq`` was written since it was last free: not
    zeros (a new log), not a whole record of an earlier lap (a slot free to reuse)."""
    if block == _ZERO[: len(block)]:
        return False
    if len(block) >= _HEAD.size:
        magic, _, found = _HEAD.unpack_from(block)[:3]
        if magic == MAGIC and found < seq and decode(block, found) is not None:
            return False
    return True


def _maybe_damaged(block: bytes, seq: int) -> bool:
    """Whether a slot holding no record ``seq`` has a header naming ``seq`` (or later)."""
    if len(block) < _HEAD.size:
        return False
    magic, _, found = _HEAD.unpack_from(block)[:3]
    return bool(magic == MAGIC and found >= seq)


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
        #: Blocks already searched past without finding a later record, by seq (their crc).
        self._searched: dict[int, int] = {}
        self._next_damage_look = 0.0
        written = self.written_slots()
        self.cut = bool(written) and written != self.slots
        if self.cut:
            log.warning("the publish log %s holds %d slots but was written with %d: it was "
                        "cut short or grown by hand; records in missing slots are lost, the "
                        "others are read where they were written", self.path, self.slots, written)
            self.slots = written

    def written_slots(self) -> int:
        """The slots the log was written with (0: not recorded, by an earlier layout)."""
        data = os.pread(self._pos, _SLOTS.size, _POSITIONS.size)
        return int(_SLOTS.unpack(data)[0]) if len(data) == _SLOTS.size else 0

    def record_slots(self) -> None:
        """Record the log's size in slots, so that a cut is noticed (by its publisher)."""
        if not self.written_slots() and self.slots:
            os.pwrite(self._pos, _SLOTS.pack(self.slots), _POSITIONS.size)

    def block(self, seq: int) -> bytes:
        """The bytes of record ``seq``'s slot (fewer where the log was cut short)."""
        return os.pread(self._fd, SLOT, (seq % self.slots) * SLOT) if self.slots else b""

    def is_current(self) -> bool:
        """Whether the log's name still names the file this reader has open (a retired log's
        readers let it go, so its disk space is freed)."""
        return same_file(self._fd, self.path)

    def drained(self) -> bool:
        """Whether every record is a file flushed to the disk (materialized and synced) and
        no record waits past the position: the log holds nothing any more."""
        materialized, synced = self._stored()
        return synced >= materialized and not self.has_news(materialized)

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

    def entries(self, start: int) -> Iterator[Entry | Damaged]:
        """The records from ``start`` on, up to the first slot that holds no next record and
        is followed by none; a slot that holds no record but is followed by a later one of
        the same lap is damaged (:class:`Damaged`), and the records after it still count."""
        seq, end = start, start + self.slots
        while self.slots and seq < end:
            slot = seq % self.slots
            count = min(_CHUNK, self.slots - slot, end - seq)
            chunk = memoryview(os.pread(self._fd, count * SLOT, slot * SLOT))
            for index in range(count):
                block = chunk[index * SLOT : (index + 1) * SLOT]
                entry = decode(block, seq)
                if entry is None:
                    later = self._later_record(seq, end, bytes(block))
                    if later is None:
                        return
                    for hole in range(seq, later):
                        yield Damaged(hole, self.block(hole))
                    seq = later
                    break  # read on from the later record
                yield entry
                seq += 1

    def _later_record(self, seq: int, end: int, block: bytes) -> int | None:
        """The next record after ``seq`` in this lap when slot ``seq`` looks written but holds
        no record ``seq``; ``None`` when it was simply not written yet (zeros, or a record of
        an earlier lap) or nothing follows."""
        if len(block) < SLOT:
            if not self.cut:
                return None
        elif not looks_written(block, seq):
            return None
        # The publisher writes in order: what follows a damaged record is next to it, and a
        # publisher still writing adds it there. The whole lap is searched once per block.
        for later in range(seq + 1, min(end, seq + 1 + _NEAR)):
            if decode(self.block(later), later) is not None:
                return later
        check = zlib.crc32(block)
        if self._searched.get(seq) == check:
            return None  # searched past already, and the slot has not changed since
        for later in range(seq + 1 + _NEAR, end):
            if decode(self.block(later), later) is not None:
                self._searched.pop(seq, None)
                return later
        self._searched[seq] = check
        return None

    def has_news(self, start: int) -> bool:
        """Whether there is a record (or a damaged one before a record) from ``start`` on.

        Asked by every look at the queue, so it reads the one slot ``start``: a worker that has
        caught up finds zeros or an earlier lap's record there (its header tells), and searches
        past it for a damaged record followed by later ones at most every ``DAMAGE_LOOK_S``;
        at once when the slot's header says record ``start`` (written, then damaged)."""
        if not self.slots:
            return False
        block = self.block(start)
        if decode(block, start) is not None:
            return True
        now = time.monotonic()
        if now < self._next_damage_look and not _maybe_damaged(block, start):
            return False
        self._next_damage_look = now + DAMAGE_LOOK_S
        return self._later_record(start, start + self.slots, block) is not None

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
