"""The file queue across real processes: publishers and workers are separate ``pulpo`` commands.

Workers run the handlers of ``tests/file_queue_handlers.py`` (found through ``PYTHONPATH`` and the
configuration's ``handlers`` table), which leave one file per handling in a records folder.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pulpo_core import Message, Pulpo

TESTS = Path(__file__).resolve().parent
HANDLERS = {"record": "file_queue_handlers:record", "slow": "file_queue_handlers:slow",
            "crash": "file_queue_handlers:crash"}


class Cluster:
    """A queue folder, its configuration file and the worker processes started on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.queue = root / "queue"
        self.records = root / "records"
        self.records.mkdir()
        self.config_path = root / "pulpo.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.write_config()

    def write_config(self, **settings: Any) -> None:
        config = {
            "queue_adapter_type": "file",
            "file_queue_adapter": {"base_path": str(self.queue), "lease_check_interval": 0.2},
            "handlers": HANDLERS,
            "sleep_duration": 0.05,
            "retry_delay": 0,
            **settings,
        }
        self.config_path.write_text(json.dumps(config))

    def environment(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path, "PULPO_TEST_RECORDS": str(self.records)}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pulpo_core", "--config", str(self.config_path), *args]

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.root / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            self.command("worker"), env=self.environment(), stdout=log, stderr=log
        )
        log.close()
        self.processes.append(process)
        return process

    def app(self) -> Pulpo:
        return Pulpo(json.loads(self.config_path.read_text()))

    def record_times(self, job_id: str, event: str) -> list[float]:
        """When each ``event`` of the job was recorded, oldest first."""
        return sorted(
            (self.records / name).stat().st_mtime
            for name in os.listdir(self.records)
            if name.startswith(f"{job_id}.{event}.")
        )

    def records_by_id(self, event: str = "done") -> dict[str, list[int]]:
        """job id -> pids of the processes that recorded ``event`` for it."""
        found: dict[str, list[int]] = collections.defaultdict(list)
        for name in os.listdir(self.records):
            job_id, recorded, pid, _ = name.split(".")
            if recorded == event:
                found[job_id].append(int(pid))
        return found

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{self.logs()}")
            time.sleep(0.05)

    def stop_workers(self, timeout: float = 60) -> None:
        """SIGTERM every running worker (each finishes its job and exits 0) and wait."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        self.wait_for_exit(timeout)

    def wait_for_exit(self, timeout: float = 60) -> None:
        for process in self.processes:
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {process.pid} did not stop within {timeout}s\n{self.logs()}")
            if code not in (0, -signal.SIGKILL):
                pytest.fail(f"worker {process.pid} exited with {code}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.root.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.stop_all()


class TestPublishedByOneProcessConsumedByAnother:
    def test_jobs_published_by_the_command_are_handled_by_a_worker_process(
        self, cluster: Cluster
    ) -> None:
        published = subprocess.run(
            cluster.command("publish", "--request-type", "record", "--count", "25"),
            env=cluster.environment(), capture_output=True, check=True,
        )
        ids = published.stdout.decode().split()
        assert len(ids) == 25
        cluster.start_worker()
        cluster.wait_for(lambda: len(cluster.records_by_id()) == 25, 30, "25 jobs handled")
        cluster.stop_workers()
        assert sorted(cluster.records_by_id()) == sorted(ids)

    def test_a_running_worker_sees_jobs_published_after_it_started(
        self, cluster: Cluster
    ) -> None:
        cluster.start_worker()
        time.sleep(1.0)  # the worker has started and found an empty queue
        with cluster.app() as app:
            ids = [app.publish(Message("record", payload=n)).id for n in range(10)]
        cluster.wait_for(lambda: len(cluster.records_by_id()) == 10, 30, "10 jobs handled")
        cluster.stop_workers()
        assert sorted(cluster.records_by_id()) == sorted(ids)


class TestManyWorkers:
    def test_four_workers_drain_two_thousand_jobs_each_handled_exactly_once(
        self, cluster: Cluster
    ) -> None:
        # All four wait for work first: a worker started after the others could find the queue
        # drained already, and the test would say nothing about sharing it.
        for _ in range(4):
            cluster.start_worker()
        logs = [cluster.root / f"worker-{number}.log" for number in range(4)]
        cluster.wait_for(lambda: all("worker started" in log.read_text() for log in logs), 60,
                         "four workers started")
        with cluster.app() as app:
            ids = {app.publish(Message("record", payload=n)).id for n in range(2000)}
        cluster.wait_for(lambda: len(os.listdir(cluster.records)) >= 2000, 120, "2000 jobs")
        cluster.stop_workers()
        handled = cluster.records_by_id()
        assert set(handled) == ids
        twice = {job_id: pids for job_id, pids in handled.items() if len(pids) != 1}
        assert twice == {}
        pids = {pid for pids in handled.values() for pid in pids}
        assert len(pids) >= 2, "the workers did not share the queue"
        with cluster.app() as app:
            assert app.queue_adapter.stats()["total"] == 0


class TestCrashedWorker:
    def test_a_worker_killed_mid_job_loses_nothing_its_job_comes_back_at_once(
        self, cluster: Cluster
    ) -> None:
        # The claim names the claiming process: once it is gone, the next lease check of any
        # worker takes the job back, long before its ttr of 60 s.
        with cluster.app() as app:
            job = app.publish(Message("slow", {"seconds": 60}, ttr=60))
            others = [app.publish(Message("record", payload=n)).id for n in range(5)]
        victim = cluster.start_worker()
        cluster.wait_for(lambda: job.id in cluster.records_by_id("start"), 30, "the slow job")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        cluster.start_worker()
        # Done at once: the rerun has attempts 1 (the killed run counts), so it does not sleep.
        cluster.wait_for(lambda: job.id in cluster.records_by_id("done"), 20,
                         "the killed worker's job run again well within its ttr")
        cluster.wait_for(lambda: set(others) <= set(cluster.records_by_id()), 30, "the others")
        cluster.stop_workers()
        starts = cluster.records_by_id("start")[job.id]
        assert len(starts) == 2 and starts[0] != starts[1]

    def test_a_hung_worker_keeps_its_job_until_its_ttr_runs_out(self, cluster: Cluster) -> None:
        with cluster.app() as app:
            job = app.publish(Message("slow", {"seconds": 60}, ttr=2))
            others = [app.publish(Message("record", payload=n)).id for n in range(5)]
        victim = cluster.start_worker()
        cluster.wait_for(lambda: job.id in cluster.records_by_id("start"), 30, "the slow job")
        victim.send_signal(signal.SIGSTOP)  # alive, but it renews nothing
        try:
            cluster.start_worker()
            cluster.wait_for(lambda: job.id in cluster.records_by_id("done"), 30,
                             "the hung worker's job run again")
            cluster.wait_for(lambda: set(others) <= set(cluster.records_by_id()), 30,
                             "the others")
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.send_signal(signal.SIGCONT)
            victim.wait()
        first, second = cluster.record_times(job.id, "start")
        assert second - first >= 1.9  # not before its lease of 2 s ran out
        cluster.stop_workers()

    def test_the_rerun_counts_the_lost_lease_as_a_failed_attempt(self, cluster: Cluster) -> None:
        with cluster.app() as app:
            job = app.publish(Message("slow", {"seconds": 60}, ttr=1))
        victim = cluster.start_worker()
        cluster.wait_for(lambda: job.id in cluster.records_by_id("start"), 30, "the slow job")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        with cluster.app() as app:
            adapter = app.queue_adapter
            deadline = time.monotonic() + 15
            while (message := adapter.dequeue()) is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert message is not None and message.id == job.id
            assert message.attempts == 1
            adapter.commit(message)


    def test_a_job_that_kills_its_worker_every_time_is_buried_after_the_most_attempts(
        self, cluster: Cluster
    ) -> None:
        cluster.write_config(max_number_of_attempts=2)
        with cluster.app() as app:
            job = app.publish(Message("crash", ttr=1))

            def buried() -> bool:
                return app.queue_adapter.stats()["buried"] == 1

            deadline = time.monotonic() + 60
            while not buried():  # a supervisor starts a new worker whenever one dies
                assert time.monotonic() < deadline, cluster.logs()
                if all(process.poll() is not None for process in cluster.processes):
                    cluster.start_worker()
                time.sleep(0.1)
            cluster.stop_workers()
            assert len(cluster.records_by_id("start")[job.id]) == 2  # not a third time
            kept = app.queue_adapter.peek(str(job.id))
            assert kept is not None
            assert "started 2 time(s) without finishing" in kept.header["buried_reason"]


class TestLongJob:
    def test_a_job_running_longer_than_its_ttr_is_not_given_to_a_second_worker(
        self, cluster: Cluster
    ) -> None:
        with cluster.app() as app:
            job = app.publish(Message("slow", {"seconds": 4}, ttr=1))
        cluster.start_worker()
        cluster.start_worker()
        cluster.wait_for(lambda: job.id in cluster.records_by_id("done"), 60, "the long job")
        assert all(worker.poll() is None for worker in cluster.processes)  # both looked on
        cluster.stop_workers()
        assert len(cluster.records_by_id("start")[job.id]) == 1
        assert len(cluster.records_by_id("done")[job.id]) == 1
