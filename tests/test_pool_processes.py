"""The pool across real processes: ``pulpo worker --processes P --threads T`` under its supervisor,
on the file queue and on beanstalkd. Children run ``tests/pool_handlers.py``, which appends one
line per event to a shared log (O_APPEND), so a test counts how often each job ran and where."""

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
from conftest import config_for

from pulpo_core import Message, Pulpo

TESTS = Path(__file__).resolve().parent
HANDLERS = {"record": "pool_handlers:record", "slow": "pool_handlers:slow"}
WAIT = 120.0  # generous: the machine is shared


class Pool:
    """A configuration file, the events log and the ``pulpo worker`` supervisor started on it."""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        self.root = root
        self.log = root / "events.log"
        self.log.touch()
        self.settings = {**settings, "handlers": HANDLERS, "sleep_duration": 0.05}
        self.config_path = root / "pulpo.json"
        self.config_path.write_text(json.dumps(self.settings))
        self.process: subprocess.Popen[bytes] | None = None
        self.output = root / "worker.log"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pulpo_core", "--config", str(self.config_path), *args]

    def environment(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path, "PULPO_TEST_LOG": str(self.log)}

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                self.command("worker", *args), env=self.environment(), stdout=out, stderr=out
            )
        return self.process

    def publish(self, count: int, request_type: str = "record", **body: Any) -> set[str]:
        app = Pulpo(self.settings)
        try:
            ids = app.publish_many(
                [Message(request_type=request_type, body=dict(body)) for _ in range(count)]
            )
            return {str(message.id) for message in ids}
        finally:
            app.close()

    def events(self, kind: str) -> dict[str, list[int]]:
        """job id -> pids that logged ``kind`` for it."""
        found: dict[str, list[int]] = collections.defaultdict(list)
        for line in self.log.read_text().splitlines():
            job_id, event, pid = line.split()
            if event == kind:
                found[job_id].append(int(pid))
        return found

    def wait_for(self, ready: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            assert self.process is None or self.process.poll() is None, (
                f"the worker exited while waiting for {what}:\n{self.text()}"
            )
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.text()}"
            time.sleep(0.05)

    def children(self) -> list[int]:
        assert self.process is not None
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]

    def finish(self, seconds: float = WAIT) -> int:
        assert self.process is not None
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the worker did not stop:\n{self.text()}") from None

    def text(self) -> str:
        """The end of the supervisor's and children's output (for failure messages)."""
        return self.full_text()[-4000:]

    def full_text(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture(params=["file", "beanstalkd"])
def pool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pool]:
    settings = config_for(request.param, tmp_path, request)
    if request.param == "file":
        settings["file_queue_adapter"]["lease_check_interval"] = 0.2
    made = Pool(tmp_path, settings)
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait()


def test_processes_and_threads_handle_every_job_once(pool: Pool) -> None:
    ids = pool.publish(1000)
    pool.start("--processes", "2", "--threads", "4")
    pool.wait_for(lambda: len(pool.events("done")) >= len(ids), "every job")
    pool.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert pool.finish() == 0, pool.text()
    done = pool.events("done")
    assert set(done) == ids, "missing jobs"
    twice = {job_id: pids for job_id, pids in done.items() if len(pids) > 1}
    assert not twice, f"jobs handled twice: {twice}"
    assert pool.full_text().count("started worker process") == 2, pool.text()
    assert "pool of 2 process(es) x 4 thread(s)" in pool.full_text()


