"""The publish journal: an append-only log of "job X became ready at time T".

Every process that puts a job into ``ready/`` (publish, retry, kick, an expired lease) appends one
line after the job's file is in place; every worker tails the journal and pushes what it reads
into its own in-memory heap, so no worker lists the ``ready/`` folder to find its next job.

The journal is only an index: the job files are the truth. It is never fsynced, and a line that
goes missing (a crash between the rename and the append, a writer that slept through two segment
changes) costs only latency: workers rebuild their index from the folder when they start, every
``rescan_interval`` and whenever they notice a gap.

The journal lives in ``journal/`` as numbered segments (``0000000000.log``, ...). A writer that
finds its segment past ``segment_size`` starts the next one (``O_EXCL``: one process creates it,
the others follow) and removes segments older than the previous two. A reader finishes a segment,
keeps reading it for a grace period (a writer may have opened it just before the change), and
moves to the next; if the next one is gone it has fallen too far behind and reports a gap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

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
#: Segments kept before the newest one.
KEEP = 2
CHUNK = 1 << 20


def segment_name(number: int) -> str:
    return f"{number:010d}{SUFFIX}"


def parse_line(line: bytes) -> tuple[str, int] | None:
    """``(job id, ready time in ns)`` from one line, or ``None`` when it is not one."""
    parts = line.split(b" ")
    if len(parts) != 2:
        return None
    try:
        job_id = parts[0].decode("ascii")
        ready_ns = int(parts[1], 16)
    except ValueError:
        return None
    return (job_id, ready_ns) if is_id(job_id) else None


@attrs.define
class _Tail:
    """A segment being read: its descriptor, number and the incomplete last line."""

    fd: int
    number: int
    offset: int = 0
    partial: bytes = b""
    until: float = 0.0  # for finished segments: when to stop reading them


class Journal:
    """Append to and tail the journal segments in ``folder``."""

    def __init__(self, folder: str, segment_size: int, fix_mode: bool) -> None:
        self.folder = folder
        self.segment_size = segment_size
        self.fix_mode = fix_mode
        self._write_fd: int | None = None
        self._write_number = -1
        self._write_checked = 0.0
        self._tail: _Tail | None = None
        self._finished: list[_Tail] = []
        self._read_checked = 0.0

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

    def append(self, job_id: str, ready_ns: int) -> None:
        """Record that ``job_id`` is ready from ``ready_ns``; raises ``OSError``."""
        now = time.monotonic()
        if self._write_fd is None or now - self._write_checked > WRITER_REFRESH:
            self._follow_newest()
        self._write_checked = now
        assert self._write_fd is not None
        os.write(self._write_fd, f"{job_id} {ready_ns:x}\n".encode("ascii"))
        if os.lseek(self._write_fd, 0, os.SEEK_CUR) >= self.segment_size:
            self._start_next()

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
        try:
            fd = self._open_for_append(number, exclusive=True)
        except FileExistsError:
            fd = self._open_for_append(number)  # another writer started it; follow
        self._switch_writer(fd, number)
        for old in self._numbers():
            if old < number - KEEP:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(old))

    # -- reading -------------------------------------------------------------------------

    def start_reading(self) -> None:
        """Tail from the current end of the newest segment (what came before is not read)."""
        number = self._newest()
        fd = open_private(self._path(number), os.O_RDONLY, self.fix_mode)
        self._set_tail(_Tail(fd, number, os.lseek(fd, 0, os.SEEK_END)))

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
                entry = parse_line(line)
                if entry is not None:
                    entries.append(entry)
            if len(data) < CHUNK:
                return

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
