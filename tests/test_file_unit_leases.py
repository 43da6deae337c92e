"""Unit tests of :mod:`pulpo_file.leases`: claiming a ready job (``Leases.claim``), renewing the
claim (``touch``), renewing it once more before settling (``take_back``) and putting back the
jobs whose lease ran out (``expire``). The deadline is in the reserved file's name, so every
state is read from the folder.

Each :class:`Queue` is the adapter's parts as one process has them, built as the adapter builds
them (``fsync = false``: flushing is not what is tested here); two on one folder are two
processes."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulpo_file import leases
from pulpo_file.config import FileQueueConfig
from pulpo_file.durability import Unflushed
from pulpo_file.ids import make_id
from pulpo_file.index import ReadyIndex
from pulpo_file.journal import Journal
from pulpo_file.layout import REASON, Folder, parse_reserved
from pulpo_file.leases import MOVE_LEASE_MS, Leases, now_ms, ttr_of
from pulpo_file.materialize import PublishLogSet
from pulpo_file.recovery import Recovery

from pulpo_core import Message
from pulpo_core.errors import AdapterError
from pulpo_core.message import BURIED_REASON, DEFAULT_TTR

SECOND_NS = 1_000_000_000
#: Slack for the clock moving on between an action and the look at its result.
SLACK_MS = 2_000


class Queue:
    """One process's view of the queue at ``path``: its folder, journal, index and leases."""

    def __init__(self, path: Path) -> None:
        self.folder = Folder(FileQueueConfig(base_path=str(path), fsync=False))
        self.journal = Journal(self.folder.journal, 1 << 20, self.folder.fix_mode, lambda: True)
        self.durability = Unflushed(self.folder, self.journal)
        self.index = ReadyIndex(self.folder, self.journal)
        self.logs = PublishLogSet(self.folder, self.durability, self.index)
        self.recovery = Recovery(self.folder, self.durability, self.journal, self.index,
                                 self.logs)
        self.leases = Leases(self.folder, self.durability, self.index, self.recovery)
        self._serial = 0

    def put(self, message: Message, ready_ns: int | None = None, priority: int = 5) -> str:
        """Write the job into ``ready/`` (ready since a minute ago unless told); its id."""
        self._serial += 1
        job_id = make_id(time.time_ns() // 1000, priority, self._serial)
        ready = time.time_ns() - 60 * SECOND_NS if ready_ns is None else ready_ns
        data = message.with_id(job_id).to_json().encode()
        self.durability.write(self.folder.ready, job_id, data, ready)
        return job_id

    def listing(self, folder: str) -> list[str]:
        return sorted(os.listdir(folder))

    def reserved(self) -> list[tuple[str, int, str]]:
        """``(id, deadline ms, token)`` of every claim in ``reserved/``."""
        found = [parse_reserved(name) for name in self.listing(self.folder.reserved)]
        assert all(parsed is not None for parsed in found)
        return [parsed for parsed in found if parsed is not None]

    def read(self, folder: str, job_id: str) -> tuple[Message, int]:
        return self.folder.read(self.folder.job(folder, job_id))

    def close(self) -> None:
        self.journal.close()


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Queue]:
    opened = Queue(tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Queue]:
    """Another process on the same queue."""
    opened = Queue(tmp_path)
    yield opened
    opened.close()


def claimed(queue: Queue, job_id: str, now_ns: int | None = None) -> Message:
    message = queue.leases.claim(job_id, time.time_ns() if now_ns is None else now_ns)
    assert message is not None
    return message


def deadline_of(queue: Queue, job_id: str) -> int:
    (found,) = [deadline for name, deadline, _ in queue.reserved() if name == job_id]
    return found


