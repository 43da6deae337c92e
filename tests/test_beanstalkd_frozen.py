"""The watchdog of beanstalkd workers: a frozen worker's job comes back after its ttr.

beanstalkd 1.12 misses the ttr of a job whose worker is silent with its connection open in a few
runs of 20 (see docs/adapters/beanstalkd.md). Real ``pulpo worker`` processes on the session's
beanstalkd take a job, are frozen with SIGSTOP, and the job must be ready again within its ttr
and 3 s, 20 runs out of 20: the watchdog shuts down the frozen worker's connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import greenstalk
import pytest
from conftest import BeanstalkdServer, config_for
from test_beanstalkd_workers import Workers, wait_for

from pulpo_core import Message
from pulpo_core.errors import ConfigError

TTR = 2
#: What the watchdog writes (into the worker's log) when it closes a connection.
CUT = "closed its worker connection"
BATCHES, PER_BATCH = 4, 5  # 20 runs, five at a time


def job_state(observer: greenstalk.Client[str], job_id: int) -> str:
    try:
        return str(observer.stats_job(job_id)["state"])
    except greenstalk.NotFoundError:
        return "gone"


def watching(observer: greenstalk.Client[str], tube: str) -> int:
    """How many connections watch ``tube`` (0 before any does)."""
    with contextlib.suppress(greenstalk.NotFoundError):
        return int(observer.stats_tube(tube)["current-watching"])
    return 0


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` and that run the watchdog."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"watchdog.py" in cmdline:
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def cluster(request: pytest.FixtureRequest, tmp_path: Path, name: str,
            **adapter: object) -> Workers:
    folder = tmp_path / name
    folder.mkdir()
    settings = config_for("beanstalkd", folder, request)
    settings["beanstalkd_queue_adapter"].update(adapter)
    workers = Workers(folder, settings)
    request.addfinalizer(workers.stop_all)
    return workers


@pytest.fixture
def observer(beanstalkd: BeanstalkdServer) -> Iterator[greenstalk.Client[str]]:
    client: greenstalk.Client[str] = greenstalk.Client((beanstalkd.host, beanstalkd.port))
    yield client
    client.close()


class TestFrozenWorker:
    @pytest.mark.parametrize("batch", range(BATCHES))
    def test_a_frozen_workers_job_is_ready_again_after_its_ttr(
        self, batch: int, request: pytest.FixtureRequest, tmp_path: Path,
        observer: greenstalk.Client[str],
    ) -> None:
        runs = [cluster(request, tmp_path, f"run-{batch}-{number}")
                for number in range(PER_BATCH)]
        jobs: list[Message] = []
        try:
            for workers in runs:
                app = workers.app()
                try:
                    jobs.append(app.publish(workers.job("frozen", ttr=TTR,
                                                        release=str(workers.folder / "never"))))
                finally:
                    app.close()
                workers.start()
            stopped_at = []
            for workers, job in zip(runs, jobs, strict=True):
                wait_for(lambda w=workers, j=job: w.notes(j, "started"), 20, "the start",
                         workers)
                workers.processes[0].send_signal(signal.SIGSTOP)
                stopped_at.append(time.monotonic())
            job_ids = [int(str(job.id)) for job in jobs]
            back_after: dict[int, float] = {}  # each job's seconds from SIGSTOP to ready
            give_up = max(stopped_at) + TTR + 3
            while len(back_after) < len(job_ids) and time.monotonic() <= give_up:
                for job_id, stopped in zip(job_ids, stopped_at, strict=True):
                    if job_id not in back_after and job_state(observer, job_id) == "ready":
                        back_after[job_id] = time.monotonic() - stopped
                time.sleep(0.02)
            late = [(job_id, back_after.get(job_id), job_state(observer, job_id))
                    for job_id in job_ids if back_after.get(job_id, TTR + 4) > TTR + 3]
            assert late == [], f"jobs still held past ttr + 3 s: {late}"
            for workers in runs:  # each frozen worker's connection was closed by its watchdog
                wait_for(lambda w=workers: CUT in w.logs(), 5, "the watchdog's line", workers)
        finally:
            for workers in runs:
                workers.stop_all()

    def test_a_resumed_worker_reconnects_and_reports_the_lost_job_not_held(
        self, request: pytest.FixtureRequest, tmp_path: Path, beanstalkd: BeanstalkdServer,
        observer: greenstalk.Client[str],
    ) -> None:
        workers = cluster(request, tmp_path, "resumed")
        tube = workers.settings["beanstalkd_queue_adapter"]["default_tube"]
        release = workers.folder / "release"
        app = workers.app()
        try:
            job = app.publish(workers.job("frozen", ttr=TTR, release=str(release)))
            worker = workers.start()
            wait_for(lambda: workers.notes(job, "started"), 20, "the start", workers)
            worker.send_signal(signal.SIGSTOP)
            job_id = int(str(job.id))
            wait_for(lambda: job_state(observer, job_id) == "ready", TTR + 3, "the job back",
                     workers)
            wait_for(lambda: CUT in workers.logs(), 5, "the watchdog's line", workers)
            with greenstalk.Client((beanstalkd.host, beanstalkd.port), use=tube,
                                   watch=tube) as other:
                taken = other.reserve(timeout=5)  # another worker has it now
                assert taken.id == job_id
                worker.send_signal(signal.SIGCONT)
                release.touch()
                wait_for(lambda: workers.notes(job, "done"), 20, "the end of the job", workers)
                wait_for(lambda: "could not be deleted" in workers.logs(), 20,
                         "the commit's report", workers)
                assert job_state(observer, job_id) == "reserved"  # still the other's
                assert worker.poll() is None, workers.logs()
                # The worker reconnected and takes the next job.
                after = app.publish(workers.job("after"))
                wait_for(lambda: workers.notes(after, "done"), 20, "the next job", workers)
                other.delete(taken)
            assert "Traceback" not in workers.logs()
        finally:
            app.close()


class TestLiveWorker:
    @pytest.mark.parametrize("busy", [False, True], ids=["sleeping", "computing"])
    def test_a_live_worker_past_its_ttr_is_never_cut_off(
        self, busy: bool, request: pytest.FixtureRequest, tmp_path: Path,
        observer: greenstalk.Client[str],
    ) -> None:
        workers = cluster(request, tmp_path, "live")
        app = workers.app()
        try:
            job = app.publish(workers.job("long", ttr=1, seconds=5, busy=busy))
            workers.start()
            wait_for(lambda: workers.notes(job, "done"), 30, "the end of the job", workers)
            wait_for(lambda: app.queue_adapter.stats()["total"] == 0, 10, "the delete", workers)
            assert len(workers.notes(job, "started")) == 1  # ran once, five times its ttr
            assert [run["attempts"] for run in workers.notes(job, "started")] == [0]
            logs = workers.logs()
            assert CUT not in logs and "beanstalkd watchdog" not in logs, logs
            assert children(workers.processes[0].pid), "no watchdog ran"
        finally:
            app.close()


class TestWatchdogProcess:
    def test_the_watchdog_exits_when_its_worker_is_killed(
        self, request: pytest.FixtureRequest, tmp_path: Path,
        observer: greenstalk.Client[str],
    ) -> None:
        workers = cluster(request, tmp_path, "killed")
        tube = workers.settings["beanstalkd_queue_adapter"]["default_tube"]
        worker = workers.start()
        found: list[int] = []

        def watchdog_started() -> bool:
            found[:] = children(worker.pid)
            return bool(found)

        wait_for(watchdog_started, 20, "the watchdog", workers)
        assert len(found) == 1
        wait_for(lambda: watching(observer, tube) == 1, 20,
                 "the worker connection", workers)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        wait_for(lambda: not running(found[0]), 10, "the watchdog's exit", workers)
        wait_for(lambda: watching(observer, tube) == 0, 10, "the connection to close", workers)
        with contextlib.suppress(ChildProcessError):  # reap it if it is ours to reap
            os.waitpid(found[0], os.WNOHANG)

    def test_no_watchdog_runs_when_it_is_turned_off(
        self, request: pytest.FixtureRequest, tmp_path: Path,
        observer: greenstalk.Client[str],
    ) -> None:
        workers = cluster(request, tmp_path, "off", watchdog=False)
        tube = workers.settings["beanstalkd_queue_adapter"]["default_tube"]
        worker = workers.start()
        try:
            wait_for(lambda: watching(observer, tube) == 1, 20,
                     "the worker connection", workers)
            assert children(worker.pid) == []
        finally:
            workers.stop_all()

    def test_the_setting_is_checked(self, tmp_path: Path) -> None:
        from pulpo_beanstalkd.adapter import BeanstalkdQueueAdapter

        with pytest.raises(ConfigError, match="watchdog"):
            BeanstalkdQueueAdapter({"watchdog": "yes"})
        assert json.dumps(BeanstalkdQueueAdapter({"watchdog": False}).settings.watchdog) \
            == "false"
