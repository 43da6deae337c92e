"""The beanstalkd adapter against the session's real beanstalkd: mapping, order, delays, burial,
attempts, foreign jobs, operator methods, batches and the plugin's loading.

Each test works in a tube of its own. What the server holds is checked with a plain greenstalk
client, so the adapter is not asked to vouch for itself.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from conftest import BeanstalkdServer, app_factory, config_for

from pulpo_core import AdapterError, ConfigError, FatalError, Message, Pulpo, Result, hookimpl
from pulpo_core.message import DEFAULT_PRIORITY, PRIORITY_LOWEST
from pulpo_core.plugins import build_plugin_manager

MakeApp = Callable[..., Pulpo]


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """App settings on the session's beanstalkd, in a tube of this test's own."""
    return config_for("beanstalkd", tmp_path, request)


@pytest.fixture
def tube(settings: dict[str, Any]) -> str:
    return str(settings["beanstalkd_queue_adapter"]["default_tube"])


@pytest.fixture
def make_app(settings: dict[str, Any]) -> Iterator[MakeApp]:
    """Like conftest's, with ``section={...}`` merged into the beanstalkd section."""

    def settings_for(more: dict[str, Any]) -> dict[str, Any]:
        section = {**settings["beanstalkd_queue_adapter"], **more.pop("section", {})}
        return {**settings, **more, "beanstalkd_queue_adapter": section}

    with app_factory(settings_for) as factory:
        yield factory


@pytest.fixture
def client(beanstalkd: BeanstalkdServer, tube: str) -> Iterator[greenstalk.Client[bytes]]:
    """A plain greenstalk client using and watching the test's tube."""
    with greenstalk.Client((beanstalkd.host, beanstalkd.port), encoding=None, use=tube,
                           watch=tube) as plain:
        yield plain


def job_id(message: Message) -> int:
    assert message.id is not None
    return int(message.id)


def drain(app: Pulpo) -> list[Message]:
    handled = []
    while (message := app.queue_adapter.dequeue()) is not None:
        app.handle_message(message)
        handled.append(message)
    return handled


class TestPluginLoading:
    def test_discovery_and_the_app_do_not_import_greenstalk(self) -> None:
        code = (
            "import sys\n"
            "import pulpo_beanstalkd.plugin\n"
            "from pulpo_core import Pulpo\n"
            "from pulpo_core.plugins import build_plugin_manager\n"
            "app = Pulpo({'queue_adapter_type': 'beanstalkd'}, "
            "plugin_manager=build_plugin_manager())\n"
            "print('greenstalk' in sys.modules)\n"
            "app.queue_adapter\n"
            "print('greenstalk' in sys.modules)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["False", "True"]  # only the adapter factory imports it

    @pytest.mark.parametrize("name", ["beanstalkd", "beanstalkd_queue_adapter",
                                      "BeanstalkdQueueAdapter"])
    def test_every_name_selects_the_adapter(self, name: str, settings: dict[str, Any]) -> None:
        from pulpo_beanstalkd.adapter import BeanstalkdQueueAdapter

        app = Pulpo({**settings, "queue_adapter_type": name})
        try:
            assert isinstance(app.queue_adapter, BeanstalkdQueueAdapter)
            assert app.publish(Message("t")).id is not None
        finally:
            app.close()

    def test_the_plugin_is_listed_with_its_hooks(self) -> None:
        infos = {info.name: (info, hooks) for info, hooks in
                 build_plugin_manager().plugin_infos()}
        info, hooks = infos["beanstalkd"]
        assert info.distribution == "pulpo-beanstalkd"
        assert hooks == ["pulpo_register_adapters", "pulpo_register_config_sections"]


class TestConfiguration:
    def section(self, **keys: Any) -> dict[str, Any]:
        return {"queue_adapter_type": "beanstalkd", "beanstalkd_queue_adapter": keys}

    def test_the_defaults(self) -> None:
        from pulpo_beanstalkd.settings import BeanstalkdSettings

        settings = BeanstalkdSettings()
        assert (settings.host, settings.port, settings.default_tube, settings.encoding) == (
            "127.0.0.1", 11300, "pulpo", "utf-8")
        assert settings.reserve_timeout == 1 < settings.socket_timeout
        assert settings.watched == ("pulpo",)

    def test_reserve_timeout_must_be_below_socket_timeout(self) -> None:
        with pytest.raises(ConfigError) as caught:
            Pulpo(self.section(reserve_timeout=5, socket_timeout=5))
        message = str(caught.value)
        assert "'beanstalkd_queue_adapter.reserve_timeout' (5)" in message
        assert "'beanstalkd_queue_adapter.socket_timeout' (5" in message

    def test_reserve_timeout_zero_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="reserve_timeout' must be at least 1"):
            Pulpo(self.section(reserve_timeout=0))

    @pytest.mark.parametrize(("keys", "named"), [
        ({"default_tube": "-starts-with-a-hyphen"}, "default_tube"),
        ({"default_tube": "has space"}, "default_tube"),
        ({"watch": ["fine", "not fine!"]}, "watch"),
        ({"watch": "a-string"}, "watch"),
        ({"port": 70000}, "port"),
        ({"encoding": "no-such-codec"}, "encoding"),
        ({"socket_timeout": 0}, "socket_timeout"),
        ({"spin_wait": -0.001}, "spin_wait"),
        ({"spin_wait": 5}, "spin_wait"),
        ({"colour": "blue"}, "colour"),
    ])
    def test_a_bad_key_is_named_before_work_starts(self, keys: dict[str, Any],
                                                   named: str) -> None:
        with pytest.raises(ConfigError, match=f"beanstalkd_queue_adapter.{named}"):
            Pulpo(self.section(**keys))


