"""The worker pool: jobs/s of ``pulpo worker --processes P --threads T`` on the file queue
(``fsync = false``) and on beanstalkd.

Cases (each the median of ``ROUNDS`` runs; a run publishes N jobs, starts the worker, and times
until every handler has reported done):

- I/O-bound: a handler that sleeps 10 ms, sync at 1 x 16 threads and ``async def`` at T = 16;
  goal >= 90 % of the ideal 1,600 jobs/s;
- no-op handler at P = 1, 2, 4: the scaling factor against P = 1 (goal >= 1.6x at P = 2 on the
  file queue);
- CPU-bound (~5 ms of pure Python): P = number of cores; goal >= 0.85 x cores x the P = 1 rate.

The I/O-bound case also runs on pulpo-redis, side by side with its anchors on the same
redis-server: Dramatiq with 1 process x 16 threads on its Redis broker and Huey ``-w 16 -k
thread`` on Redis (see :mod:`pool_peers`). Every rate counts from the start of the worker
command to the last job done, start-up included, for pulpo and the peers alike. Run alone with
``python bench/bench_pool.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROUNDS = 3
SIZES = {"io": 3200, "noop": 4000, "cpu": 800}
QUICK_SIZES = {"io": 160, "noop": 200, "cpu": 40}
HANDLERS = {
    "noop": "pool_handlers:noop",
    "sleep10": "pool_handlers:sleep10",
    "sleep10_async": "pool_handlers:sleep10_async",
    "cpu5": "pool_handlers:cpu5",
}


def one_run(settings: dict[str, Any], request_type: str, jobs: int, processes: int,
            threads: int) -> float:
    """Jobs per second of one drain of ``jobs`` jobs by a fresh pool."""
    from pulpo_core import Message, Pulpo

    with tempfile.TemporaryDirectory(prefix="pulpo-bench-pool-") as folder:
        root = Path(folder)
        config = {**settings, "handlers": HANDLERS, "sleep_duration": 0.01,
                  "enable_banner": False}
        if config["queue_adapter_type"] == "file":
            config["file_queue_adapter"] = {"base_path": str(root / "queue"), "fsync": False}
        (root / "pulpo.json").write_text(json.dumps(config))
        log = root / "done.log"
        log.touch()
        app = Pulpo(config)
        try:
            app.publish_many([Message(request_type=request_type) for _ in range(jobs)])
        finally:
            app.close()
        env = {**os.environ, "PULPO_BENCH_LOG": str(log),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE),
                                                           os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "pulpo_core", "--config", str(root / "pulpo.json"),
                   "worker", "--processes", str(processes), "--threads", str(threads)]
        started = time.perf_counter()
        worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            while log.stat().st_size < jobs:
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited early ({worker.returncode})")
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
        finally:
            worker.terminate()
            worker.wait(60)
        return jobs / elapsed


def median_rate(settings: dict[str, Any], request_type: str, jobs: int, processes: int,
                threads: int, rounds: int) -> float:
    return statistics.median(
        one_run(settings, request_type, jobs, processes, threads) for _ in range(rounds)
    )


def adapters(server_port: int) -> list[tuple[str, dict[str, Any]]]:
    return [("file", {"queue_adapter_type": "file"}), ("beanstalkd", {
        "queue_adapter_type": "beanstalkd",
        "beanstalkd_queue_adapter": {"host": "127.0.0.1", "port": server_port},
    })]


def io_bound_on_redis(report: list[str], url: str, jobs: int, rounds: int) -> None:
    """pulpo-redis at 1 x 16 (sync and async) and its anchors, on one redis-server."""
    import pool_peers

    queues = (f"pool-{n}" for n in range(1_000_000))
    for request_type, label in (("sleep10", "sleep 10 ms, sync"),
                                ("sleep10_async", "sleep 10 ms, async")):
        rate = statistics.median(
            one_run({"queue_adapter_type": "redis",
                     "redis_queue_adapter": {"url": url, "queue": next(queues)}},
                    request_type, jobs, 1, 16) for _ in range(rounds))
        report.append(f"| redis | {label} | 1 x 16 | {rate:.0f} | "
                      f"{rate / 1600:.0%} of the ideal 1,600 |")
    for peer, run_peer in pool_peers.PEERS.items():
        rates = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(prefix="pulpo-bench-peer-") as folder:
                log = Path(folder) / "done.log"
                log.touch()
                rates.append(run_peer(url, next(queues), jobs, log))
        shape = "1 x 16 threads" if peer == "dramatiq" else "-w 16 -k thread"
        rate = statistics.median(rates)
        report.append(f"| redis | {peer}: sleep 10 ms | {shape} | {rate:.0f} | "
                      f"{rate / 1600:.0%} of the ideal 1,600 (anchor) |")


def measure(report: list[str], quick: bool, server_port: int, redis_url: str) -> None:
    sizes = QUICK_SIZES if quick else SIZES
    rounds = 1 if quick else ROUNDS
    cores = len(os.sched_getaffinity(0))
    report += ["## Worker pool", "", "| adapter | case | pool | jobs/s | note |",
               "| --- | --- | --- | --- | --- |"]
    io_bound_on_redis(report, redis_url, sizes["io"], rounds)
    for name, base in adapters(server_port):
        for request_type, label in (("sleep10", "sleep 10 ms, sync"),
                                    ("sleep10_async", "sleep 10 ms, async")):
            rate = median_rate(base, request_type, sizes["io"], 1, 16, rounds)
            report.append(f"| {name} | {label} | 1 x 16 | {rate:.0f} | "
                          f"{rate / 1600:.0%} of the ideal 1,600 |")
        single = 0.0
        for processes in (1, 2, 4):
            rate = median_rate(base, "noop", sizes["noop"], processes, 1, rounds)
            single = single or rate
            report.append(f"| {name} | no-op | {processes} x 1 | {rate:.0f} | "
                          f"{rate / single:.2f}x P = 1 |")
        one = median_rate(base, "cpu5", sizes["cpu"], 1, 1, rounds)
        many = median_rate(base, "cpu5", sizes["cpu"], cores, 1, rounds)
        report.append(f"| {name} | CPU 5 ms | {cores} x 1 | {many:.0f} | "
                      f"{many / (one * cores):.2f} x cores x P = 1 ({one:.0f}) |")
    report.append("")


def run(report: list[str]) -> None:
    from bench_beanstalkd import Server
    from bench_redis import Server as RedisServer

    quick = "--quick" in sys.argv or os.environ.get("PULPO_BENCH_QUICK") == "1"
    with Server() as server, RedisServer() as redis_server:
        measure(report, quick, server.port, redis_server.url)


if __name__ == "__main__":
    lines: list[str] = []
    run(lines)
    print("\n".join(lines))
