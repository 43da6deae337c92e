"""The worker: clean shutdown on signals, unbuffered output, one log line per job.

Signals and output buffering are about a real process, so those tests run ``pulpo worker`` in a
subprocess on the file queue; the rest run in this process on the memory queue.
"""

from __future__ import annotations

import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from pulpo_core import AdapterError, Message, Pulpo, Result
from pulpo_core.config import ENV_VAR
from pulpo_core.defaults.memory import MemoryQueueAdapter
from pulpo_core.plugins import DISABLE_ENV, build_plugin_manager
from pulpo_core.testing import make_app

HANDLERS = '''
import sys
import time
from pathlib import Path


def _wait_for(path, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


def slow(message):
    """Say it started, wait to be released, say it finished."""
    body = message.body
    Path(body["started"]).touch()
    _wait_for(body["release"])
    Path(body["finished"]).touch()


def chatty(message):
    print("working on", message.payload)
    Path(message.body["started"]).touch()
    _wait_for(message.body["release"])
'''


class Worker:
    """A ``pulpo worker`` process on a file queue in ``folder``."""

    def __init__(self, folder: Path, **settings: Any) -> None:
        self.folder = folder
        (folder / "worker_jobs.py").write_text(HANDLERS)
        self.settings: dict[str, Any] = {
            "queue_adapter_type": "file",
            "file_queue_adapter": {"base_path": str(folder / "queue")},
            "sleep_duration": 0.05,
            "retry_delay": 0,
            "handlers": {"slow": "worker_jobs:slow", "chatty": "worker_jobs:chatty"},
            **settings,
        }
        self.config = folder / "pulpo.json"
        import json

        self.config.write_text(json.dumps(self.settings))
        self.app = Pulpo(self.settings, plugin_manager=build_plugin_manager())
        self.process: subprocess.Popen[bytes] | None = None

    def publish(self, request_type: str, name: str, **fields: Any) -> Message:
        body = {key: str(self.folder / f"{name}.{key}") for key in ("started", "release",
                                                                     "finished")}
        return self.app.publish(Message(request_type, body, **fields))

    def path(self, name: str, key: str) -> Path:
        return self.folder / f"{name}.{key}"

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items()
               if k not in (ENV_VAR, DISABLE_ENV, "PYTHONUNBUFFERED")}
        env["PYTHONPATH"] = os.pathsep.join([str(self.folder), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulpo_core", "--config", str(self.config), "worker"],
            cwd=self.folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        return self.process

    def wait_for(self, path: Path, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not path.exists():
            assert self.process is not None
            if self.process.poll() is not None:
                _out, err = self.process.communicate()
                pytest.fail(f"the worker exited with {self.process.returncode}: {err.decode()}")
            assert time.monotonic() < deadline, f"{path.name} did not appear"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        self.app.close()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Any]:
    made: list[Worker] = []

    def factory(**settings: Any) -> Worker:
        made.append(Worker(tmp_path, **settings))
        return made[-1]

    yield factory
    for one in made:
        one.stop()


def readable(stream: Any, seconds: float) -> bool:
    ready, _, _ = select.select([stream], [], [], seconds)
    return bool(ready)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
class TestSignals:
    def test_the_running_job_finishes_and_is_committed_then_exit_0(
        self, worker: Any, sig: signal.Signals
    ) -> None:
        w = worker()
        running = w.publish("slow", "first", priority=1)
        waiting = w.publish("slow", "second", priority=2)
        process = w.start()
        w.wait_for(w.path("first", "started"))
        process.send_signal(sig)
        time.sleep(0.3)  # the signal has arrived while the handler runs
        assert process.poll() is None, "the worker did not wait for its running job"
        w.path("first", "release").touch()
        _, err = process.communicate(timeout=20)
        assert process.returncode == 0, err.decode()
        assert w.path("first", "finished").exists()
        assert running.id is not None and w.app.queue_adapter.peek(running.id) is None
        assert not w.path("second", "started").exists()
        stats = w.app.queue_adapter.stats()
        assert (stats["ready"], stats["reserved"], stats["buried"]) == (1, 0, 0)
        assert waiting.id is not None and w.app.queue_adapter.peek(waiting.id) is not None
        assert "Traceback" not in err.decode()

    def test_an_idle_worker_exits_0(self, worker: Any, sig: signal.Signals) -> None:
        w = worker()
        process = w.start()
        assert process.stderr is not None
        assert readable(process.stderr, 20), "the worker logged nothing"
        time.sleep(0.2)
        process.send_signal(sig)
        _, err = process.communicate(timeout=20)
        assert process.returncode == 0, err.decode()


class TestOutputBuffering:
    def test_off_by_default_output_appears_while_the_job_runs(self, worker: Any) -> None:
        w = worker()
        w.publish("chatty", "job", payload="order 17")
        process = w.start()
        w.wait_for(w.path("job", "started"))
        assert process.stdout is not None
        assert readable(process.stdout, 10), "the handler's line did not appear at once"
        assert os.read(process.stdout.fileno(), 1000) == b"working on order 17\n"
        w.path("job", "release").touch()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
        assert process.returncode == 0

    def test_on_output_waits_in_the_buffer(self, worker: Any) -> None:
        w = worker(enable_output_buffering=True)
        w.publish("chatty", "job", payload="order 18")
        process = w.start()
        w.wait_for(w.path("job", "started"))
        assert process.stdout is not None
        assert not readable(process.stdout, 0.5)
        w.path("job", "release").touch()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 0
        assert out == b"working on order 18\n"


LOG_LINE = re.compile(
    r"job (?P<id>\S+) type=(?P<type>\S+) outcome=(?P<outcome>\w+) .*"
    r"attempts=(?P<attempts>\d+) duration=(?P<duration>[\d.]+)ms"
)


class TestJobLog:
    def test_one_line_per_job_run(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="pulpo")
        app = make_app({
            "ok": lambda m: None,
            "flaky": lambda m: Result.transient("later"),
            "bad": lambda m: Result.fatal("never"),
        }, {"max_number_of_attempts": 2, "shutdown_after_number_of_empty_iterations": 1,
            "sleep_duration": 0})
        ok = app.publish(Message("ok", priority=1)).id
        flaky = app.publish(Message("flaky", priority=2)).id
        bad = app.publish(Message("bad", priority=3)).id
        app.start()
        runs = [m.groupdict() for r in caplog.records if (m := LOG_LINE.search(r.getMessage()))]
        summary = [(r["id"], r["type"], r["outcome"], r["attempts"]) for r in runs]
        assert summary == [
            (ok, "ok", "success", "0"),
            (flaky, "flaky", "transient", "0"),
            (flaky, "flaky", "transient", "1"),
            (bad, "bad", "fatal", "0"),
        ]
        assert all(float(r["duration"]) >= 0 for r in runs)

    def test_a_success_does_not_ask_for_lazy_attempts(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="pulpo")
        asked: list[int] = []

        def lazy() -> int:  # what an adapter with server-side counters hands over
            asked.append(1)
            return 0

        app = make_app({"t": lambda m: None})
        app.publish(Message("t"))
        taken = app.queue_adapter.dequeue()
        assert taken is not None
        app.handle_message(attrs.evolve(taken, attempts=lazy))
        assert asked == []
        [line] = [r.getMessage() for r in caplog.records if "outcome=" in r.getMessage()]
        assert "attempts=?" in line

    def test_the_duration_is_measured(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="pulpo")
        app = make_app({"nap": lambda m: time.sleep(0.05)})
        app.publish(Message("nap"))
        message = app.queue_adapter.dequeue()
        assert message is not None
        app.handle_message(message)
        [run] = [m for r in caplog.records if (m := LOG_LINE.search(r.getMessage()))]
        assert float(run["duration"]) >= 50


class TestResilience:
    def test_a_failed_dequeue_is_retried(self) -> None:
        seen: list[str] = []
        app = make_app({"t": lambda m: seen.append("ran")},
                       {"shutdown_after_number_of_empty_iterations": 1, "sleep_duration": 0})
        adapter = app.queue_adapter
        real = adapter.dequeue
        failures = [AdapterError("queue folder is on a disk that went away")]

        def dequeue() -> Message | None:
            if failures:
                raise failures.pop()
            return real()

        adapter.dequeue = dequeue  # type: ignore[method-assign]
        app.publish(Message("t"))
        app.start()
        assert seen == ["ran"]

    def test_a_job_deleted_while_it_runs_does_not_stop_the_worker(self) -> None:
        seen: list[str] = []

        def deleted_under_me(message: Message) -> None:
            assert message.id is not None
            app.queue_adapter.delete(message.id)  # an operator ran `pulpo delete` meanwhile

        app = make_app({"gone": deleted_under_me, "next": lambda m: seen.append("next")},
                       {"shutdown_after_number_of_empty_iterations": 1, "sleep_duration": 0})
        app.publish(Message("gone", priority=1))
        app.publish(Message("next", priority=2))
        app.start()
        assert seen == ["next"]

    def test_a_start_hook_that_raises_stops_the_start(self) -> None:
        from pulpo_core import hookimpl

        class Refuse:
            @hookimpl
            def pulpo_worker_start(self, app: Pulpo) -> None:
                raise RuntimeError("licence expired")

        ran: list[Message] = []
        app = make_app({"t": ran.append}, plugins=[Refuse()])
        app.publish(Message("t"))
        with pytest.raises(RuntimeError, match="licence expired"):
            app.start()
        assert ran == []


class StopDuringDequeue(MemoryQueueAdapter):
    """A memory queue where a stop can arrive while ``dequeue`` waits.

    A real worker blocks in ``dequeue`` (a beanstalkd reserve, a file queue's poll) and a
    SIGTERM may land then; calling ``on_job`` inside ``dequeue`` makes that race certain.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on_job: Callable[[Message], None] = lambda message: None

    def dequeue(self) -> Message | None:
        found = super().dequeue()
        if found is not None:
            self.on_job(found)
        return found


class WithoutRelease:
    """An adapter that has no ``release``: every other call goes to ``inner``."""

    def __init__(self, inner: MemoryQueueAdapter) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "release":
            raise AttributeError(name)
        return getattr(self.inner, name)


class DequeueRaisesOnce(MemoryQueueAdapter):
    """A memory queue whose first ``dequeue`` raises ``error`` (a bug, not an AdapterError)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error: BaseException | None = error

    def dequeue(self) -> Message | None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return super().dequeue()


def app_on(adapter: object, handlers: dict[str, object], **settings: Any) -> Pulpo:
    """An app whose queue is ``adapter``, registered as a third party would."""
    from pulpo_core import hookimpl

    class Queue:
        @hookimpl
        def pulpo_register_adapters(self, register: Any) -> None:
            register("under_test", lambda section: adapter)

    return make_app(handlers, {"queue_adapter_type": "under_test", "sleep_duration": 0,
                               "shutdown_after_number_of_empty_iterations": 1, **settings},
                    plugins=[Queue()])


class TestUnexpectedDequeueErrors:
    def test_the_worker_logs_it_waits_and_goes_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="pulpo")
        seen: list[str] = []
        app = app_on(DequeueRaisesOnce(RuntimeError("index out of range in the adapter")),
                     {"t": lambda m: seen.append("ran")})
        app.publish(Message("t"))
        started = time.monotonic()
        app.start()
        assert seen == ["ran"]
        assert time.monotonic() - started >= 0.1, "it retried without waiting"
        [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert "dequeue failed" in record.getMessage()
        assert "index out of range in the adapter" in record.getMessage()
        assert record.exc_info is not None, "the traceback of the bug was not logged"

    @pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)],
                             ids=["KeyboardInterrupt", "SystemExit"])
    def test_keyboard_interrupt_and_system_exit_still_end_it(
        self, error: BaseException
    ) -> None:
        seen: list[str] = []
        app = app_on(DequeueRaisesOnce(error), {"t": lambda m: seen.append("ran")})
        app.publish(Message("t"))
        with pytest.raises(type(error)):
            app.start()
        assert seen == []