class TestMapping:
    """How a message becomes a beanstalkd job, read back with a plain client."""

    def test_priority_ttr_id_and_json_body(self, make_app: MakeApp,
                                           client: greenstalk.Client[bytes]) -> None:
        app = make_app()
        published = app.publish(Message("t", {"n": 1}, priority=7, ttr=42,
                                         header={"trace": "x"}))
        stats = client.stats_job(job_id(published))
        assert (stats["pri"], stats["ttr"], stats["state"]) == (7, 42, "ready")
        body = json.loads(client.peek(job_id(published)).body)
        assert body == published.to_dict() | {"id": None}

    def test_no_priority_is_queued_at_two_to_the_31(self, make_app: MakeApp,
                                                    client: greenstalk.Client[bytes]) -> None:
        published = make_app().publish(Message("t"))
        assert client.stats_job(job_id(published))["pri"] == DEFAULT_PRIORITY == 2**31

    def test_the_extreme_priorities(self, make_app: MakeApp,
                                    client: greenstalk.Client[bytes]) -> None:
        app = make_app()
        for priority in (0, PRIORITY_LOWEST):
            published = app.publish(Message("t", priority=priority))
            assert client.stats_job(job_id(published))["pri"] == priority

    def test_a_delay_becomes_whole_seconds_rounded_up(
        self, make_app: MakeApp, client: greenstalk.Client[bytes]
    ) -> None:
        published = make_app().publish(Message("t", delay=timedelta(seconds=1.2)))
        stats = client.stats_job(job_id(published))
        assert (stats["state"], stats["delay"]) == ("delayed", 2)

    def test_a_delay_in_the_past_is_ready_at_once(
        self, make_app: MakeApp, client: greenstalk.Client[bytes]
    ) -> None:
        published = make_app().publish(Message("t", delay=timedelta(seconds=-30)))
        stats = client.stats_job(job_id(published))
        assert (stats["state"], stats["delay"]) == ("ready", 0)

    def test_the_default_ttr_is_the_apps(self, make_app: MakeApp,
                                         client: greenstalk.Client[bytes]) -> None:
        published = make_app(ttr=17).publish(Message("t"))
        assert client.stats_job(job_id(published))["ttr"] == 17


class TestOrder:
    def test_priority_then_age_across_many_jobs(self, make_app: MakeApp) -> None:
        app = make_app()
        rng = random.Random(4)
        expected = []
        for number in range(60):
            priority = rng.choice([None, 0, 1, 5, 1024, 2**31, PRIORITY_LOWEST])
            published = app.publish(Message("t", {"n": number}, priority=priority))
            key = DEFAULT_PRIORITY if priority is None else priority
            expected.append((key, job_id(published), number))
        order = []
        while (message := app.queue_adapter.dequeue()) is not None:
            order.append(message.body["n"])
            app.queue_adapter.commit(message)
        assert order == [number for _, _, number in sorted(expected)]


