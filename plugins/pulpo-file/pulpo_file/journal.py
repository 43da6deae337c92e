"""The journal: one append-only log of what happened to the queue's jobs, shared by every process.

It has two uses.

**The index.** Every process that puts a job into ``ready/`` (publish, retry, kick, an expired
lease) appends ``R <id> <ready time>`` once the file is in place; every worker tails the journal
and pushes what it reads into its own in-memory heap, so no worker lists ``ready/`` to find its
next job. These lines are never flushed: a line that goes missing (a writer that slept through
two segment changes) costs only latency, since workers rebuild their index from the folder when
they start, every ``rescan_interval`` and whenever they notice a gap.

**The write-ahead log** (with ``fsync``, ``fsync_method = "journal"``). Before a job's file is
written, ``P <id> <ready time> <time> <job JSON>`` (ready) or ``B ...`` (buried) is appended to
the newest segment and flushed with ``fdatasync``: one sequential write per job, cheaper than
flushing the job's own file and folder. ``C <id> <time>`` records that a job is gone (done or
deleted); it is flushed with the next record or by the system. After a power cut the first
worker replays the journal: the latest record of each job (by its time: processes may append to
different segments for a moment) says where the job belongs and with what content.

Every write starts with a line break, so the lines read ``\nR ...`` and empty lines are skipped: a
line that a full disk, a killed process or a power cut left cut short is closed by the next
write instead of swallowing it. What a full disk let a write store of its lines is overwritten
with spaces, so a failed publish leaves no record behind.

The journal lives in ``journal/`` as numbered segments (``0000000000.log``, ...). A writer that
finds its segment past ``segment_size`` starts the next one (``O_EXCL``: one process creates it,
the others follow), flushes the whole file system (``syncfs``: everything the old segments
describe is then on the disk) and removes segments older than the previous two; idle workers
remove the earlier ones too once nobody writes them (:meth:`Journal.retire_quiet`). A reader
finishes a segment, keeps reading it for a grace period (a writer may have opened it just before
the change), and moves to the next; if the next one is gone it reports a gap.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable, Iterator

import attrs

from pulpo_file.files import open_private
from pulpo_file.ids import is_id

log = logging.getLogger("pulpo.file")

SUFFIX = ".log"
#: Seconds between two looks for a newer segment (one listing of a folder of three files).
CHECK_INTERVAL = 0.05
#: Seconds a writer keeps appending to its segment before it looks for a newer one.
WRITER_REFRESH = 1.0
#: Seconds a reader keeps reading a finished segment for late lines.
GRACE = 5.0
#: Segments kept before the newest one while writers move on (see :meth:`Journal.retire_quiet`).
KEEP = 2
#: Seconds a segment before the newest must have gone unwritten before a worker retires it.
QUIET_S = 2 * GRACE
#: Seconds between two looks for quiet segments to retire.
RETIRE_INTERVAL_S = 5.0
CHUNK = 1 << 20

READY, INTENT, BURIED, GONE = b"R", b"P", b"B", b"C"


def segment_name(number: int) -> str:
    return f"{number:010d}{SUFFIX}"


def ready_line(job_id: str, ready_ns: int) -> bytes:
    return f"R {job_id} {ready_ns:x}\n".encode("ascii")


def intent_line(job_id: str, ready_ns: int, job: bytes, buried: bool = False) -> bytes:
    kind = "B" if buried else "P"
    return f"{kind} {job_id} {ready_ns:x} {time.time_ns():x} ".encode("ascii") + job + b"\n"


def gone_line(job_id: str) -> bytes:
    return f"C {job_id} {time.time_ns():x}\n".encode("ascii")


def parse_ready(line: bytes) -> tuple[str, int] | None:
    """``(job id, ready time in ns)`` from an ``R`` line, or ``None`` for any other line."""
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != READY:
        return None
    try:
        job_id = parts[1].decode("ascii")
        ready_ns = int(parts[2], 16)
    except ValueError:
        return None
    return (job_id, ready_ns) if is_id(job_id) else None


@attrs.frozen
class Record:
    """A write-ahead record: the job's last known state and content (``None`` when gone)."""

    kind: bytes
    job_id: str
    ready_ns: int
    time_ns: int
    job: bytes | None


def parse_record(line: bytes) -> Record | None:
    """A ``P``, ``B`` or ``C`` line, or ``None``."""
    try:
        if line[:2] == GONE + b" ":
            _, raw_id, raw_time = line.split(b" ")
            job_id = raw_id.decode("ascii")
            return Record(GONE, job_id, 0, int(raw_time, 16), None) if is_id(job_id) else None
        if line[:2] not in (INTENT + b" ", BURIED + b" "):
            return None
        kind, raw_id, raw_ready, raw_time, job = line.split(b" ", 4)
        job_id = raw_id.decode("ascii")
        record = Record(kind, job_id, int(raw_ready, 16), int(raw_time, 16), job)
    except ValueError:
        return None
    return record if is_id(job_id) else None


