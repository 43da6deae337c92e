"""The peers of ``bench_redis``: a hand-written redis-py reliable queue, RQ, Dramatiq, Huey and
Celery, each publishing ``n`` no-op jobs and draining them with one consumer in one process.

Each ``publish_<peer>(url, queue, n)`` and ``drain_<peer>(url, queue, n)`` returns seconds; a
peer that is not installed raises ``ModuleNotFoundError`` (named in the results, not skipped).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def noop(*_args: Any) -> None:
    """The job every peer runs."""


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


# -- the floor: LPUSH to publish; BLMOVE to a processing list, LREM to finish ------------------
def publish_plain(url: str, queue: str, n: int) -> float:
    import redis

    client = redis.Redis.from_url(url)
    body = json.dumps({"request_type": "bench", "payload": "x" * 60})
    return _timed(lambda: [client.lpush(queue, body) for _ in range(n)])


def drain_plain(url: str, queue: str, n: int) -> float:
    import redis

    client = redis.Redis.from_url(url)

    def work() -> None:
        for _ in range(n):
            item = client.blmove(queue, queue + ":processing", 1, "RIGHT", "LEFT")
            json.loads(item)
            client.lrem(queue + ":processing", 1, item)

    return _timed(work)


# -- RQ (SimpleWorker: no fork per job) ---------------------------------------------------------
def publish_rq(url: str, queue: str, n: int) -> float:
    import redis
    from rq import Queue

    q = Queue(queue, connection=redis.Redis.from_url(url))
    return _timed(lambda: [q.enqueue(noop) for _ in range(n)])


def drain_rq(url: str, queue: str, n: int) -> float:
    import redis
    from rq import Queue, SimpleWorker

    connection = redis.Redis.from_url(url)
    worker = SimpleWorker([Queue(queue, connection=connection)], connection=connection)
    return _timed(lambda: worker.work(burst=True, logging_level="WARNING"))


# -- Dramatiq (RedisBroker, one worker thread) --------------------------------------------------
def _dramatiq(url: str, queue: str) -> tuple[Any, Any]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    return broker, dramatiq.actor(noop, queue_name=queue, actor_name=f"noop_{queue}")


def publish_dramatiq(url: str, queue: str, n: int) -> float:
    _, actor = _dramatiq(url, queue)
    return _timed(lambda: [actor.send() for _ in range(n)])


def drain_dramatiq(url: str, queue: str, n: int) -> float:
    from dramatiq import Worker

    broker, _ = _dramatiq(url, queue)
    worker = Worker(broker, worker_threads=1)

    def work() -> None:
        worker.start()
        broker.join(queue)
        worker.join()

    try:
        return _timed(work)
    finally:
        worker.stop()


# -- Huey (RedisHuey; its consumer's own loop: dequeue, execute) --------------------------------
def _huey(url: str, queue: str) -> tuple[Any, Any]:
    from huey import RedisHuey

    huey = RedisHuey(queue, url=url)
    return huey, huey.task(name=f"noop_{queue}")(noop)


def publish_huey(url: str, queue: str, n: int) -> float:
    _, task = _huey(url, queue)
    return _timed(lambda: [task() for _ in range(n)])


def drain_huey(url: str, queue: str, n: int) -> float:
    huey, _ = _huey(url, queue)

    def work() -> None:
        for _ in range(n):
            huey.execute(huey.dequeue())

    return _timed(work)


# -- Celery (solo pool, in a subprocess as `celery worker` runs; the drain includes its start) --
def _celery(url: str, queue: str) -> Any:
    from celery import Celery

    app = Celery("redis_peers", broker=url)
    app.conf.task_default_queue = queue
    return app, app.task(name="redis_peers.noop")(noop)


def publish_celery(url: str, queue: str, n: int) -> float:
    _, task = _celery(url, queue)
    return _timed(lambda: [task.delay() for _ in range(n)])


def drain_celery(url: str, queue: str, n: int) -> float:
    import redis

    client = redis.Redis.from_url(url)
    env = {**os.environ, "PYTHONPATH": str(HERE), "BENCH_CELERY_URL": url,
           "BENCH_CELERY_QUEUE": queue}
    started = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "redis_peers:celery_app", "worker",
         "--pool=solo", "-Q", queue, "--loglevel=WARNING", "--without-mingle",
         "--without-gossip", "--without-heartbeat"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while client.llen(queue) > 0 or client.hlen("unacked") > 0:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("celery worker did not drain the queue")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)


celery_app = (_celery(os.environ["BENCH_CELERY_URL"], os.environ["BENCH_CELERY_QUEUE"])[0]
              if "BENCH_CELERY_URL" in os.environ else None)

PEERS = ("plain", "rq", "dramatiq", "huey", "celery")