class TestDelays:
    def test_a_delayed_job_is_handed_out_once_due(self, make_app: MakeApp) -> None:
        app = make_app()
        app.publish(Message("t", {"n": "later"}, delay=2))
        app.publish(Message("t", {"n": "now"}))
        started = time.monotonic()
        first = app.queue_adapter.dequeue()
        assert first is not None and first.body["n"] == "now"
        app.queue_adapter.commit(first)
        assert app.queue_adapter.dequeue() is None  # waits its reserve_timeout (1 s): not due
        second = app.queue_adapter.dequeue()
        assert second is not None and second.body["n"] == "later"
        assert 1.5 <= time.monotonic() - started < 4


    def test_a_transient_failure_is_released_with_its_back_off(
        self, make_app: MakeApp, client: greenstalk.Client[bytes]
    ) -> None:
        app = make_app({"t": lambda message: Result.transient("not yet")},
                       retry_delay=20, max_retry_delay=1000)
        sent = app.publish(Message("t"))
        held = app.queue_adapter.dequeue()
        assert held is not None and held.id == sent.id
        assert app.handle_message(held).is_transient
        stats = client.stats_job(job_id(sent))
        assert stats["state"] == "delayed"
        assert stats["releases"] == 1
        assert 10 <= stats["delay"] <= 20  # retry_delay * 2**0 attempts, at least half of it


class TestBuryAndKick:
    def test_a_fatal_job_is_buried_with_its_reason_and_kicked_back(
        self, make_app: MakeApp, client: greenstalk.Client[bytes]
    ) -> None:
        outcomes = [FatalError("card declined"), None]
        app = make_app({"pay": lambda m: _raise_or_return(outcomes.pop(0))})
        published = app.publish(Message("pay", priority=3))
        drain(app)
        assert client.stats_job(job_id(published))["state"] == "buried"
        peeked = app.queue_adapter.peek(str(published.id))
        assert peeked is not None and "card declined" in peeked.extra_header["buried_reason"]
        assert peeked.body == published.body
        assert app.queue_adapter.kick() == 1
        stats = client.stats_job(job_id(published))
        assert (stats["state"], stats["pri"]) == ("ready", 3)
        assert [m.id for m in drain(app)] == [published.id]
        assert app.queue_adapter.stats()["total"] == 0

    def test_another_process_sees_that_the_reason_is_in_the_workers_log(
        self, make_app: MakeApp
    ) -> None:
        worker = make_app({"pay": lambda m: Result.fatal("card declined")})
        published = worker.publish(Message("pay"))
        drain(worker)
        operator = make_app()  # a second adapter, like `pulpo peek` in another process
        peeked = operator.queue_adapter.peek(str(published.id))
        assert peeked is not None
        assert f"job {published.id}" in peeked.extra_header["buried_reason"]
        assert "log" in peeked.extra_header["buried_reason"]

    def test_kick_moves_only_buried_jobs_and_all_of_them_by_default(
        self, make_app: MakeApp
    ) -> None:
        app = make_app({"t": lambda m: Result.fatal("no")})
        for _ in range(7):
            app.publish(Message("t"))
        drain(app)
        app.publish(Message("t", delay=60))
        assert app.queue_adapter.kick(2) == 2
        assert app.queue_adapter.kick() == 5
        assert app.queue_adapter.kick() == 0
        counts = app.queue_adapter.stats()
        assert (counts["ready"], counts["delayed"], counts["buried"]) == (7, 1, 0)


def _raise_or_return(outcome: Any) -> Any:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


class TestAttempts:
    def test_counted_by_the_server_across_retries(self, make_app: MakeApp) -> None:
        seen: list[int] = []
        outcomes: list[Any] = [Result.transient("busy"), RuntimeError("boom"), None]

        def handler(message: Message) -> Any:
            seen.append(message.attempts)
            return _raise_or_return(outcomes.pop(0))

        app = make_app({"t": handler})
        app.publish(Message("t"))
        drain(app)
        assert seen == [0, 1, 2]

    def test_a_successful_job_does_not_ask_the_server_for_its_attempts(
        self, make_app: MakeApp
    ) -> None:
        seen: list[Message] = []
        outcomes: list[Any] = [Result.transient("busy"), None]
        app = make_app({"t": lambda m: seen.append(m) or outcomes.pop(0)})
        app.publish(Message("t"))
        drain(app)
        assert seen[1].known_attempts is None  # nothing fetched it: no stats-job round trip
        assert app.queue_adapter.stats()["total"] == 0

    def test_observers_after_a_success_see_the_attempts(self, make_app: MakeApp) -> None:
        observed: list[int] = []

        class Observer:
            @hookimpl
            def pulpo_after_process(self, message: Message) -> None:
                observed.append(message.attempts)

        outcomes: list[Any] = [Result.transient("busy"), None]
        app = make_app({"t": lambda m: outcomes.pop(0)})
        app.plugin_manager.register(Observer())
        app.publish(Message("t"))
        drain(app)
        assert observed == [0, 1]  # the second read before the job was deleted

    def test_a_worker_that_died_counts_as_an_attempt(self, make_app: MakeApp) -> None:
        app = make_app()
        published = app.publish(Message("t"))
        first = make_app()
        assert first.queue_adapter.dequeue() is not None
        first.close()  # like a worker killed mid-job: the server releases the job at once
        again = app.queue_adapter.dequeue()
        assert again is not None and again.id == published.id
        assert again.attempts == 1


