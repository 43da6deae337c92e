"""Behaviour of an app on every adapter (memory, file, beanstalkd), through the public API.

Each test takes the ``make_app`` fixture, so it runs once per adapter on a fresh queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from pulpo_core import FatalError, Message, Pulpo, Result, TransientError, hookimpl
from pulpo_core.result import Action, Bury, Commit, Drop, Retry

MakeApp = Callable[..., Pulpo]
UNKNOWN_TYPE = "no_handler_is_registered_for_this_type"


def drain(app: Pulpo, limit: int = 50) -> list[tuple[Message, Result]]:
    """Handle jobs until none is ready (delayed ones wait)."""
    done: list[tuple[Message, Result]] = []
    # Asking the counts first spares the wait of a blocking reserve on an empty queue.
    while len(done) < limit and app.queue_adapter.stats()["ready"]:
        message = app.queue_adapter.dequeue()
        if message is None:
            break
        done.append((message, app.handle_message(message)))
    return done


def other_worker(make_app: MakeApp, app: Pulpo) -> Pulpo:
    """A second worker on the same queue (the memory queue lives inside its one app)."""
    if app.config.queue_adapter_type == "memory":
        return app
    return make_app()


def wait_for_job(app: Pulpo, seconds: float) -> Message | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = app.queue_adapter.dequeue()
        if message is not None:
            return message
        time.sleep(0.05)
    return None


def counts(app: Pulpo) -> dict[str, int]:
    stats = app.queue_adapter.stats()
    return {key: stats[key] for key in ("ready", "delayed", "reserved", "buried")}


def buried_reason(app: Pulpo, job_id: str | None) -> str:
    assert job_id is not None
    message = app.queue_adapter.peek(job_id)
    assert message is not None, f"job {job_id} is gone; it should be buried"
    reason = message.extra_header.get("buried_reason")
    assert isinstance(reason, str), message.to_dict()
    return reason


class Recorder:
    """A handler that records each message it runs and returns what it is told."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.seen: list[Message] = []
        self.attempts: list[int] = []

    def __call__(self, message: Message) -> Any:
        self.seen.append(message)
        self.attempts.append(message.attempts)  # read while the job is live, as handlers do
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class TestPublish:
    def test_returns_the_message_with_its_id(self, make_app: MakeApp) -> None:
        app = make_app()
        original = Message("greet", {"name": "Ada"}, priority=7)
        published = app.publish(original)
        assert isinstance(published.id, str) and published.id
        assert original.id is None
        assert (published.request_type, published.body, published.priority) == (
            "greet", {"name": "Ada"}, 7
        )

    def test_ids_differ(self, make_app: MakeApp) -> None:
        app = make_app()
        ids = {app.publish(Message("t")).id for _ in range(3)}
        assert len(ids) == 3

    def test_the_stored_job_reads_back(self, make_app: MakeApp) -> None:
        app = make_app()
        published = app.publish(Message("t", {"n": [1, "ü"]}, header={"trace": "abc"}))
        assert published.id is not None
        stored = app.queue_adapter.peek(published.id)
        assert stored is not None
        assert stored.id == published.id
        assert stored.request_type == "t"
        assert stored.body == {"n": [1, "ü"]}
        assert stored.extra_header.get("trace") == "abc"

    def test_a_refused_message_is_not_queued(self, make_app: MakeApp) -> None:
        app = make_app()
        with pytest.raises(ValueError, match="request_type"):
            app.publish(Message(""))
        assert counts(app) == {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}


class TestPublishMany:
    def test_returns_the_messages_with_ids_in_order(self, make_app: MakeApp) -> None:
        app = make_app()
        published = app.publish_many(Message("t", {"n": n}) for n in range(5))
        assert [m.body["n"] for m in published] == list(range(5))
        assert len({m.id for m in published}) == 5
        for message in published:
            assert message.id is not None
            stored = app.queue_adapter.peek(message.id)
            assert stored is not None and stored.body == message.body
        assert counts(app)["ready"] == 5

    def test_a_refused_message_queues_none_of_the_batch(self, make_app: MakeApp) -> None:
        app = make_app()
        with pytest.raises(ValueError, match="message 1: request_type"):
            app.publish_many([Message("t"), Message(""), Message("t")])
        assert counts(app) == {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}


