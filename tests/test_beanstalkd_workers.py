"""Real ``pulpo worker`` processes on the session's beanstalkd: a worker killed mid-job, a job that
runs past its ttr, a worker asked to stop in the middle of a job.

Workers run ``tests/beanstalkd_handlers.py:work`` (found through ``PYTHONPATH`` and the
configuration's ``handlers`` table); each job's body names the files it notes its start and end
in, and the file it waits for before finishing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from conftest import BeanstalkdServer, config_for

from pulpo_core import Message, Pulpo

TESTS = Path(__file__).resolve().parent


class Workers:
    """A configuration file on the test's tube, and the worker processes started with it."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.folder = folder
        self.settings = {**settings, "sleep_duration": 0.05,
                         "handlers": {"work": "beanstalkd_handlers:work"}}
        self.config = folder / "pulpo.json"
        self.config.write_text(json.dumps(self.settings))
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        log = open(self.folder / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "pulpo_core", "--config", str(self.config), "worker"],
            env={**os.environ, "PYTHONPATH": path}, stdout=log, stderr=log)
        log.close()
        self.processes.append(process)
        return process

    def app(self) -> Pulpo:
        return Pulpo(self.settings)

    def job(self, name: str, *, ttr: int | None = None, priority: int | None = None,
            **body: Any) -> Message:
        files = {key: str(self.folder / f"{name}.{key}") for key in ("started", "done")}
        return Message("work", {**files, **body}, ttr=ttr, priority=priority)

    def notes(self, message: Message, key: str) -> list[dict[str, Any]]:
        path = Path(message.body[key])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace")
                         for path in sorted(self.folder.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    cluster = Workers(tmp_path, config_for("beanstalkd", tmp_path, request))
    yield cluster
    cluster.stop_all()


def wait_for(condition: Callable[[], object], seconds: float, what: str,
             workers: Workers) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; worker logs:\n{workers.logs()}")
        time.sleep(0.02)


class TestWorkerKilled:
    def test_a_worker_killed_mid_job_loses_nothing(self, workers: Workers) -> None:
        app = workers.app()
        try:
            release = workers.folder / "release"
            job = app.publish(workers.job("job", release=str(release)))
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
            assert len(workers.notes(job, "done")) == 1
            wait_for(lambda: app.queue_adapter.stats()["total"] == 0, 10, "the delete", workers)
        finally:
            app.close()


class TestLongJob:
    def test_a_job_running_past_its_ttr_is_not_handed_to_a_second_worker(
        self, workers: Workers, beanstalkd: BeanstalkdServer
    ) -> None:
        app = workers.app()
        tube = workers.settings["beanstalkd_queue_adapter"]["default_tube"]
        try:
            job = app.publish(workers.job("long", seconds=2.5, ttr=1))
            workers.start()
            wait_for(lambda: workers.notes(job, "started"), 20, "the start", workers)
            stolen = []
            # A second worker waits in reserve the whole time, as a real one does.
            with greenstalk.Client((beanstalkd.host, beanstalkd.port), use=tube,
                                   watch=tube) as thief:
                while not workers.notes(job, "done"):
                    with contextlib.suppress(greenstalk.TimedOutError):
                        stolen.append(thief.reserve(timeout=1))
            assert stolen == []
            assert len(workers.notes(job, "started")) == 1  # ran once, more than twice its ttr
            wait_for(lambda: app.queue_adapter.stats()["total"] == 0, 10, "the delete", workers)
        finally:
            app.close()


class TestStopping:
    def test_sigterm_lets_the_running_job_finish_and_the_worker_exits_0(
        self, workers: Workers
    ) -> None:
        app = workers.app()
        try:
            release = workers.folder / "release"
            running = app.publish(workers.job("running", release=str(release), priority=1))
            waiting = app.publish(workers.job("waiting"))
            worker = workers.start()
            wait_for(lambda: workers.notes(running, "started"), 20, "the start", workers)
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the signal arrives while the job runs
            release.touch()
            assert worker.wait(20) == 0, workers.logs()
            assert len(workers.notes(running, "done")) == 1
            assert workers.notes(waiting, "started") == []  # no further job was taken
            assert app.queue_adapter.peek(str(running.id)) is None
            waiting_now = app.queue_adapter.peek(str(waiting.id))
            assert waiting_now is not None
            counts = app.queue_adapter.stats()
            assert (counts["ready"], counts["reserved"], counts["total"]) == (1, 0, 1)
        finally:
            app.close()

    def test_a_job_that_arrives_after_sigterm_is_handed_back_unrun(
        self, workers: Workers, beanstalkd: BeanstalkdServer
    ) -> None:
        workers.settings["beanstalkd_queue_adapter"]["reserve_timeout"] = 5
        workers.config.write_text(json.dumps(workers.settings))
        tube = workers.settings["beanstalkd_queue_adapter"]["default_tube"]
        app = workers.app()
        try:
            worker = workers.start()
            with greenstalk.Client((beanstalkd.host, beanstalkd.port)) as observer:

                def waiting_in_reserve() -> bool:
                    with contextlib.suppress(greenstalk.NotFoundError):
                        return int(observer.stats_tube(tube)["current-waiting"]) > 0
                    return False

                wait_for(waiting_in_reserve, 20, "the worker's reserve", workers)
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the signal is handled; the reserve goes on waiting
            late = app.publish(workers.job("late", priority=3))
            assert worker.wait(20) == 0, workers.logs()
            assert workers.notes(late, "started") == []  # never run
            assert "handed back unrun" in workers.logs()
            again = app.queue_adapter.dequeue()
            assert again is not None and again.id == late.id
            assert (again.attempts, again.priority) == (0, 3)
        finally:
            app.close()