class TestRelease:
    def test_a_released_job_is_ready_at_once_with_its_attempts_and_priority(
        self, make_app: MakeApp
    ) -> None:
        app = make_app()
        adapter = app.queue_adapter
        published = app.publish(Message("t", priority=7))
        held = adapter.dequeue()
        assert held is not None and held.id == published.id
        adapter.release(held)
        again = adapter.dequeue()
        assert again is not None and again.id == published.id
        assert (again.attempts, again.priority) == (0, 7)  # not counted as a failed run
        stats = adapter.stats()
        assert (stats["reserved"], stats["buried"]) == (1, 0)

    def test_a_commit_does_not_wait_for_the_server_yet_the_job_is_gone_at_once(
        self, make_app: MakeApp
    ) -> None:
        app = make_app()
        adapter, observer = app.queue_adapter, make_app().queue_adapter
        published = app.publish(Message("t"))
        held = adapter.dequeue()
        assert held is not None
        adapter.commit(held)
        assert adapter._worker.client.pending  # the answer is not read yet ...
        deadline = time.monotonic() + 2
        while observer.peek(str(published.id)) is not None:  # ... but the delete was sent
            assert time.monotonic() < deadline, "the job is still there"
            time.sleep(0.01)
        adapter.flush()
        assert not adapter._worker.client.pending


