"""Unit tests of :mod:`pulpo_file.publog`, the publish logs' format as their readers see it: a
record's encoding and checksum, which block holds which sequence number, what counts as a slot
written since it was free (``looks_written``) and as a :class:`Damaged` record, the log's slot
count (and a log cut short), and the ``.pos`` file's two positions and lock.

The logs are real files in ``tmp_path``, written slot by slot as a publisher writes them."""

from __future__ import annotations

import errno
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from pulpo_file.ids import make_id
from pulpo_file.publog import (
    MAGIC,
    SLOT,
    Damaged,
    Entry,
    LogFile,
    decode,
    encode,
    log_numbers,
    looks_written,
)

#: A job id, as every record holds one.
JOB = make_id(0x62F3A9B1C2D3E, 5, 0x9F3AC1B2)
#: A ready time.
READY_NS = 1_700_000_000_123_456_789


def job(seq: int) -> str:
    return make_id(1_000_000 + seq, 0, seq)


def record(seq: int, data: bytes | None = None) -> bytes:
    """Record ``seq`` of job :func:`job` ``(seq)``, padded to a whole slot."""
    encoded = encode(seq, job(seq), READY_NS + seq, b"job %d" % seq if data is None else data)
    assert encoded is not None
    return encoded.ljust(SLOT, b"\0")


def write_log(
    folder: Path, slots: int, blocks: Mapping[int, bytes], number: int = 0, pos: bytes = b""
) -> Path:
    """A log of ``slots`` zeroed slots with ``blocks`` written in (by seq: slot ``seq % slots``),
    and its ``.pos`` file holding ``pos``."""
    path = folder / f"{number}.log"
    with open(path, "wb") as log_file:
        log_file.truncate(slots * SLOT)
        for seq, block in blocks.items():
            log_file.seek((seq % slots) * SLOT)
            log_file.write(block)
    (folder / f"{number}.pos").write_bytes(pos)
    return path


def records_of(seqs: range | list[int]) -> dict[int, bytes]:
    return {seq: record(seq) for seq in seqs}


def flipped(block: bytes, at: int) -> bytes:
    return block[:at] + bytes([block[at] ^ 0x01]) + block[at + 1 :]


@pytest.fixture
def opened() -> Iterator[list[LogFile]]:
    """Logs a test opened, closed after it."""
    logs: list[LogFile] = []
    yield logs
    for log_file in logs:
        log_file.close()


@pytest.fixture
def open_log(tmp_path: Path, opened: list[LogFile]) -> Iterator[type[LogFile]]:
    """``LogFile(folder, number)`` on ``tmp_path``, closed after the test."""

    class Opened(LogFile):
        def __init__(self, folder: str = str(tmp_path), number: int = 0,
                     fix_mode: bool = False) -> None:
            super().__init__(folder, number, fix_mode)
            opened.append(self)

    yield Opened


class TestRecords:
    def test_a_record_reads_back_as_the_entry_it_holds(self) -> None:
        block = encode(41, JOB, READY_NS, b'{"job": "data"}')
        assert block is not None and block[:4] == MAGIC
        assert decode(block, 41) == Entry(41, JOB, READY_NS, b'{"job": "data"}')
        assert decode(block.ljust(SLOT, b"\0"), 41) == Entry(41, JOB, READY_NS, b'{"job": "data"}')

    def test_a_record_and_the_slot_size(self) -> None:
        head = len(encode(0, JOB, 0, b"") or b"") - len(JOB)  # what a record adds to its job
        largest = SLOT - head - len(JOB)
        fits = encode(0, JOB, 0, b"x" * largest)
        assert fits is not None and len(fits) == SLOT
        assert decode(fits, 0) == Entry(0, JOB, 0, b"x" * largest)
        assert encode(0, JOB, 0, b"x" * (largest + 1)) is None

    def test_a_record_is_only_read_as_its_own_sequence_number(self) -> None:
        block = encode(7, JOB, READY_NS, b"data")
        assert block is not None
        assert decode(block, 6) is None
        assert decode(block, 7 + 256) is None  # the same slot, a later lap of a 256-slot log

    # The checksum, the seq, the ready time, the id's length, the data's length, id, data.
    @pytest.mark.parametrize("at", [4, 8, 16, 24, 26, 40, 70])
    def test_a_flipped_bit_anywhere_makes_it_no_record(self, at: int) -> None:
        block = encode(7, JOB, READY_NS, b"some data of the job")
        assert block is not None
        assert decode(flipped(block, at), 7) is None

    def test_a_record_with_another_magic_is_none(self) -> None:
        block = encode(7, JOB, READY_NS, b"data")
        assert block is not None
        assert decode(b"XLOG" + block[4:], 7) is None

    def test_a_record_cut_short_is_none(self) -> None:
        block = encode(7, JOB, READY_NS, b"data that is cut")
        assert block is not None
        assert decode(block[:-1], 7) is None
        assert decode(block[:20], 7) is None  # not even a whole head
        assert decode(b"", 7) is None

    def test_a_checksummed_record_whose_id_is_not_ascii_is_none(self) -> None:
        name = "é".encode() * 17  # 34 bytes, as long as an id
        body = struct.pack("<QQHI", 3, READY_NS, len(name), 4) + name + b"data"
        block = MAGIC + struct.pack("<I", zlib.crc32(body)) + body
        assert decode(block, 3) is None

    def test_zeros_are_no_record(self) -> None:
        assert decode(bytes(SLOT), 0) is None


