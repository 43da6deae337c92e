"""pulpo on Redis against the Redis job frameworks: publish and drain rates, one client and
one consumer process, on one local redis-server started here (no persistence).

N no-op jobs (``PULPO_BENCH_REDIS_N``, default 5000), the median of ROUNDS rounds
(``PULPO_BENCH_REDIS_ROUNDS``, default 3), each system on queues of its own:

- a hand-written redis-py reliable queue (LPUSH; BLMOVE to a processing list, LREM) is the
  floor of what Redis does per round trip: pulpo should reach GOAL of its rates;
- RQ (SimpleWorker), Dramatiq (RedisBroker), Huey (RedisHuey), Celery (solo pool);
- pulpo: ``publish`` once per job, ``publish_many`` with all N, and its real worker loop.

Run alone with ``python bench/bench_redis.py``, or ``nox -s bench -- bench_redis``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis_peers

N = int(os.environ.get("PULPO_BENCH_REDIS_N", "5000"))
ROUNDS = int(os.environ.get("PULPO_BENCH_REDIS_ROUNDS", "3"))
GOAL = 0.9
_queues = itertools.count()


class Server:
    """A redis-server on a free loopback port, for the length of a ``with`` block."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.folder = tempfile.mkdtemp(prefix="pulpo-bench-redis-")
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.command = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                        "--appendonly", "no", "--dir", self.folder]
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> Server:
        try:
            self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)"
                               ) from None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _app(url: str, queue: str, **settings: Any) -> Any:
    from pulpo_core import Pulpo

    return Pulpo({"queue_adapter_type": "redis",
                  "redis_queue_adapter": {"url": url, "queue": queue}, **settings})


def publish_pulpo(url: str, queue: str, n: int) -> float:
    from pulpo_core import Message

    app = _app(url, queue)
    try:
        app.queue_adapter.stats()  # connect before the clock starts
        started = time.perf_counter()
        for number in range(n):
            app.publish(Message("bench", {"n": number}, payload="x" * 60))
        return time.perf_counter() - started
    finally:
        app.close()


def publish_many_pulpo(url: str, queue: str, n: int) -> float:
    from pulpo_core import Message

    app = _app(url, queue)
    try:
        app.queue_adapter.stats()
        started = time.perf_counter()
        for start in range(0, n, 1000):
            app.publish_many(Message("bench", {"n": number}, payload="x" * 60)
                             for number in range(start, min(start + 1000, n)))
        return time.perf_counter() - started
    finally:
        app.close()


def drain_pulpo(url: str, queue: str, n: int) -> float:
    app = _app(url, queue, sleep_duration=0)
    done = itertools.count(1)

    def noop(_message: Any) -> None:
        if next(done) == n:
            app.stop()

    app.register_handler("bench", noop)
    try:
        app.queue_adapter.stats()
        started = time.perf_counter()
        app.start()
        return time.perf_counter() - started
    finally:
        app.close()


def measure(url: str, publish: Callable[..., float], drain: Callable[..., float] | None
            ) -> tuple[float, float | None]:
    """Median jobs per second of publishing and of draining over ROUNDS rounds."""
    published, drained = [], []
    for _ in range(ROUNDS):
        queue = f"bench-{next(_queues)}"
        published.append(N / publish(url, queue, N))
        if drain is not None:
            drained.append(N / drain(url, queue, N))
    return statistics.median(published), (statistics.median(drained) if drained else None)


def run(report: list[str]) -> None:
    report += ["## pulpo-redis against the Redis job frameworks", "",
               f"{N} no-op jobs, median of {ROUNDS} rounds, one local redis-server (no "
               f"persistence), one client and one consumer process.", "",
               "| system | publish (jobs/s) | drain (jobs/s) |", "| --- | --- | --- |"]
    figures: dict[str, tuple[float, float | None]] = {}
    with Server() as server:
        for peer in redis_peers.PEERS:
            try:
                figures[peer] = measure(server.url, getattr(redis_peers, f"publish_{peer}"),
                                        getattr(redis_peers, f"drain_{peer}"))
            except Exception as error:  # a missing or broken peer is named, never skipped
                report.append(f"| {peer} | failed: {type(error).__name__}: {error} | |")
                print(f"bench_redis: {peer} failed: {error}", file=sys.stderr)
        figures["pulpo"] = measure(server.url, publish_pulpo, drain_pulpo)
        figures["pulpo publish_many"] = measure(server.url, publish_many_pulpo, drain_pulpo)
    for name, (publish, drain) in figures.items():
        report.append(f"| {name} | {publish:,.0f} | {'' if drain is None else f'{drain:,.0f}'} |")
    report.append("")
    if "plain" in figures:
        plain_publish, plain_drain = figures["plain"]
        pulpo_publish, pulpo_drain = figures["pulpo"]
        report += [f"pulpo / plain loop: publish {pulpo_publish / plain_publish:.2f}, drain "
                   f"{(pulpo_drain or 0) / (plain_drain or 1):.2f} (goal {GOAL})", ""]


if __name__ == "__main__":
    lines: list[str] = []
    run(lines)
    print("\n".join(lines))
