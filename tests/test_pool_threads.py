"""The pool inside one process: T threads and async handlers run jobs at once, on every adapter,
and a job over its time limit is stopped, retried, then buried with the reason."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pulpo_core import Message, Pulpo

BARRIER_WAIT = 60.0  # generous: only a broken pool ever waits this long


def _idle(config: dict[str, Any], loops: int = 20) -> int:
    """Empty dequeues before a slot stops: beanstalkd's each wait a second, the others 0.05 s."""
    return 3 if config["queue_adapter_type"] == "beanstalkd" else loops


def _drain(app: Pulpo) -> None:
    thread = threading.Thread(target=app.start, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the worker did not stop"


def test_threads_run_jobs_at_once(
    make_app: Callable[..., Pulpo], adapter_config: dict[str, Any]
) -> None:
    # Four handlers that each wait for the other three: they finish only if 4 run together.
    barrier = threading.Barrier(4, timeout=BARRIER_WAIT)
    passed: list[str | None] = []

    def meet(message: Message) -> None:
        barrier.wait()
        passed.append(message.id)

    app = make_app(
        handlers={"meet": meet},
        worker={"threads": 4},
        shutdown_after_number_of_empty_iterations=_idle(adapter_config, 20),
        sleep_duration=0.05,
    )
    ids = {app.publish(Message(request_type="meet")).id for _ in range(8)}
    _drain(app)
    assert set(passed) == ids and len(passed) == 8
    assert not barrier.broken


def test_one_thread_does_not_overlap(
    make_app: Callable[..., Pulpo], adapter_config: dict[str, Any]
) -> None:
    # The same barrier with T = 1 breaks: proof the test above needs the pool.
    barrier = threading.Barrier(2, timeout=0.5)
    broken: list[bool] = []

    def meet(_message: Message) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            broken.append(True)
            barrier.reset()

    app = make_app(
        handlers={"meet": meet},
        shutdown_after_number_of_empty_iterations=_idle(adapter_config, 5),
        sleep_duration=0.05,
    )
    for _ in range(2):
        app.publish(Message(request_type="meet"))
    _drain(app)
    assert broken


def test_async_handlers_overlap_on_one_loop(
    make_app: Callable[..., Pulpo], adapter_config: dict[str, Any]
) -> None:
    in_flight = 0
    most = 0
    loops: set[int] = set()
    done: list[str | None] = []

    async def nap(message: Message) -> None:
        nonlocal in_flight, most
        loops.add(id(asyncio.get_running_loop()))
        in_flight += 1  # one loop: no lock needed
        most = max(most, in_flight)
        await asyncio.sleep(0.2)
        in_flight -= 1
        done.append(message.id)

    app = make_app(
        handlers={"nap": nap},
        worker={"threads": 50},
        shutdown_after_number_of_empty_iterations=_idle(adapter_config, 40),
        sleep_duration=0.05,
    )
    for _ in range(200):
        app.publish(Message(request_type="nap"))
    _drain(app)
    assert len(done) == 200 and len(set(done)) == 200
    assert len(loops) == 1
    assert most >= 20, f"only {most} async job(s) were in flight at once"


def test_async_barrier_needs_concurrency(
    make_app: Callable[..., Pulpo], adapter_config: dict[str, Any]
) -> None:
    # Ten async handlers each wait until all ten have started: timing-independent overlap.
    started = 0

    async def meet(_message: Message) -> None:
        nonlocal started
        started += 1
        for _ in range(int(BARRIER_WAIT * 20)):
            if started >= 10:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the other async jobs never started")

    app = make_app(
        handlers={"meet": meet},
        worker={"threads": 10},
        shutdown_after_number_of_empty_iterations=_idle(adapter_config, 20),
        sleep_duration=0.05,
        max_number_of_attempts=1,
    )
    ids = [app.publish(Message(request_type="meet")).id for _ in range(10)]
    _drain(app)
    for job_id in ids:
        assert job_id is not None
        assert app.queue_adapter.peek(job_id) is None, "every job is committed"


@pytest.mark.parametrize("kind", ["thread", "async"])
def test_time_limit_stops_retries_and_buries(
    make_app: Callable[..., Pulpo],
    kind: str,
    adapter_config: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    def stuck(_message: Message) -> None:
        release.wait(120)

    async def stuck_async(_message: Message) -> None:
        await asyncio.sleep(120)

    app = make_app(
        handlers={"stuck": stuck if kind == "thread" else stuck_async},
        worker={"threads": 2, "time_limit": 0.5},
        shutdown_after_number_of_empty_iterations=_idle(adapter_config, 20),
        sleep_duration=0.05,
        max_number_of_attempts=2,
    )
    job = app.publish(Message(request_type="stuck"))
    try:
        _drain(app)
    finally:
        release.set()
    assert job.id is not None
    buried = app.queue_adapter.peek(job.id)
    assert buried is not None, "the job is kept, buried"
    if adapter_config["queue_adapter_type"] == "beanstalkd":
        # beanstalkd keeps no bury reason: the slot's adapter that buried it logged it.
        assert "buried" in caplog.text and "time limit of 0.5 s exceeded" in caplog.text
    else:
        assert "time limit of 0.5 s exceeded" in str(buried.extra_header.get("buried_reason"))


def test_slots_share_the_adapter_where_it_is_thread_safe(
    make_app: Callable[..., Pulpo], adapter_config: dict[str, Any]
) -> None:
    # The file queue and memory: one adapter (one index, one journal reader) for every slot;
    # beanstalkd and redis: a connection of the slot's own (greenstalk is not thread-safe).
    app = make_app(handlers={}, worker={"threads": 2})
    shared = app.queue_adapter
    seen: list[Any] = []

    def slot() -> None:
        seen.append(app.new_adapter())
        try:
            seen.append(app.queue_adapter)
        finally:
            app.drop_adapter()

    thread = threading.Thread(target=slot)
    thread.start()
    thread.join(30)
    expect_shared = adapter_config["queue_adapter_type"] in ("file", "memory")
    assert (seen[0] is shared) is expect_shared, adapter_config["queue_adapter_type"]
    assert seen[1] is seen[0]  # the slot's code publishes through its slot's adapter
    assert app.queue_adapter is shared
