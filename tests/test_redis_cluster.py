"""The redis adapter on a local 3-master Redis Cluster: queues spread over the shards, one worker
watching them all drains every job."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulpo_redis.adapter import RedisQueueAdapter
from pulpo_redis.keys import QueueKeys
from redis_server import RedisServer, find_redis_server

from pulpo_core import Message


def cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port >= 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    pytest.fail("no free pair of ports for a cluster node", pytrace=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    binary = find_redis_server()
    nodes = []
    for index in range(3):
        node = RedisServer(binary, tmp_path_factory.mktemp(f"node{index}"),
                           extra_args=("--cluster-enabled", "yes",
                                       "--cluster-config-file", "nodes.conf"))
        node.port = cluster_port()
        node.start()
        nodes.append(node)
    cli = str(Path(binary).with_name("redis-cli"))
    try:
        subprocess.run([cli, "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in nodes),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            info = subprocess.run([cli, "-p", str(nodes[0].port), "cluster", "info"],
                                  capture_output=True, text=True, timeout=10).stdout
            if "cluster_state:ok" in info:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the cluster did not come up: {info}", pytrace=False)
            time.sleep(0.1)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_queues_spread_over_shards_and_all_drain(cluster: list[RedisServer]) -> None:
    url = f"redis+cluster://127.0.0.1:{cluster[0].port}"
    queues = [f"q{n}" for n in range(6)]
    publishers = {q: RedisQueueAdapter({"url": url, "queue": q}) for q in queues}
    worker = RedisQueueAdapter({"url": url, "watch": queues, "reserve_timeout": 0.5})
    try:
        ids = {publishers[q].enqueue(Message("t", {"q": q, "i": i})).id
               for q in queues for i in range(20)}
        client = worker.connection.client
        shards = {client.get_node_from_key(QueueKeys(q, "pulpo").key("ready")).name
                  for q in queues}
        assert len(shards) > 1, "every queue landed on one shard"
        seen = []
        while (message := worker.dequeue()) is not None:
            seen.append(message.id)
            assert worker.commit(message) is True
        assert sorted(seen) == sorted(ids)
        assert worker.stats()["total"] == 0
        first = seen[:20]
        assert all(i.startswith("q0:") for i in first)  # watched queues in priority order
    finally:
        for adapter in (*publishers.values(), worker):
            adapter.close()