class TestOrder:
    def test_by_priority_then_age(self, make_app: MakeApp) -> None:
        app = make_app()
        for name, priority in [("c", 30), ("a1", 10), ("b", 20), ("a2", 10)]:
            app.publish(Message("t", {"name": name}, priority=priority))
        order = []
        while (message := app.queue_adapter.dequeue()) is not None:
            order.append(message.body["name"])
            app.queue_adapter.commit(message)
        assert order == ["a1", "a2", "b", "c"]


class TestDelay:
    def test_invisible_until_due(self, make_app: MakeApp) -> None:
        app = make_app()
        # 2 s: a beanstalkd dequeue waits up to its reserve_timeout (1 s) for a job to come due
        published = app.publish(Message("t", delay=2))
        started = time.monotonic()
        assert app.queue_adapter.dequeue() is None
        assert counts(app)["delayed"] == 1
        message = wait_for_job(app, 5)
        assert message is not None and message.id == published.id
        assert time.monotonic() - started >= 1.8
        assert message.delay is not None  # the header keeps the moment the job was due


class TestOutcomes:
    def test_success_commits(self, make_app: MakeApp) -> None:
        handler = Recorder(None)
        app = make_app({"greet": handler})
        published = app.publish(Message("greet", payload="Ada"))
        [(_, result)] = drain(app)
        assert result.is_success
        assert handler.seen[0].id == published.id
        assert handler.seen[0].payload == "Ada"
        assert handler.attempts == [0]
        assert published.id is not None and app.queue_adapter.peek(published.id) is None
        assert counts(app) == {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}

    def test_result_success_commits(self, make_app: MakeApp) -> None:
        app = make_app({"t": Recorder(Result.success())})
        published = app.publish(Message("t"))
        drain(app)
        assert published.id is not None and app.queue_adapter.peek(published.id) is None

    def test_transient_is_retried_then_buried_after_the_last_run(self, make_app: MakeApp) -> None:
        handler = Recorder(*[Result.transient("mail server busy")] * 5)
        app = make_app({"t": handler}, max_number_of_attempts=3)
        published = app.publish(Message("t"))
        drain(app)
        assert handler.attempts == [0, 1, 2]
        assert {m.id for m in handler.seen} == {published.id}
        assert "mail server busy" in buried_reason(app, published.id)
        assert counts(app)["buried"] == 1

    def test_transient_error_raised_then_success(self, make_app: MakeApp) -> None:
        handler = Recorder(TransientError("try later"), None)
        app = make_app({"t": handler}, max_number_of_attempts=3)
        published = app.publish(Message("t"))
        results = [r for _, r in drain(app)]
        assert [r.outcome.value for r in results] == ["transient", "success"]
        assert handler.attempts == [0, 1]
        assert published.id is not None and app.queue_adapter.peek(published.id) is None

    def test_any_exception_is_transient(self, make_app: MakeApp) -> None:
        handler = Recorder(RuntimeError("disk on fire"), KeyError("k"), None)
        app = make_app({"t": handler}, max_number_of_attempts=2)
        published = app.publish(Message("t"))
        results = [r for _, r in drain(app)]
        assert [r.is_transient for r in results] == [True, True]
        assert results[0].error == "RuntimeError: disk on fire"
        assert handler.attempts == [0, 1]
        assert "KeyError" in buried_reason(app, published.id)

    def test_fatal_result_buries_with_the_reason(self, make_app: MakeApp) -> None:
        handler = Recorder(Result.fatal("card number is invalid"))
        app = make_app({"t": handler}, max_number_of_attempts=5)
        published = app.publish(Message("t"))
        drain(app)
        assert handler.attempts == [0]
        assert "card number is invalid" in buried_reason(app, published.id)

    def test_fatal_error_raised_buries_with_the_reason(self, make_app: MakeApp) -> None:
        app = make_app({"t": Recorder(FatalError("no such customer"))})
        published = app.publish(Message("t"))
        drain(app)
        assert "no such customer" in buried_reason(app, published.id)

    def test_unknown_request_type_is_buried(self, make_app: MakeApp) -> None:
        app = make_app()
        published = app.publish(Message(UNKNOWN_TYPE))
        [(_, result)] = drain(app)
        assert result.is_fatal
        assert UNKNOWN_TYPE in buried_reason(app, published.id)

    def test_the_id_survives_retries_and_burial(self, make_app: MakeApp) -> None:
        handler = Recorder(Result.transient("x"), Result.fatal("y"))
        app = make_app({"t": handler}, max_number_of_attempts=5)
        published = app.publish(Message("t"))
        drain(app)
        assert [m.id for m in handler.seen] == [published.id, published.id]
        assert published.id is not None
        peeked = app.queue_adapter.peek(published.id)
        assert peeked is not None and peeked.id == published.id


