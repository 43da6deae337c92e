"""Publish logs that the disk or a person damaged: every intact record survives its neighbour.

A flipped byte in one record, a log cut short, a record naming no job: each intact record is
still made a job, each damaged one is buried with its bytes kept (at WARNING), and no later
publisher writes over a job that is still in the log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from pulpo_file.adapter import FileQueueAdapter
from pulpo_file.publog import SLOT
from test_file_adapter import drain, files_in

from pulpo_core import Message


def on(path: Path, **settings: Any) -> FileQueueAdapter:
    return FileQueueAdapter({"base_path": str(path), "fsync_method": "log", **settings})


def publish(path: Path, payloads: list[Any]) -> list[str]:
    """Publish each payload with one publisher (into its log, no worker looking), then close."""
    publisher = on(path)
    try:
        return [str(publisher.enqueue(Message("t", payload=p)).id) for p in payloads]
    finally:
        publisher.close()


def flip_a_byte(path: Path, slot: int, offset: int = 200) -> bytes:
    """Flip one byte inside the slot's record; the slot's bytes afterwards."""
    log = path / "logs" / "0.log"
    with open(log, "r+b") as file:
        file.seek(slot * SLOT + offset)
        byte = file.read(1)
        file.seek(slot * SLOT + offset)
        file.write(bytes([byte[0] ^ 0x40]))
        file.seek(slot * SLOT)
        return file.read(SLOT)


class TestAFlippedByte:
    def test_the_records_after_it_are_jobs_and_it_is_buried_with_its_bytes(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        publish(tmp_path, list(range(10)))
        damaged = flip_a_byte(tmp_path, 2)
        worker = on(tmp_path)
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            handled = drain(worker)
        assert handled == [0, 1, 3, 4, 5, 6, 7, 8, 9]
        assert worker.stats()["buried"] == 1
        kept = tmp_path / "buried" / "publog-0-2.damaged"
        assert kept.read_bytes() == damaged
        reason = (tmp_path / "buried" / "publog-0-2.damaged.reason").read_text()
        assert "record 2 of the publish log" in reason and "damaged" in reason
        assert "record 2 of the publish log" in caplog.text

    def test_a_later_publisher_writes_after_the_intact_records_not_over_them(
        self, tmp_path: Path
    ) -> None:
        publish(tmp_path, list(range(10)))
        flip_a_byte(tmp_path, 2)
        publish(tmp_path, ["later 1", "later 2", "later 3"])  # takes the same log again
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos"]
        handled = drain(on(tmp_path))
        assert handled == [0, 1, 3, 4, 5, 6, 7, 8, 9, "later 1", "later 2", "later 3"]

    def test_a_damaged_last_record_is_buried_once_a_later_one_follows(
        self, tmp_path: Path
    ) -> None:
        publish(tmp_path, list(range(3)))
        flip_a_byte(tmp_path, 2)
        worker = on(tmp_path)
        assert drain(worker) == [0, 1]  # nothing follows it: it may be a write cut short
        publish(tmp_path, ["after"])
        assert drain(worker) == ["after"]
        assert files_in(tmp_path / "buried") == ["publog-0-2.damaged",
                                                 "publog-0-2.damaged.reason"]


class TestALogCutShort:
    def test_the_records_before_the_cut_are_jobs_and_the_loss_is_reported(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        publish(tmp_path, list(range(10)))
        os.truncate(tmp_path / "logs" / "0.log", 5 * SLOT)
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            handled = drain(on(tmp_path))
        assert handled == [0, 1, 2, 3, 4]
        assert "was cut short" in caplog.text

    def test_records_that_wrapped_past_the_cut_still_count(self, tmp_path: Path) -> None:
        publisher = on(tmp_path, publish_log_size=16 * SLOT)
        worker = on(tmp_path)
        for n in range(12):
            publisher.enqueue(Message("t", payload=f"lap 1 {n}"))
        assert len(drain(worker)) == 12
        worker.stats()  # the worker's checkpoint frees the slots
        for n in range(8):  # records 12..19: slots 12..15, then 0..3
            publisher.enqueue(Message("t", payload=n))
        publisher.close()
        os.truncate(tmp_path / "logs" / "0.log", 14 * SLOT)  # slots 14 and 15 are gone
        handled = drain(on(tmp_path))
        assert handled == [0, 1, 4, 5, 6, 7]
