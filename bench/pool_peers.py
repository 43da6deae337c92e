"""The anchors of ``bench_pool``'s I/O-bound case: Dramatiq (one process of 16 threads on its
Redis broker) and Huey (``huey_consumer -w 16 -k thread`` on Redis), each running the same
10 ms sleeping job as pulpo.

Each peer's jobs are published first, then its worker is started as its own command starts it
(a subprocess), and the run is timed until every job has appended its byte to the log, as
``bench_pool`` times ``pulpo worker`` (:func:`timed_worker`). ``run_<peer>(url, queue, jobs,
log)`` returns its :class:`Rates`; a peer that is not installed raises
``ModuleNotFoundError`` (named in the results, not skipped).

When imported by a peer's worker (``BENCH_POOL_PEER`` names it) this module defines the peer's
broker and task, so the worker command can name them: ``pool_peers`` for Dramatiq,
``pool_peers.huey`` for Huey.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
THREADS = 16
SLEEP_S = 0.01


def sleep_and_report() -> None:
    """The job: 10 ms of waiting (as for I/O), then one byte to the log."""
    time.sleep(SLEEP_S)
    fd = os.open(os.environ["BENCH_POOL_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


def _dramatiq(url: str, queue: str) -> Any:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=url))
    return dramatiq.actor(sleep_and_report, queue_name=queue, actor_name="sleep_and_report")


def _huey(url: str, queue: str) -> tuple[Any, Any]:
    from huey import RedisHuey

    huey = RedisHuey(queue, url=url)
    return huey, huey.task(name="sleep_and_report")(sleep_and_report)


class Rates(NamedTuple):
    """Jobs per second from the start of the worker command (start-up included), and steady:
    from the first job done to the last."""

    total: float
    steady: float


def timed_worker(command: list[str], env: dict[str, str], log: Path, jobs: int) -> Rates:
    """Run the worker ``command`` until ``log`` holds one byte per job; its rates."""
    started = time.perf_counter()
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    first: tuple[float, int] | None = None
    try:
        deadline = time.monotonic() + 600
        while (done := log.stat().st_size) < jobs:
            if first is None and done:
                first = (time.perf_counter(), done)
            if worker.poll() is not None:
                raise RuntimeError(f"{command[2]} exited early ({worker.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[2]} did not finish its jobs")
            time.sleep(0.005)
        ended = time.perf_counter()
    finally:
        worker.terminate()
        worker.wait(60)
    first_at, first_done = first or (started, 0)
    return Rates(jobs / (ended - started), (jobs - first_done) / max(ended - first_at, 1e-9))


def _env(peer: str, url: str, queue: str, log: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "BENCH_POOL_PEER": peer, "BENCH_POOL_URL": url,
            "BENCH_POOL_QUEUE": queue, "BENCH_POOL_LOG": str(log)}


def run_dramatiq(url: str, queue: str, jobs: int, log: Path) -> Rates:
    actor = _dramatiq(url, queue)
    for _ in range(jobs):
        actor.send()
    command = [sys.executable, "-m", "dramatiq", "pool_peers", "--processes", "1",
               "--threads", str(THREADS), "--queues", queue]
    return timed_worker(command, _env("dramatiq", url, queue, log), log, jobs)


def run_huey(url: str, queue: str, jobs: int, log: Path) -> Rates:
    _, task = _huey(url, queue)
    for _ in range(jobs):
        task()
    command = [sys.executable, "-m", "huey.bin.huey_consumer", "pool_peers.huey", "-w",
               str(THREADS), "-k", "thread", "-l", os.devnull]
    return timed_worker(command, _env("huey", url, queue, log), log, jobs)


PEERS = {"dramatiq": run_dramatiq, "huey": run_huey}

_PEER = os.environ.get("BENCH_POOL_PEER")  # set for a peer's worker command
huey: Any = None
if _PEER == "dramatiq":
    _dramatiq(os.environ["BENCH_POOL_URL"], os.environ["BENCH_POOL_QUEUE"])
elif _PEER == "huey":
    huey = _huey(os.environ["BENCH_POOL_URL"], os.environ["BENCH_POOL_QUEUE"])[0]
