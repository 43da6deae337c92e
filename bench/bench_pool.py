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
``python bench/bench_pool.py [--quick]``; ``PULPO_BENCH_POOL_IO=1`` runs the I/O-bound rows alone.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from pool_peers import Rates, timed_worker

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
            threads: int) -> Rates:
    """The rates of one drain of ``jobs`` jobs by a fresh pool."""
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
        return timed_worker(command, env, log, jobs)


def median_rates(runs: list[Rates]) -> Rates:
    return Rates(statistics.median(r.total for r in runs),
                 statistics.median(r.steady for r in runs))


def median_rate(settings: dict[str, Any], request_type: str, jobs: int, processes: int,
                threads: int, rounds: int) -> Rates:
    return median_rates([one_run(settings, request_type, jobs, processes, threads)
                         for _ in range(rounds)])


def row(adapter: str, case: str, pool: str, rates: Rates, note: str) -> str:
    return (f"| {adapter} | {case} | {pool} | {rates.steady:,.0f} | {rates.total:,.0f} "
            f"| {note} |")


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
        rates = median_rates([
            one_run({"queue_adapter_type": "redis",
                     "redis_queue_adapter": {"url": url, "queue": next(queues)}},
                    request_type, jobs, 1, 16) for _ in range(rounds)])
        report.append(row("redis", label, "1 x 16", rates, ideal(rates)))
    for peer, run_peer in pool_peers.PEERS.items():
        runs = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(prefix="pulpo-bench-peer-") as folder:
                log = Path(folder) / "done.log"
                log.touch()
                runs.append(run_peer(url, next(queues), jobs, log))
        shape = "1 x 16 threads" if peer == "dramatiq" else "-w 16 -k thread"
        rates = median_rates(runs)
        report.append(row("redis", f"{peer}: sleep 10 ms", shape, rates,
                          f"{ideal(rates)} (anchor)"))


def ideal(rates: Rates) -> str:
    return f"{rates.steady / 1600:.0%} of the ideal 1,600 (with start-up {rates.total / 1600:.0%})"


def measure(report: list[str], quick: bool, server_port: int, redis_url: str) -> None:
    sizes = QUICK_SIZES if quick else SIZES
    rounds = 1 if quick else ROUNDS
    # PULPO_BENCH_POOL_IO=1: only the I/O-bound rows (1 x 16, sync and async, and the anchors).
    io_only = os.environ.get("PULPO_BENCH_POOL_IO") == "1"
    cores = len(os.sched_getaffinity(0))
    report += ["## Worker pool", "",
               f"Median of {rounds} runs; steady: from the first job done to the last; with "
               "start-up: from the start of the worker command.", "",
               "| adapter | case | pool | jobs/s, steady | jobs/s, with start-up | note |",
               "| --- | --- | --- | --- | --- | --- |"]
    io_bound_on_redis(report, redis_url, sizes["io"], rounds)
    for name, base in adapters(server_port):
        for request_type, label in (("sleep10", "sleep 10 ms, sync"),
                                    ("sleep10_async", "sleep 10 ms, async")):
            rates = median_rate(base, request_type, sizes["io"], 1, 16, rounds)
            report.append(row(name, label, "1 x 16", rates, ideal(rates)))
        if io_only:
            continue
        single = None
        for processes in (1, 2, 4):
            rates = median_rate(base, "noop", sizes["noop"], processes, 1, rounds)
            single = single or rates
            report.append(row(name, "no-op", f"{processes} x 1", rates,
                              f"{rates.steady / single.steady:.2f}x P = 1 (with start-up "
                              f"{rates.total / single.total:.2f}x)"))
        one = median_rate(base, "cpu5", sizes["cpu"], 1, 1, rounds)
        many = median_rate(base, "cpu5", sizes["cpu"], cores, 1, rounds)
        report.append(row(name, "CPU 5 ms", f"{cores} x 1", many,
                          f"{many.steady / (one.steady * cores):.2f} x cores x P = 1 "
                          f"({one.steady:,.0f})"))
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