class TestForeignJobs:
    def test_jobs_that_are_not_pulpo_messages_are_buried_and_the_worker_goes_on(
        self, make_app: MakeApp, client: greenstalk.Client[bytes]
    ) -> None:
        out_of_range = b'{"header": {"request_type": "t", "delay": "0001-01-01T00:00:00+05:00"}, ' \
            b'"body": {}}'  # a pulpo message whose delay no datetime can hold in UTC
        foreign = [client.put(body) for body in
                   (b"hello", b"\xff\xfe\x00", b'{"task": "resize"}', b"[1, 2]", out_of_range)]
        handled: list[Message] = []
        app = make_app({"t": handled.append}, shutdown_after_number_of_empty_iterations=1,
                       sleep_duration=0)
        published = app.publish(Message("t", payload="mine"))
        app.start()
        assert [m.id for m in handled] == [published.id]
        for number in foreign:
            assert client.stats_job(number)["state"] == "buried", number
        peeked = app.queue_adapter.peek(str(foreign[0]))
        assert peeked is not None
        assert peeked.body == {"raw": "hello"}
        assert "not a pulpo message" in peeked.extra_header["buried_reason"]
        assert "not JSON" in peeked.extra_header["unreadable"]
        undecodable = app.queue_adapter.peek(str(foreign[1]))
        assert undecodable is not None and "utf-8" in undecodable.extra_header["unreadable"]


    def test_a_body_nested_too_deeply_is_buried_and_peeked_without_a_traceback(
        self, make_app: MakeApp, client: greenstalk.Client[bytes],
        caplog: pytest.LogCaptureFixture, tmp_path: Path,
    ) -> None:
        deep = client.put(b"[" * 20_000 + b"]" * 20_000)
        app = make_app({}, shutdown_after_number_of_empty_iterations=1, sleep_duration=0)
        with caplog.at_level(logging.WARNING):
            assert app.queue_adapter.dequeue() is None
        assert client.stats_job(deep)["state"] == "buried"
        assert "nested too deeply" in caplog.text and "Traceback" not in caplog.text
        settings = app.queue_adapter.settings
        config = tmp_path / "pulpo.json"
        section = {"host": settings.host, "port": settings.port,
                   "default_tube": settings.default_tube}
        config.write_text(json.dumps({"queue_adapter_type": "beanstalkd",
                                      "beanstalkd_queue_adapter": section}))
        done = subprocess.run([sys.executable, "-m", "pulpo_core", "--config", str(config),
                               "peek", str(deep)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["body"]["raw"].startswith("[[[")
        assert "nested too deeply" in shown["header"]["unreadable"]


class TestOperatorMethods:
    def test_peek_delete_and_stats(self, make_app: MakeApp) -> None:
        app = make_app()
        ready = app.publish(Message("t", {"n": 1}))
        app.publish(Message("t", delay=60))
        counts = app.queue_adapter.stats()
        assert {key: counts[key] for key in ("ready", "delayed", "reserved", "buried",
                                             "total")} == {
            "ready": 1, "delayed": 1, "reserved": 0, "buried": 0, "total": 2}
        assert counts["server_max_job_size"] > 0 and counts["server_uptime"] >= 0
        peeked = app.queue_adapter.peek(str(ready.id))
        assert peeked is not None and peeked.body == {"n": 1} and peeked.attempts == 0
        assert app.queue_adapter.delete(str(ready.id)) is True
        assert app.queue_adapter.delete(str(ready.id)) is False
        assert app.queue_adapter.peek(str(ready.id)) is None

    def test_a_job_reserved_here_can_be_deleted(self, make_app: MakeApp) -> None:
        app = make_app()
        published = app.publish(Message("t"))
        assert app.queue_adapter.dequeue() is not None
        assert app.queue_adapter.delete(str(published.id)) is True
        assert app.queue_adapter.stats()["total"] == 0

    def test_a_job_reserved_by_another_worker_is_not_silently_kept(
        self, make_app: MakeApp
    ) -> None:
        published = make_app().publish(Message("t"))
        worker = make_app()
        assert worker.queue_adapter.dequeue() is not None
        with pytest.raises(AdapterError, match=f"job {published.id} is reserved by a worker"):
            make_app().queue_adapter.delete(str(published.id))

    @pytest.mark.parametrize("bad", ["abc", "-1", "0", "1.5", "²"])
    def test_an_id_that_is_not_a_job_number_is_refused(self, make_app: MakeApp,
                                                       bad: str) -> None:
        adapter = make_app().queue_adapter
        for method in (adapter.peek, adapter.delete):
            with pytest.raises(ValueError, match="not a beanstalkd job id"):
                method(bad)

    def test_a_job_of_another_tube_is_not_ours(
        self, make_app: MakeApp, beanstalkd: BeanstalkdServer
    ) -> None:
        with greenstalk.Client((beanstalkd.host, beanstalkd.port), use="somebody-else") as other:
            number = other.put("theirs")
            adapter = make_app().queue_adapter
            with pytest.raises(ValueError, match="somebody-else"):
                adapter.delete(str(number))
            assert other.stats_job(number)["state"] == "ready"
            other.delete(number)

    def test_the_pulpo_command_operates_the_queue(
        self, make_app: MakeApp, settings: dict[str, Any], tmp_path: Path
    ) -> None:
        app = make_app({"t": lambda m: Result.fatal("nope")})
        buried = app.publish(Message("t", {"n": 1}))
        drain(app)
        config = tmp_path / "pulpo.json"
        config.write_text(json.dumps(settings))

        def pulpo(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "pulpo_core", "--config", str(config),
                                   *args], capture_output=True, text=True, timeout=60)

        counts = json.loads(pulpo("stats", "--json").stdout)
        assert (counts["buried"], counts["total"]) == (1, 1)
        shown = json.loads(pulpo("peek", str(buried.id)).stdout)
        assert shown["body"] == {"n": 1} and "buried_reason" in shown["header"]
        assert pulpo("kick").stdout.strip() == "1"
        assert pulpo("delete", str(buried.id)).returncode == 0
        missing = pulpo("peek", str(buried.id))
        assert missing.returncode == 1 and missing.stdout == ""


class TestPublishMany:
    def test_a_large_batch_is_queued_in_order(
        self, make_app: MakeApp, client: greenstalk.Client[bytes]
    ) -> None:
        app = make_app()
        published = app.publish_many(Message("t", {"n": n}, priority=n % 3) for n in range(1200))
        assert [m.body["n"] for m in published] == list(range(1200))
        ids = [job_id(m) for m in published]
        assert ids == sorted(ids) and len(set(ids)) == 1200
        assert client.stats_job(ids[5])["pri"] == 2
        assert json.loads(client.peek(ids[-1]).body)["body"] == {"n": 1199}
        assert app.queue_adapter.stats()["ready"] == 1200