@attrs.define
class _Tail:
    """A segment being read: its descriptor, number, bytes read and the incomplete last line."""

    fd: int
    number: int
    offset: int = 0
    partial: bytes = b""
    until: float = 0.0  # for finished segments: when to stop reading them


class Journal:
    """Append to and tail the journal segments in ``folder``.

    :param checkpoint: called before old segments are removed; it must make every job file
        written so far durable (the adapter passes a ``syncfs`` of the queue's file system), and
        return whether the old segments may go.
    """

    def __init__(
        self, folder: str, segment_size: int, fix_mode: bool, checkpoint: Callable[[], bool]
    ) -> None:
        self.folder = folder
        self.segment_size = segment_size
        self.fix_mode = fix_mode
        self.checkpoint = checkpoint
        self._write_fd: int | None = None
        self._write_number = -1
        self._write_checked = 0.0
        self._tail: _Tail | None = None
        self._finished: list[_Tail] = []
        self._read_checked = 0.0
        self._next_retire = 0.0

    # -- segments ------------------------------------------------------------------------

    def _path(self, number: int) -> str:
        return os.path.join(self.folder, segment_name(number))

    def _numbers(self) -> list[int]:
        numbers = []
        for name in os.listdir(self.folder):
            if name.endswith(SUFFIX) and name[: -len(SUFFIX)].isdigit():
                numbers.append(int(name[: -len(SUFFIX)]))
        return sorted(numbers)

    def _newest(self) -> int:
        numbers = self._numbers()
        return numbers[-1] if numbers else 0

    # -- writing -------------------------------------------------------------------------

    def append(self, line: bytes, flush: bool = False) -> int:
        """Append one or more lines in one ``write`` (so lines never interleave); return the
        number of the segment they went to.

        The write starts with a line break of its own, so a line cut short before it (a full
        disk, a process killed mid-write, a power cut) can never swallow it. With ``flush`` the
        segment is flushed (``fdatasync``) before this returns.

        :raises OSError: when the lines could not all be written; what was written of them is
            overwritten with spaces.
        """
        now = time.monotonic()
        stale = self._write_fd is None or now - self._write_checked > WRITER_REFRESH
        # A flushed record goes to the newest segment, which a checkpoint never removes.
        if stale or (flush and os.path.exists(self._path(self._write_number + 1))):
            self._follow_newest()
        self._write_checked = now
        fd = self._write_fd
        assert fd is not None
        data = b"\n" + line
        written = os.write(fd, data)
        if written < len(data):
            self._blank_short_write(fd, data, written)
        if flush:
            os.fdatasync(fd)
        number = self._write_number
        if os.lseek(fd, 0, os.SEEK_CUR) >= self.segment_size:
            self._start_next()
        return number

    def may_be_gone(self, number: int) -> bool:
        """Whether segment ``number`` may have been removed, or be about to be, by a checkpoint
        that flushed the file system before the caller's last write.

        A segment is removed only once a later one has started (by a writer moving on, or by
        :meth:`retire_quiet`), so the next one is looked at first: when it does not exist yet,
        any checkpoint removing ``number`` comes after this look.
        """
        return os.path.exists(self._path(number + 1)) or not os.path.exists(self._path(number))

    def _blank_short_write(self, fd: int, data: bytes, written: int) -> None:
        """A write stored only the first ``written`` bytes of ``data`` (the disk is full): learn
        why by writing the rest, overwrite every byte this record stored with spaces, and raise.

        Blanking in place needs no new space and touches only this writer's own bytes (an
        ``O_APPEND`` write is one contiguous piece, wherever others appended since), so no other
        record is harmed and no reader's position moves; a blank line is no record.
        """
        pieces = [(os.lseek(fd, 0, os.SEEK_CUR) - written, written)]
        error: OSError
        try:
            rest = os.write(fd, data[written:])
            pieces.append((os.lseek(fd, 0, os.SEEK_CUR) - rest, rest))
            error = OSError(errno.EIO, "the journal write was cut short")
        except OSError as caught:
            error = caught
        with contextlib.suppress(OSError):
            blanking = os.open(self._path(self._write_number), os.O_WRONLY | os.O_CLOEXEC)
            try:
                for offset, size in pieces:
                    os.pwrite(blanking, b" " * size, offset)
            finally:
                os.close(blanking)
        raise error

    def _open_for_append(self, number: int, exclusive: bool = False) -> int:
        flags = os.O_WRONLY | os.O_APPEND | (os.O_EXCL if exclusive else 0)
        return open_private(self._path(number), flags, self.fix_mode)

    def _switch_writer(self, fd: int, number: int) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
        self._write_fd, self._write_number = fd, number

    def _follow_newest(self) -> None:
        newest = self._newest()
        if self._write_fd is None or newest != self._write_number:
            self._switch_writer(self._open_for_append(newest), newest)

    def _start_next(self) -> None:
        number = self._write_number + 1
        if self._newest() >= number:
            self._follow_newest()  # another writer started it (or more) already
            return
        try:
            fd = self._open_for_append(number, exclusive=True)
        except FileExistsError:
            self._switch_writer(self._open_for_append(number), number)  # another writer did it
            return
        self._switch_writer(fd, number)
        self._remove([n for n in self._numbers() if n < number - KEEP])

    def _remove(self, numbers: list[int]) -> None:
        # The checkpoint makes what they describe durable (it refuses while a replay needs them).
        if numbers and self.checkpoint():
            for number in numbers:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(number))

    def retire_quiet(self) -> None:
        """Remove the segments before the newest that nobody wrote for ``QUIET_S``, after a
        checkpoint (it refuses after a reboot until the journal is replayed); a reader keeps its
        open segment, one that had not reached a removed one reports a gap and rebuilds."""
        now = time.monotonic()
        if now < self._next_retire:
            return
        self._next_retire = now + RETIRE_INTERVAL_S
        quiet_since = time.time() - QUIET_S
        quiet = []
        for number in self._numbers()[:-1]:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self._path(number)).st_mtime <= quiet_since:
                    quiet.append(number)
        self._remove(quiet)

    # -- reading -------------------------------------------------------------------------

    def start_reading(self) -> tuple[int, int]:
        """Tail from the current end of the newest segment; return that position."""
        number = self._newest()
        fd = open_private(self._path(number), os.O_RDONLY, self.fix_mode)
        offset = os.lseek(fd, 0, os.SEEK_END)
        self._set_tail(_Tail(fd, number, offset))
        return number, offset

    def _set_tail(self, tail: _Tail) -> None:
        if self._tail is not None:
            os.close(self._tail.fd)
        self._tail = tail

    def read(self) -> tuple[list[tuple[str, int]], bool]:
        """New ``(job id, ready time)`` entries, and whether some may have been missed."""
        if self._tail is None:
            self.start_reading()
        assert self._tail is not None
        entries: list[tuple[str, int]] = []
        self._drain(self._tail, entries)
        now = time.monotonic()
        for tail in list(self._finished):
            self._drain(tail, entries)
            if now >= tail.until:
                os.close(tail.fd)
                self._finished.remove(tail)
        gap = False
        # A full segment is about to be followed by the next: look for it at once.
        full = self._tail.offset >= self.segment_size
        if full or now - self._read_checked >= CHECK_INTERVAL:
            self._read_checked = now
            gap = self._advance(now, entries)
        return entries, gap

    def _advance(self, now: float, entries: list[tuple[str, int]]) -> bool:
        assert self._tail is not None
        newest = self._newest()
        while newest > self._tail.number:
            following = self._tail.number + 1
            try:
                fd = os.open(self._path(following), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                log.info("the journal moved on by more than %d segments: rebuilding the index",
                         KEEP)
                fd = os.open(self._path(newest), os.O_RDONLY | os.O_CLOEXEC)
                self._set_tail(_Tail(fd, newest, os.lseek(fd, 0, os.SEEK_END)))
                return True
            finished = self._tail
            finished.until = now + GRACE
            self._finished.append(finished)
            self._tail = _Tail(fd, following)
            self._drain(self._tail, entries)
        return False

    @staticmethod
    def _drain(tail: _Tail, entries: list[tuple[str, int]]) -> None:
        while True:
            data = os.read(tail.fd, CHUNK)
            if not data:
                return
            tail.offset += len(data)
            lines = (tail.partial + data).split(b"\n")
            tail.partial = lines.pop()
            for line in lines:
                if line[:1] == READY:
                    entry = parse_ready(line)
                    if entry is not None:
                        entries.append(entry)
            if len(data) < CHUNK:
                return

    # -- replaying -----------------------------------------------------------------------

    def records(self, until: tuple[int, int]) -> Iterator[Record]:
        """Every write-ahead record in the kept segments, oldest first, up to ``until``."""
        last_number, last_offset = until
        for number in self._numbers():
            if number > last_number:
                return
            try:
                with open(self._path(number), "rb") as segment:
                    data = segment.read(last_offset if number == last_number else -1)
            except FileNotFoundError:
                continue
            for line in data.split(b"\n"):
                if line[:1] in (INTENT, BURIED, GONE):
                    record = parse_record(line)
                    if record is not None:
                        yield record

    def close(self) -> None:
        """Close every open segment."""
        for fd in self._open_fds():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._write_fd = None
        self._tail = None
        self._finished = []

    def _open_fds(self) -> Iterator[int]:
        if self._write_fd is not None:
            yield self._write_fd
        if self._tail is not None:
            yield self._tail.fd
        for tail in self._finished:
            yield tail.fd
