"""A hypothesis state machine drives the file queue against a simple model of a queue.

Two adapters share one folder, like two worker processes. Every dequeue must return the job the
model says is next (lowest priority number, then earliest ready time, then oldest), with its
attempts; after every step the counts by state must match the model's.

Ready times are real, in nanoseconds: jobs are published at once, a fraction of a second ahead
or an hour ahead, and retried at once or a fraction of a second ahead, and a rule lets time pass
until a job comes due, so delayed jobs and delayed retries become ready while the machine runs and
are ordered against the jobs made ready at other times.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pulpo_file.adapter import FileQueueAdapter

from pulpo_core import Message
from pulpo_core.message import DEFAULT_PRIORITY

WORKERS = 2
#: Short delays (seconds) of publishes and retries: they come due while the machine runs.
SHORT_DELAYS = (0.005, 0.02, 0.05)
HOUR = 3600.0  # never due while the machine runs
#: How long ``time_passes`` sleeps past the moment a job is due.
MARGIN_S = 0.002
#: Which of the jobs a rule acts on: this number modulo how many there are. A draw must not
#: depend on the model's state, nor a rule have a precondition: what a dequeue returns depends on
#: the clock (a job may come due between two steps), and hypothesis needs the same choices to
#: lead to the same draws. A rule with no job to act on does nothing.
PICK = st.integers(0, 255)


@attrs.define
class Job:
    """What the model knows of one job.

    Its ready time (the file's mtime, nanoseconds) lies in ``[ready_lo, ready_hi]``: exact when
    the adapter tells it (a publish: the message's delay, else the id's creation time), else
    bracketed by the clock read before and after the call that set it (a retry, a kick).
    """

    priority: int
    ready_lo: int
    ready_hi: int
    state: str  # queued (in ready/: ready or delayed, by its ready time) | reserved | buried
    attempts: int = 0
    holder: int = -1  # the worker holding a reserved job
    waiting: bool = False  # given a short delay, not yet seen due by ``time_passes``
    kick: int = -1  # jobs kicked by one call: their ready times follow the kick's order...
    place: int = 0  # ...which is this


def choose(job_ids: list[str], pick: int) -> str | None:
    """The job ``pick`` names among ``job_ids`` (see ``PICK``); ``None`` when there is none."""
    return job_ids[pick % len(job_ids)] if job_ids else None


def published_ready_ns(sent: Message) -> int:
    """The ready time the adapter gives a published job: its delay, else its creation time."""
    assert sent.id is not None
    if sent.delay is not None:
        return int(sent.delay.timestamp() * 1e9)
    return int(sent.id[:16], 16) * 1000


class FileQueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="pulpo-file-model-")
        # fsync off: the model checks order and counts, not flushing, and should run quickly.
        section = {"base_path": self.folder, "fsync": False}
        self.workers = [FileQueueAdapter(section) for _ in range(WORKERS)]
        self.jobs: dict[str, Job] = {}
        self.gone: list[str] = []
        self.kicks = itertools.count()

    def teardown(self) -> None:
        for worker in self.workers:
            worker.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def ids_in(self, state: str) -> list[str]:
        return sorted(job_id for job_id, job in self.jobs.items() if job.state == state)

    def may_come_before(self, first: str, second: str) -> bool:
        """Whether job ``first`` may be due before ``second``: (priority, ready time, id).

        With ready times known only within bounds, the order is open when the bounds overlap.
        """
        a, b = self.jobs[first], self.jobs[second]
        if a.priority != b.priority:
            return a.priority < b.priority
        if a.kick == b.kick >= 0:  # one kick: ready times rise with the order, ties by id
            return a.place < b.place
        return a.ready_lo < b.ready_hi or (a.ready_lo == b.ready_hi and first < second)

    # -- rules ---------------------------------------------------------------------------

    @rule(priority=st.sampled_from([None, 0, 1, 7]),
          delay=st.sampled_from([None, *SHORT_DELAYS, HOUR]), worker=st.integers(0, WORKERS - 1))
    def publish(self, priority: int | None, delay: float | None, worker: int) -> None:
        # An urgent job an hour ahead must not hide the ready ones while it waits.
        sent = self.workers[worker].enqueue(Message("t", priority=priority, delay=delay))
        assert sent.id is not None and sent.id not in self.jobs
        key = DEFAULT_PRIORITY if priority is None else priority
        ready_ns = published_ready_ns(sent)
        self.jobs[sent.id] = Job(key, ready_ns, ready_ns, "queued",
                                 waiting=delay in SHORT_DELAYS)

    @rule()
    def time_passes(self) -> None:
        """Sleep until the first job given a short delay is due: from then on it is ready."""
        waiting = [job for job in self.jobs.values() if job.state == "queued" and job.waiting]
        if not waiting:
            return
        due_ns = min(job.ready_hi for job in waiting)
        time.sleep(max(0, due_ns - time.time_ns()) / 1e9 + MARGIN_S)
        assert time.time_ns() > due_ns
        for job in waiting:
            if job.ready_hi <= due_ns:
                job.waiting = False

    @rule(worker=st.integers(0, WORKERS - 1))
    def dequeue(self, worker: int) -> None:
        before = time.time_ns()
        message = self.workers[worker].dequeue()
        after = time.time_ns()
        # The dequeue read the clock at some moment between `before` and `after`: a job due
        # within that window may or may not have counted as ready, so either outcome is right
        # for it. Only jobs due by `before` must be seen, only jobs due after `after` must not.
        queued = self.ids_in("queued")
        surely_due = [job_id for job_id in queued if self.jobs[job_id].ready_hi <= before]
        if message is None:
            assert not surely_due, f"expected one of {surely_due}, the queue gave nothing"
            return
        got = message.id
        assert got is not None and got in queued, f"the queue gave {got}, not a queued job"
        job = self.jobs[got]
        assert job.ready_lo <= after, f"the queue gave {got} before it was due"
        for other in surely_due:
            assert other == got or self.may_come_before(got, other), (
                f"the queue gave {got}, but {other} comes first")
        assert message.attempts == job.attempts
        job.state, job.holder, job.waiting = "reserved", worker, False

    @rule(pick=PICK)
    def commit(self, pick: int) -> None:
        job_id = choose(self.ids_in("reserved"), pick)
        if job_id is None:
            return
        job = self.jobs.pop(job_id)
        self.workers[job.holder].commit(self.message(job_id, job))
        self.gone.append(job_id)

    @rule(pick=PICK, delay=st.sampled_from([0.0, *SHORT_DELAYS]))
    def rollback(self, pick: int, delay: float) -> None:
        job_id = choose(self.ids_in("reserved"), pick)
        if job_id is None:
            return
        job = self.jobs[job_id]
        before = time.time_ns()
        self.workers[job.holder].rollback(self.message(job_id, job), delay=delay)
        after = time.time_ns()
        delay_ns = int(delay * 1e9)  # as the adapter counts it: clock + delay
        job.state, job.attempts = "queued", job.attempts + 1
        job.ready_lo, job.ready_hi = before + delay_ns, after + delay_ns
        job.waiting, job.kick = delay > 0, -1

    @rule(pick=PICK)
    def release(self, pick: int) -> None:
        job_id = choose(self.ids_in("reserved"), pick)
        if job_id is None:
            return
        job = self.jobs[job_id]
        self.workers[job.holder].release(self.message(job_id, job))
        job.state = "queued"  # unrun: same attempts, same ready time, so the same place

    @rule(pick=PICK, reason=st.sampled_from(["bad input", "no handler"]))
    def bury(self, pick: int, reason: str) -> None:
        job_id = choose(self.ids_in("reserved"), pick)
        if job_id is None:
            return
        job = self.jobs[job_id]
        self.workers[job.holder].bury(self.message(job_id, job), reason)
        job.state = "buried"
        peeked = self.workers[0].peek(job_id)
        assert peeked is not None and peeked.header["buried_reason"] == reason

    @rule(bound=st.none() | st.integers(1, 3), worker=st.integers(0, WORKERS - 1))
    def kick(self, bound: int | None, worker: int) -> None:
        buried = self.ids_in("buried")  # ids sort by creation time: oldest first
        chosen = buried if bound is None else buried[:bound]
        before = time.time_ns()
        assert self.workers[worker].kick(bound) == len(chosen)
        after = time.time_ns()
        kick = next(self.kicks)
        for place, job_id in enumerate(chosen):  # each ready a little later than the one before
            job = self.jobs[job_id]
            job.state, job.ready_lo, job.ready_hi = "queued", before, after
            job.kick, job.place = kick, place

    @rule(pick=PICK, worker=st.integers(0, WORKERS - 1))
    def delete(self, pick: int, worker: int) -> None:
        job_id = choose(sorted(self.jobs), pick)
        if job_id is None:
            return
        assert self.workers[worker].delete(job_id) is True
        del self.jobs[job_id]
        self.gone.append(job_id)

    @rule(pick=PICK)
    def deleting_a_finished_job_finds_nothing(self, pick: int) -> None:
        job_id = choose(self.gone, pick)
        if job_id is None:
            return
        assert self.workers[0].peek(job_id) is None
        assert self.workers[1].delete(job_id) is False

    def message(self, job_id: str, job: Job) -> Message:
        return Message("t", id=job_id, attempts=job.attempts)

    # -- after every step ----------------------------------------------------------------

    @invariant()
    def counts_match_the_model(self) -> None:
        before = time.time_ns()
        counts = self.workers[0].stats()
        after = time.time_ns()
        queued = [self.jobs[job_id] for job_id in self.ids_in("queued")]
        # As for a dequeue: a job due between `before` and `after` may count either way.
        surely_ready = sum(job.ready_hi <= before for job in queued)
        surely_delayed = sum(job.ready_lo > after for job in queued)
        assert surely_ready <= counts["ready"] <= len(queued) - surely_delayed, (counts, queued)
        assert counts["ready"] + counts["delayed"] == len(queued)
        expected = {state: len(self.ids_in(state)) for state in ("reserved", "buried")}
        assert {state: counts[state] for state in expected} == expected
        assert counts["total"] == len(self.jobs)

    @invariant()
    def every_live_job_can_be_peeked(self) -> None:
        for job_id, job in self.jobs.items():
            peeked = self.workers[1].peek(job_id)
            assert peeked is not None and peeked.attempts == job.attempts


FileQueueMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFileQueueAgainstAModel = FileQueueMachine.TestCase