class TestFollowUps:
    def test_published_before_the_job_is_committed(self, make_app: MakeApp) -> None:
        child = Recorder(None)
        app = make_app({
            "parent": lambda m: Result.success(Message("child", payload=m.payload + 1)),
            "child": child,
        })
        parent_alive_at_follow_up: list[bool] = []

        class Watch:
            @hookimpl
            def pulpo_before_publish(self, message: Message, app: Pulpo) -> None:
                if message.request_type == "child":
                    assert parent_id is not None
                    parent_alive_at_follow_up.append(app.queue_adapter.peek(parent_id) is not None)

        app.plugin_manager.register(Watch())
        parent_id = app.publish(Message("parent", payload=1)).id
        drain(app)
        assert parent_alive_at_follow_up == [True]
        assert [m.payload for m in child.seen] == [2]
        assert parent_id is not None and app.queue_adapter.peek(parent_id) is None

    def test_a_follow_up_that_cannot_be_published_keeps_the_job(self, make_app: MakeApp) -> None:
        app = make_app({"parent": lambda m: Result.success(Message(""))}, max_number_of_attempts=1)
        parent_id = app.publish(Message("parent")).id
        [(_, result)] = drain(app)
        assert result.is_transient
        assert "follow-up" in buried_reason(app, parent_id)


@attrs.frozen
class Order:
    sku: str
    quantity: int


class TestTypedBodies:
    def test_the_body_arrives_as_the_declared_class(self, make_app: MakeApp) -> None:
        received: list[Order] = []

        def place(order: Order) -> None:
            received.append(order)

        app = make_app({"place": place})
        app.publish(Message("place", {"sku": "A-1", "quantity": 3}))
        drain(app)
        assert received == [Order("A-1", 3)]

    def test_a_second_parameter_gets_the_message(self, make_app: MakeApp) -> None:
        received: list[tuple[Order, str | None]] = []

        def place(order: Order, message: Message) -> None:
            received.append((order, message.id))

        app = make_app({"place": place})
        job_id = app.publish(Message("place", {"sku": "B", "quantity": 1})).id
        drain(app)
        assert received == [(Order("B", 1), job_id)]

    def test_an_object_with_handle(self, make_app: MakeApp) -> None:
        class Shop:
            def __init__(self) -> None:
                self.orders: list[Order] = []

            def handle(self, order: Order) -> None:
                self.orders.append(order)

        shop = Shop()
        app = make_app({"place": shop})
        app.publish(Message("place", {"sku": "C", "quantity": 2}))
        drain(app)
        assert shop.orders == [Order("C", 2)]

    @pytest.mark.parametrize(
        ("body", "cattrs_says"),
        [
            ({"sku": "A"}, "required field missing @ body.quantity"),
            ({"sku": "A", "quantity": "many"}, "expected int @ body.quantity"),
        ],
    )
    def test_a_body_that_does_not_fit_is_fatal_with_cattrs_message(
        self, make_app: MakeApp, body: dict[str, Any], cattrs_says: str
    ) -> None:
        called: list[Order] = []

        def place(order: Order) -> None:
            called.append(order)

        app = make_app({"place": place}, max_number_of_attempts=5)
        job_id = app.publish(Message("place", body)).id
        [(_, result)] = drain(app)
        assert result.is_fatal
        assert called == []
        reason = buried_reason(app, job_id)
        assert "Order" in reason
        assert cattrs_says in reason


