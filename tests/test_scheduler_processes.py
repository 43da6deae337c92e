"""Three schedulers at once, one stopped halfway: every tick of an every-second schedule is
published exactly once (memory: threads; file: processes, one killed with SIGKILL; beanstalkd:
processes electing a leader, the leader killed with SIGKILL; redis: processes, one killed)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import BeanstalkdServer
from redis_server import RedisServer

from pulpo_core import Pulpo
from pulpo_core.schedules.scheduler import TICK_HEADER, Scheduler

RUN_SECONDS = 20
SCHEDULE = {"tick": {"every": 1, "request_type": "echo"}}


def drained_ticks(app: Pulpo) -> list[float]:
    from datetime import datetime

    ticks = []
    while (job := app.queue_adapter.dequeue()) is not None:
        ticks.append(datetime.fromisoformat(job.header[TICK_HEADER]).timestamp())
        app.queue_adapter.commit(job)
    return sorted(ticks)


def assert_each_tick_once(ticks: list[float], started: float, ended: float) -> None:
    assert len(ticks) == len(set(ticks)), "a tick was published twice"
    assert ticks[0] <= started + 2 and ticks[-1] >= ended - 2, (ticks[0], ticks[-1])
    gaps = [b - a for a, b in itertools.pairwise(ticks) if b - a != 1]
    assert not gaps, f"ticks missed: gaps {gaps}"


@pytest.mark.slow
def test_memory_three_scheduler_threads_one_stopped_halfway() -> None:
    app = Pulpo({"queue_adapter_type": "memory", "schedules": SCHEDULE})
    stops = [threading.Event() for _ in range(3)]
    threads = [threading.Thread(target=Scheduler(app).run, args=(stop,)) for stop in stops]
    started = time.time()
    for thread in threads:
        thread.start()
    time.sleep(RUN_SECONDS / 2)
    stops[0].set()
    threads[0].join()
    time.sleep(RUN_SECONDS / 2)
    for stop in stops:
        stop.set()
    for thread in threads:
        thread.join()
    assert_each_tick_once(drained_ticks(app), started, time.time())


def three_scheduler_processes(tmp_path: Path, adapter_toml: str, kill: str) -> tuple[float, float]:
    """Run three ``pulpo scheduler`` processes on the adapter for RUN_SECONDS, SIGKILL one
    halfway (``kill``: ``"first"``, or ``"leader"``: the one whose log says it leads, when the
    schedulers elect one), SIGTERM the others; when they started and ended."""
    config = tmp_path / "pulpo.toml"
    config.write_text(adapter_toml + '[schedules.tick]\nevery = 1\nrequest_type = "echo"\n')
    command = [sys.executable, "-m", "pulpo_core", "--config", str(config), "scheduler"]
    logs = [tmp_path / f"scheduler-{n}.log" for n in range(3)]
    started = time.time()
    schedulers = []
    for log in logs:
        with open(log, "w") as out:
            schedulers.append(subprocess.Popen(command, stdout=out, stderr=out))

    def leading() -> list[int]:
        return [n for n, log in enumerate(logs) if "this scheduler leads" in log.read_text()]

    try:
        time.sleep(RUN_SECONDS / 2)
        victim = 0
        if kill == "leader":
            assert len(leading()) == 1, [log.read_text() for log in logs]
            victim = leading()[0]
        os.kill(schedulers[victim].pid, signal.SIGKILL)
        schedulers[victim].wait(30)
        time.sleep(RUN_SECONDS / 2)
        if kill == "leader":  # one other took over
            assert len(leading()) == 2, [log.read_text() for log in logs]
        rest = [s for n, s in enumerate(schedulers) if n != victim]
        for scheduler in rest:
            scheduler.send_signal(signal.SIGTERM)
        for scheduler, log in zip(rest, [lg for n, lg in enumerate(logs) if n != victim],
                                  strict=True):
            assert scheduler.wait(30) == 0, log.read_text()
        return started, time.time()
    finally:
        for scheduler in schedulers:
            if scheduler.poll() is None:
                scheduler.kill()
                scheduler.wait()


def assert_published_once(config: dict[str, Any], started: float, ended: float) -> None:
    app = Pulpo(config)
    try:
        assert_each_tick_once(drained_ticks(app), started + 3, ended)
    finally:
        app.close()


@pytest.mark.slow
def test_file_three_scheduler_processes_one_killed_halfway(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    started, ended = three_scheduler_processes(
        tmp_path, f'[file_queue_adapter]\nbase_path = "{queue}"\n', kill="first")
    assert_published_once({"file_queue_adapter": {"base_path": str(queue)}}, started, ended)


@pytest.mark.slow
def test_redis_three_scheduler_processes_one_killed_halfway(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    section = {"url": redis_server.url, "queue": f"schedules-{os.getpid()}"}
    started, ended = three_scheduler_processes(
        tmp_path, f'queue_adapter_type = "redis"\n[redis_queue_adapter]\n'
                  f'url = "{section["url"]}"\nqueue = "{section["queue"]}"\n', kill="first")
    assert_published_once({"queue_adapter_type": "redis", "redis_queue_adapter": section},
                          started, ended)


@pytest.mark.slow
def test_beanstalkd_three_scheduler_processes_the_leader_killed_halfway(
    tmp_path: Path, beanstalkd: BeanstalkdServer
) -> None:
    # beanstalkd cannot refuse a duplicate: the schedulers elect a leader, which publishes the
    # ticks and records each; the one killed is the leader, and the next goes on from its record.
    section = {"host": beanstalkd.host, "port": beanstalkd.port,
               "default_tube": f"schedules-{os.getpid()}"}
    started, ended = three_scheduler_processes(
        tmp_path, f'queue_adapter_type = "beanstalkd"\n[beanstalkd_queue_adapter]\n'
                  f'host = "{section["host"]}"\nport = {section["port"]}\n'
                  f'default_tube = "{section["default_tube"]}"\n', kill="leader")
    assert_published_once({"queue_adapter_type": "beanstalkd",
                           "beanstalkd_queue_adapter": section}, started, ended)
