"""pulpo-prometheus through real processes and real HTTP scrapes: ``pulpo worker --metrics-port``
alone and as a pool's supervisor, on the file queue and on beanstalkd.

Counters count settles (one per run that reached the queue): a job whose child died before it
settled is rerun and counted once, when it settles. The pool test kills a child between two
batches, once it has settled jobs of its own, so the totals are exact and must still include
what the dead child counted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BeanstalkdServer, config_for, find_beanstalkd, free_port
from prometheus_client.parser import text_string_to_metric_families
from test_pool_processes import Pool

from pulpo_core import Message, Pulpo, hookimpl
from pulpo_core.pool.supervisor import Supervisor
from pulpo_core.result import Bury, outcome_name
from pulpo_core.testing import make_app, run_until_empty

WAIT = 120.0  # generous: the machine is shared
HANDLERS = {
    "record": "pool_handlers:record",
    "slow": "pool_handlers:slow",
    "flaky": "pool_handlers:flaky",
    "doomed": "pool_handlers:doomed",
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def finished(samples: Samples) -> dict[tuple[str, str], float]:
    """(request_type, outcome) -> jobs finished."""
    found = {}
    for (name, labels), count in samples.items():
        if name == "pulpo_jobs_finished_total":
            found[(dict(labels)["request_type"], dict(labels)["outcome"])] = count
    return found


def durations_counted(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "pulpo_job_duration_seconds_count")


def health(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until(ready: Callable[[], bool], what: str, pool: Pool, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except OSError:  # the server is not up yet
            pass
        assert pool.process is None or pool.process.poll() is None, (
            f"the worker exited while waiting for {what}:\n{pool.text()}"
        )
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{pool.text()}"
        time.sleep(0.1)


class MetricsPool(Pool):
    """A :class:`Pool` whose workers serve metrics on a port of their own."""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        super().__init__(root, settings)
        self.settings["handlers"] = HANDLERS
        self.save()
        self.port = free_port()

    def save(self) -> None:
        self.config_path.write_text(json.dumps(self.settings))

    def start_serving(self, *args: str) -> subprocess.Popen[bytes]:
        return self.start("--metrics-port", str(self.port), *args)

    def publish_mix(self, record: int, flaky: int, doomed: int) -> None:
        for request_type, count in (("record", record), ("flaky", flaky), ("doomed", doomed)):
            self.publish(count, request_type=request_type)

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.finish() == 0, self.text()


@pytest.fixture(params=["file", "beanstalkd"])
def pool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetricsPool]:
    settings = config_for(request.param, tmp_path, request)
    if request.param == "file":
        settings["file_queue_adapter"]["lease_check_interval"] = 0.2
    made = MetricsPool(tmp_path, settings)
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait()


@pytest.fixture
def file_pool(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MetricsPool]:
    made = MetricsPool(tmp_path, config_for("file", tmp_path, request))
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait()


def multiproc_dir(pid: int) -> Path | None:
    """The PROMETHEUS_MULTIPROC_DIR in the environment process ``pid`` was started with (None
    also just after the fork, before the child's exec: /proc shows the parent's first one)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    key = b"PROMETHEUS_MULTIPROC_DIR="
    found = [item[len(key):] for item in environ if item.startswith(key)]
    return Path(found[0].decode()) if found else None


