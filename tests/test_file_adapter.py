"""The file queue adapter: what it promises beyond the behaviour every adapter shares."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulpo_file.adapter import FileQueueAdapter

from pulpo_core import AdapterError, ConfigError, Message, Pulpo
from pulpo_core.plugins import build_plugin_manager


def adapter_on(path: Path, **settings: Any) -> FileQueueAdapter:
    return FileQueueAdapter({"base_path": str(path), **settings})


def journal_on(path: Path, **settings: Any) -> FileQueueAdapter:
    """A queue whose single publishes go through the journal (``fsync_method = "journal"``):
    each job is a file in ``ready/`` when ``enqueue`` returns, its record in the journal."""
    return adapter_on(path, fsync_method="journal", **settings)


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[FileQueueAdapter]:
    adapter = adapter_on(tmp_path / "queue")
    yield adapter
    adapter.close()


def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def lose_the_lease(
    path: Path,
) -> tuple[FileQueueAdapter, FileQueueAdapter, Message, Message, Message]:
    """``worker`` dequeues a job with a ttr of 1 s and sleeps past it; ``other`` takes it.

    Returns worker, other, the job as sent, as the worker holds it and as other took it.
    """
    worker = adapter_on(path, lease_check_interval=0.1)
    other = adapter_on(path, lease_check_interval=0.1)
    sent = worker.enqueue(Message("t", ttr=1))
    message = worker.dequeue()
    assert message is not None
    time.sleep(1.2)
    taken = other.dequeue()
    assert taken is not None
    return worker, other, sent, message, taken


def drain(adapter: FileQueueAdapter) -> list[Any]:
    seen = []
    while (message := adapter.dequeue()) is not None:
        seen.append(message.payload)
        adapter.commit(message)
    return seen


class TestRegistration:
    def test_the_default_adapter_is_the_file_queue(self, tmp_path: Path) -> None:
        config = {"file_queue_adapter": {"base_path": str(tmp_path / "q")}}
        with Pulpo(config) as app:
            assert isinstance(app.queue_adapter, FileQueueAdapter)

    @pytest.mark.parametrize("name", ["file", "file_queue_adapter", "FileQueueAdapter"])
    def test_every_alias_selects_it_with_the_file_queue_adapter_section(
        self, tmp_path: Path, name: str
    ) -> None:
        config = {"queue_adapter_type": name, "file_queue_adapter": {"base_path": str(tmp_path)}}
        with Pulpo(config) as app:
            adapter = app.queue_adapter
            assert isinstance(adapter, FileQueueAdapter)
            assert adapter.path == tmp_path

    def test_the_default_base_path_is_pulpo_queue_under_the_current_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        with Pulpo({}) as app:
            app.publish(Message("t"))
        assert (tmp_path / ".pulpo" / "queue" / "ready").is_dir()
        assert adapter_on(tmp_path / ".pulpo" / "queue").stats()["ready"] == 1


class TestConfiguration:
    def test_an_unknown_key_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"file_queue_adapter\.base_pth"):
            Pulpo({"file_queue_adapter": {"base_pth": str(tmp_path)}})

    def test_a_bad_value_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"file_queue_adapter\.fsync"):
            Pulpo({"file_queue_adapter": {"base_path": str(tmp_path), "fsync": "yes"}})

    def test_a_ttr_below_one_second_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"file_queue_adapter\.ttr"):
            adapter_on(tmp_path, ttr=0)

    def test_a_folder_that_cannot_be_created_is_an_adapter_error(self, tmp_path: Path) -> None:
        (tmp_path / "a-file").write_text("not a folder")
        with pytest.raises(AdapterError, match="a-file"):
            adapter_on(tmp_path / "a-file" / "queue")


class TestOrder:
    def test_priority_then_ready_time_then_age(self, queue: FileQueueAdapter) -> None:
        queue.enqueue(Message("t", payload="low-old", priority=9))
        queue.enqueue(Message("t", payload="urgent", priority=1))
        queue.enqueue(Message("t", payload="low-new", priority=9))
        queue.enqueue(Message("t", payload="due-soon", priority=9, delay=0.3))
        assert drain(queue) == ["urgent", "low-old", "low-new"]
        time.sleep(0.35)
        assert drain(queue) == ["due-soon"]

    def test_a_retried_job_waits_for_its_delay_and_then_comes_before_newer_jobs(
        self, queue: FileQueueAdapter
    ) -> None:
        queue.enqueue(Message("t", payload="retried"))
        message = queue.dequeue()
        assert message is not None
        queue.rollback(message, delay=0.3)
        queue.enqueue(Message("t", payload="fresh"))
        assert drain(queue) == ["fresh"]
        assert queue.stats()["delayed"] == 1
        time.sleep(0.35)
        again = queue.dequeue()
        assert again is not None and again.payload == "retried" and again.attempts == 1

    def test_a_second_process_does_not_take_a_job_retried_with_a_delay_early(
        self, tmp_path: Path
    ) -> None:
        first, second = adapter_on(tmp_path), adapter_on(tmp_path)
        assert second.dequeue() is None  # the second worker is running, its index empty
        first.enqueue(Message("t", payload="job", delay=0.2))
        assert second.dequeue() is None  # it knows the job now, due in 0.2 s
        time.sleep(0.25)
        message = first.dequeue()
        assert message is not None
        first.rollback(message, delay=0.5)
        assert second.dequeue() is None  # its entry for the job is out of date
        time.sleep(0.55)
        again = second.dequeue()
        assert again is not None and again.payload == "job" and again.attempts == 1


class TestADelayedJobNeverHidesAReadyOne:
    def test_a_delayed_urgent_job_found_when_the_worker_starts(
        self, queue: FileQueueAdapter
    ) -> None:
        queue.enqueue(Message("t", payload="urgent-later", priority=0, delay=0.4))
        queue.enqueue(Message("t", payload="ready", priority=10))
        first = queue.dequeue()  # the worker's first look lists ready/
        assert first is not None and first.payload == "ready"
        queue.commit(first)
        assert queue.dequeue() is None
        time.sleep(0.45)
        assert drain(queue) == ["urgent-later"]

    def test_a_delayed_urgent_job_published_while_the_worker_runs(self, tmp_path: Path) -> None:
        publisher, worker = adapter_on(tmp_path), adapter_on(tmp_path)
        assert worker.dequeue() is None  # running: it learns of new jobs from the journal
        publisher.enqueue(Message("t", payload="urgent-later", priority=0, delay=0.4))
        publisher.enqueue(Message("t", payload="ready", priority=10))
        assert drain(worker) == ["ready"]
        time.sleep(0.45)
        publisher.enqueue(Message("t", payload="ready-too", priority=10))
        assert drain(worker) == ["urgent-later", "ready-too"]


class TestAJobDueDuringADequeue:
    def test_is_put_back_once_not_claimed_over_and_over(
        self, queue: FileQueueAdapter, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import pulpo_file.adapter as module

        job = queue.enqueue(Message("t", payload="retried", delay=0.2))
        assert queue.dequeue() is None  # the worker's index now holds the job, delayed
        time.sleep(0.25)
        worker = queue
        # A clock that moves one microsecond a call (what makes the race certain), and the job
        # retried by another process to be due a few calls into this dequeue.
        clock = iter(range(time.time_ns(), 2**63, 1000))
        monkeypatch.setattr(module, "time", _Clock(lambda: next(clock)))
        ready = Path(queue.path) / "ready" / f"{job.id}.json"
        due = next(clock) + 2000
        os.utime(ready, ns=(due, due))
        renames = _count_calls(monkeypatch, module.os, "rename")
        assert worker.dequeue() is None  # not due when this dequeue began
        assert renames[0] <= 2, f"{renames[0]} renames: the job went round and round"
        monkeypatch.undo()
        again = worker.dequeue()
        assert again is not None and again.id == job.id


class _Clock:
    """The ``time`` module with ``time_ns`` replaced."""

    def __init__(self, time_ns: Any) -> None:
        self.time_ns = time_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > 1000:
            raise RuntimeError("endless loop")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


class TestSettlingTouchesOnlyTheAdaptersOwnClaim:
    """A worker settles only a job it dequeued itself, never another worker's claim of it."""

    @pytest.mark.parametrize("settle", ["commit", "rollback", "bury", "release"])
    def test_another_adapter_cannot_settle_a_job_the_first_holds(
        self, tmp_path: Path, settle: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        holder, stranger = adapter_on(tmp_path), adapter_on(tmp_path)
        sent = holder.enqueue(Message("t", payload="mine"))
        message = holder.dequeue()
        assert message is not None
        claim = files_in(tmp_path / "reserved")
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            if settle == "bury":
                stranger.bury(message, "not yours")
            else:
                getattr(stranger, settle)(message)
        assert files_in(tmp_path / "reserved") == claim  # the holder's claim is untouched
        assert files_in(tmp_path / "ready") == files_in(tmp_path / "buried") == []
        assert f"job {sent.id} cannot be" in caplog.text and "does not hold it" in caplog.text
        holder.commit(message)
        assert holder.stats()["total"] == 0

    def test_settling_a_job_whose_lease_this_adapter_lost_says_it_may_run_again(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        worker, other, sent, message, taken = lose_the_lease(tmp_path)
        with pytest.raises(AdapterError, match="no longer reserved"):
            worker.touch(message)  # the heartbeat finds the lease lost
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            worker.commit(message)
        assert f"job {sent.id} cannot be committed" in caplog.text
        assert "may run again" in caplog.text
        assert other.stats()["reserved"] == 1
        other.commit(taken)
        assert other.stats()["total"] == 0


class TestRelease:
    def test_a_released_job_is_ready_at_once_with_its_attempts_unchanged(
        self, queue: FileQueueAdapter
    ) -> None:
        sent = queue.enqueue(Message("t", payload="job", attempts=2))
        message = queue.dequeue()
        assert message is not None
        queue.release(message)
        assert queue.stats()["ready"] == 1
        again = queue.dequeue()
        assert again is not None and again.id == sent.id and again.attempts == 2

    def test_it_keeps_its_place_before_newer_jobs_of_its_priority(
        self, tmp_path: Path
    ) -> None:
        worker, other = adapter_on(tmp_path), adapter_on(tmp_path)
        assert other.dequeue() is None  # running: it follows the journal
        worker.enqueue(Message("t", payload="old"))
        worker.enqueue(Message("t", payload="new"))
        message = worker.dequeue()
        assert message is not None and message.payload == "old"
        worker.touch(message)  # a heartbeat renamed the claim meanwhile
        worker.release(message)
        assert drain(other) == ["old", "new"]

    def test_releasing_a_job_whose_lease_ran_out_leaves_it_alone(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        worker, other, sent, message, taken = lose_the_lease(tmp_path)
        assert taken.attempts == 1
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            worker.release(message)
        assert f"job {sent.id} cannot be released" in caplog.text
        assert other.stats()["reserved"] == 1 and other.stats()["ready"] == 0


class TestRunningADelayedJobByHand:
    def test_touching_its_file_makes_it_ready_at_the_next_rescan(self, tmp_path: Path) -> None:
        # What the page says: the modification time is the ready time, whatever the header.
        queue = adapter_on(tmp_path, rescan_interval=0.1)
        sent = queue.enqueue(Message("t", payload="later", delay=3600))
        assert queue.dequeue() is None
        os.utime(tmp_path / "ready" / f"{sent.id}.json")  # touch ready/<id>.json
        time.sleep(0.15)
        message = queue.dequeue()
        assert message is not None and message.id == sent.id
        assert message.delay is not None  # the header still says when it was published for


class TestPublishMany:
    def test_every_job_is_queued_in_order_with_its_id(self, tmp_path: Path) -> None:
        config = {"file_queue_adapter": {"base_path": str(tmp_path)}}
        with Pulpo(config) as app:
            sent = app.publish_many(Message("t", payload=n) for n in range(50))
            assert [m.payload for m in sent] == list(range(50))
            assert len({m.id for m in sent}) == 50
            assert drain(app.queue_adapter) == list(range(50))  # type: ignore[arg-type]

    def test_with_fsync_the_journal_is_flushed_once_for_the_whole_call(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        flushes: list[int] = []
        real = os.fdatasync

        def counting(fd: int) -> None:
            flushes.append(fd)
            real(fd)

        monkeypatch.setattr(os, "fdatasync", counting)
        queue.enqueue_many([Message("t", payload=n) for n in range(100)])
        assert len(flushes) == 1
        queue.enqueue(Message("t"))
        assert len(flushes) == 2
        assert queue.stats()["ready"] == 101


class TestDequeueDoesNotListTheQueue:
    def test_draining_lists_the_ready_folder_once_not_once_per_job(
        self, queue: FileQueueAdapter, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for n in range(300):
            queue.enqueue(Message("t", payload=n))
        listed: list[str] = []
        real_scandir, real_listdir = os.scandir, os.listdir

        def scandir(path: Any = ".") -> Any:
            listed.append(str(path))
            return real_scandir(path)

        def listdir(path: Any = ".") -> list[str]:
            listed.append(str(path))
            return real_listdir(path)

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(os, "listdir", listdir)
        assert drain(queue) == list(range(300))
        ready = str(queue.path / "ready")
        assert listed.count(ready) == 1  # the index is built once, then fed by the journal


class TestLeases:
    def test_a_job_whose_lease_ran_out_returns_with_one_more_attempt(
        self, tmp_path: Path
    ) -> None:
        worker = adapter_on(tmp_path, lease_check_interval=0.1)
        other = adapter_on(tmp_path, lease_check_interval=0.1)
        worker.enqueue(Message("t", payload="job", ttr=1))
        message = worker.dequeue()
        assert message is not None and message.ttr == 1
        assert other.dequeue() is None
        time.sleep(1.2)
        again = other.dequeue()
        assert again is not None and again.id == message.id and again.attempts == 1

    def test_touch_keeps_the_lease(self, tmp_path: Path) -> None:
        worker = adapter_on(tmp_path, lease_check_interval=0.1)
        other = adapter_on(tmp_path, lease_check_interval=0.1)
        worker.enqueue(Message("t", ttr=1))
        message = worker.dequeue()
        assert message is not None
        for _ in range(5):
            time.sleep(0.4)
            worker.touch(message)
            assert other.dequeue() is None
        worker.commit(message)
        assert worker.stats()["total"] == 0

    def test_touch_after_the_lease_was_lost_raises(self, tmp_path: Path) -> None:
        worker = adapter_on(tmp_path, lease_check_interval=0.1)
        other = adapter_on(tmp_path, lease_check_interval=0.1)
        worker.enqueue(Message("t", ttr=1))
        message = worker.dequeue()
        assert message is not None
        time.sleep(1.2)
        assert other.dequeue() is not None
        with pytest.raises(AdapterError, match="no longer reserved"):
            worker.touch(message)

    def test_a_late_commit_leaves_the_job_to_the_worker_that_has_it_now(
        self, tmp_path: Path
    ) -> None:
        worker = adapter_on(tmp_path, lease_check_interval=0.1)
        other = adapter_on(tmp_path, lease_check_interval=0.1)
        worker.enqueue(Message("t", ttr=1))
        message = worker.dequeue()
        assert message is not None
        time.sleep(1.2)
        taken = other.dequeue()
        assert taken is not None
        worker.commit(message)  # logged, not raised: the job runs again (at-least-once)
        assert other.stats()["reserved"] == 1
        other.commit(taken)
        assert other.stats()["total"] == 0

    def test_touch_is_safe_from_another_thread(self, queue: FileQueueAdapter) -> None:
        import threading

        queue.enqueue(Message("t", ttr=5))
        message = queue.dequeue()
        assert message is not None
        errors: list[BaseException] = []

        def beat() -> None:
            try:
                for _ in range(200):
                    queue.touch(message)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=beat) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        queue.commit(message)
        assert queue.stats()["total"] == 0


class Killed(BaseException):
    """Stands for a SIGKILL at one point of a call: nothing after it runs."""


class TestAKillWhileAJobMovesLeavesOneCopy:
    """Retrying or burying a job writes its new content; a worker killed right after that
    write must leave one copy of the job, not one in ``reserved/`` and one where it was going
    (two workers could then run it at once when the old claim's lease runs out)."""

    def copies(self, path: Path, job_id: str) -> list[str]:
        return [f"{folder}/{name}" for folder in ("ready", "reserved", "buried")
                for name in files_in(path / folder) if name.startswith(job_id)]

    @pytest.mark.parametrize("settle", ["rollback", "bury"])
    def test_killed_right_after_writing_the_new_content(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: str
    ) -> None:
        import pulpo_file.layout as adapter_module

        worker = adapter_on(tmp_path)
        sent = worker.enqueue(Message("t", payload="moved"))
        message = worker.dequeue()
        assert message is not None and sent.id
        write = adapter_module.write_job_file

        def write_then_die(*args: Any, **kwargs: Any) -> None:
            write(*args, **kwargs)
            raise Killed

        monkeypatch.setattr(adapter_module, "write_job_file", write_then_die)
        with pytest.raises(Killed):
            if settle == "rollback":
                worker.rollback(message)
            else:
                worker.bury(message, "why")
        copies = self.copies(tmp_path, sent.id)
        assert len(copies) == 1, copies


class TestBury:
    def test_a_buried_job_shows_its_reason_and_kick_brings_it_back_without_it(
        self, queue: FileQueueAdapter
    ) -> None:
        sent = queue.enqueue(Message("t", payload="x"))
        message = queue.dequeue()
        assert message is not None
        queue.bury(message, "no such customer")
        assert files_in(queue.path / "buried") == [f"{sent.id}.json"]
        peeked = queue.peek(sent.id or "")
        assert peeked is not None and peeked.header["buried_reason"] == "no such customer"
        assert queue.kick() == 1
        again = queue.dequeue()
        assert again is not None and "buried_reason" not in again.header


class TestArchive:
    def test_with_enable_archive_a_committed_job_is_kept_in_archive(
        self, tmp_path: Path
    ) -> None:
        adapter = adapter_on(tmp_path, enable_archive=True)
        sent = adapter.enqueue(Message("t", payload="kept"))
        message = adapter.dequeue()
        assert message is not None
        adapter.commit(message)
        archived = tmp_path / "archive" / f"{sent.id}.json"
        assert json.loads(archived.read_text())["body"] == {"payload": "kept"}
        assert adapter.stats()["archived"] == 1
        assert adapter.peek(sent.id or "") is None

    def test_without_it_no_archive_folder_exists(self, queue: FileQueueAdapter) -> None:
        assert not (queue.path / "archive").exists()


class TestUnreadableFiles:
    def test_a_corrupt_job_file_is_buried_with_the_reason_and_the_worker_goes_on(
        self, tmp_path: Path
    ) -> None:
        config = {
            # The jobs are files as soon as they are published, to be damaged by hand.
            "file_queue_adapter": {"base_path": str(tmp_path), "fsync_method": "journal"},
            "shutdown_after_number_of_empty_iterations": 1,
            "sleep_duration": 0,
        }
        handled = []
        with Pulpo(config, plugin_manager=build_plugin_manager()) as app:
            app.register_handler("t", lambda message: handled.append(message.payload))
            before = app.publish(Message("t", payload="before", priority=1))
            broken = app.publish(Message("t", payload="broken", priority=2))
            after = app.publish(Message("t", payload="after", priority=3))
            (tmp_path / "ready" / f"{broken.id}.json").write_bytes(b'{"id": "tru')
            app.start()
            assert handled == ["before", "after"]
            assert before.id and after.id
            kept = tmp_path / "buried" / f"{broken.id}.json"
            assert kept.read_bytes() == b'{"id": "tru'  # kept as it was, never deleted
            peeked = app.queue_adapter.peek(broken.id or "")
            assert peeked is not None
            assert "not a job" in peeked.header["buried_reason"]
            assert peeked.body == {"raw": '{"id": "tru'}
            assert app.queue_adapter.stats()["buried"] == 1

    def test_a_buried_file_fixed_by_hand_can_be_kicked(self, tmp_path: Path) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t", payload="fixed"))
        path = queue.path / "ready" / f"{sent.id}.json"
        good = path.read_bytes()
        path.write_bytes(b"garbage")
        assert queue.dequeue() is None
        assert queue.kick() == 0  # still unreadable: stays buried
        (queue.path / "buried" / f"{sent.id}.json").write_bytes(good)
        assert queue.kick() == 1
        assert drain(queue) == ["fixed"]
        assert files_in(queue.path / "buried") == []

    def test_a_file_whose_name_is_not_a_job_id_is_set_aside(
        self, queue: FileQueueAdapter
    ) -> None:
        (queue.path / "ready" / "notes.txt").write_text("hello")
        queue.enqueue(Message("t", payload="real"))
        assert drain(queue) == ["real"]
        assert (queue.path / "buried" / "notes.txt").read_text() == "hello"
        assert (queue.path / "buried" / "notes.txt.reason").is_file()


class TestSetAsideNeverReplaces:
    def test_a_second_file_of_the_same_name_is_kept_beside_the_first(
        self, tmp_path: Path
    ) -> None:
        adapter_on(tmp_path).close()
        for content in ("first", "second"):
            (tmp_path / "ready" / "order.json").write_text(content)
            assert adapter_on(tmp_path).dequeue() is None  # its first look sets the file aside
        kept = {name: (tmp_path / "buried" / name).read_text()
                for name in files_in(tmp_path / "buried") if not name.endswith(".reason")}
        assert sorted(kept.values()) == ["first", "second"], kept
        assert len(files_in(tmp_path / "buried")) == 4  # each with its reason


class TestIdsThatAreNotOurs:
    @pytest.mark.parametrize(
        "bad",
        [
            "../ready",
            "..",
            "/etc/passwd",
            "a/b",
            "00062f3a9b1c2d3e-80000000-9f3ac1b2/../../x",
            "12",
            "",
            "00062F3A9B1C2D3E-80000000-9F3AC1B2",
            "00062f3a9b1c2d3e-80000000-9f3ac1b2.json",
        ],
    )
    def test_peek_delete_and_settling_refuse_them(
        self, queue: FileQueueAdapter, bad: str
    ) -> None:
        with pytest.raises(ValueError, match="not a file queue job id"):
            queue.peek(bad)
        with pytest.raises(ValueError, match="not a file queue job id"):
            queue.delete(bad)
        for settle in (queue.commit, queue.touch, lambda m: queue.bury(m, "x")):
            with pytest.raises(ValueError, match="not a file queue job id"):
                settle(Message("t", id=bad))

    def test_an_unknown_id_of_our_form_is_simply_not_found(
        self, queue: FileQueueAdapter
    ) -> None:
        assert queue.peek("00062f3a9b1c2d3e-80000000-9f3ac1b2") is None
        assert queue.delete("00062f3a9b1c2d3e-80000000-9f3ac1b2") is False


class TestPermissions:
    @pytest.mark.parametrize("mask", [0o022, 0o000, 0o277])
    def test_folders_are_0700_and_files_0600_whatever_the_umask(
        self, tmp_path: Path, mask: int
    ) -> None:
        previous = os.umask(mask)
        try:
            adapter = adapter_on(tmp_path / "private" / "queue", enable_archive=True)
            sent = adapter.enqueue(Message("t", payload="personal data"))
            other = adapter.enqueue(Message("t"))
            message = adapter.dequeue()
            assert message is not None
            adapter.bury(message, "kept for the test")
            message = adapter.dequeue()
            assert message is not None
            adapter.commit(message)
            adapter.close()
        finally:
            os.umask(previous)
        assert sent.id and other.id
        modes = {}
        for folder, _subfolders, names in os.walk(tmp_path / "private"):
            modes[folder] = stat.S_IMODE(os.stat(folder).st_mode)
            for name in names:
                path = os.path.join(folder, name)
                modes[path] = stat.S_IMODE(os.stat(path).st_mode)
        folders = {p: m for p, m in modes.items() if os.path.isdir(p)}
        files = {p: m for p, m in modes.items() if not os.path.isdir(p)}
        assert len(files) >= 3  # a buried job, an archived one, a journal segment
        assert set(folders.values()) == {0o700}, folders
        assert set(files.values()) == {0o600}, files


def publish_on_a_full_disk(
    path: Path, size: int = 100_000
) -> subprocess.CompletedProcess[str]:
    """Publish a job of ``size`` bytes (100 kB: too big for a publish log's block, it goes
    through the journal; small: it needs a publish log first) in a process that may write no
    file larger than 1 KiB
    (``RLIMIT_FSIZE``): a real failing write, as on a full disk (EFBIG instead of ENOSPC).
    The process prints the ``AdapterError`` and exits 3."""
    adapter_on(path).close()  # folders exist before the limit
    script = textwrap.dedent(
        f"""
        import resource, sys
        from pulpo_core import AdapterError, Message
        from pulpo_file.adapter import FileQueueAdapter

        queue = FileQueueAdapter({{"base_path": {str(path)!r}}})
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        try:
            queue.enqueue(Message("t", payload="x" * {size}))
        except AdapterError as error:
            print(error)
            sys.exit(3)
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


class TestFullDisk:
    @pytest.mark.parametrize("size", [100_000, 30])
    def test_a_publish_that_cannot_be_written_fails_clearly_and_leaves_no_file(
        self, tmp_path: Path, size: int
    ) -> None:
        result = publish_on_a_full_disk(tmp_path, size)
        assert result.returncode == 3, result.stderr
        assert "could not store a job" in result.stdout
        assert "too large" in result.stdout.lower()
        for folder in ("ready", "tmp", "reserved", "buried", "spare", "logs"):
            assert files_in(tmp_path / folder) == [], folder
        lines = journal_lines(tmp_path)
        if size > 1024:
            # Nor a piece of its journal record: the next job's record must not run into one.
            assert lines == []
        else:  # its record fitted; it was cancelled, so no replay brings the job back
            assert [line[:1] for line in lines] == [b"P", b"C"]
        assert adapter_on(tmp_path).stats()["total"] == 0

    def test_the_next_publish_after_a_full_disk_survives_a_power_cut(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert publish_on_a_full_disk(tmp_path).returncode == 3
        sent, message = publish_then_lose_the_file(tmp_path, monkeypatch)
        assert message is not None and message.id == sent.id and message.payload == sent.payload


UNPRIVILEGED = 65534  # "nobody": who a test running as root becomes to meet permission bits


@contextlib.contextmanager
def read_only(queue: Path, *folders: str) -> Iterator[None]:
    """Make ``folders`` of the queue (``""``: the whole queue) read-only for a process run by
    :func:`publish_in_a_child`, and give the write access back afterwards.

    Root may write anywhere, so under root the queue is handed to an unprivileged user, whom
    the child becomes; its parent folder is made passable for that user.
    """
    as_root = os.geteuid() == 0
    paths = [path for folder in folders for path in [queue / folder, *(queue / folder).rglob("*")]]
    if as_root:
        queue.parent.chmod(0o711)
        for path in [queue, *queue.rglob("*")]:
            os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
    for path in paths:
        path.chmod(0o500 if path.is_dir() else 0o400)
    try:
        yield
    finally:
        for path in paths:
            path.chmod(0o700 if path.is_dir() else 0o600)
        if as_root:
            for path in [queue, *queue.rglob("*")]:
                os.chown(path, 0, 0)


def publish_in_a_child(queue: Path, **settings: Any) -> str:
    """Publish a job from a forked process (unprivileged when the tests run as root) and
    return what it met: the ``AdapterError``'s message, or ``"published"``."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(UNPRIVILEGED)
                os.setuid(UNPRIVILEGED)
            adapter = FileQueueAdapter({"base_path": str(queue), **settings})
            try:
                adapter.enqueue(Message("t", payload="written into a read-only queue"))
                outcome = "published"
            except AdapterError as error:
                outcome = str(error)
        except BaseException as error:  # reported to the parent, never raised in the child
            outcome = f"unexpected {error!r}"
        os.write(writing, outcome.encode())
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


class TestReadOnlyFolder:
    @pytest.fixture
    def queue_path(self) -> Iterator[Path]:
        # Not under tmp_path: its parents are closed to other users, and the child may be one.
        parent = Path(tempfile.mkdtemp(prefix="pulpo-read-only-"))
        try:
            yield parent / "queue"
        finally:
            shutil.rmtree(parent)

    def test_a_read_only_queue_refuses_a_publish_clearly_and_is_left_as_it_was(
        self, queue_path: Path
    ) -> None:
        adapter_on(queue_path).enqueue(Message("t", payload="already queued"))
        before = {path: path.read_bytes() for path in queue_path.rglob("*") if path.is_file()}
        with read_only(queue_path, ""):
            outcome = publish_in_a_child(queue_path)
        assert outcome.startswith(f"the file queue could not store a job in "
                                  f"{str(queue_path / 'ready')!r}: Permission denied"), outcome
        after = {path: path.read_bytes() for path in queue_path.rglob("*") if path.is_file()}
        assert after == before
        assert drain(adapter_on(queue_path)) == ["already queued"]

    def test_a_read_only_ready_folder_leaves_no_file_and_no_job_after_a_reboot(
        self, queue_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        adapter_on(queue_path).close()
        with read_only(queue_path, "ready"):
            outcome = publish_in_a_child(queue_path, fsync_method="journal")
        assert "could not store a job" in outcome and "Permission denied" in outcome, outcome
        for folder in ("ready", "tmp", "reserved", "buried"):
            assert files_in(queue_path / folder) == [], folder
        # Its flushed record was cancelled in the journal: a replay must not bring it back.
        reboot(monkeypatch)
        worker = adapter_on(queue_path)
        assert worker.dequeue() is None
        assert worker.stats()["total"] == 0


class TestSpareFiles:
    def test_a_committed_jobs_file_is_reused_by_the_next_job(
        self, queue: FileQueueAdapter
    ) -> None:
        queue.enqueue(Message("t", payload="first"))
        assert queue.stats()["ready"] == 1  # made a file (from the publish log)
        first_inode = next(os.scandir(queue.path / "ready")).inode()
        assert drain(queue) == ["first"]
        assert queue.stats()["spare"] == 1
        second = queue.enqueue(Message("t", payload="second"))
        assert queue.stats()["spare"] == 0  # made a file (from the publish log) in the spare
        assert (queue.path / "ready" / f"{second.id}.json").stat().st_ino == first_inode
        peeked = queue.peek(second.id or "")
        assert peeked is not None and peeked.payload == "second"
        assert drain(queue) == ["second"]

    def test_with_max_spare_files_0_a_late_commit_still_warns(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        worker = adapter_on(tmp_path, max_spare_files=0, lease_check_interval=0.1)
        other = adapter_on(tmp_path, max_spare_files=0, lease_check_interval=0.1)
        sent = worker.enqueue(Message("t", ttr=1))
        message = worker.dequeue()
        assert message is not None
        time.sleep(1.2)
        assert other.dequeue() is not None
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            worker.commit(message)
        assert f"job {sent.id} finished after its lease ran out" in caplog.text
        assert other.stats()["reserved"] == 1

    def test_with_max_spare_files_0_finished_files_are_deleted(self, tmp_path: Path) -> None:
        adapter = adapter_on(tmp_path, max_spare_files=0)
        adapter.enqueue(Message("t"))
        assert len(drain(adapter)) == 1
        assert files_in(tmp_path / "spare") == []

    def test_removing_old_spares_leaves_one_a_publisher_has_taken(self, tmp_path: Path) -> None:
        import random

        from pulpo_file.spares import SparePool

        adapter = adapter_on(tmp_path)
        adapter.enqueue(Message("t"))
        assert len(drain(adapter)) == 1
        [name] = files_in(tmp_path / "spare")
        publisher = SparePool(str(tmp_path / "spare"), 10, 600.0, random.Random(1))
        taken = publisher.take()  # being written, not yet renamed into ready/
        assert taken is not None
        SparePool(str(tmp_path / "spare"), 10, 0.0, random.Random(2)).trim()  # all are old
        assert files_in(tmp_path / "spare") == [name]
        os.close(taken[0])
        SparePool(str(tmp_path / "spare"), 10, 0.0, random.Random(2)).trim()
        assert files_in(tmp_path / "spare") == []

    def test_spares_unused_for_spare_ttl_are_removed(self, tmp_path: Path) -> None:
        adapter = adapter_on(tmp_path, spare_ttl=0.2, rescan_interval=0.1)
        adapter.enqueue(Message("t"))
        assert len(drain(adapter)) == 1
        assert len(files_in(tmp_path / "spare")) == 1
        time.sleep(0.3)
        assert adapter.dequeue() is None  # the periodic rescan trims the spares
        assert files_in(tmp_path / "spare") == []


class TestJournal:
    def test_workers_follow_the_journal_across_many_segments(self, tmp_path: Path) -> None:
        publisher = adapter_on(tmp_path, journal_segment_size=4096)
        worker = adapter_on(tmp_path, journal_segment_size=4096)
        assert worker.dequeue() is None
        handled = []
        for batch in range(5):
            for n in range(100):
                publisher.enqueue(Message("t", payload=batch * 100 + n))
            handled += drain(worker)
        assert handled == list(range(500))
        assert len(os.listdir(tmp_path / "journal")) <= 3  # old segments are removed

    def test_a_worker_that_fell_far_behind_rebuilds_its_index(self, tmp_path: Path) -> None:
        publisher = adapter_on(tmp_path, journal_segment_size=4096)
        worker = adapter_on(tmp_path, journal_segment_size=4096)
        assert worker.dequeue() is None
        for n in range(500):  # about six segments while the worker does not look
            publisher.enqueue(Message("t", payload=n))
        time.sleep(0.06)
        assert drain(worker) == list(range(500))


    @staticmethod
    def leave_a_line_cut_short(path: Path) -> None:
        """What a process killed in the middle of a long write leaves at the end of a segment."""
        names = sorted(os.listdir(path / "journal")) or ["0000000000.log"]
        segment = path / "journal" / names[-1]
        with segment.open("ab") as journal:
            journal.write(b'P 0123456789abcdef-80000000-00000002 1 1 {"request_type": "cu')

    def test_a_line_cut_short_never_swallows_the_next_ready_line(self, tmp_path: Path) -> None:
        worker = adapter_on(tmp_path, fsync=False)
        assert worker.dequeue() is None  # it reads the journal from here on
        self.leave_a_line_cut_short(tmp_path)
        sent = adapter_on(tmp_path, fsync=False).enqueue(Message("t", payload="next"))
        message = worker.dequeue()  # found through the journal: no rescan is due for a minute
        assert message is not None and message.id == sent.id

    def test_a_line_cut_short_never_swallows_the_next_flushed_record(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        adapter_on(tmp_path).close()
        self.leave_a_line_cut_short(tmp_path)
        sent, again = publish_then_lose_the_file(tmp_path, monkeypatch)
        assert again is not None and again.id == sent.id and again.payload == sent.payload


def publish_then_lose_the_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Message, Message | None]:
    """Publish a job (fsync on), lose its file in a power cut, and dequeue after the reboot:
    the job, and what the first worker after the reboot takes."""
    queue = journal_on(path)
    sent = queue.enqueue(Message("t", payload="published before the power cut"))
    queue.close()
    (path / "ready" / f"{sent.id}.json").unlink()  # the file did not reach the disk
    reboot(monkeypatch)
    return sent, journal_on(path).dequeue()


def journal_lines(path: Path) -> list[bytes]:
    """Every line of the queue's journal segments that is not blank, oldest first."""
    lines = []
    for name in sorted(os.listdir(path / "journal")):
        lines += [line for line in (path / "journal" / name).read_bytes().split(b"\n")
                  if line.strip()]
    return lines


class TestStats:
    def test_counts_every_state(self, queue: FileQueueAdapter) -> None:
        queue.enqueue(Message("t", payload="ready"))
        queue.enqueue(Message("t", payload="delayed", delay=60))
        queue.enqueue(Message("t", payload="reserved"))
        queue.enqueue(Message("t", payload="buried"))
        reserved = queue.dequeue()
        to_bury = queue.dequeue()
        assert reserved is not None and to_bury is not None
        queue.bury(to_bury, "why")
        counts = queue.stats()
        assert {k: counts[k] for k in ("ready", "delayed", "reserved", "buried", "total")} == {
            "ready": 1, "delayed": 1, "reserved": 1, "buried": 1, "total": 4,
        }


def before_the_next_job_file(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` once, when the next job file is about to be written (after a publish has
    flushed its record): what other processes do while the publisher stalls there."""
    import pulpo_file.layout as adapter_module

    write = adapter_module.write_job_file

    def act_then_write(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(adapter_module, "write_job_file", write)  # once only
        action()
        write(*args, **kwargs)

    monkeypatch.setattr(adapter_module, "write_job_file", act_then_write)


def reboot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reboot cannot happen in a test: the next adapter is told the boot changed."""
    import pulpo_file.boot as adapter_module

    monkeypatch.setattr(adapter_module, "current_boot_id", lambda: "the-boot-after-the-cut")
    booted = time.time()
    monkeypatch.setattr(adapter_module, "boot_instant", lambda: booted)


class TestPowerCutRecovery:
    """With fsync, a job is safe once its record is flushed to the journal; files may be lost."""

    def test_publishers_after_a_reboot_keep_the_records_the_first_worker_replays(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path, journal_segment_size=4096)
        sent = queue.enqueue(Message("t", payload="its file was lost"))
        queue.close()
        (tmp_path / "ready" / f"{sent.id}.json").unlink()
        reboot(monkeypatch)
        publisher = journal_on(tmp_path, journal_segment_size=4096)
        for n in range(100):  # several segments, before any worker has started
            publisher.enqueue(Message("t", payload=n))
        handled = drain(journal_on(tmp_path, journal_segment_size=4096))
        assert sorted(handled, key=str) == sorted([*range(100), "its file was lost"], key=str)

    def test_a_publish_that_stalled_while_its_record_was_removed_flushes_its_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import pulpo_file.adapter as adapter_module

        publisher = journal_on(tmp_path, journal_segment_size=4096)
        others = journal_on(tmp_path, journal_segment_size=4096)
        fsync = os.fsync
        flushed: list[str] = []

        def others_fill_the_journal() -> None:
            # Until a checkpoint removes the segment holding the publisher's record.
            for n in range(100):
                others.enqueue(Message("t", payload=n))

        def spy(fd: int) -> None:  # which files the publish flushes (a power cut cannot be)
            flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
            fsync(fd)

        before_the_next_job_file(monkeypatch, others_fill_the_journal)
        monkeypatch.setattr(adapter_module.os, "fsync", spy)
        sent = publisher.enqueue(Message("t", payload="stalled"))
        monkeypatch.setattr(adapter_module.os, "fsync", fsync)
        assert not any(sent.id and sent.id.encode() in line for line in journal_lines(tmp_path))
        assert str(tmp_path / "ready" / f"{sent.id}.json") in flushed
        assert str(tmp_path / "ready") in flushed

    def test_the_replay_leaves_alone_a_publish_made_since_the_reboot(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        journal_on(tmp_path).close()
        reboot(monkeypatch)
        publisher, worker = journal_on(tmp_path), journal_on(tmp_path)
        first_look: list[Message | None] = []
        # The first worker after the reboot replays the journal while the publish stalls.
        before_the_next_job_file(monkeypatch, lambda: first_look.append(worker.dequeue()))
        sent = publisher.enqueue(Message("t", payload="published after the reboot"))
        assert first_look == [None]
        message = worker.dequeue()
        assert message is not None and message.id == sent.id
        assert worker.dequeue() is None  # one copy of the job, run once

    def test_a_job_whose_file_was_lost_is_written_again_from_the_journal(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t", payload="safe", priority=3))
        queue.close()
        (tmp_path / "ready" / f"{sent.id}.json").unlink()  # what the power cut took
        reboot(monkeypatch)
        recovered = journal_on(tmp_path)
        message = recovered.dequeue()
        assert message is not None and message.id == sent.id and message.payload == "safe"
        assert (tmp_path / "boot_id").read_text().strip() == "the-boot-after-the-cut"

    def test_a_damaged_file_is_repaired_from_the_journal(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t", payload="safe"))
        queue.close()
        (tmp_path / "ready" / f"{sent.id}.json").write_bytes(b"")  # data never reached the disk
        reboot(monkeypatch)
        message = journal_on(tmp_path).dequeue()
        assert message is not None and message.payload == "safe"

    def test_a_retry_recorded_before_the_cut_is_restored_with_its_attempt(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t"))
        message = queue.dequeue()
        assert message is not None
        queue.rollback(message)
        queue.close()
        (tmp_path / "ready" / f"{sent.id}.json").unlink()
        reboot(monkeypatch)
        again = journal_on(tmp_path).dequeue()
        assert again is not None and again.id == sent.id and again.attempts == 1

    def test_a_burial_recorded_before_the_cut_stays_a_burial(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t"))
        message = queue.dequeue()
        assert message is not None
        queue.bury(message, "bad input")
        queue.close()
        (tmp_path / "buried" / f"{sent.id}.json").unlink()
        reboot(monkeypatch)
        recovered = journal_on(tmp_path)
        assert recovered.dequeue() is None
        peeked = recovered.peek(sent.id or "")
        assert peeked is not None and peeked.header["buried_reason"] == "bad input"

    def test_a_job_recorded_as_done_does_not_come_back(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t", payload="done"))
        path = tmp_path / "ready" / f"{sent.id}.json"
        content = path.read_bytes()
        assert drain(queue) == ["done"]
        queue.enqueue(Message("t", payload="flush the done record"))
        queue.close()
        path.write_bytes(content)  # the power cut undid the rename of the finished job
        reboot(monkeypatch)
        assert drain(journal_on(tmp_path)) == ["flush the done record"]

    def test_a_record_cut_short_by_the_cut_is_ignored(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        queue.enqueue(Message("t", payload="whole"))
        queue.close()
        (segment,) = os.listdir(tmp_path / "journal")
        with open(tmp_path / "journal" / segment, "ab") as journal:
            journal.write(b'P 00062f3a9b1c2d3e-80000000-9f3ac1b2 1 1 {"id":"00062f3a9b1c')
        reboot(monkeypatch)
        assert drain(journal_on(tmp_path)) == ["whole"]

    def test_a_file_set_aside_as_unreadable_is_left_to_the_operator(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t"))
        (tmp_path / "ready" / f"{sent.id}.json").write_bytes(b"garbage")
        assert queue.dequeue() is None
        queue.close()
        reboot(monkeypatch)
        recovered = journal_on(tmp_path)
        assert recovered.dequeue() is None
        assert (tmp_path / "buried" / f"{sent.id}.json").read_bytes() == b"garbage"

    def test_without_a_reboot_nothing_is_replayed(self, tmp_path: Path) -> None:
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t"))
        queue.close()
        (tmp_path / "ready" / f"{sent.id}.json").unlink()  # deleted by hand: stays deleted
        assert journal_on(tmp_path).dequeue() is None

    def test_a_file_in_ready_holding_another_job_is_moved_under_its_own_id(
        self, tmp_path: Path
    ) -> None:
        # A reused file whose new job reached the disk while the renames that moved it did not.
        queue = journal_on(tmp_path)
        sent = queue.enqueue(Message("t", payload="finished long ago"))
        lost = Message("t", payload="new", id="00062f3a9b1c2d3e-80000000-9f3ac1b2")
        (queue.path / "ready" / f"{sent.id}.json").write_text(lost.to_json())
        message = queue.dequeue() or queue.dequeue()
        assert message is not None and message.id == lost.id
        assert queue.peek(sent.id or "") is None


class TestFsyncMethods:
    @pytest.mark.parametrize(
        ("settings", "records"),
        [
            ({"fsync": True}, False),  # "log": a single publish goes to a publish log
            ({"fsync": True, "fsync_method": "journal"}, True),
            ({"fsync": True, "fsync_method": "files"}, False),
            ({"fsync": False}, False),
        ],
    )
    def test_only_the_journal_method_writes_job_records(
        self, tmp_path: Path, settings: dict[str, Any], records: bool
    ) -> None:
        queue = adapter_on(tmp_path, **settings)
        queue.enqueue(Message("t", payload="x"))
        assert drain(queue) == ["x"]
        journal = b"".join(p.read_bytes() for p in (tmp_path / "journal").iterdir())
        assert (b"\nP " in b"\n" + journal) is records
        assert (b"\nR " in b"\n" + journal) is True

    def test_an_unknown_method_is_refused_naming_the_key(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"file_queue_adapter\.fsync_method"):
            adapter_on(tmp_path, fsync_method="sometimes")


class TestDocumentation:
    def test_every_configuration_key_is_in_the_pages_table_with_its_default(self) -> None:
        import attrs
        from pulpo_file.config import FileQueueConfig

        text = (Path(__file__).resolve().parent.parent / "docs" / "adapters" / "file.md")
        page = text.read_text(encoding="utf-8")
        for field in attrs.fields(FileQueueConfig):
            default = field.default
            shown = (json.dumps(default) if isinstance(default, bool | str) else str(default))
            row = f"| `{field.name}` | `{shown}` |"
            assert row in page, f"docs/adapters/file.md lacks the row {row!r}"
