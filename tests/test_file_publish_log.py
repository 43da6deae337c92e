"""The file queue's publish logs (``fsync_method = "log"``): a single durable publish is one
flushed block in a log of the publishing process's own, and becomes a file when a worker (or
any process looking at the queue) materializes the log."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pulpo_file.adapter import PENDING, FileQueueAdapter
from pulpo_file.publog import SLOT, LogFile
from test_file_adapter import Killed, drain, files_in, reboot

from pulpo_core import Message

#: The smallest log: 16 slots, so that a test wraps it quickly.
SMALL = 16 * SLOT


def on(path: Path, **settings: Any) -> FileQueueAdapter:
    return FileQueueAdapter({"base_path": str(path), "fsync_method": "log", **settings})


def records(path: Path, number: int = 0) -> list[str]:
    """The ids in log ``number`` not yet made files."""
    log_file = LogFile(str(path / "logs"), number, fix_mode=False)
    try:
        return [entry.job_id for entry in log_file.entries(log_file.positions()[0])]
    finally:
        log_file.close()


class TestASinglePublish:
    def test_is_a_record_in_the_log_and_a_file_once_a_worker_looks(self, tmp_path: Path) -> None:
        publisher = on(tmp_path)
        sent = publisher.enqueue(Message("t", payload="in the log"))
        assert records(tmp_path) == [sent.id]
        assert files_in(tmp_path / "ready") == []
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos"]
        worker = on(tmp_path)  # another process, as far as the queue can tell
        message = worker.dequeue()
        assert message is not None and message.id == sent.id and message.payload == "in the log"
        assert records(tmp_path) == []
        assert files_in(tmp_path / "tmp") == []

    def test_a_worker_with_the_journal_setting_takes_jobs_from_the_logs_too(
        self, tmp_path: Path
    ) -> None:
        sent = on(tmp_path).enqueue(Message("t", payload="from a log"))
        worker = FileQueueAdapter({"base_path": str(tmp_path)})  # fsync_method = "journal"
        message = worker.dequeue()
        assert message is not None and message.id == sent.id

    def test_the_log_keeps_its_size_and_the_order_holds_when_it_wraps(
        self, tmp_path: Path
    ) -> None:
        publisher = on(tmp_path, publish_log_size=SMALL)
        for n in range(100):  # six laps of the log, with no worker to make files
            publisher.enqueue(Message("t", payload=n, priority=n % 3))
        assert os.path.getsize(tmp_path / "logs" / "0.log") == SMALL
        handled = drain(on(tmp_path))
        assert handled == sorted(range(100), key=lambda n: (n % 3, n))

    def test_jobs_in_logs_and_in_the_folder_are_taken_in_one_order(self, tmp_path: Path) -> None:
        publisher = on(tmp_path)
        publisher.enqueue(Message("t", payload="log, priority 5", priority=5))
        publisher.enqueue_many([Message("t", payload="journal, priority 3", priority=3)])
        publisher.enqueue(Message("t", payload="log, priority 1", priority=1))
        publisher.enqueue(Message("t", payload="log, delayed", priority=0, delay=3600))
        assert drain(on(tmp_path)) == ["log, priority 1", "journal, priority 3", "log, priority 5"]

    def test_a_job_too_big_for_a_slot_goes_through_the_journal(self, tmp_path: Path) -> None:
        sent = on(tmp_path).enqueue(Message("t", payload="x" * SLOT))
        assert files_in(tmp_path / "ready") == [f"{sent.id}.json"]
        assert records(tmp_path) == []

    def test_peek_delete_and_stats_see_a_job_still_in_a_log(self, tmp_path: Path) -> None:
        kept = on(tmp_path).enqueue(Message("t", payload="kept"))
        removed = on(tmp_path).enqueue(Message("t", payload="removed"))
        assert kept.id and removed.id
        operator = on(tmp_path)
        found = operator.peek(kept.id)
        assert found is not None and found.payload == "kept"
        assert operator.delete(removed.id)
        assert operator.stats()["ready"] == 1
        assert drain(on(tmp_path)) == ["kept"]

    def test_a_torn_block_is_not_a_job_and_the_next_publish_takes_its_slot(
        self, tmp_path: Path
    ) -> None:
        publisher = on(tmp_path)
        first = publisher.enqueue(Message("t", payload="first"))
        log_path = tmp_path / "logs" / "0.log"
        with log_path.open("r+b") as log_file:  # what a crash halfway through a write leaves
            log_file.seek(SLOT)
            log_file.write(b"PLOG" + os.urandom(200))
        assert records(tmp_path) == [first.id]
        later = on(tmp_path)  # the publisher died; the next one takes its log over
        publisher.close()
        later.enqueue(Message("t", payload="second"))
        assert drain(on(tmp_path)) == ["first", "second"]

    def test_log_files_are_private_whatever_the_umask(self, tmp_path: Path) -> None:
        previous = os.umask(0o022)
        try:
            on(tmp_path / "queue").enqueue(Message("t", payload="personal data"))
        finally:
            os.umask(previous)
        logs = tmp_path / "queue" / "logs"
        assert stat.S_IMODE(logs.stat().st_mode) == 0o700
        assert {stat.S_IMODE((logs / name).stat().st_mode) for name in files_in(logs)} == {0o600}


class TestPublishers:
    def test_each_publishing_process_writes_a_log_of_its_own(self, tmp_path: Path) -> None:
        script = textwrap.dedent(
            f"""
            import sys
            from pulpo_core import Message
            from pulpo_file.adapter import FileQueueAdapter

            queue = FileQueueAdapter({{"base_path": {str(tmp_path)!r}, "fsync_method": "log",
                                      "publish_log_size": {SMALL}}})
            for n in range(60):
                queue.enqueue(Message("t", payload=[sys.argv[1], n]))
            """
        )
        publishers = [subprocess.Popen([sys.executable, "-c", script, name])
                      for name in ("a", "b", "c")]
        worker = on(tmp_path)
        handled: list[Any] = []
        while any(p.poll() is None for p in publishers):
            handled += drain(worker)
        assert [p.wait() for p in publishers] == [0, 0, 0]
        handled += drain(worker)
        assert sorted(map(tuple, handled)) == [(a, n) for a in "abc" for n in range(60)]

    def test_a_forked_child_does_not_write_its_parents_log(self, tmp_path: Path) -> None:
        publisher = on(tmp_path)
        publisher.enqueue(Message("t", payload="parent"))
        child = os.fork()
        if child == 0:
            code = 0
            try:
                publisher.enqueue(Message("t", payload="child"))
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        publisher.enqueue(Message("t", payload="parent again"))
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos", "1.log", "1.pos"]
        assert sorted(drain(on(tmp_path))) == ["child", "parent", "parent again"]


class TestAKilledMaterializer:
    """Making a file of a record: ``tmp/<id>.pending``, then the log's position, then the
    rename into ``ready/``. A process killed at any step leaves the job to be taken once."""

    def kill_after(self, monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
        real = getattr(target, name)

        def run_then_die(*args: Any, **kwargs: Any) -> None:
            monkeypatch.setattr(target, name, real)
            real(*args, **kwargs)
            raise Killed

        monkeypatch.setattr(target, name, run_then_die)

    @pytest.mark.parametrize("step", ["pending file written", "position moved"])
    def test_the_job_is_taken_exactly_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
    ) -> None:
        import pulpo_file.layout as adapter_module

        sent = on(tmp_path).enqueue(Message("t", payload="killed while made a file"))
        doomed = on(tmp_path)
        if step == "pending file written":
            self.kill_after(monkeypatch, adapter_module, "write_job_file")
        else:
            self.kill_after(monkeypatch, LogFile, "set_materialized")
        with pytest.raises(Killed):
            doomed.dequeue()
        assert files_in(tmp_path / "tmp") == [f"{sent.id}{PENDING}"]
        doomed.close()  # its locks go with the process
        worker = on(tmp_path)
        message = worker.dequeue()
        assert message is not None and message.id == sent.id
        assert worker.dequeue() is None
        assert files_in(tmp_path / "tmp") == []

    def test_a_pending_file_a_power_cut_left_goes_to_ready_after_the_reboot(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = on(tmp_path, publish_log_size=SMALL)
        sent = [queue.enqueue(Message("t", payload=n)) for n in range(16)]
        assert queue.stats()["ready"] == 16  # files made, and flushed: a checkpoint ran
        queue.close()
        first = f"{sent[0].id}"
        # The position and the pending file reached the disk, the rename did not.
        (tmp_path / "ready" / f"{first}.json").rename(tmp_path / "tmp" / f"{first}{PENDING}")
        reboot(monkeypatch)
        assert sorted(drain(on(tmp_path, publish_log_size=SMALL))) == list(range(16))
        assert files_in(tmp_path / "tmp") == []


class TestPowerCuts:
    """Files made from a log are not flushed; the log's ``synced`` position moves only after
    the file system was flushed, and after a reboot the first worker makes files again of
    every record from there on."""

    def test_jobs_whose_files_were_lost_are_made_again_from_the_log(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = on(tmp_path)
        queue._logs.checkpoint = lambda: False  # type: ignore[method-assign]  # the cut came first
        kept = queue.enqueue(Message("t", payload="its file survived"))
        lost = queue.enqueue(Message("t", payload="its file was lost"))
        done = queue.enqueue(Message("t", payload="done before the cut", priority=0))
        message = queue.dequeue()
        assert message is not None and message.id == done.id
        queue.commit(message)  # recorded in the journal: not run again
        queue.close()
        assert kept.id and lost.id
        (tmp_path / "ready" / f"{lost.id}.json").unlink()
        reboot(monkeypatch)
        assert sorted(drain(on(tmp_path))) == ["its file survived", "its file was lost"]

    def test_a_publisher_after_a_reboot_reuses_no_slot_before_the_replay(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = on(tmp_path, publish_log_size=SMALL)
        for n in range(16):  # the whole log
            queue.enqueue(Message("t", payload=n))
        queue._logs.checkpoint = lambda: False  # type: ignore[method-assign]  # the cut came first
        assert queue.stats()["ready"] == 16  # files made, not yet flushed
        queue.close()
        for name in files_in(tmp_path / "ready"):  # the power cut took them
            (tmp_path / "ready" / name).unlink()
        reboot(monkeypatch)
        publisher = on(tmp_path, publish_log_size=SMALL)
        for n in range(16, 40):  # no room in log 0 until a worker has replayed it
            publisher.enqueue(Message("t", payload=n))
        assert records(tmp_path, 0) == []
        assert sorted(drain(on(tmp_path, publish_log_size=SMALL))) == list(range(40))

    def test_slots_are_reused_only_once_their_files_are_flushed(self, tmp_path: Path) -> None:
        publisher = on(tmp_path, publish_log_size=SMALL)
        for n in range(16):
            publisher.enqueue(Message("t", payload=n))
        log_file = LogFile(str(tmp_path / "logs"), 0, fix_mode=False)
        assert log_file.positions() == (0, 0)
        publisher.enqueue(Message("t", payload=16))  # log 0 is full: a new log takes it
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos", "1.log", "1.pos"]
        worker = on(tmp_path, publish_log_size=SMALL)
        assert drain(worker) == list(range(17))
        # Half a log made files: the worker flushed them (a checkpoint), so the slots are free.
        assert log_file.positions() == (16, 16)
        log_file.close()
        publisher.close()
        again = on(tmp_path, publish_log_size=SMALL)
        for n in range(16):
            again.enqueue(Message("t", payload=n))
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos", "1.log", "1.pos"]
        assert drain(worker) == list(range(16))


class TestWhenFilesCannotBeMade:
    def test_jobs_stay_in_the_log_and_are_queued_once_they_can_be(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        import pulpo_file.layout as adapter_module

        sent = on(tmp_path).enqueue(Message("t", payload="waits in the log"))
        write = adapter_module.write_job_file

        def disk_full(*args: Any, **kwargs: Any) -> None:
            raise OSError(28, "No space left on device")

        worker = on(tmp_path)
        monkeypatch.setattr(adapter_module, "write_job_file", disk_full)
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            assert worker.dequeue() is None
        assert "cannot be queued yet (No space left on device)" in caplog.text
        assert records(tmp_path) == [sent.id]
        monkeypatch.setattr(adapter_module, "write_job_file", write)
        message = worker.dequeue()
        assert message is not None and message.id == sent.id


def positions(path: Path, number: int = 0) -> tuple[int, int]:
    log_file = LogFile(str(path / "logs"), number, fix_mode=False)
    try:
        return log_file.positions()
    finally:
        log_file.close()


class TestCheckpoints:
    """A worker flushes the files it made from a log (a checkpoint), so that the log's
    publisher may reuse the slots: after half a log, and whenever it finds nothing new."""

    def test_a_busy_worker_frees_the_slots_without_waiting_to_be_idle(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import pulpo_file.materialize as adapter_module

        monkeypatch.setattr(adapter_module, "LOG_SYNC_INTERVAL_S", 3600.0)  # no idle flush again
        publisher = on(tmp_path, publish_log_size=SMALL)
        worker = on(tmp_path, publish_log_size=SMALL)
        publisher.enqueue(Message("t", payload=0))
        assert drain(worker) == [0]  # idle: the one file made is flushed
        for n in range(1, 16):
            publisher.enqueue(Message("t", payload=n))
        assert worker.dequeue() is not None  # makes files of 15 records: more than half the log
        assert positions(tmp_path) == (16, 16)
        for n in range(16, 24):
            publisher.enqueue(Message("t", payload=n))
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos"]

    def test_an_idle_worker_frees_the_slots_of_the_few_jobs_it_made_files_of(
        self, tmp_path: Path
    ) -> None:
        publisher = on(tmp_path, publish_log_size=SMALL)
        for n in range(3):  # fewer than half the log
            publisher.enqueue(Message("t", payload=n))
        assert drain(on(tmp_path, publish_log_size=SMALL)) == [0, 1, 2]
        assert positions(tmp_path) == (3, 3)
        for n in range(3, 19):  # a whole log more: it fits only in freed slots
            publisher.enqueue(Message("t", payload=n))
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos"]


class TestOddLogs:
    def test_a_block_torn_after_its_header_is_not_a_job(self, tmp_path: Path) -> None:
        publisher = on(tmp_path)
        first = publisher.enqueue(Message("t", payload="first"))
        publisher.enqueue(Message("t", payload="x" * 1000))
        with (tmp_path / "logs" / "0.log").open("r+b") as log_file:
            log_file.seek(SLOT + 512)  # only the first sector of its block reached the disk
            log_file.write(bytes(SLOT - 512))
        assert records(tmp_path) == [first.id]
        later = on(tmp_path)
        publisher.close()
        later.enqueue(Message("t", payload="second"))
        assert drain(on(tmp_path)) == ["first", "second"]

    def test_stray_entries_in_the_logs_folder_are_left_alone_with_one_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        queue = on(tmp_path)
        (tmp_path / "logs" / "007.log").write_bytes(b"not ours")
        (tmp_path / "logs" / "\u0663.log").write_bytes(b"an Arabic-Indic three")
        (tmp_path / "logs" / "7.log").mkdir()
        queue.enqueue(Message("t", payload="still queued"))
        worker = on(tmp_path)
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            assert worker.stats()["ready"] == 1
            assert drain(worker) == ["still queued"]
        warnings = [r.getMessage() for r in caplog.records if "7.log" in r.getMessage()]
        assert len(warnings) == 1 and "cannot be read" in warnings[0], warnings


class TestForks:
    def test_a_forked_child_does_not_share_its_parents_hold_on_a_log(
        self, tmp_path: Path
    ) -> None:
        publisher = on(tmp_path)
        publisher.enqueue(Message("t", payload="first"))
        worker = on(tmp_path)
        assert drain(worker) == ["first"]  # the worker has the log open
        publisher.enqueue(Message("t", payload="second"))
        with worker._logs.files[0].materializing(wait=True):  # the parent is making files of it
            child = os.fork()
            if child == 0:
                os._exit(0 if worker.dequeue() is None else 1)  # the log is the parent's to do
            _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert drain(worker) == ["second"]


class TestCornerCases:
    def test_delete_alone_finds_a_job_still_in_a_log(self, tmp_path: Path) -> None:
        removed = on(tmp_path).enqueue(Message("t", payload="removed"))
        assert removed.id and on(tmp_path).delete(removed.id)
        assert drain(on(tmp_path)) == []

    def test_a_job_deleted_after_a_reboot_stays_deleted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        on(tmp_path).close()
        reboot(monkeypatch)
        deleted = on(tmp_path).enqueue(Message("t", payload="deleted"))
        assert deleted.id and on(tmp_path).delete(deleted.id)  # before any worker started
        assert drain(on(tmp_path)) == []

    @pytest.mark.parametrize("met_the_lock", [False, True])
    def test_a_running_worker_finishes_the_rename_of_one_that_died(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, met_the_lock: bool
    ) -> None:
        worker = on(tmp_path)
        assert worker.dequeue() is None  # running, with the logs open
        sent = on(tmp_path).enqueue(Message("t", payload="its maker died"))
        doomed = on(tmp_path)
        real = LogFile.set_materialized

        def then_die(self: LogFile, seq: int) -> None:
            real(self, seq)
            if met_the_lock:  # the worker looks now: the position moved, the lock is taken
                assert worker.dequeue() is None
            raise Killed

        monkeypatch.setattr(LogFile, "set_materialized", then_die)
        with pytest.raises(Killed):
            doomed.stats()
        monkeypatch.setattr(LogFile, "set_materialized", real)
        doomed.close()
        message = worker.dequeue()
        assert message is not None and message.id == sent.id

    def test_the_replay_finds_every_record_past_a_flushed_position_that_fell_behind(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        publisher = on(tmp_path, publish_log_size=SMALL)
        worker = on(tmp_path, publish_log_size=SMALL)
        for n in range(12):
            publisher.enqueue(Message("t", payload=n))
        assert drain(worker) == list(range(12))
        assert positions(tmp_path) == (12, 12)
        for n in range(12, 24):  # slots 0 to 7 are reused
            publisher.enqueue(Message("t", payload=n))
        worker._logs.checkpoint = lambda: False  # type: ignore[method-assign]  # the cut came first
        assert worker.stats()["ready"] == 12
        publisher.close()
        worker.close()
        with (tmp_path / "logs" / "0.pos").open("r+b") as pos:  # an older flushed position
            pos.seek(8)
            pos.write((4).to_bytes(8, "little"))
        for name in files_in(tmp_path / "ready"):  # the power cut took the files
            (tmp_path / "ready" / name).unlink()
        reboot(monkeypatch)
        assert sorted(drain(on(tmp_path, publish_log_size=SMALL))) == list(range(12, 24))

    def test_a_publisher_with_a_full_log_flushes_the_files_made_of_it_before_a_new_log(
        self, tmp_path: Path
    ) -> None:
        publisher = on(tmp_path, publish_log_size=SMALL)
        for n in range(16):
            publisher.enqueue(Message("t", payload=n))
        worker = on(tmp_path, publish_log_size=SMALL)
        worker._logs.checkpoint = lambda: False  # type: ignore[method-assign]  # a worker that lags
        assert drain(worker) == list(range(16))
        assert positions(tmp_path) == (16, 0)
        publisher.enqueue(Message("t", payload=16))
        assert positions(tmp_path) == (16, 16)
        assert files_in(tmp_path / "logs") == ["0.log", "0.pos"]