class TestPool:
    def test_counts_add_up_across_children_and_survive_a_killed_child(
        self, pool: MetricsPool
    ) -> None:
        pool.start_serving("--processes", "2")
        pool.wait_for(lambda: len(pool.children()) == 2, "two children")
        pool.wait_for(
            lambda: all(multiproc_dir(pid) for pid in pool.children()), "the children to exec"
        )
        folders = {multiproc_dir(pid) for pid in pool.children()}
        assert len(folders) == 1, "one folder for the pool"
        folder = folders.pop()
        assert folder is not None and stat.S_IMODE(folder.stat().st_mode) == 0o700

        first = {("record", "success"): 30, ("flaky", "retried"): 15,
                 ("flaky", "success"): 15, ("doomed", "buried"): 5}
        pool.publish_mix(record=30, flaky=15, doomed=5)
        wait_until(lambda: finished(scrape(pool.port)) == first, "the first batch's counts", pool)
        # The victim has settled jobs of its own, and is idle now (every job is settled).
        worked = {pid for pids in pool.events("done").values() for pid in pids}
        victim = next(pid for pid in pool.children() if pid in worked)
        os.kill(victim, signal.SIGKILL)
        pool.wait_for(
            lambda: len(pool.children()) == 2 and victim not in pool.children(), "a new child"
        )
        assert finished(scrape(pool.port)) == first, "what the killed child counted is kept"

        pool.publish_mix(record=30, flaky=15, doomed=5)
        total = {key: 2 * count for key, count in first.items()}
        wait_until(lambda: finished(scrape(pool.port)) == total, "every job's counts", pool)
        time.sleep(1.5)  # nothing is counted twice, later
        samples = scrape(pool.port)
        assert finished(samples) == total
        assert durations_counted(samples) == sum(total.values()), "one duration per settle"
        assert value(samples, "pulpo_jobs_in_flight") == 0
        assert value(samples, "pulpo_queue_up") == 1
        assert value(samples, "pulpo_queue_jobs", state="buried") == 10
        assert value(samples, "pulpo_queue_jobs", state="ready") == 0
        assert "died (killed by SIGKILL)" in pool.full_text()
        pool.stop()
        assert not folder.exists(), "the supervisor removes its folder"

    def test_jobs_in_flight_add_up_and_a_dead_childs_are_dropped(
        self, file_pool: MetricsPool
    ) -> None:
        file_pool.settings["ttr"] = 4  # the killed child's job comes back after 4 s
        file_pool.save()
        file_pool.publish(2, request_type="slow", seconds=8)
        file_pool.start_serving("--processes", "2")
        file_pool.wait_for(lambda: len(file_pool.events("start")) == 2, "two running jobs")
        running = {pid for pids in file_pool.events("start").values() for pid in pids}
        assert len(running) == 2, "one job in each child"
        assert value(scrape(file_pool.port), "pulpo_jobs_in_flight") == 2
        victim = sorted(running)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: value(scrape(file_pool.port), "pulpo_jobs_in_flight") == 1,
            "the dead child's job to leave the count",
            file_pool,
            seconds=6,
        )
        assert not file_pool.events("done"), "the other job still runs"
        wait_until(
            lambda: len(file_pool.events("done")) == 2
            and value(scrape(file_pool.port), "pulpo_jobs_in_flight") == 0,
            "both jobs to finish (the killed one rerun) and nothing in flight",
            file_pool,
        )
        assert finished(scrape(file_pool.port)) == {("slow", "success"): 2}, "counted once"
        file_pool.stop()


class TestSingleWorker:
    @pytest.mark.parametrize(("on_expired", "left_buried"), [("bury", 2), ("delete", 0)])
    def test_expired_jobs_are_counted_as_expired(
        self, file_pool: MetricsPool, on_expired: str, left_buried: int
    ) -> None:
        file_pool.settings["expiration"] = {"on_expired": on_expired}
        file_pool.save()
        app = Pulpo(file_pool.settings)
        try:
            for _ in range(2):
                app.publish(Message("record", expiration=0.2))
            app.publish(Message("record"))
            app.publish(Message("doomed"))
        finally:
            app.close()
        time.sleep(0.5)
        file_pool.start_serving()
        expected = {("record", "expired"): 2, ("record", "success"): 1, ("doomed", "buried"): 1}
        wait_until(lambda: finished(scrape(file_pool.port)) == expected, "the counts", file_pool)
        samples = scrape(file_pool.port)
        assert durations_counted(samples) == 4
        # The queue's counts are read at most once a second: the next reading has them.
        wait_until(
            lambda: value(scrape(file_pool.port), "pulpo_queue_jobs", state="buried")
            == left_buried + 1,
            "the queue's buried count",
            file_pool,
            seconds=10,
        )
        assert "supervisor" not in file_pool.full_text(), "one process, serving itself"
        file_pool.stop()

    def test_metrics_are_off_without_a_port(self, file_pool: MetricsPool) -> None:
        file_pool.publish(3)
        file_pool.start()
        file_pool.wait_for(lambda: len(file_pool.events("done")) == 3, "the jobs")
        with pytest.raises(OSError):
            scrape(file_pool.port)
        file_pool.stop()


class TestHealth:
    @pytest.mark.parametrize("processes", ["1", "2"])
    def test_healthz_fails_within_seconds_of_the_queue_going_away(
        self, tmp_path: Path, request: pytest.FixtureRequest, processes: str
    ) -> None:
        server = BeanstalkdServer(find_beanstalkd(), None)
        server.start()
        settings = {
            "queue_adapter_type": "beanstalkd",
            "beanstalkd_queue_adapter": {"host": server.host, "port": server.port},
        }
        pool = MetricsPool(tmp_path, settings)
        try:
            pool.start_serving("--processes", processes)
            wait_until(lambda: health(pool.port) == (200, "ok\n"), "a healthy worker", pool)
            assert value(scrape(pool.port), "pulpo_queue_up") == 1
            server.stop()
            gone = time.monotonic()
            wait_until(lambda: health(pool.port)[0] == 503, "an unhealthy worker", pool, 30)
            assert time.monotonic() - gone < 5.0, "503 within about 3 s of the queue going away"
            assert "queue unreachable" in health(pool.port)[1]
            samples = scrape(pool.port)
            assert value(samples, "pulpo_queue_up") == 0
            assert not any(name == "pulpo_queue_jobs" for name, _ in samples)
            pool.stop()
        finally:
            server.stop()
            if pool.process is not None and pool.process.poll() is None:
                pool.process.kill()
                pool.process.wait()


