"""Real ``pulpo worker`` processes on redis: exactly once across processes, a worker killed
mid-job, a job running past its ttr under a live worker, a server restart mid-drain."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import config_for
from redis_server import RedisServer, find_redis_server
from test_beanstalkd_workers import Workers, wait_for

from pulpo_core import Message


class RedisWorkers(Workers):
    """:class:`Workers` on a redis queue, with the ``note`` handler too."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        super().__init__(folder, settings)
        self.settings["handlers"]["note"] = "redis_handlers:note"
        self.config.write_text(json.dumps(self.settings))
        self.noted = folder / "noted.jsonl"

    def notes_of(self, count: int) -> list[Message]:
        return [Message("note", {"n": n, "file": str(self.noted)}) for n in range(count)]

    def noted_numbers(self) -> Counter[int]:
        if not self.noted.exists():
            return Counter()
        return Counter(json.loads(line)["n"] for line in self.noted.read_text().splitlines())


@pytest.fixture
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisWorkers]:
    cluster = RedisWorkers(tmp_path, config_for("redis", tmp_path, request))
    yield cluster
    cluster.stop_all()


def test_four_workers_run_every_job_exactly_once(workers: RedisWorkers) -> None:
    app = workers.app()
    try:
        count = 8000
        for start in range(0, count, 1000):
            app.publish_many(workers.notes_of(count)[start:start + 1000])
        for _ in range(4):
            workers.start()
        wait_for(lambda: sum(workers.noted_numbers().values()) >= count, 120,
                 "every job to run", workers)
        wait_for(lambda: app.queue_adapter.stats()["total"] == 0, 20, "the deletes", workers)
        numbers = workers.noted_numbers()
        assert sorted(numbers) == list(range(count))
        assert set(numbers.values()) == {1}, "a job ran twice"
        pids = {json.loads(line)["pid"] for line in workers.noted.read_text().splitlines()}
        assert len(pids) > 1  # the work was shared
    finally:
        app.close()


def test_a_worker_killed_mid_job_loses_nothing(workers: RedisWorkers) -> None:
    app = workers.app()
    try:
        release = workers.folder / "release"
        job = app.publish(workers.job("job", release=str(release), ttr=2))
        first = workers.start()
        wait_for(lambda: workers.notes(job, "started"), 20, "the first start", workers)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        release.touch()
        workers.start()
        wait_for(lambda: workers.notes(job, "done"), 20, "the job to be done", workers)
        runs = workers.notes(job, "started")
        assert [run["attempts"] for run in runs] == [0, 1]  # the killed run counts
        assert runs[0]["pid"] == first.pid and runs[1]["pid"] != first.pid
        wait_for(lambda: app.queue_adapter.stats()["total"] == 0, 10, "the delete", workers)
    finally:
        app.close()


def test_a_job_running_three_times_its_ttr_runs_once(workers: RedisWorkers) -> None:
    app = workers.app()
    try:
        job = app.publish(workers.job("long", seconds=3.5, ttr=1))
        workers.start()
        workers.start()
        wait_for(lambda: workers.notes(job, "done"), 30, "the job to be done", workers)
        wait_for(lambda: app.queue_adapter.stats()["total"] == 0, 10, "the delete", workers)
        assert len(workers.notes(job, "started")) == 1, workers.logs()
    finally:
        app.close()


def test_a_server_restart_mid_drain_loses_nothing(tmp_path: Path) -> None:
    server = RedisServer(find_redis_server(), tmp_path / "data")  # appendfsync always
    server.start()
    workers = RedisWorkers(tmp_path, {"queue_adapter_type": "redis", "retry_delay": 0,
                                      "redis_queue_adapter": {"url": server.url}})
    app = workers.app()
    try:
        count = 3000
        app.publish_many(workers.notes_of(count))
        workers.start()
        workers.start()
        wait_for(lambda: sum(workers.noted_numbers().values()) >= 300, 60, "a start", workers)
        server.restart(signal.SIGKILL)
        wait_for(lambda: len(workers.noted_numbers()) == count, 120, "every job", workers)
        wait_for(lambda: app.queue_adapter.stats()["total"] == 0, 90, "the deletes", workers)
        assert all(p.poll() is None for p in workers.processes), workers.logs()
        # A commit lost with the server runs its job again after its ttr: at least once.
        assert sorted(workers.noted_numbers()) == list(range(count))
    finally:
        app.close()
        workers.stop_all()
        server.stop()