class TestOperatorMethods:
    def test_peek_sees_every_state(self, make_app: MakeApp) -> None:
        app = make_app({"t": Recorder(Result.fatal("bad"))})
        buried = app.publish(Message("t", priority=1)).id
        drain(app)
        ready = app.publish(Message("t", {"n": "ready"}, priority=2)).id
        reserved = app.publish(Message("t", {"n": "reserved"}, priority=1)).id
        delayed = app.publish(Message("t", {"n": "delayed"}, delay=60)).id
        taken = app.queue_adapter.dequeue()
        assert taken is not None and taken.id == reserved
        for job_id in (buried, ready, reserved, delayed):
            assert job_id is not None
            peeked = app.queue_adapter.peek(job_id)
            assert peeked is not None and peeked.id == job_id, job_id
        assert counts(app) == {"ready": 1, "delayed": 1, "reserved": 1, "buried": 1}

    def test_stats_counts_total(self, make_app: MakeApp) -> None:
        app = make_app()
        app.publish(Message("t"))
        app.publish(Message("t", delay=60))
        assert app.queue_adapter.stats().get("total", 2) == 2

    def test_delete_any_state_and_report_whether_it_existed(self, make_app: MakeApp) -> None:
        app = make_app()
        ready = app.publish(Message("t")).id
        delayed = app.publish(Message("t", delay=60)).id
        for job_id in (ready, delayed):
            assert job_id is not None
            assert app.queue_adapter.delete(job_id) is True
            assert app.queue_adapter.peek(job_id) is None
            assert app.queue_adapter.delete(job_id) is False
        assert counts(app) == {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}

    def test_delete_a_buried_job(self, make_app: MakeApp) -> None:
        app = make_app()
        job_id = app.publish(Message(UNKNOWN_TYPE)).id
        drain(app)
        assert job_id is not None and app.queue_adapter.delete(job_id) is True
        assert counts(app)["buried"] == 0

    def test_kick_moves_buried_jobs_to_ready(self, make_app: MakeApp) -> None:
        handler = Recorder(Result.fatal("a"), Result.fatal("b"), None, None)
        app = make_app({"t": handler})
        first = app.publish(Message("t")).id
        app.publish(Message("t"))
        drain(app)
        assert counts(app)["buried"] == 2
        assert app.queue_adapter.kick(1) == 1
        assert counts(app)["buried"] == 1 and counts(app)["ready"] == 1
        assert app.queue_adapter.kick() == 1
        assert counts(app)["ready"] == 2
        drain(app)
        assert counts(app) == {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}
        assert first in {m.id for m in handler.seen[2:]}

    def test_kick_leaves_delayed_jobs_alone(self, make_app: MakeApp) -> None:
        app = make_app()
        app.publish(Message("t", delay=60))
        assert app.queue_adapter.kick() == 0
        assert counts(app)["delayed"] == 1
        assert counts(app)["ready"] == 0


class TestLease:
    def test_the_dequeued_job_carries_its_ttr(self, make_app: MakeApp) -> None:
        app = make_app(ttr=7)
        app.publish(Message("t"))
        app.publish(Message("t", ttr=3, priority=0))
        first, second = app.queue_adapter.dequeue(), app.queue_adapter.dequeue()
        assert first is not None and second is not None
        assert (first.ttr, second.ttr) == (3, 7)

    def test_the_job_of_a_worker_that_disappears_comes_back_with_one_more_attempt(
        self, make_app: MakeApp
    ) -> None:
        app = make_app()
        published = app.publish(Message("t", ttr=1))
        gone = other_worker(make_app, app)
        taken = gone.queue_adapter.dequeue()
        assert taken is not None and taken.attempts == 0
        if gone is not app:
            gone.close()  # its connections and files close, as when the process dies
        again = wait_for_job(app, 5)
        assert again is not None, "the job did not come back after its ttr"
        assert again.id == published.id
        assert again.attempts == 1

    def test_a_live_worker_keeps_its_job_past_the_ttr(self, make_app: MakeApp) -> None:
        stolen: list[Message] = []
        app = make_app()
        second = other_worker(make_app, app)
        running = threading.Event()

        def slow(message: Message) -> None:
            running.set()
            time.sleep(2.2)

        def thief() -> None:
            running.wait(5)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                found = second.queue_adapter.dequeue()
                if found is not None:
                    stolen.append(found)
                time.sleep(0.1)

        app.register_handler("slow", slow)
        published = app.publish(Message("slow", ttr=1))
        thread = threading.Thread(target=thief)
        thread.start()
        [(message, result)] = drain(app, limit=1)
        thread.join()
        assert stolen == []
        assert result.is_success and message.attempts == 0
        assert published.id is not None and app.queue_adapter.peek(published.id) is None