class CommitRaisesOnce(MemoryQueueAdapter):
    """A memory queue whose first ``commit`` raises a bug's error (not an AdapterError)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def commit(self, message: Message) -> None:
        if not self.failed:
            self.failed = True
            raise KeyError("a bug while settling")
        super().commit(message)


class TestUnexpectedSettleErrors:
    def test_the_worker_logs_it_and_goes_on_with_the_next_job(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        seen: list[str] = []
        adapter = CommitRaisesOnce()
        app = app_on(adapter, {"t": lambda m: seen.append(m.payload)})
        app.publish(Message("t", payload="first", priority=1))
        app.publish(Message("t", payload="second", priority=2))
        app.start()
        assert seen == ["first", "second"]
        [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert "could not be settled" in record.getMessage()
        assert record.exc_info is not None
        assert adapter.stats()["reserved"] == 1  # the first job waits for its lease to run out


class TestStopDuringDequeue:
    def run_two(self, inner: StopDuringDequeue, adapter: object) -> tuple[list[str], str]:
        """Queue two jobs; a stop arrives while the second is dequeued; run the worker."""
        handled: list[str] = []
        app = app_on(adapter, {"t": lambda m: handled.append(m.payload)})
        app.publish(Message("t", payload="first", priority=1))
        second = app.publish(Message("t", payload="second", priority=2))

        def stop_on_second(message: Message) -> None:
            if message.payload == "second":
                app.stop()

        inner.on_job = stop_on_second
        app.start()
        assert second.id is not None
        return handled, second.id

    def test_the_job_it_got_goes_back_unrun_with_its_attempts(self) -> None:
        adapter = StopDuringDequeue()
        handled, second = self.run_two(adapter, adapter)
        assert handled == ["first"]
        stats = adapter.stats()
        assert (stats["ready"], stats["reserved"]) == (1, 0)
        adapter.on_job = lambda message: None
        again = adapter.dequeue()
        assert again is not None and again.id == second
        assert again.attempts == 0

    def test_an_adapter_without_release_rolls_it_back(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="pulpo")
        inner = StopDuringDequeue()
        handled, second = self.run_two(inner, WithoutRelease(inner))
        assert handled == ["first"]
        back = inner.peek(second)
        assert back is not None and back.attempts == 1  # a rollback counts one
        assert inner.stats()["reserved"] == 0
        assert any("has no release" in r.getMessage() for r in caplog.records)


class TestStopBeforeStart:
    def test_a_stop_before_start_is_kept_and_a_second_start_runs(self) -> None:
        seen: list[str] = []
        app = make_app({"t": lambda m: seen.append("ran")},
                       {"shutdown_after_number_of_empty_iterations": 1, "sleep_duration": 0})
        app.publish(Message("t"))
        app.stop()  # e.g. a signal or another thread, before the worker got going
        app.start()
        assert seen == []
        assert not app.stopping.is_set(), "the stop outlived the worker it stopped"
        app.start()
        assert seen == ["ran"]


class Batching(MemoryQueueAdapter):
    """A memory queue with the optional ``flush`` of adapters that batch commands."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.error = error

    def commit(self, message: Message) -> None:
        self.calls.append("commit")
        super().commit(message)

    def flush(self) -> None:
        self.calls.append("flush")
        if self.error is not None:
            raise self.error


