"""Settling on beanstalkd says whether it applied: ``True`` when done, ``False`` when the job
was no longer this worker's (its ttr ran out and the server gave it to another client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from conftest import BeanstalkdServer, config_for

from pulpo_core import Message, Pulpo

TTR = 2
#: Past the ttr with a margin for a loaded machine (the server checks ttrs every second or so).
PAST_TTR = TTR + 1.5


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pulpo]:
    app = Pulpo(config_for("beanstalkd", tmp_path, request))
    yield app
    app.close()


@pytest.fixture
def other(app: Pulpo, beanstalkd: BeanstalkdServer) -> Iterator[greenstalk.Client[bytes]]:
    """Another worker's connection on the app's tube."""
    tube = app.config.section("beanstalkd_queue_adapter")["default_tube"]
    with greenstalk.Client((beanstalkd.host, beanstalkd.port), encoding=None, use=tube,
                           watch=tube) as client:
        yield client


def taken_by_the_other(app: Pulpo, other: greenstalk.Client[bytes]) -> Message:
    """A job this app reserved whose ttr then ran out, and that the other worker now holds."""
    app.publish(Message("t", ttr=TTR))
    message = app.queue_adapter.dequeue()
    assert message is not None and message.ttr == TTR
    time.sleep(PAST_TTR)
    # Short reserves, tried again: a long pending reserve-with-timeout can hide the ttr of the
    # job from beanstalkd 1.12's timer (its issues #262, #380), and the machine may be loaded.
    deadline = time.monotonic() + 30
    while True:
        try:
            job = other.reserve(timeout=1)
            break
        except greenstalk.TimedOutError:
            assert time.monotonic() < deadline, "the job never came back after its ttr"
    assert str(job.id) == message.id
    return message


@pytest.mark.parametrize("settle", [
    lambda adapter, message: adapter.commit(message),
    lambda adapter, message: adapter.rollback(message, 0),
    lambda adapter, message: adapter.bury(message, "because"),
], ids=["commit", "rollback", "bury"])
def test_a_settle_after_the_ttr_ran_out_returns_false_and_leaves_the_other_workers_job(
    app: Pulpo, other: greenstalk.Client[bytes], settle: Any,
) -> None:
    message = taken_by_the_other(app, other)
    assert settle(app.queue_adapter, message) is False
    assert app.queue_adapter.stats()["reserved"] == 1  # the other worker's, untouched
    assert other.stats_job(int(str(message.id)))["state"] == "reserved"
    other.delete(int(str(message.id)))


@pytest.mark.parametrize("settle", [
    lambda adapter, message: adapter.commit(message),
    lambda adapter, message: adapter.rollback(message, 0),
    lambda adapter, message: adapter.bury(message, "because"),
], ids=["commit", "rollback", "bury"])
def test_a_settle_in_time_returns_true(app: Pulpo, settle: Any) -> None:
    app.publish(Message("t"))
    message = app.queue_adapter.dequeue()
    assert message is not None
    assert settle(app.queue_adapter, message) is True


def test_a_touched_job_is_committed_without_waiting_for_the_answer(app: Pulpo) -> None:
    app.publish(Message("t", ttr=TTR))
    message = app.queue_adapter.dequeue()
    assert message is not None
    for _ in range(3):  # held past its first ttr by touches, as the heartbeat does
        time.sleep(TTR / 3)
        app.queue_adapter.touch(message)  # type: ignore[attr-defined]
    assert app.queue_adapter.commit(message) is True
    worker: Any = app.queue_adapter._worker  # type: ignore[attr-defined]
    assert worker.client.pending  # pipelined: the lease was known to be held
    assert app.queue_adapter.stats()["total"] == 0