class TestClaim:
    def test_a_claim_moves_the_job_to_reserved_with_a_deadline_its_ttr_away(
        self, queue: Queue
    ) -> None:
        job_id = queue.put(Message("t", payload="p", ttr=30))
        before = now_ms()
        message = claimed(queue, job_id)
        assert (message.id, message.ttr, message.body) == (job_id, 30, {"payload": "p"})
        assert queue.listing(queue.folder.ready) == []
        ((name, deadline, token),) = queue.reserved()
        assert name == job_id
        assert before + 30_000 <= deadline <= now_ms() + 30_000
        assert queue.leases.held == {job_id: f"{job_id}.{deadline}.{token}.json"}

    def test_each_jobs_lease_is_its_own_ttr(self, queue: Queue) -> None:
        ids = [queue.put(Message("t", ttr=ttr)) for ttr in (5, 5, 300, DEFAULT_TTR)]
        now_ns = time.time_ns()
        for job_id in ids:
            claimed(queue, job_id, now_ns)
        assert [deadline_of(queue, job_id) for job_id in ids] == [
            now_ns // 1_000_000 + ttr * 1000 for ttr in (5, 5, 300, DEFAULT_TTR)]

    def test_a_job_without_a_ttr_gets_the_default(self, queue: Queue) -> None:
        job_id = queue.put(Message("t"))
        now_ns = time.time_ns()
        assert claimed(queue, job_id, now_ns).ttr == DEFAULT_TTR
        assert deadline_of(queue, job_id) == now_ns // 1_000_000 + DEFAULT_TTR * 1000
        assert ttr_of(Message("t")) == DEFAULT_TTR and ttr_of(Message("t", ttr=7)) == 7

    def test_only_one_process_claims_a_job(self, queue: Queue, other: Queue) -> None:
        job_id = queue.put(Message("t"))
        claimed(queue, job_id)
        assert other.leases.claim(job_id, time.time_ns()) is None
        assert other.leases.held == {} and len(queue.reserved()) == 1

    def test_a_job_that_is_gone_is_not_claimed(self, queue: Queue) -> None:
        job_id = queue.put(Message("t"))
        os.unlink(queue.folder.job(queue.folder.ready, job_id))
        assert queue.leases.claim(job_id, time.time_ns()) is None
        assert queue.leases.held == {} and queue.reserved() == []

    def test_a_file_that_is_not_a_job_is_set_aside_as_buried(self, queue: Queue) -> None:
        job_id = queue.put(Message("t"))
        Path(queue.folder.job(queue.folder.ready, job_id)).write_bytes(b"{not json")
        assert queue.leases.claim(job_id, time.time_ns()) is None
        assert queue.leases.held == {} and queue.reserved() == []
        assert queue.listing(queue.folder.buried) == [f"{job_id}.json", f"{job_id}.json{REASON}"]
        reason = queue.folder.reason_of(queue.folder.job(queue.folder.buried, job_id))
        assert reason is not None and "not a job" in reason

    def test_a_job_delayed_since_the_index_saw_it_goes_back_to_wait(self, queue: Queue) -> None:
        later_ns = time.time_ns() + 3600 * SECOND_NS  # retried with a delay by another process
        job_id = queue.put(Message("t"), ready_ns=later_ns)
        assert queue.leases.claim(job_id, time.time_ns()) is None
        assert queue.leases.held == {} and queue.reserved() == []
        assert queue.read(queue.folder.ready, job_id)[1] == later_ns
        assert queue.index.delayed == [(later_ns, 5, job_id)] and queue.index.heap == []

    def test_a_file_holding_another_job_goes_where_that_job_belongs(self, queue: Queue) -> None:
        job_id = queue.put(Message("t"))
        inside = make_id(time.time_ns() // 1000, 3, 0xABC)
        Path(queue.folder.job(queue.folder.ready, job_id)).write_bytes(
            Message("t", payload="the other").with_id(inside).to_json().encode())
        assert queue.leases.claim(job_id, time.time_ns()) is None
        assert queue.leases.held == {} and queue.reserved() == []
        assert queue.listing(queue.folder.ready) == [f"{inside}.json"]
        assert queue.read(queue.folder.ready, inside)[0].body == {"payload": "the other"}


class TestTouch:
    def test_touch_moves_the_deadline_a_ttr_from_now(self, queue: Queue) -> None:
        job_id = queue.put(Message("t", ttr=60))
        message = claimed(queue, job_id, time.time_ns() - 30 * SECOND_NS)  # claimed 30 s ago
        (_, first, token) = queue.reserved()[0]
        queue.leases.touch(message, job_id)
        ((name, renewed, same_token),) = queue.reserved()
        assert name == job_id and same_token == token
        assert renewed - first >= 30_000 - SLACK_MS
        assert now_ms() + 60_000 - SLACK_MS <= renewed <= now_ms() + 60_000
        assert queue.leases.held[job_id] == f"{job_id}.{renewed}.{token}.json"

    def test_a_job_not_claimed_here_cannot_be_touched(self, queue: Queue, other: Queue) -> None:
        job_id = queue.put(Message("t"))
        message = claimed(queue, job_id)
        with pytest.raises(AdapterError, match="is not reserved by this worker"):
            other.leases.touch(message, job_id)
        assert len(queue.reserved()) == 1

    def test_a_job_whose_lease_ran_out_cannot_be_touched(
        self, queue: Queue, other: Queue
    ) -> None:
        job_id = queue.put(Message("t", ttr=1))
        message = claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
        other.leases.expire()  # another worker took it back
        with pytest.raises(AdapterError, match="is no longer reserved by this worker"):
            queue.leases.touch(message, job_id)
        assert job_id not in queue.leases.held and job_id in queue.leases.lost
        assert queue.listing(queue.folder.ready) == [f"{job_id}.json"]


class TestTakeBack:
    def test_take_back_renews_the_claim_for_the_move_and_returns_its_path(
        self, queue: Queue
    ) -> None:
        job_id = queue.put(Message("t", ttr=1))
        claimed(queue, job_id, time.time_ns() - 500_000_000)  # half its lease gone
        path = queue.leases.take_back(job_id, "deleted")
        assert path is not None and os.path.exists(path)
        ((name, deadline, _),) = queue.reserved()
        assert name == job_id and path == os.path.join(queue.folder.reserved,
                                                       queue.leases.held[job_id])
        assert now_ms() + MOVE_LEASE_MS - SLACK_MS <= deadline <= now_ms() + MOVE_LEASE_MS

    def test_a_job_never_claimed_here_is_not_taken_back(
        self, queue: Queue, other: Queue, caplog: pytest.LogCaptureFixture
    ) -> None:
        job_id = queue.put(Message("t"))
        claimed(queue, job_id)
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            assert other.leases.take_back(job_id, "deleted") is None
        assert f"job {job_id} cannot be deleted: this worker does not hold it" in caplog.text
        assert queue.leases.held.keys() == {job_id} and len(queue.reserved()) == 1

    def test_a_claim_deleted_meanwhile_is_not_taken_back(
        self, queue: Queue, caplog: pytest.LogCaptureFixture
    ) -> None:
        job_id = queue.put(Message("t", ttr=30))  # (see the next test for a ttr of 60)
        claimed(queue, job_id)
        os.unlink(os.path.join(queue.folder.reserved, queue.leases.held[job_id]))
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            assert queue.leases.take_back(job_id, "retried") is None
        assert f"job {job_id} cannot be retried: its lease ran out (or it was deleted)" in (
            caplog.text)
        assert queue.leases.held == {} and queue.leases.lost == set()

    def test_a_job_whose_lease_ran_out_here_is_not_taken_back(
        self, queue: Queue, caplog: pytest.LogCaptureFixture
    ) -> None:
        job_id = queue.put(Message("t", ttr=1))
        claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
        queue.leases.expire()  # this very process noticed
        assert job_id in queue.leases.lost
        with caplog.at_level(logging.WARNING, logger="pulpo.file"):
            assert queue.leases.take_back(job_id, "buried") is None
        assert (f"job {job_id} cannot be buried: its lease ran out and it went back to the "
                f"queue") in caplog.text
        assert queue.leases.lost == set()  # warned once
        assert queue.listing(queue.folder.ready) == [f"{job_id}.json"]

    def test_a_claim_deleted_within_its_first_millisecond_is_not_taken_back(
        self, queue: Queue, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        job_id = queue.put(Message("t", ttr=MOVE_LEASE_MS // 1000))
        now_ns = time.time_ns()
        claimed(queue, job_id, now_ns)
        os.unlink(os.path.join(queue.folder.reserved, queue.leases.held[job_id]))
        # A clock that cannot be held still for a test: take_back runs in the claim's
        # millisecond, as a job done at once does (a retry would then write the deleted job
        # back into ready/).
        monkeypatch.setattr(leases, "now_ms", lambda: now_ns // 1_000_000)
        assert queue.leases.take_back(job_id, "retried") is None

    def test_a_claim_deleted_within_its_first_millisecond_cannot_be_touched(
        self, queue: Queue, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        job_id = queue.put(Message("t", ttr=60))
        now_ns = time.time_ns()
        message = claimed(queue, job_id, now_ns)
        os.unlink(os.path.join(queue.folder.reserved, queue.leases.held[job_id]))
        monkeypatch.setattr(leases, "now_ms", lambda: now_ns // 1_000_000)  # (as above)
        with pytest.raises(AdapterError, match="is no longer reserved by this worker"):
            queue.leases.touch(message, job_id)


class TestExpire:
    def test_a_job_whose_lease_ran_out_goes_back_to_ready_with_one_more_attempt(
        self, queue: Queue, other: Queue
    ) -> None:
        job_id = queue.put(Message("t", payload="again", ttr=1))
        claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
        before = time.time_ns()
        other.leases.expire()
        assert queue.reserved() == []
        message, ready_ns = queue.read(queue.folder.ready, job_id)
        assert (message.id, message.body, message.attempts) == (job_id, {"payload": "again"}, 1)
        assert before <= ready_ns <= time.time_ns()  # ready again from now
        assert queue.listing(queue.folder.tmp) == []

    def test_a_job_taken_back_is_announced_to_every_worker(
        self, queue: Queue, other: Queue
    ) -> None:
        reader = Journal(queue.folder.journal, 1 << 20, False, lambda: True)
        try:
            reader.start_reading()
            job_id = queue.put(Message("t", ttr=1))
            claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
            other.leases.expire()
            entries, gap = reader.read()
        finally:
            reader.close()
        ready_ns = queue.read(queue.folder.ready, job_id)[1]
        assert (entries, gap) == ([(job_id, ready_ns)], False)

    def test_attempts_count_on_each_time_a_lease_runs_out(self, queue: Queue) -> None:
        job_id = queue.put(Message("t", ttr=1, attempts=2))
        path = queue.folder.job(queue.folder.ready, job_id)
        for attempts in (3, 4):
            claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
            queue.leases.expire()
            assert queue.read(queue.folder.ready, job_id)[0].attempts == attempts
            an_hour_ago = time.time_ns() - 3600 * SECOND_NS
            os.utime(path, ns=(an_hour_ago, an_hour_ago))  # as if it had waited since

    def test_the_holder_learns_its_lease_ran_out(self, queue: Queue) -> None:
        job_id = queue.put(Message("t", ttr=1))
        claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
        queue.leases.expire()
        assert queue.leases.held == {} and queue.leases.lost == {job_id}
        claimed(queue, job_id)  # claimed again: no longer lost
        assert queue.leases.lost == set()

    def test_claims_whose_lease_runs_on_stay(self, queue: Queue, other: Queue) -> None:
        live, dead = queue.put(Message("t", ttr=60)), queue.put(Message("t", ttr=1))
        claimed(queue, live)
        claimed(queue, dead, time.time_ns() - 10 * SECOND_NS)
        other.leases.expire()
        assert [name for name, _, _ in queue.reserved()] == [live]
        assert queue.listing(queue.folder.ready) == [f"{dead}.json"]
        assert queue.leases.held.keys() == {live, dead}  # the other process cannot know

    def test_names_that_are_not_claims_are_left_alone(self, queue: Queue) -> None:
        strays = ["notes.txt", "x.1.t.json", f"{make_id(1, 2, 3)}.soon.t.json"]
        for name in strays:
            Path(queue.folder.reserved, name).write_text("{}")
        queue.leases.expire()
        assert queue.listing(queue.folder.reserved) == sorted(strays)
        assert queue.listing(queue.folder.ready) == []

    def test_the_reason_of_an_earlier_burial_is_dropped(self, queue: Queue) -> None:
        job_id = queue.put(Message("t", ttr=1, extra_header={BURIED_REASON: "kicked", "k": 1}))
        claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
        queue.leases.expire()
        assert queue.read(queue.folder.ready, job_id)[0].extra_header == {"k": 1}

    def test_an_unreadable_claim_that_ran_out_is_set_aside(self, queue: Queue) -> None:
        job_id = queue.put(Message("t", ttr=1))
        claimed(queue, job_id, time.time_ns() - 10 * SECOND_NS)
        Path(queue.folder.reserved, queue.leases.held[job_id]).write_bytes(b"\xff garbage")
        queue.leases.expire()
        assert queue.reserved() == [] and queue.listing(queue.folder.ready) == []
        assert queue.listing(queue.folder.buried) == [f"{job_id}.json", f"{job_id}.json{REASON}"]
