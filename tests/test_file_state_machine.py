"""A hypothesis state machine drives the file queue against a simple model of a queue.

Two adapters share one folder, like two worker processes. Every dequeue must return the job the
model says is next (lowest priority number, then earliest ready time, then oldest), with its
attempts; after every step the counts by state must match the model's.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pulpo_file.adapter import FileQueueAdapter

from pulpo_core import Message
from pulpo_core.message import DEFAULT_PRIORITY

WORKERS = 2


@attrs.define
class Job:
    """What the model knows of one job."""

    priority: int
    ready_at: int  # a logical clock: the step at which the job became ready
    seq: int
    state: str  # ready | delayed | reserved | buried
    attempts: int = 0
    holder: int = -1  # the worker holding a reserved job


class FileQueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="pulpo-file-model-")
        # fsync off: the model checks order and counts, not flushing, and should run quickly.
        section = {"base_path": self.folder, "fsync": False}
        self.workers = [FileQueueAdapter(section) for _ in range(WORKERS)]
        self.jobs: dict[str, Job] = {}
        self.gone: list[str] = []
        self.clock = itertools.count()

    def teardown(self) -> None:
        for worker in self.workers:
            worker.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def ids_in(self, state: str) -> list[str]:
        return sorted(job_id for job_id, job in self.jobs.items() if job.state == state)

    # -- rules ---------------------------------------------------------------------------

    @rule(priority=st.sampled_from([None, 0, 1, 7]), worker=st.integers(0, WORKERS - 1))
    def publish(self, priority: int | None, worker: int) -> None:
        sent = self.workers[worker].enqueue(Message("t", priority=priority))
        assert sent.id is not None and sent.id not in self.jobs
        tick = next(self.clock)
        key = DEFAULT_PRIORITY if priority is None else priority
        self.jobs[sent.id] = Job(key, tick, tick, "ready")

    @rule(priority=st.sampled_from([None, 0]), worker=st.integers(0, WORKERS - 1))
    def publish_delayed(self, priority: int | None, worker: int) -> None:
        # An urgent delayed job must not hide the ready ones while it waits.
        sent = self.workers[worker].enqueue(Message("t", priority=priority, delay=3600))
        assert sent.id is not None
        tick = next(self.clock)
        key = DEFAULT_PRIORITY if priority is None else priority
        self.jobs[sent.id] = Job(key, 10**9, tick, "delayed")

    @rule(worker=st.integers(0, WORKERS - 1))
    def dequeue(self, worker: int) -> None:
        message = self.workers[worker].dequeue()
        ready = [(job.priority, job.ready_at, job.seq, job_id)
                 for job_id, job in self.jobs.items() if job.state == "ready"]
        if not ready:
            assert message is None
            return
        expected = min(ready)[3]
        assert message is not None, f"expected {expected}, the queue gave nothing"
        assert message.id == expected
        job = self.jobs[expected]
        assert message.attempts == job.attempts
        job.state, job.holder = "reserved", worker

    @precondition(lambda self: bool(self.ids_in("reserved")))
    @rule(data=st.data())
    def commit(self, data: Any) -> None:
        job_id = data.draw(st.sampled_from(self.ids_in("reserved")))
        job = self.jobs.pop(job_id)
        self.workers[job.holder].commit(self.message(job_id, job))
        self.gone.append(job_id)

    @precondition(lambda self: bool(self.ids_in("reserved")))
    @rule(data=st.data())
    def rollback(self, data: Any) -> None:
        job_id = data.draw(st.sampled_from(self.ids_in("reserved")))
        job = self.jobs[job_id]
        self.workers[job.holder].rollback(self.message(job_id, job), delay=0)
        job.state, job.attempts, job.ready_at = "ready", job.attempts + 1, next(self.clock)

    @precondition(lambda self: bool(self.ids_in("reserved")))
    @rule(data=st.data())
    def release(self, data: Any) -> None:
        job_id = data.draw(st.sampled_from(self.ids_in("reserved")))
        job = self.jobs[job_id]
        self.workers[job.holder].release(self.message(job_id, job))
        job.state = "ready"  # unrun: same attempts, same ready time, so the same place

    @precondition(lambda self: bool(self.ids_in("reserved")))
    @rule(data=st.data(), reason=st.sampled_from(["bad input", "no handler"]))
    def bury(self, data: Any, reason: str) -> None:
        job_id = data.draw(st.sampled_from(self.ids_in("reserved")))
        job = self.jobs[job_id]
        self.workers[job.holder].bury(self.message(job_id, job), reason)
        job.state = "buried"
        peeked = self.workers[0].peek(job_id)
        assert peeked is not None and peeked.header["buried_reason"] == reason

    @rule(bound=st.none() | st.integers(1, 3), worker=st.integers(0, WORKERS - 1))
    def kick(self, bound: int | None, worker: int) -> None:
        buried = sorted(self.ids_in("buried"), key=lambda job_id: self.jobs[job_id].seq)
        chosen = buried if bound is None else buried[:bound]
        assert self.workers[worker].kick(bound) == len(chosen)
        for job_id in chosen:  # oldest first, each a little later than the one before
            self.jobs[job_id].state = "ready"
            self.jobs[job_id].ready_at = next(self.clock)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data(), worker=st.integers(0, WORKERS - 1))
    def delete(self, data: Any, worker: int) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        assert self.workers[worker].delete(job_id) is True
        del self.jobs[job_id]
        self.gone.append(job_id)

    @precondition(lambda self: bool(self.gone))
    @rule(data=st.data())
    def deleting_a_finished_job_finds_nothing(self, data: Any) -> None:
        job_id = data.draw(st.sampled_from(self.gone))
        assert self.workers[0].peek(job_id) is None
        assert self.workers[1].delete(job_id) is False

    def message(self, job_id: str, job: Job) -> Message:
        return Message("t", id=job_id, attempts=job.attempts)

    # -- after every step ----------------------------------------------------------------

    @invariant()
    def counts_match_the_model(self) -> None:
        counts = self.workers[0].stats()
        expected = {state: len(self.ids_in(state))
                    for state in ("ready", "delayed", "reserved", "buried")}
        assert {state: counts[state] for state in expected} == expected
        assert counts["total"] == len(self.jobs)

    @invariant()
    def every_live_job_can_be_peeked(self) -> None:
        for job_id, job in self.jobs.items():
            peeked = self.workers[1].peek(job_id)
            assert peeked is not None and peeked.attempts == job.attempts


FileQueueMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFileQueueAgainstAModel = FileQueueMachine.TestCase
