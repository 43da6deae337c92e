"""Publish middleware chains; a failing policy or observer plugin never strands a job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from pulpo_core import Message, hookimpl
from pulpo_core.testing import make_app, run_until_empty


def _stamp(key: str, value: int) -> object:
    class Stamp:
        @hookimpl
        def pulpo_before_publish(self, message: Message) -> Message:
            seen = dict(message.extra_header)
            stamped = {**seen, key: value, f"{key}_saw": sorted(seen)}
            return attrs.evolve(message, extra_header=stamped)

    return Stamp()


class TestPublishMiddlewareChain:
    def test_each_middleware_sees_the_changes_of_the_ones_before_it(self) -> None:
        app = make_app({"x": lambda m: None}, plugins=[_stamp("first", 1), _stamp("second", 2)])
        queued = app.queue_adapter.peek(app.publish(Message("x")).id or "")
        assert queued is not None
        header = queued.extra_header
        assert header["first"] == 1 and header["second"] == 2
        # pluggy calls the last registered first, so "second" ran first and "first" saw it.
        assert header["first_saw"] == ["second", "second_saw"]


class _BrokenPolicy:
    @hookimpl(tryfirst=True)
    def pulpo_result_policy(self) -> None:
        raise RuntimeError("policy plugin is broken")


class _BrokenObserver:
    @hookimpl
    def pulpo_after_process(self) -> None:
        raise RuntimeError("metrics server is down")


class TestBrokenPlugins:
    def test_a_policy_that_raises_falls_back_to_the_default_policy(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = make_app({"ok": lambda m: None, "bad": lambda m: 1 / 0},
                       {"max_number_of_attempts": 2}, plugins=[_BrokenPolicy()])
        app.publish(Message("ok"))
        app.publish(Message("bad"))
        report = run_until_empty(app)
        assert report.succeeded == 1
        assert app.queue_adapter.stats()["buried"] == 1  # bad: retried once, then buried
        assert app.queue_adapter.stats()["reserved"] == 0
        assert "a pulpo_result_policy hook failed" in caplog.text

    def test_an_observer_that_raises_does_not_stop_the_work(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = make_app({"ok": lambda m: None}, plugins=[_BrokenObserver()])
        for _ in range(3):
            app.publish(Message("ok"))
        assert run_until_empty(app).succeeded == 3
        assert app.queue_adapter.stats()["ready"] == 0
        assert caplog.text.count("a pulpo_after_process hook failed") == 3


class TestWorkerImportsFromItsFolder:
    def test_the_pulpo_script_imports_handlers_from_the_folder_it_runs_in(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "myjobs.py").write_text(
            "from pathlib import Path\n"
            "def note(message):\n"
            "    Path('handled.txt').write_text(message.payload)\n"
        )
        (tmp_path / "pulpo.toml").write_text(
            'queue_adapter_type = "file"\n'
            "shutdown_after_number_of_empty_iterations = 1\n"
            "sleep_duration = 0\n"
            "[handlers]\n"
            'note = "myjobs:note"\n'
            "[file_queue_adapter]\n"
            'base_path = "queue"\n'
        )
        script = Path(sys.executable).with_name("pulpo")
        assert script.exists(), f"the pulpo console script is not installed beside {sys.executable}"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PULPO_CONFIG")}
        run = [str(script)]
        done = subprocess.run([*run, "publish", "--request-type", "note", "--payload", "hi"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        done = subprocess.run([*run, "worker"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "handled.txt").read_text() == "hi"