class TestRelease:
    def test_a_released_job_is_ready_at_once_unchanged(self, make_app: MakeApp) -> None:
        app = make_app()
        adapter = app.queue_adapter
        first = app.publish(Message("t", {"n": 1}, priority=5))
        app.publish(Message("t", {"n": 2}, priority=5))
        held = adapter.dequeue()
        assert held is not None and held.id == first.id
        adapter.release(held)  # type: ignore[attr-defined]
        again = adapter.dequeue()
        assert again is not None and again.id == first.id  # still ahead of the newer job
        assert (again.attempts, again.priority, again.body) == (0, 5, {"n": 1})

    def test_a_job_dequeued_as_the_worker_stops_goes_back_unrun(
        self, make_app: MakeApp
    ) -> None:
        ran: list[Message] = []
        app = make_app({"t": ran.append})

        class StopWhenDequeued:
            @hookimpl
            def pulpo_worker_start(self, app: Pulpo) -> None:
                inner = app.queue_adapter.dequeue

                def dequeue() -> Message | None:
                    found = inner()
                    app.stop()  # as a SIGTERM landing while dequeue waited
                    return found

                app.queue_adapter.dequeue = dequeue  # type: ignore[method-assign]

        app.plugin_manager.register(StopWhenDequeued())
        published = app.publish(Message("t"))
        app.start()
        assert ran == []
        again = app.queue_adapter.dequeue()
        assert again is not None and again.id == published.id and again.attempts == 0


class TestWorkerLoop:
    def test_runs_every_job_then_stops_when_empty(self, make_app: MakeApp) -> None:
        handler = Recorder()
        app = make_app({"t": handler}, shutdown_after_number_of_empty_iterations=1,
                       sleep_duration=0.01)
        for n in range(3):
            app.publish(Message("t", payload=n))
        app.start()
        assert sorted(m.payload for m in handler.seen) == [0, 1, 2]
        assert app.queue_adapter.stats()["ready"] == 0

    def test_stops_after_n_consecutive_empty_iterations(self, make_app: MakeApp) -> None:
        app = make_app({"t": Recorder()}, shutdown_after_number_of_empty_iterations=2,
                       sleep_duration=0.01)
        adapter = app.queue_adapter
        real_dequeue = adapter.dequeue
        calls: list[Message | None] = []

        def dequeue() -> Message | None:
            if len(calls) == 1:  # a job arrives after one empty iteration
                app.publish(Message("t"))
            found = real_dequeue()
            calls.append(found)
            return found

        adapter.dequeue = dequeue  # type: ignore[method-assign]
        app.start()
        # empty, job, empty, empty: the job reset the count of consecutive empty iterations
        assert [found is not None for found in calls] == [False, True, False, False]

    def test_stop_from_another_thread_lets_the_running_job_finish(
        self, make_app: MakeApp
    ) -> None:
        done: list[Any] = []

        def first(message: Message) -> None:
            threading.Thread(target=app.stop).start()
            assert app.stopping.wait(5)
            time.sleep(0.1)
            done.append(message.payload)

        app = make_app({"t": first})
        app.publish(Message("t", payload="first", priority=1))
        second = app.publish(Message("t", payload="second", priority=2))
        runner = threading.Thread(target=app.start)
        runner.start()
        runner.join(10)
        assert not runner.is_alive(), "start() did not return after stop()"
        assert done == ["first"]
        assert counts(app) == {"ready": 1, "delayed": 0, "reserved": 0, "buried": 0}
        assert second.id is not None and app.queue_adapter.peek(second.id) is not None

    def test_stop_while_idle(self, make_app: MakeApp) -> None:
        app = make_app(sleep_duration=0.05)
        runner = threading.Thread(target=app.start)
        runner.start()
        time.sleep(0.3)
        app.stop()
        runner.join(10)
        assert not runner.is_alive()

    def test_start_and_stop_hooks(self, make_app: MakeApp) -> None:
        events: list[str] = []

        class Lifecycle:
            @hookimpl
            def pulpo_worker_start(self, app: Pulpo) -> None:
                events.append(f"start ready={app.queue_adapter.stats()['ready']}")

            @hookimpl
            def pulpo_worker_stop(self, app: Pulpo) -> None:
                events.append(f"stop total={app.queue_adapter.stats().get('total', 0)}")

        app = make_app({"t": lambda m: events.append("job")},
                       shutdown_after_number_of_empty_iterations=1, sleep_duration=0.01)
        app.plugin_manager.register(Lifecycle())
        app.publish(Message("t"))
        app.start()
        assert events == ["start ready=1", "job", "stop total=0"]