class TestErrors:
    @pytest.mark.parametrize("processes", ["1", "2"])
    def test_a_port_in_use_is_one_sentence_and_exit_1(
        self, tmp_path: Path, processes: str
    ) -> None:
        (tmp_path / "pulpo.json").write_text(json.dumps(
            {"queue_adapter_type": "file", "file_queue_adapter": {"base_path": str(tmp_path)}}
        ))
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = subprocess.run(
                [sys.executable, "-m", "pulpo_core", "--config", "pulpo.json", "worker",
                 "--processes", processes, "--metrics-port", str(port)],
                cwd=tmp_path, capture_output=True, text=True, timeout=WAIT,
            )
        assert done.returncode == 1, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("pulpo: error:")]
        assert len(errors) == 1, done.stderr
        assert f"metrics port {port}" in errors[0] and "in use" in errors[0]
        assert "Traceback" not in done.stderr
        assert "started worker process" not in done.stderr, "no child starts"

    @pytest.mark.parametrize(
        ("section", "flags", "named"),
        [
            ({"port": 70000}, [], "prometheus.port"),
            ({"port": "9100"}, [], "prometheus.port"),
            ({"stats_cache": 0.1}, [], "prometheus.stats_cache"),
            ({"prot": 9100}, [], "prometheus.prot"),
            ({}, ["--metrics-port", "many"], "'many'"),
            ({}, ["--metrics-port", "-1"], "'-1'"),
        ],
    )
    def test_a_bad_setting_is_one_sentence_and_exit_2(
        self, tmp_path: Path, section: dict[str, Any], flags: list[str], named: str
    ) -> None:
        settings = {"queue_adapter_type": "file", "file_queue_adapter": {"base_path": "q"}}
        if section:
            settings["prometheus"] = section
        (tmp_path / "pulpo.json").write_text(json.dumps(settings))
        done = subprocess.run(
            [sys.executable, "-m", "pulpo_core", "--config", "pulpo.json", "worker", *flags],
            cwd=tmp_path, capture_output=True, text=True, timeout=WAIT,
        )
        assert done.returncode == 2, done.stderr
        assert named in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


class _Recorder:
    """A plugin that records the supervisor's hooks and the jobs' durations."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def pulpo_supervisor_start(self, app: Any) -> None:
        self.calls.append(("start",))

    @hookimpl
    def pulpo_supervisor_child_exit(self, pid: int, exit_code: int) -> None:
        self.calls.append(("exit", pid, exit_code))

    @hookimpl
    def pulpo_supervisor_stop(self) -> None:
        self.calls.append(("stop",))

    @hookimpl
    def pulpo_after_process(self, message: Message, duration: float) -> None:
        self.calls.append(("after", message.id, duration))


class _OldObserver:
    """An implementation written before ``duration`` existed."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    @hookimpl
    def pulpo_after_process(self, message: Message, result: Any, action: Any, app: Any) -> None:
        self.seen.append(message.id)


class TestCoreHooks:
    def test_the_supervisor_calls_its_hooks_around_its_children(self) -> None:
        recorder = _Recorder()
        app = make_app(plugins=[recorder])
        code = "import sys; sys.exit(7)"  # fails fast three times: the supervisor gives up
        assert Supervisor([sys.executable, "-c", code], 1, 5.0, app).run() == 1
        assert recorder.calls[0] == ("start",) and recorder.calls[-1] == ("stop",)
        exits = recorder.calls[1:-1]
        assert len(exits) == 3 and all(c[0] == "exit" and c[2] == 7 for c in exits)
        assert len({c[1] for c in exits}) == 3, "each child's own pid"

    def test_a_child_that_finishes_is_reported_with_its_exit_code(self) -> None:
        recorder = _Recorder()
        app = make_app(plugins=[recorder])
        assert Supervisor([sys.executable, "-c", "pass"], 2, 5.0, app).run() == 0
        assert [c[0] for c in recorder.calls] == ["start", "exit", "exit", "stop"]
        assert all(c[2] == 0 for c in recorder.calls[1:3])

    def test_after_process_gets_the_duration_and_old_observers_still_work(self) -> None:
        recorder, old = _Recorder(), _OldObserver()
        app = make_app(
            {"nap": lambda message: time.sleep(0.05)}, plugins=[recorder, old]
        )
        job = app.publish(Message("nap"))
        run_until_empty(app)
        (after,) = [c for c in recorder.calls if c[0] == "after"]
        assert after[1] == job.id and 0.05 <= after[2] < 5
        assert old.seen == [job.id]

    def test_a_bury_names_its_outcome(self) -> None:
        assert outcome_name(Bury("failed")) == "buried"
        assert outcome_name(Bury("expired at ...", outcome="expired")) == "expired"