class TestLooksWritten:
    def test_zeros_are_a_slot_never_written(self) -> None:
        assert not looks_written(bytes(SLOT), 5)
        assert not looks_written(bytes(100), 5)

    def test_a_whole_record_of_an_earlier_lap_is_a_slot_free_to_reuse(self) -> None:
        assert not looks_written(record(5), 5 + 16)

    def test_a_damaged_record_of_an_earlier_lap_was_written_since(self) -> None:
        assert looks_written(flipped(record(5), 50), 5 + 16)

    def test_anything_else_was_written_since(self) -> None:
        assert looks_written(flipped(record(21), 50), 21)  # this lap's record, damaged
        assert looks_written(record(37), 21)  # a later lap's record in this slot
        assert looks_written(b"\0" * 100 + b"x" + b"\0" * (SLOT - 101), 0)
        assert looks_written(b"x", 0)


class TestLogNumbers:
    def test_only_the_logs_this_module_names_in_ascending_order(self, tmp_path: Path) -> None:
        names = ["10.log", "2.log", "0.log", "0.pos", "10.pos", "007.log", "x.log", "1.log.bak",
                 "new.123.0badcafe", "3.logs", "-1.log", "٣.log", "4"]
        for name in names:
            (tmp_path / name).touch()
        assert log_numbers(str(tmp_path)) == [0, 2, 10]

    def test_an_empty_folder_has_none(self, tmp_path: Path) -> None:
        assert log_numbers(str(tmp_path)) == []


