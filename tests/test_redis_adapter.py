"""The redis adapter against a real redis-server: configuration, the plugin's hint, leases,
foreign data, waking idle workers, and a server that restarts or goes away."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pulpo_redis.adapter import RedisQueueAdapter
from pulpo_redis.keys import QueueKeys
from redis.crc import key_slot
from redis_server import RedisServer, find_redis_server

from pulpo_core import Message, Pulpo
from pulpo_core.adapter import BatchPublishing, Flushing, JobListing, LeaseKeeping, Releasing
from pulpo_core.errors import AdapterError, ConfigError
from pulpo_core.plugins import build_plugin_manager
from pulpo_core.registry import collect_hints, select_adapter

_queues = iter(range(1, 10**6))


@pytest.fixture
def section(redis_server: RedisServer) -> dict[str, Any]:
    return {"url": redis_server.url, "queue": f"adapter-{next(_queues)}"}


@pytest.fixture
def adapter(section: dict[str, Any]) -> Iterator[RedisQueueAdapter]:
    made = RedisQueueAdapter(section)
    yield made
    made.close()


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


class TestPlugin:
    def test_the_adapter_has_every_capability_it_claims(
            self, adapter: RedisQueueAdapter) -> None:
        for protocol in (BatchPublishing, Flushing, JobListing, LeaseKeeping, Releasing):
            assert isinstance(adapter, protocol), protocol.__name__

    def test_every_name_selects_the_adapter(self, section: dict[str, Any]) -> None:
        for name in ("redis", "redis_queue_adapter", "RedisQueueAdapter"):
            app = Pulpo({"queue_adapter_type": name, "redis_queue_adapter": section})
            try:
                assert isinstance(app.queue_adapter, RedisQueueAdapter)
            finally:
                app.close()

    def test_the_hint_names_the_distribution(self) -> None:
        hints = collect_hints(build_plugin_manager())
        with pytest.raises(ConfigError, match="pip install pulpo-redis"):
            select_adapter({}, "redis", hints)


class TestConfiguration:
    @pytest.mark.parametrize(("keys", "named"), [
        ({"url": "http://x"}, "'redis_queue_adapter.url' must be a URL starting with redis://"),
        ({"queue": "a{b}"}, "'redis_queue_adapter.queue' must be a queue name"),
        ({"reserve_timeout": 0}, "'redis_queue_adapter.reserve_timeout' must be more than 0"),
        ({"reserve_timeout": 20}, "'redis_queue_adapter.reserve_timeout' must be below"),
        ({"cluster": "yes"}, "'redis_queue_adapter.cluster' must be true or false"),
        ({"colour": 1}, "colour"),
    ])
    def test_a_bad_value_names_its_key(self, keys: dict[str, Any], named: str) -> None:
        with pytest.raises(ConfigError, match=named.replace("{", r"\{")):
            Pulpo({"queue_adapter_type": "redis", "redis_queue_adapter": keys})


class TestKeys:
    def test_every_key_of_a_queue_is_in_one_cluster_slot(
            self, adapter: RedisQueueAdapter, redis_server: RedisServer) -> None:
        adapter.enqueue(Message("t"))
        adapter.enqueue(Message("t", delay=60))
        assert adapter.dequeue() is not None
        queue = adapter.settings.queue
        keys = [k.decode() for k in raw(redis_server).keys(f"pulpo:{{{queue}}}:*")]
        assert len(keys) >= 5
        assert {key_slot(k.encode()) for k in keys} == {key_slot(queue.encode())}

    def test_ids_name_their_queue(self, adapter: RedisQueueAdapter) -> None:
        job = adapter.enqueue(Message("t"))
        assert job.id == f"{adapter.settings.queue}:1"
        assert adapter.peek("nonsense") is None and adapter.delete("nonsense") is False


class TestLeases:
    def test_a_settle_after_the_lease_ran_out_changes_nothing(
            self, section: dict[str, Any]) -> None:
        first, second = RedisQueueAdapter(section), RedisQueueAdapter(section)
        try:
            first.enqueue(Message("t", ttr=1))
            mine = first.dequeue()
            assert mine is not None
            time.sleep(1.1)
            theirs = second.dequeue()
            assert theirs is not None and theirs.id == mine.id and theirs.attempts == 1
            assert first.commit(mine) is False
            assert first.bury(mine, "late") is False
            assert second.commit(theirs) is True
            assert second.stats()["total"] == 0
        finally:
            first.close()
            second.close()

    def test_touch_keeps_the_lease(self, section: dict[str, Any]) -> None:
        first = RedisQueueAdapter(section)
        second = RedisQueueAdapter({**section, "reserve_timeout": 0.2})
        try:
            first.enqueue(Message("t", ttr=1))
            mine = first.dequeue()
            assert mine is not None
            for _ in range(4):
                time.sleep(0.5)
                first.touch(mine)
            assert second.dequeue() is None
            assert first.commit(mine) is True
        finally:
            first.close()
            second.close()


class TestForeignData:
    def test_a_job_that_does_not_decode_is_buried_and_kept(
            self, adapter: RedisQueueAdapter, redis_server: RedisServer) -> None:
        job = adapter.enqueue(Message("t"))
        good = adapter.enqueue(Message("t"))
        keys = QueueKeys(adapter.settings.queue, "pulpo")
        raw(redis_server).hset(keys.job("1"), "d", b"\xff not json")
        taken = adapter.dequeue()
        assert taken is not None and taken.id == good.id
        assert adapter.stats()["buried"] == 1
        seen = adapter.peek(job.id or "")
        assert seen is not None and "not JSON" in seen.extra_header["unreadable"]
        assert raw(redis_server).hget(keys.job("1"), "w").startswith(b"unreadable:")

    def test_a_job_key_of_the_wrong_type_is_buried_and_kept(
            self, adapter: RedisQueueAdapter, redis_server: RedisServer) -> None:
        job = adapter.enqueue(Message("t"))
        keys = QueueKeys(adapter.settings.queue, "pulpo")
        client = raw(redis_server)
        client.delete(keys.job("1"))
        client.set(keys.job("1"), "someone else's")
        assert adapter.dequeue() is None
        assert adapter.stats()["buried"] == 1
        assert client.get(keys.job("1")) == b"someone else's"
        seen = adapter.peek(job.id or "")
        assert seen is not None and "holds a Redis string" in seen.extra_header["unreadable"]
        assert adapter.kick() == 0  # not a job: it stays buried until deleted
        assert adapter.delete(job.id or "") is True


class TestWaiting:
    def test_an_idle_worker_takes_a_new_job_at_once(self, section: dict[str, Any]) -> None:
        worker = RedisQueueAdapter({**section, "reserve_timeout": 5})
        publisher = RedisQueueAdapter(section)
        got: list[tuple[Message | None, float]] = []
        thread = threading.Thread(target=lambda: got.append((worker.dequeue(),
                                                             time.monotonic())))
        try:
            thread.start()
            time.sleep(0.5)
            sent = time.monotonic()
            publisher.enqueue(Message("t"))
            thread.join(10)
            message, taken = got[0]
            assert message is not None
            assert taken - sent < 0.5  # a few ms unloaded; generous for a busy machine
        finally:
            worker.close()
            publisher.close()

    def test_a_delayed_job_wakes_a_waiting_worker_when_due(
            self, adapter: RedisQueueAdapter) -> None:
        adapter.enqueue(Message("t", delay=0.6))
        start = time.monotonic()
        message = adapter.dequeue()  # waits (reserve_timeout 1 s) and is woken when due
        late = time.monotonic() - start
        assert message is not None
        assert 0.5 <= late < 0.95  # on time within a few ms unloaded; generous under load


class TestServerFaults:
    @pytest.fixture
    def server(self, tmp_path: Path) -> Iterator[RedisServer]:
        own = RedisServer(find_redis_server(), tmp_path / "data")
        own.start()
        yield own
        own.stop()

    def test_jobs_survive_a_crash_with_appendonly(self, server: RedisServer) -> None:
        adapter = RedisQueueAdapter({"url": server.url, "reconnect_timeout": 10})
        try:
            ids = [adapter.enqueue(Message("t", {"n": n})).id for n in range(50)]
            held = adapter.dequeue()
            assert held is not None
            server.restart(signal.SIGKILL)
            stats = adapter.stats()
            assert stats["total"] == 50 and stats["reserved"] == 1
            assert adapter.commit(held) is True  # the lease survived the restart too
            assert {adapter.peek(i or "") is not None for i in ids[1:]} == {True}
        finally:
            adapter.close()

    def test_publish_gives_up_after_reconnect_timeout_naming_the_server(
            self, server: RedisServer) -> None:
        adapter = RedisQueueAdapter({"url": server.url, "reconnect_timeout": 0.5})
        try:
            server.stop(signal.SIGKILL)
            start = time.monotonic()
            with pytest.raises(AdapterError, match=f"127.0.0.1:{server.port}"):
                adapter.enqueue(Message("t"))
            assert time.monotonic() - start < 5
            assert adapter.dequeue() is None  # a worker waits out its reserve_timeout
        finally:
            adapter.close()

    def test_a_worker_carries_on_after_a_restart(self, server: RedisServer) -> None:
        adapter = RedisQueueAdapter({"url": server.url})
        try:
            adapter.enqueue(Message("t"))
            server.restart()
            message = adapter.dequeue()
            assert message is not None and adapter.commit(message) is True
        finally:
            adapter.close()


class TestDocs:
    def test_every_key_is_documented_with_its_default(self) -> None:
        import attrs
        from pulpo_redis.settings import RedisSettings
        from test_docs import documented_default

        text = (Path(__file__).resolve().parents[1] / "docs" / "adapters" / "redis.md"
                ).read_text(encoding="utf-8")
        for field in attrs.fields(RedisSettings):
            row = next((line for line in text.splitlines()
                        if line.startswith(f"| `{field.name}` |")), None)
            assert row, f"{field.name!r} is missing from docs/adapters/redis.md"
            default = field.default if field.name != "watch" else []
            assert f"`{documented_default(default)}`" in row, field.name


class TestCommandLine:
    def test_publish_to_a_server_that_is_down_exits_1_naming_it(self, tmp_path: Path) -> None:
        import json
        import subprocess
        import sys

        from redis_server import free_port

        port = free_port()  # nothing listens there
        config = tmp_path / "pulpo.json"
        config.write_text(json.dumps({"queue_adapter_type": "redis", "redis_queue_adapter": {
            "url": f"redis://127.0.0.1:{port}/0", "reconnect_timeout": 0.5}}))
        done = subprocess.run([sys.executable, "-m", "pulpo_core", "--config", str(config),
                               "publish", "--request-type", "t"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert f"127.0.0.1:{port}" in done.stderr
        assert "Traceback" not in done.stderr


class TestIdleWorkers:
    def test_twenty_idle_workers_cost_the_server_almost_nothing(
            self, section: dict[str, Any], redis_server: RedisServer) -> None:
        assert redis_server.process is not None
        stat = Path(f"/proc/{redis_server.process.pid}/stat")

        def cpu() -> float:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        adapters = [RedisQueueAdapter(section) for _ in range(20)]
        stop = threading.Event()

        def idle(adapter: RedisQueueAdapter) -> None:
            while not stop.is_set():
                adapter.dequeue()

        threads = [threading.Thread(target=idle, args=(a,)) for a in adapters]
        try:
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            before = cpu()
            time.sleep(3)
            used = cpu() - before
            # One claim and one blocked BLPOP per worker a second: a few ms of server CPU.
            assert used < 0.3, f"the server used {used:.2f} s of CPU in 3 s"
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
            for adapter in adapters:
                adapter.close()