def test_sigkill_of_a_child_loses_nothing(pool: Pool) -> None:
    pool.settings["ttr"] = 3
    pool.config_path.write_text(json.dumps(pool.settings))
    ids = pool.publish(120, request_type="slow", seconds=0.3)
    pool.start("--processes", "2", "--threads", "2")
    killed: set[int] = set()
    for round_number in range(4):
        pool.wait_for(lambda: len(pool.children()) == 2, "two children")
        victim = pool.children()[round_number % 2]
        # Kill it once it is running jobs, so its jobs must come back.
        pool.wait_for(
            lambda victim=victim: any(victim in p for p in pool.events("start").values()),
            f"child {victim} to start a job",
        )
        os.kill(victim, signal.SIGKILL)
        killed.add(victim)
        pool.wait_for(lambda victim=victim: victim not in pool.children(), "the child to go")
    pool.wait_for(lambda: set(pool.events("done")) >= ids, "every job", seconds=WAIT * 2)
    pool.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert pool.finish() == 0, pool.text()
    starts = pool.events("start")
    assert set(pool.events("done")) == ids
    for job_id, pids in starts.items():
        if len(pids) > 1:
            assert killed & set(pids), f"job {job_id} ran twice without a kill: {pids}"
    assert pool.full_text().count("died (killed by SIGKILL)") == len(killed), pool.text()


def test_sigterm_lets_running_jobs_finish(pool: Pool) -> None:
    ids = pool.publish(8, request_type="slow", seconds=3)
    pool.start("--processes", "2", "--threads", "4")
    pool.wait_for(lambda: len(pool.events("start")) == 8, "8 running jobs")
    pool.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert pool.finish() == 0, pool.text()
    assert set(pool.events("done")) == ids, pool.text()
    app = Pulpo(pool.settings)
    try:
        assert all(app.queue_adapter.peek(job_id) is None for job_id in ids), "all committed"
    finally:
        app.close()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--processes", "0"], "'0'"),
        (["--processes", "many"], "'many'"),
        (["--threads", "-3"], "'-3'"),
        (["--threads", "5000"], "'5000'"),
    ],
)
def test_bad_pool_flags_exit_2(tmp_path: Path, flags: list[str], named: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pulpo_core", "worker", *flags],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 2
    assert named in done.stderr and "Traceback" not in done.stderr


def test_child_that_fails_at_import_is_not_restarted_forever(tmp_path: Path) -> None:
    settings = {
        "queue_adapter_type": "file",
        "file_queue_adapter": {"base_path": str(tmp_path / "queue")},
        "handlers": {"broken": "no_such_module_here:handler"},
    }
    (tmp_path / "pulpo.json").write_text(json.dumps(settings))
    done = subprocess.run(
        [sys.executable, "-m", "pulpo_core", "--config", "pulpo.json", "worker",
         "--processes", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 1, done.stderr
    assert "giving up" in done.stderr and "no_such_module_here" in done.stderr


def test_sighup_picks_up_new_code_and_drops_nothing(pool: Pool, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    module = code / "hup_handlers.py"
    module.write_text("from pool_handlers import note\nVERSION = 'v1'\n\n"
                      "def handle(message):\n    note(message, VERSION)\n")
    pool.settings["handlers"] = {**HANDLERS, "hup": "hup_handlers:handle"}
    pool.config_path.write_text(json.dumps(pool.settings))
    environment = pool.environment
    pool.environment = lambda: {  # type: ignore[method-assign]
        **environment(),
        "PYTHONPATH": f"{code}{os.pathsep}{environment()['PYTHONPATH']}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    first = pool.publish(1, request_type="hup")
    running = pool.publish(4, request_type="slow", seconds=2)
    pool.start("--processes", "2", "--threads", "2")
    pool.wait_for(lambda: set(pool.events("v1")) == first, "the first version to run")
    pool.wait_for(lambda: len(pool.events("start")) == 4, "4 running jobs")
    old = set(pool.children())
    module.write_text(module.read_text().replace("'v1'", "'v2'"))
    pool.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    pool.wait_for(
        lambda: len(pool.children()) == 2 and not old & set(pool.children()), "new children"
    )
    later = pool.publish(10, request_type="hup")
    pool.wait_for(lambda: set(pool.events("v2")) == later, "the new version to run")
    assert set(pool.events("done")) == running, "the running jobs finished"
    pool.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert pool.finish() == 0, pool.text()
    assert not set(pool.events("v1")) & later
