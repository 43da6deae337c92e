"""Unit tests of :mod:`pulpo_file.journal`: its lines (``R``, ``P``/``B`` and ``C``, made and
parsed back), :meth:`Journal.append` across segment changes (and the old segments a checkpoint
lets go), a reader tailing with :meth:`Journal.read` the lines other writers append, across
segment changes, and the gap it reports once it fell too far behind, a write the disk cut short
(blanked), and :meth:`Journal.records`, what a replay after a reboot reads.

Every journal is a real folder in ``tmp_path``; several :class:`Journal` instances on one
folder are several processes. The disk that cuts a write short is a file size limit
(``RLIMIT_FSIZE``), set in a process of its own."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pulpo_file.ids import make_id
from pulpo_file.journal import (
    BURIED,
    GONE,
    INTENT,
    KEEP,
    Journal,
    Record,
    gone_line,
    intent_line,
    parse_ready,
    parse_record,
    ready_line,
    segment_name,
)

#: A segment size that a handful of lines fill.
SMALL = 256
READY_NS = 1_700_000_000_000_000_000


def job(n: int) -> str:
    return make_id(1_000_000 + n, 5, n)


Opener = Callable[..., Journal]


@pytest.fixture
def open_journal(tmp_path: Path) -> Iterator[Opener]:
    """``open_journal(size=SMALL, checkpoint=...)``: a :class:`Journal` on ``tmp_path``, as one
    more process has it; closed after the test."""
    opened: list[Journal] = []

    def open_(size: int = SMALL, checkpoint: Callable[[], bool] = lambda: True) -> Journal:
        journal = Journal(str(tmp_path), size, False, checkpoint)
        opened.append(journal)
        return journal

    yield open_
    for journal in opened:
        journal.close()


def segments(folder: Path) -> list[int]:
    return sorted(int(name[: -len(".log")]) for name in os.listdir(folder))


def lines_of(folder: Path, number: int) -> list[bytes]:
    """The lines of a segment that are not blank."""
    data = (folder / segment_name(number)).read_bytes()
    return [line for line in data.split(b"\n") if line.strip()]


def fill_to(writer: Journal, folder: Path, number: int, start: int = 0) -> list[tuple[str, int]]:
    """Append ready lines until segment ``number`` exists; the ``(id, ready time)`` appended."""
    appended = []
    n = start
    while not (folder / segment_name(number)).exists():
        entry = (job(n), READY_NS + n)
        writer.append(ready_line(*entry))
        appended.append(entry)
        n += 1
    return appended


class TestLines:
    def test_a_ready_line_reads_back(self) -> None:
        line = ready_line(job(1), READY_NS)
        assert line == f"R {job(1)} {READY_NS:x}\n".encode()
        assert parse_ready(line[:-1]) == (job(1), READY_NS)

    @pytest.mark.parametrize(
        "line",
        [
            b"",
            b"R",
            b"R " + job(1).encode(),
            b"R ../x 1f",  # not an id
            b"R " + job(1).upper().encode() + b" 1f",
            b"R " + job(1).encode() + b" 1g",  # not hex
            b"R " + job(1).encode() + b" 1f extra",
            b"P " + job(1).encode() + b" 1f",
            b"r " + job(1).encode() + b" 1f",
            b"R \xff" + job(1).encode()[1:] + b" 1f",
        ],
    )
    def test_what_is_no_ready_line(self, line: bytes) -> None:
        assert parse_ready(line) is None

    def test_an_intent_reads_back_with_its_job_and_the_time_it_was_written(self) -> None:
        data = b'{"body": {"payload": "two words"}, "header": {"id": "x"}}'
        before = time.time_ns()
        line = intent_line(job(2), READY_NS, data)
        after = time.time_ns()
        assert line.endswith(b"\n")
        record = parse_record(line[:-1])
        assert record is not None
        assert (record.kind, record.job_id, record.ready_ns, record.job) == (
            INTENT, job(2), READY_NS, data)
        assert before <= record.time_ns <= after

    def test_a_burial_reads_back_as_one(self) -> None:
        record = parse_record(intent_line(job(3), READY_NS, b"{}", buried=True)[:-1])
        assert record is not None and (record.kind, record.job) == (BURIED, b"{}")

    def test_a_gone_line_reads_back(self) -> None:
        before = time.time_ns()
        record = parse_record(gone_line(job(4))[:-1])
        assert record is not None
        assert (record.kind, record.job_id, record.ready_ns, record.job) == (
            GONE, job(4), 0, None)
        assert before <= record.time_ns <= time.time_ns()

    @pytest.mark.parametrize(
        "line",
        [
            b"",
            b"R " + job(1).encode() + b" 1f",  # an index line, no record
            b"P " + job(1).encode() + b" 1f 2f",  # no job
            b"P ../x 1f 2f {}",
            b"B nope 1f 2f {}",
            b"P " + job(1).encode() + b" zz 2f {}",
            b"P " + job(1).encode() + b" 1f zz {}",
            b"C " + job(1).encode(),
            b"C " + job(1).encode() + b" 2f extra",
            b"C " + job(1).encode() + b" zz",
            b"C ../x 2f",
            b"X " + job(1).encode() + b" 1f 2f {}",
            b"Pjob 1f 2f {}",
        ],
    )
    def test_what_is_no_record(self, line: bytes) -> None:
        assert parse_record(line) is None


class TestAppend:
    def test_the_first_append_starts_segment_0(self, tmp_path: Path, open_journal: Opener) -> None:
        writer = open_journal()
        assert writer.append(ready_line(job(1), READY_NS)) == 0
        assert os.listdir(tmp_path) == ["0000000000.log"]
        assert (tmp_path / "0000000000.log").read_bytes() == b"\n" + ready_line(job(1), READY_NS)

    def test_lines_appended_in_one_write_stay_together(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        first, second = open_journal(), open_journal()
        first.append(ready_line(job(1), 1) + ready_line(job(2), 2))
        second.append(ready_line(job(3), 3))
        first.append(ready_line(job(4), 4), flush=True)
        lines = [ready_line(job(n), n) for n in range(5)]
        assert (tmp_path / segment_name(0)).read_bytes() == (
            b"\n" + lines[1] + lines[2] + b"\n" + lines[3] + b"\n" + lines[4])

    def test_a_full_segment_is_followed_by_the_next(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer = open_journal()
        numbers = [writer.append(ready_line(job(n), n)) for n in range(30)]
        assert numbers == sorted(numbers) and numbers[-1] >= 3
        kept = segments(tmp_path)
        for number in kept[:-1]:
            assert os.path.getsize(tmp_path / segment_name(number)) >= SMALL
            # The write that filled it is its last: the next one goes to the next segment.
            assert os.path.getsize(tmp_path / segment_name(number)) < SMALL + 60
        where = {}
        for number in kept:
            for line in lines_of(tmp_path, number):
                entry = parse_ready(line)
                assert entry is not None
                where[entry[0]] = number
        assert all(where[job(n)] == numbers[n] for n in range(30) if job(n) in where)

    def test_segments_older_than_the_previous_two_go_once_the_checkpoint_allows(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        calls: list[list[int]] = []

        def checkpoint() -> bool:
            calls.append(segments(tmp_path))
            return True

        writer = open_journal(checkpoint=checkpoint)
        fill_to(writer, tmp_path, KEEP)
        assert segments(tmp_path) == [0, 1, 2] and calls == []  # nothing old enough yet
        fill_to(writer, tmp_path, KEEP + 1)
        assert calls == [[0, 1, 2, 3]]  # before the removal, with the new segment started
        assert segments(tmp_path) == [1, 2, 3]
        fill_to(writer, tmp_path, KEEP + 3)
        assert segments(tmp_path) == [3, 4, 5]

    def test_old_segments_stay_while_the_checkpoint_refuses(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        allowed = False
        writer = open_journal(checkpoint=lambda: allowed)
        fill_to(writer, tmp_path, 5)
        assert segments(tmp_path) == [0, 1, 2, 3, 4, 5]
        allowed = True
        fill_to(writer, tmp_path, 6)
        assert segments(tmp_path) == [4, 5, 6]

    def test_writers_share_the_segments_and_each_line_is_written_once(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writers = [open_journal(), open_journal(), open_journal()]
        written: dict[int, list[str]] = {0: [], 1: [], 2: []}
        for n in range(60):
            writers[n % 3].append(ready_line(job(n), n))
            written[n % 3].append(job(n))
        kept = segments(tmp_path)
        assert kept == list(range(kept[0], kept[-1] + 1)) and kept[-1] >= 5  # none skipped
        read = [entry[0] for number in kept for line in lines_of(tmp_path, number)
                if (entry := parse_ready(line)) is not None]
        assert len(read) == len(set(read))
        assert job(59) in read
        for index in range(3):  # each writer's lines in its order, across the segments
            assert [job_id for job_id in read if job_id in written[index]] == [
                job_id for job_id in written[index] if job_id in read]

    def test_a_flushed_record_goes_to_the_newest_segment(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        slow, fast = open_journal(), open_journal()
        assert slow.append(ready_line(job(0), 0)) == 0
        fill_to(fast, tmp_path, 1, start=1)  # another process moved the journal on
        line = intent_line(job(99), READY_NS, b"{}")
        assert slow.append(line, flush=True) == 1
        assert line[:-1] in lines_of(tmp_path, 1)


class TestTailing:
    def test_a_reader_starts_at_the_end(self, open_journal: Opener) -> None:
        writer, reader = open_journal(1 << 20), open_journal(1 << 20)
        writer.append(ready_line(job(1), 1))
        assert reader.read() == ([], False)
        writer.append(ready_line(job(2), 2))
        assert reader.read() == ([(job(2), 2)], False)
        assert reader.read() == ([], False)

    def test_start_reading_returns_where_the_reader_starts(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer, reader = open_journal(), open_journal()
        fill_to(writer, tmp_path, 1)
        writer.append(ready_line(job(100), 100))
        assert reader.start_reading() == (1, os.path.getsize(tmp_path / segment_name(1)))

    def test_a_reader_sees_the_ready_lines_other_processes_append(
        self, open_journal: Opener
    ) -> None:
        first, second, reader = open_journal(1 << 20), open_journal(1 << 20), open_journal()
        reader.start_reading()
        first.append(ready_line(job(1), 1) + ready_line(job(2), 2))
        second.append(intent_line(job(3), 3, b"{}"))  # records are not for the index
        second.append(gone_line(job(3)))
        second.append(b"R not-an-id 1f\n")
        second.append(ready_line(job(4), 4))
        assert reader.read() == ([(job(1), 1), (job(2), 2), (job(4), 4)], False)

    def test_a_line_read_half_written_is_read_whole_later(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        reader = open_journal(1 << 20)
        reader.start_reading()
        line = b"\n" + ready_line(job(1), READY_NS)
        fd = os.open(tmp_path / segment_name(0), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line[:20])
            assert reader.read() == ([], False)
            os.write(fd, line[20:])
        finally:
            os.close(fd)
        assert reader.read() == ([(job(1), READY_NS)], False)

    def test_a_reader_follows_the_writers_across_segment_changes(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer, reader = open_journal(), open_journal()
        reader.start_reading()
        seen: list[tuple[str, int]] = []
        appended = []
        for n in range(40):
            appended.append((job(n), n))
            writer.append(ready_line(job(n), n))
            entries, gap = reader.read()
            assert not gap
            seen += entries
        assert segments(tmp_path)[-1] >= 4
        deadline = time.monotonic() + 2
        while len(seen) < len(appended) and time.monotonic() < deadline:
            time.sleep(0.06)  # past the reader's interval between two looks for a new segment
            seen += reader.read()[0]
        assert seen == appended

    def test_a_reader_kept_segments_behind_catches_up_without_a_gap(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer, reader = open_journal(), open_journal()
        reader.start_reading()  # at the start of segment 0
        appended = fill_to(writer, tmp_path, KEEP + 1)  # segment 0 is removed meanwhile
        appended.append((job(999), 999))
        writer.append(ready_line(*appended[-1]))
        assert 0 not in segments(tmp_path)
        # The reader holds segment 0 open and the next one is still there: nothing is lost.
        assert reader.read() == (appended, False)

    def test_a_reader_whose_next_segment_is_gone_reports_a_gap(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer, reader = open_journal(), open_journal()
        reader.start_reading()
        appended = fill_to(writer, tmp_path, KEEP + 2)  # segments 0 and 1 removed
        assert segments(tmp_path) == [KEEP, KEEP + 1, KEEP + 2]
        entries, gap = reader.read()
        assert gap
        assert entries == [entry for entry in appended if entry in entries]  # some, in order
        assert len(entries) < len(appended)
        # It goes on from the end of the newest segment.
        writer.append(ready_line(job(999), 999))
        assert reader.read() == ([(job(999), 999)], False)

    def test_no_gap_while_the_checkpoint_keeps_the_segments(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer, reader = open_journal(checkpoint=lambda: False), open_journal()
        reader.start_reading()
        appended = fill_to(writer, tmp_path, KEEP + 4)
        assert reader.read() == (appended, False)

    def test_lines_a_late_writer_adds_to_a_finished_segment_are_read(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        late, mover, reader = open_journal(), open_journal(), open_journal()
        reader.start_reading()
        late.append(ready_line(job(1), 1))  # its segment 0 stays open for it a while
        appended = [(job(1), 1), *fill_to(mover, tmp_path, 1, start=2)]
        mover.append(ready_line(job(50), 50))
        appended.append((job(50), 50))
        assert reader.read() == (appended, False)  # the reader is in segment 1 now
        assert reader.read() == ([], False)  # and still looks at segment 0 for a while
        assert late.append(ready_line(job(51), 51)) == 0  # (within WRITER_REFRESH)
        assert reader.read() == ([(job(51), 51)], False)


#: Run in a process of its own: appends ``lines`` to the journal in ``folder`` with the file
#: size limit set ``room`` bytes past the segment's end, so the write is cut short there.
CUT_SHORT = textwrap.dedent(
    """
    import os, resource, signal, sys
    from pulpo_file.journal import Journal

    folder, room, lines = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an EFBIG error instead
    journal = Journal(folder, 1 << 20, False, lambda: True)
    journal.append(b"")  # opens the segment before the limit is set
    size = os.path.getsize(os.path.join(folder, "0000000000.log"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + room, resource.RLIM_INFINITY))
    try:
        journal.append(lines, flush=True)
    except OSError as error:
        print(error.errno)
    else:
        print("written")
    """
)


def cut_short(folder: Path, room: int, lines: bytes) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CUT_SHORT, str(folder), str(room), lines.hex()],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return done.stdout.strip()


class TestAShortWrite:
    def test_what_a_cut_write_stored_is_blanked_and_it_raises(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer = open_journal(1 << 20)
        writer.append(ready_line(job(1), 1))
        before = (tmp_path / segment_name(0)).read_bytes() + b"\n"  # (the child's empty append)
        lines = intent_line(job(2), 2, b'{"a": 1}') + intent_line(job(3), 3, b'{"b": 2}')
        room = len(lines) - 10  # the first record whole, the second cut short
        assert cut_short(tmp_path, room, lines) == str(errno.EFBIG)
        assert (tmp_path / segment_name(0)).read_bytes() == before + b" " * room
        assert [record.job_id for record in writer.records((0, 1 << 30))] == []

    def test_a_ready_line_cut_short_reaches_no_reader_and_the_next_line_does(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer, reader = open_journal(1 << 20), open_journal(1 << 20)
        writer.append(ready_line(job(1), 1))
        reader.start_reading()
        lines = ready_line(job(2), 2) + ready_line(job(3), 3)
        assert cut_short(tmp_path, len(lines) - 5, lines) == str(errno.EFBIG)
        writer.append(ready_line(job(4), 4))
        assert reader.read() == ([(job(4), 4)], False)

    def test_a_write_with_room_is_whole(self, tmp_path: Path, open_journal: Opener) -> None:
        # The same child with enough room: what the two tests above see is the limit's doing.
        writer = open_journal(1 << 20)
        lines = intent_line(job(2), 2, b'{"a": 1}')
        assert cut_short(tmp_path, len(lines) + 1, lines) == "written"
        assert [record.job_id for record in writer.records((0, 1 << 30))] == [job(2)]


class TestRecords:
    def test_the_records_up_to_a_position_oldest_first(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer = open_journal()
        writer.append(intent_line(job(1), 11, b'{"one": 1}'), flush=True)
        after_first = (0, os.path.getsize(tmp_path / segment_name(0)))
        writer.append(ready_line(job(1), 11))
        writer.append(intent_line(job(2), 22, b'{"two": 2}', buried=True), flush=True)
        fill_to(writer, tmp_path, 1, start=100)
        writer.append(gone_line(job(1)))
        writer.append(b"P garbage\n")
        mark = (1, os.path.getsize(tmp_path / segment_name(1)))
        writer.append(intent_line(job(3), 33, b'{"three": 3}'), flush=True)

        def replay(until: tuple[int, int]) -> list[tuple[bytes, str, int, bytes | None]]:
            return [(r.kind, r.job_id, r.ready_ns, r.job) for r in writer.records(until)]

        assert replay(mark) == [
            (INTENT, job(1), 11, b'{"one": 1}'),
            (BURIED, job(2), 22, b'{"two": 2}'),
            (GONE, job(1), 0, None),
        ]
        assert replay(after_first) == [(INTENT, job(1), 11, b'{"one": 1}')]
        assert replay((0, 1 << 30)) == replay(mark)[:2]  # nothing of segment 1
        assert replay((1, 1 << 30)) == [*replay(mark), (INTENT, job(3), 33, b'{"three": 3}')]
        assert replay((0, 0)) == []

    def test_records_keep_their_times(self, open_journal: Opener) -> None:
        writer = open_journal(1 << 20)
        before = time.time_ns()
        writer.append(intent_line(job(1), 1, b"{}"))
        writer.append(gone_line(job(1)))
        records = list(writer.records((0, 1 << 30)))
        assert [type(record) for record in records] == [Record, Record]
        assert before <= records[0].time_ns <= records[1].time_ns <= time.time_ns()

    def test_records_of_removed_segments_are_not_replayed(
        self, tmp_path: Path, open_journal: Opener
    ) -> None:
        writer = open_journal()
        writer.append(intent_line(job(1), 1, b"{}"), flush=True)  # in segment 0
        fill_to(writer, tmp_path, KEEP + 1, start=100)  # segment 0 removed
        writer.append(intent_line(job(2), 2, b"{}"), flush=True)
        assert [record.job_id for record in writer.records((KEEP + 1, 1 << 30))] == [job(2)]

    def test_a_journal_with_no_segment_has_no_records(self, open_journal: Opener) -> None:
        assert list(open_journal().records((5, 1 << 30))) == []
