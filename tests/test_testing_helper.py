"""`pulpo_core.testing`: an integrator tests a handler in three lines, without a queue server."""

from __future__ import annotations

import time

import attrs

from pulpo_core import Message, Result, TransientError, hookimpl
from pulpo_core.defaults.memory import MemoryQueueAdapter
from pulpo_core.testing import make_app, run_until_empty

sent: list[str] = []


def send_email(message: Message) -> None:
    sent.append(message.body["to"])


class TestThreeLines:
    def test_publish_and_run(self) -> None:
        sent.clear()
        app = make_app({"send_email": send_email})
        app.publish(Message("send_email", {"to": "ada@example.org"}))
        assert run_until_empty(app).succeeded == 1
        assert sent == ["ada@example.org"]

    def test_the_app_is_on_the_memory_adapter(self) -> None:
        assert isinstance(make_app().queue_adapter, MemoryQueueAdapter)

    def test_it_needs_no_installed_plugin(self) -> None:
        app = make_app()
        names = [name for name, _ in app.plugin_manager.list_name_plugin()]
        assert all(name.startswith("pulpo_core.defaults.") for name in names)


class TestRunUntilEmpty:
    def test_an_empty_queue_runs_nothing(self) -> None:
        report = run_until_empty(make_app())
        assert report.processed == ()
        assert (report.succeeded, report.failed) == (0, 0)

    def test_retries_run_to_the_end(self) -> None:
        runs: list[int] = []

        def flaky(message: Message) -> None:
            runs.append(message.attempts)
            if message.attempts < 2:
                raise TransientError("not yet")

        # A real back-off: the helper moves the memory clock instead of sleeping.
        app = make_app({"flaky": flaky}, {"retry_delay": 60, "max_number_of_attempts": 5})
        app.publish(Message("flaky"))
        started = time.monotonic()
        report = run_until_empty(app)
        assert time.monotonic() - started < 5
        assert runs == [0, 1, 2]
        assert [r.outcome.value for r in report.results] == ["transient", "transient", "success"]
        assert (report.succeeded, report.failed) == (1, 2)
        assert app.queue_adapter.stats()["total"] == 0

    def test_a_job_that_always_fails_ends_buried(self) -> None:
        app = make_app({"t": lambda m: Result.transient("down")},
                       {"max_number_of_attempts": 3, "retry_delay": 10})
        app.publish(Message("t"))
        report = run_until_empty(app)
        assert report.failed == 3
        assert app.queue_adapter.stats()["buried"] == 1

    def test_delayed_jobs_run(self) -> None:
        seen: list[str] = []
        app = make_app({"t": lambda m: seen.append(m.payload)})
        app.publish(Message("t", payload="in an hour", delay=3600))
        app.publish(Message("t", payload="now"))
        report = run_until_empty(app)
        assert seen == ["now", "in an hour"]
        assert report.succeeded == 2

    def test_delayed_jobs_can_be_left_waiting(self) -> None:
        app = make_app({"t": lambda m: None})
        app.publish(Message("t", delay=3600))
        assert run_until_empty(app, include_delayed=False).processed == ()
        assert app.queue_adapter.stats()["delayed"] == 1

    def test_a_job_published_after_a_run_waits_its_full_delay(self) -> None:
        app = make_app({"t": lambda m: None})
        app.publish(Message("t", delay=60))
        assert run_until_empty(app).succeeded == 1
        app.publish(Message("t", delay=3600))
        assert app.queue_adapter.stats()["delayed"] == 1
        assert run_until_empty(app, include_delayed=False).processed == ()

    def test_follow_ups_run_too(self) -> None:
        seen: list[str] = []
        app = make_app({
            "order": lambda m: Result.success(Message("invoice", payload=m.payload)),
            "invoice": lambda m: seen.append(m.payload),
        })
        app.publish(Message("order", payload="#1"))
        assert run_until_empty(app).succeeded == 2
        assert seen == ["#1"]

    def test_the_report_lists_each_run_in_order(self) -> None:
        app = make_app({"t": lambda m: Result.fatal("no") if m.payload == "b" else None})
        app.publish(Message("t", payload="a", priority=1))
        app.publish(Message("t", payload="b", priority=2))
        report = run_until_empty(app)
        assert [p.message.payload for p in report.processed] == ["a", "b"]
        assert [p.result.is_fatal for p in report.processed] == [False, True]


@attrs.frozen
class Signup:
    email: str


class TestWithPlugins:
    def test_middleware_under_test_is_registered(self) -> None:
        class Lowercase:
            @hookimpl
            def pulpo_before_publish(self, message: Message, app: object) -> Message:
                return attrs.evolve(message, body={"email": message.body["email"].lower()})

        seen: list[Signup] = []

        def welcome(signup: Signup) -> None:
            seen.append(signup)

        app = make_app({"welcome": welcome}, plugins=[Lowercase()])
        app.publish(Message("welcome", {"email": "Ada@Example.ORG"}))
        run_until_empty(app)
        assert seen == [Signup("ada@example.org")]