class _Queue:
    """A stand-in adapter whose ``stats()`` can be made to hang or fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def stats(self) -> dict[str, int]:
        self.calls += 1
        self.release.wait()
        if self.fail:
            raise ConnectionError("the queue is gone")
        return {"ready": 3, "delayed": 0, "reserved": 1, "buried": 2, "total": 6}


class TestProbe:
    def probe(self, queue: _Queue, cache: float = 1.0, timeout: float = 0.3) -> Any:
        from pulpo_prometheus.probe import QueueProbe

        closed: list[bool] = []
        made = QueueProbe(lambda: queue, lambda: closed.append(True), cache, timeout)
        made.closed = closed
        return made

    def test_a_reading_serves_the_scrapes_within_the_cache(self) -> None:
        queue = _Queue()
        probe = self.probe(queue, cache=1.0)
        try:
            first, second = probe.read(), probe.read()
            assert first.up and first.counts["buried"] == 2
            assert second is first and queue.calls == 1
            time.sleep(1.1)
            assert probe.read().up and queue.calls == 2
        finally:
            probe.close()

    def test_a_hung_queue_is_down_after_the_timeout_and_is_asked_once(self) -> None:
        queue = _Queue()
        queue.release.clear()
        probe = self.probe(queue, cache=1.0, timeout=0.3)
        try:
            started = time.monotonic()
            reading = probe.read()
            assert not reading.up and "no answer within 0.3s" in str(reading.error)
            assert time.monotonic() - started < 1.0
            time.sleep(1.1)
            assert not probe.read().up
            assert queue.calls == 1, "a hung call is waited on, not joined by another"
            queue.release.set()
            time.sleep(1.1)
            assert probe.read().up
        finally:
            queue.release.set()
            probe.close()

    def test_a_failing_queue_is_down_and_its_adapter_replaced(self) -> None:
        queue = _Queue()
        queue.fail = True
        probe = self.probe(queue, cache=1.0)
        try:
            reading = probe.read()
            assert not reading.up and "the queue is gone" in str(reading.error)
            assert probe.closed == [True], "a fresh adapter next time"
            queue.fail = False
            time.sleep(1.1)
            assert probe.read().up
        finally:
            probe.close()


class TestObserverLifecycle:
    def observers(self, app: Pulpo) -> list[str]:
        return [
            impl.plugin_name
            for impl in app.plugin_manager.hook.pulpo_after_process.get_hookimpls()
            if impl.plugin_name.startswith("pulpo_prometheus")
        ]

    def test_with_metrics_off_the_plugin_observes_no_job(self) -> None:
        app = Pulpo({"queue_adapter_type": "memory", "shutdown_after_number_of_empty_iterations": 1,
                     "prometheus": {"port": 0}})
        try:
            assert "prometheus" in dict(app.plugin_manager.list_name_plugin()), "installed"
            seen: list[list[str]] = []
            app.register_handler("look", lambda message: seen.append(self.observers(app)))
            app.publish(Message("look"))
            app.start()
            assert seen == [[]], "no pulpo_after_process of this plugin: no attempts round trip"
        finally:
            app.close()

    def test_with_metrics_on_a_worker_observes_its_jobs_until_it_stops(self) -> None:
        port = free_port()
        app = Pulpo({"queue_adapter_type": "memory", "shutdown_after_number_of_empty_iterations": 1,
                     "prometheus": {"port": port}})
        try:
            seen: list[list[str]] = []

            def look(message: Message) -> None:
                seen.append(self.observers(app))
                assert value(scrape(port), "pulpo_jobs_in_flight") == 1

            app.register_handler("look", look)
            app.publish(Message("look"))
            app.start()
            assert seen == [[f"pulpo_prometheus.worker.{id(app)}"]]
            assert self.observers(app) == [], "removed as the worker stopped"
            with pytest.raises(OSError):
                scrape(port)  # the server is closed too
        finally:
            app.close()
