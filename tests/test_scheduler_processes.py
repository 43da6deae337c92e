"""Three schedulers at once, one stopped halfway: every tick of an every-second schedule is
published exactly once (memory: threads; file: processes, one killed with SIGKILL; beanstalkd:
processes electing a leader, the leader killed with SIGKILL)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import BeanstalkdServer

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


@pytest.mark.slow
def test_file_three_scheduler_processes_one_killed_halfway(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    config = tmp_path / "pulpo.toml"
    config.write_text(
        f'[file_queue_adapter]\nbase_path = "{queue}"\n'
        '[schedules.tick]\nevery = 1\nrequest_type = "echo"\n'
    )
    command = [sys.executable, "-m", "pulpo_core", "--config", str(config), "scheduler"]
    started = time.time()
    schedulers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        time.sleep(RUN_SECONDS / 2)
        os.kill(schedulers[0].pid, signal.SIGKILL)
        schedulers[0].wait(30)
        time.sleep(RUN_SECONDS / 2)
        for scheduler in schedulers[1:]:
            scheduler.send_signal(signal.SIGTERM)
        for scheduler in schedulers[1:]:
            _, stderr = scheduler.communicate(timeout=30)
            assert scheduler.returncode == 0, stderr
        ended = time.time()
    finally:
        for scheduler in schedulers:
            if scheduler.poll() is None:
                scheduler.kill()
                scheduler.wait()
    app = Pulpo({"file_queue_adapter": {"base_path": str(queue)}})
    try:
        assert_each_tick_once(drained_ticks(app), started + 3, ended)
    finally:
        app.close()


@pytest.mark.slow
def test_beanstalkd_three_scheduler_processes_the_leader_killed_halfway(
    tmp_path: Path, beanstalkd: BeanstalkdServer
) -> None:
    # beanstalkd cannot refuse a duplicate: the schedulers elect a leader, which publishes the
    # ticks and records each; the one killed is the leader, and the next goes on from its record.
    tube = f"schedules-{os.getpid()}"
    section = {"host": beanstalkd.host, "port": beanstalkd.port, "default_tube": tube}
    config = tmp_path / "pulpo.toml"
    config.write_text(
        f'queue_adapter_type = "beanstalkd"\n[beanstalkd_queue_adapter]\n'
        f'host = "{beanstalkd.host}"\nport = {beanstalkd.port}\ndefault_tube = "{tube}"\n'
        '[schedules.tick]\nevery = 1\nrequest_type = "echo"\n'
    )
    command = [sys.executable, "-m", "pulpo_core", "--config", str(config), "scheduler"]
    logs = [tmp_path / f"scheduler-{n}.log" for n in range(3)]
    started = time.time()
    schedulers = []
    for log in logs:
        with open(log, "w") as out:
            schedulers.append(subprocess.Popen(command, stdout=out, stderr=out))
    try:
        time.sleep(RUN_SECONDS / 2)
        leaders = [n for n, log in enumerate(logs) if "this scheduler leads" in log.read_text()]
        assert len(leaders) == 1, [log.read_text() for log in logs]
        leader = leaders[0]
        os.kill(schedulers[leader].pid, signal.SIGKILL)
        schedulers[leader].wait(30)
        time.sleep(RUN_SECONDS / 2)
        took_over = [n for n, log in enumerate(logs)
                     if n != leader and "this scheduler leads" in log.read_text()]
        assert len(took_over) == 1, [log.read_text() for log in logs]
        rest = [s for n, s in enumerate(schedulers) if n != leader]
        for scheduler in rest:
            scheduler.send_signal(signal.SIGTERM)
        for scheduler in rest:
            assert scheduler.wait(30) == 0
        ended = time.time()
    finally:
        for scheduler in schedulers:
            if scheduler.poll() is None:
                scheduler.kill()
                scheduler.wait()
    app = Pulpo({"queue_adapter_type": "beanstalkd", "beanstalkd_queue_adapter": section})
    try:
        assert_each_tick_once(drained_ticks(app), started + 3, ended)
    finally:
        app.close()