class TestHooks:
    def test_before_process_result_is_applied_and_the_handler_skipped(
        self, make_app: MakeApp
    ) -> None:
        handler = Recorder()

        class Gate:
            @hookimpl
            def pulpo_before_process(self, message: Message, app: Pulpo) -> Result | None:
                if message.payload == "blocked":
                    return Result.fatal("blocked by the gate")
                return None

        app = make_app({"t": handler})
        app.plugin_manager.register(Gate())
        blocked = app.publish(Message("t", payload="blocked")).id
        app.publish(Message("t", payload="fine"))
        drain(app)
        assert [m.payload for m in handler.seen] == ["fine"]
        assert "blocked by the gate" in buried_reason(app, blocked)

    def test_before_process_transient_result_retries(self, make_app: MakeApp) -> None:
        seen: list[int] = []

        class NotYet:
            @hookimpl
            def pulpo_before_process(self, message: Message, app: Pulpo) -> Result | None:
                seen.append(message.attempts)
                return Result.transient("not yet") if message.attempts == 0 else None

        handler = Recorder()
        app = make_app({"t": handler})
        app.plugin_manager.register(NotYet())
        app.publish(Message("t"))
        drain(app)
        assert seen == [0, 1]
        assert handler.attempts == [1]

    def test_a_result_policy_overrides_the_default(self, make_app: MakeApp) -> None:
        class NoRetries:
            @hookimpl
            def pulpo_result_policy(self, message: Message, result: Result, app: Pulpo
                                    ) -> Action | None:
                if result.is_transient:
                    return Bury(f"no retries here: {result.error}")
                if result.is_fatal:
                    return Drop("not worth keeping")
                return None  # the default policy decides

        handler = Recorder(Result.transient("flaky"), Result.fatal("hopeless"), None)
        app = make_app({"t": handler}, max_number_of_attempts=5)
        app.plugin_manager.register(NoRetries())
        transient = app.publish(Message("t", priority=1)).id
        fatal = app.publish(Message("t", priority=2)).id
        fine = app.publish(Message("t", priority=3)).id
        drain(app)
        assert handler.attempts == [0, 0, 0]
        assert buried_reason(app, transient) == "no retries here: flaky"
        assert fatal is not None and app.queue_adapter.peek(fatal) is None
        assert fine is not None and app.queue_adapter.peek(fine) is None
        assert counts(app)["buried"] == 1

    def test_a_policy_can_retry_a_fatal_result(self, make_app: MakeApp) -> None:
        class Stubborn:
            @hookimpl
            def pulpo_result_policy(self, message: Message, result: Result, app: Pulpo
                                    ) -> Action | None:
                return Retry(0, result.error) if result.is_fatal else None

        handler = Recorder(Result.fatal("x"), None)
        app = make_app({"t": handler})
        app.plugin_manager.register(Stubborn())
        app.publish(Message("t"))
        drain(app)
        assert handler.attempts == [0, 1]

    def test_after_process_sees_the_result_and_action(self, make_app: MakeApp) -> None:
        seen: list[tuple[str, str]] = []

        class Observer:
            @hookimpl
            def pulpo_after_process(self, message: Message, result: Result, action: Action,
                                    app: Pulpo) -> None:
                seen.append((result.outcome.value, type(action).__name__))

        app = make_app({"ok": Recorder(), "bad": Recorder(Result.fatal("no"))})
        app.plugin_manager.register(Observer())
        app.publish(Message("ok", priority=1))
        app.publish(Message("bad", priority=2))
        drain(app)
        assert seen == [("success", Commit.__name__), ("fatal", Bury.__name__)]

    def test_publish_middleware_changes_the_message(self, make_app: MakeApp) -> None:
        class Tenant:
            @hookimpl
            def pulpo_before_publish(self, message: Message, app: Pulpo) -> Message:
                return attrs.evolve(message, extra_header={**message.extra_header,
                                                           "tenant": "acme"})

        app = make_app()
        app.plugin_manager.register(Tenant())
        job_id = app.publish(Message("t")).id
        assert job_id is not None
        stored = app.queue_adapter.peek(job_id)
        assert stored is not None and stored.extra_header.get("tenant") == "acme"

    def test_publish_middleware_refuses_a_message(self, make_app: MakeApp) -> None:
        class NoSecrets:
            @hookimpl
            def pulpo_before_publish(self, message: Message, app: Pulpo) -> None:
                if "password" in message.body:
                    raise ValueError("body key 'password' must not be queued")

        app = make_app()
        app.plugin_manager.register(NoSecrets())
        with pytest.raises(ValueError, match="password"):
            app.publish(Message("t", {"password": "hunter2"}))
        assert counts(app)["ready"] == 0
        assert app.publish(Message("t", {"user": "ada"})).id is not None