class TestSlotCount:
    def test_a_log_has_as_many_slots_as_whole_blocks(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 16, {})
        log_file = open_log()
        assert (log_file.slots, log_file.written_slots(), log_file.cut) == (16, 0, False)

    def test_the_slot_count_is_recorded_once(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        path = write_log(tmp_path, 16, {})
        log_file = open_log()
        log_file.record_slots()
        assert log_file.written_slots() == 16
        assert open_log().written_slots() == 16  # on the disk, for every reader
        os.truncate(path, 32 * SLOT)
        grown = open_log()
        grown.record_slots()  # not overwritten by a log's later size
        assert grown.written_slots() == 16

    def test_recording_the_count_keeps_the_positions(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        # A .pos file of an earlier layout: the two positions, no slot count.
        write_log(tmp_path, 16, {}, pos=struct.pack("<QQ", 9, 4))
        log_file = open_log()
        assert (log_file.positions(), log_file.written_slots()) == ((9, 4), 0)
        log_file.record_slots()
        assert (log_file.positions(), log_file.written_slots()) == ((9, 4), 16)

    def test_a_log_cut_short_is_noticed_and_read_where_it_was_written(
        self, tmp_path: Path, open_log: type[LogFile], caplog: pytest.LogCaptureFixture
    ) -> None:
        # Records 4..9 of a log written with 8 slots: 8 and 9 in slots 0 and 1, after a lap.
        path = write_log(tmp_path, 8, records_of(range(4, 10)))
        open_log().record_slots()
        os.truncate(path, 6 * SLOT)  # slots 6 and 7 (records 6 and 7) are lost
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            log_file = open_log()
        assert log_file.cut and log_file.slots == 8
        assert "holds 6 slots but was written with 8" in caplog.text
        assert log_file.block(6) == b""
        assert [entry.seq for entry in log_file.all_from(0)] == [4, 5, 8, 9]
        assert list(log_file.entries(4)) == [
            Entry(4, job(4), READY_NS + 4, b"job 4"),
            Entry(5, job(5), READY_NS + 5, b"job 5"),
            Damaged(6, b""),
            Damaged(7, b""),
            Entry(8, job(8), READY_NS + 8, b"job 8"),
            Entry(9, job(9), READY_NS + 9, b"job 9"),
        ]

    def test_a_log_grown_by_hand_is_read_with_the_slots_it_was_written_with(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        path = write_log(tmp_path, 8, records_of(range(6, 10)))  # 8, 9 in slots 0, 1
        open_log().record_slots()
        os.truncate(path, 16 * SLOT)
        log_file = open_log()
        assert log_file.cut and log_file.slots == 8
        assert [entry.seq for entry in log_file.entries(6) if isinstance(entry, Entry)] == [
            6, 7, 8, 9]

    def test_a_log_that_is_not_a_regular_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "0.log").mkdir()
        (tmp_path / "0.pos").touch()
        with pytest.raises(OSError) as raised:
            LogFile(str(tmp_path), 0, fix_mode=False)
        assert raised.value.errno == errno.EINVAL

    def test_an_empty_log_has_no_slots_and_no_records(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 0, {})
        log_file = open_log()
        assert log_file.slots == 0
        assert log_file.read(0) is None and log_file.block(0) == b""
        assert list(log_file.entries(0)) == [] and not log_file.has_news(0)


class TestSequenceNumbers:
    def test_record_seq_is_read_from_slot_seq_modulo_the_slots(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 8, records_of([3, 13]))  # 13 in slot 5
        log_file = open_log()
        assert log_file.read(3) == Entry(3, job(3), READY_NS + 3, b"job 3")
        assert log_file.read(13) == Entry(13, job(13), READY_NS + 13, b"job 13")
        assert log_file.read(5) is None  # slot 5 holds 13, a later lap's
        assert log_file.read(11) is None  # slot 3 holds 3, an earlier lap's
        assert log_file.block(13) == record(13)

    def test_entries_are_the_records_in_order_up_to_the_first_unwritten_slot(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 16, records_of(range(0, 5)))
        log_file = open_log()
        assert [entry.seq for entry in log_file.entries(0)] == [0, 1, 2, 3, 4]
        assert [entry.seq for entry in log_file.entries(3)] == [3, 4]
        assert list(log_file.entries(5)) == []

    def test_entries_wrap_round_the_log_and_stop_at_an_earlier_laps_record(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        # Lap 0 wrote 0..7; lap 1 rewrote slots 0..2 with 8..10; slots 3..7 hold lap 0's 3..7.
        write_log(tmp_path, 8, {**records_of(range(0, 8)), **records_of(range(8, 11))})
        log_file = open_log()
        assert [entry.seq for entry in log_file.entries(5)] == [5, 6, 7, 8, 9, 10]
        assert list(log_file.entries(11)) == []  # slot 3 holds 3: free, not damaged

    def test_entries_read_on_across_chunks_and_the_end_of_the_log(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        # 40 slots (more than are read at a time), records 30..69: 40..69 in slots 0..29.
        write_log(tmp_path, 40, records_of(range(30, 70)))
        log_file = open_log()
        assert [entry.seq for entry in log_file.entries(30)] == list(range(30, 70))
        assert [entry.seq for entry in log_file.entries(65)] == list(range(65, 70))

    def test_all_from_finds_every_record_wherever_it_is_in_order(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        blocks = {**records_of(range(0, 8)), **records_of(range(8, 11))}
        blocks[4] = flipped(record(4), 60)  # damaged
        write_log(tmp_path, 8, blocks)
        # A record copied into another slot than its own is not where it was written.
        with open(tmp_path / "0.log", "r+b") as log_file:
            log_file.seek(6 * SLOT)
            log_file.write(record(9))
        log_file_ = open_log()
        assert [entry.seq for entry in log_file_.all_from(0)] == [3, 5, 7, 8, 9, 10]
        assert [entry.seq for entry in log_file_.all_from(8)] == [8, 9, 10]
        assert log_file_.all_from(11) == []


class TestDamage:
    def test_a_damaged_record_before_a_later_one_is_reported_and_reading_goes_on(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        blocks = records_of(range(0, 5))
        blocks[2] = flipped(record(2), 50)
        write_log(tmp_path, 16, blocks)
        found = list(open_log().entries(0))
        assert [type(entry).__name__ for entry in found] == [
            "Entry", "Entry", "Damaged", "Entry", "Entry"]
        assert found[2] == Damaged(2, blocks[2])  # the slot's bytes, for burying

    def test_several_damaged_records_in_a_row(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        blocks = records_of(range(0, 6))
        blocks[1] = b"garbage".ljust(SLOT, b"\0")
        blocks[2] = flipped(record(2), 50)
        write_log(tmp_path, 16, blocks)
        found = list(open_log().entries(0))
        assert [entry.seq for entry in found] == [0, 1, 2, 3, 4, 5]
        assert [entry.seq for entry in found if isinstance(entry, Damaged)] == [1, 2]

    def test_a_later_record_far_after_the_damage_is_found(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        blocks = {0: record(0), 1: flipped(record(1), 50), 12: record(12)}  # 2..11: zeros
        write_log(tmp_path, 16, blocks)
        found = list(open_log().entries(0))
        assert [entry.seq for entry in found] == [0, *range(1, 12), 12]
        assert all(isinstance(entry, Damaged) for entry in found[1:12])

    def test_a_damaged_last_record_is_no_entry_until_a_later_one_is_written(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        blocks = records_of(range(0, 3))
        blocks[3] = flipped(record(3), 50)
        path = write_log(tmp_path, 16, blocks)
        log_file = open_log()
        assert [entry.seq for entry in log_file.entries(0)] == [0, 1, 2]
        assert not log_file.has_news(3)
        with open(path, "r+b") as writer:  # the publisher writes on, after the damaged one
            writer.seek(4 * SLOT)
            writer.write(record(4))
        assert log_file.has_news(3)
        assert list(log_file.entries(3)) == [Damaged(3, blocks[3]), log_file.read(4)]

    def test_a_damaged_slot_searched_past_is_searched_again_once_it_changes(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        path = write_log(tmp_path, 16, {0: record(0), 1: b"torn".ljust(SLOT, b"\0")})
        log_file = open_log()
        assert [entry.seq for entry in log_file.entries(0)] == [0]  # the lap searched once
        with open(path, "r+b", buffering=0) as writer:
            writer.seek(10 * SLOT)
            writer.write(record(10))  # far after the damage (not as a publisher writes)
            assert [entry.seq for entry in log_file.entries(0)] == [0]  # not searched again
            writer.seek(1 * SLOT)
            writer.write(b"torn again".ljust(SLOT, b"\0"))
        assert [entry.seq for entry in log_file.entries(0)] == list(range(11))

    def test_a_damaged_record_of_an_earlier_lap_is_no_news(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        blocks = records_of(range(0, 8))
        blocks[3] = flipped(record(3), 50)  # seq 3, damaged after it was made a file
        write_log(tmp_path, 8, {**blocks, **records_of(range(8, 11))})
        log_file = open_log()
        # Slot 3 is looked at as record 11's: it looks written but nothing follows in the lap.
        assert list(log_file.entries(11)) == []
        assert not log_file.has_news(11)


class TestPositions:
    def test_a_new_log_starts_at_zero(self, tmp_path: Path, open_log: type[LogFile]) -> None:
        write_log(tmp_path, 16, {})
        assert open_log().positions() == (0, 0)

    def test_positions_are_stored_for_every_reader(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 16, {})
        log_file = open_log()
        log_file.set_materialized(12)
        log_file.set_synced(7)
        assert log_file.positions() == (12, 7)
        assert open_log().positions() == (12, 7)
        assert struct.unpack("<QQ", (tmp_path / "0.pos").read_bytes()[:16]) == (12, 7)

    def test_synced_never_moves_back(self, tmp_path: Path, open_log: type[LogFile]) -> None:
        write_log(tmp_path, 16, {})
        log_file = open_log()
        log_file.set_materialized(12)
        log_file.set_synced(9)
        log_file.set_synced(3)
        assert log_file.positions() == (12, 9)

    def test_synced_is_never_reported_past_materialized(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 16, {})
        log_file = open_log()
        log_file.set_materialized(5)
        log_file.set_synced(8)
        assert log_file.positions() == (5, 5)

    def test_a_log_is_drained_once_its_records_are_files_flushed_to_the_disk(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 16, records_of(range(0, 3)))
        log_file = open_log()
        assert not log_file.drained()  # three records, none a file
        log_file.set_materialized(3)
        assert not log_file.drained()  # files, not yet flushed
        log_file.set_synced(3)
        assert log_file.drained()

    def test_a_log_with_a_record_past_its_position_is_not_drained(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 16, records_of(range(0, 4)))
        log_file = open_log()
        log_file.set_materialized(3)
        log_file.set_synced(3)
        assert log_file.has_news(3) and not log_file.drained()

    def test_one_process_at_a_time_materializes(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        write_log(tmp_path, 16, {})
        first, second = open_log(), open_log()  # two readers: two open .pos files
        with first.materializing(wait=False) as holding:
            assert holding
            with second.materializing(wait=False) as also:
                assert not also
        with second.materializing(wait=False) as holding_now:
            assert holding_now

    def test_a_reader_knows_when_its_log_was_retired_or_replaced(
        self, tmp_path: Path, open_log: type[LogFile]
    ) -> None:
        path = write_log(tmp_path, 16, {})
        log_file = open_log()
        assert log_file.is_current()
        os.rename(path, tmp_path / "retired")
        assert not log_file.is_current()
        write_log(tmp_path, 16, {})  # a new log under the same name
        assert not log_file.is_current()
        assert open_log().is_current()