class TestFlush:
    def test_the_worker_flushes_the_adapter_once_as_it_ends(self) -> None:
        adapter = Batching()
        app = app_on(adapter, {"t": lambda m: None})
        app.publish(Message("t"))
        app.start()
        assert adapter.calls == ["commit", "flush"]

    def test_a_failed_flush_is_logged_and_the_worker_still_stops(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="pulpo")
        stopped: list[str] = []
        from pulpo_core import hookimpl

        class Stop:
            @hookimpl
            def pulpo_worker_stop(self, app: Pulpo) -> None:
                stopped.append("stop")

        adapter = Batching(AdapterError("connection reset"))
        app = app_on(adapter, {"t": lambda m: None})
        app.plugin_manager.register(Stop())
        app.start()
        assert adapter.calls == ["flush"]
        assert stopped == ["stop"]
        assert any(r.levelno == logging.WARNING and "connection reset" in r.getMessage()
                   for r in caplog.records)


class TestRunsThatNeverFinished:
    def test_a_job_whose_attempts_are_spent_is_buried_without_running(self) -> None:
        ran: list[Message] = []
        app = make_app({"t": ran.append}, {"queue_adapter_type": "memory",
                                           "max_number_of_attempts": 3, "sleep_duration": 0,
                                           "shutdown_after_number_of_empty_iterations": 1})
        # As a job looks after its worker died three times (each lost lease counts).
        spent = app.publish(Message("t", attempts=3))
        fresh = app.publish(Message("t", attempts=2))
        app.start()
        assert [message.id for message in ran] == [fresh.id]
        kept = app.queue_adapter.peek(str(spent.id))
        assert kept is not None
        assert kept.header["buried_reason"].startswith(
            "unfinished runs: started 3 time(s) without finishing")
