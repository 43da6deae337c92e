"""pulpo-redis answers a worker's commit with its next claim: one round trip a drained job.
Against a real redis-server: the round trips counted by the server, and commits owed when the
connection breaks, the server forgets its scripts, the worker stops, or the lease ran out."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pulpo_redis.adapter import RedisQueueAdapter
from redis_server import RedisServer

from pulpo_core import Message

_queues = itertools.count(1)


@pytest.fixture
def section(redis_server: RedisServer) -> dict[str, Any]:
    return {"url": redis_server.url, "queue": f"pipelined-{next(_queues)}"}


@pytest.fixture
def adapter(section: dict[str, Any]) -> Iterator[RedisQueueAdapter]:
    made = RedisQueueAdapter(section)
    yield made
    made.close()


def _server(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def _publish(adapter: RedisQueueAdapter, n: int) -> None:
    for index in range(n):
        adapter.enqueue(Message(request_type="x", body={"n": index}))


def _evalsha_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_commit_does_not_wait_for_the_server_and_is_answered_with_the_next_claim(
        adapter: RedisQueueAdapter, redis_server: RedisServer) -> None:
    server = _server(redis_server)
    _publish(adapter, 50)
    calls = _evalsha_calls(server)
    for _ in range(40):
        message = adapter.dequeue()
        assert message is not None
        assert adapter.commit(message) is True
    adapter.flush()
    assert _evalsha_calls(server) - calls >= 80  # every claim and every commit ran
    assert adapter.stats()["total"] == 10
    message = adapter.dequeue()
    assert message is not None
    # The server holds every client's commands for a second: a commit that waited for its
    # answer would take that long; this one is only written.
    server.client_pause(1000, all=True)
    started = time.monotonic()
    assert adapter.commit(message) is True
    assert time.monotonic() - started < 0.5
    nxt = adapter.dequeue()  # waits for the pause, then reads both answers
    assert time.monotonic() - started >= 0.9
    assert nxt is not None and adapter.peek(message.id or "") is None


def test_owed_commits_are_answered_when_the_worker_stops(
        adapter: RedisQueueAdapter, redis_server: RedisServer) -> None:
    _publish(adapter, 3)
    taken = [adapter.dequeue() for _ in range(3)]
    for message in taken:
        assert message is not None and adapter.commit(message) is True
    adapter.flush()
    assert adapter.stats()["total"] == 0
    assert adapter.stats()["reserved"] == 0


def test_a_broken_connection_runs_the_owed_commits_again(
        adapter: RedisQueueAdapter, redis_server: RedisServer,
        caplog: pytest.LogCaptureFixture) -> None:
    server = _server(redis_server)
    _publish(adapter, 4)
    message = adapter.dequeue()
    assert message is not None
    server.client_kill_filter(_type="normal", skipme=True)  # every client connection but ours
    assert adapter.commit(message) is True  # written to a closed socket, or lost on the way
    again = adapter.dequeue()  # reads what is owed: the broken connection runs it again
    assert again is not None and again.id != message.id
    assert adapter.peek(message.id or "") is None  # deleted, exactly once
    assert adapter.commit(again) is True
    adapter.flush()
    assert adapter.stats()["total"] == 2


def test_a_server_that_forgot_its_scripts_still_gets_the_commit(
        adapter: RedisQueueAdapter, redis_server: RedisServer) -> None:
    server = _server(redis_server)
    _publish(adapter, 3)
    message = adapter.dequeue()
    assert message is not None
    server.script_flush()
    assert adapter.commit(message) is True  # answered NOSCRIPT: run again through the client
    nxt = adapter.dequeue()
    assert nxt is not None
    assert adapter.peek(message.id or "") is None
    adapter.commit(nxt)
    adapter.flush()
    assert adapter.stats()["total"] == 1


def test_past_its_lease_a_commit_waits_for_the_answer_and_says_it_was_not_held(
        section: dict[str, Any], redis_server: RedisServer) -> None:
    adapter = RedisQueueAdapter(section)
    other = RedisQueueAdapter(section)
    try:
        adapter.enqueue(Message(request_type="x", body={}, ttr=1))
        message = adapter.dequeue()
        assert message is not None
        time.sleep(1.2)
        taken = other.dequeue()  # the lease ran out: another worker has it now
        assert taken is not None and taken.id == message.id
        assert adapter.commit(message) is False
        assert other.commit(taken) is True
        other.flush()
        assert other.stats()["total"] == 0
    finally:
        adapter.close()
        other.close()
