"""pulpo-samples: each sample handler, found through its entry point, behaves as named."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pulpo_core import Message, Pulpo
from pulpo_core.testing import RunReport, run_until_empty

MakeApp = Callable[..., Pulpo]
SAMPLES = ("always_fail", "always_succeed", "always_transient", "echo", "fifty_fifty", "greet",
           "lower", "upper")


def run(app: Pulpo, *messages: Message) -> RunReport:
    for message in messages:
        app.publish(message)
    return run_until_empty(app, include_delayed=False)


def buried_reason(app: Pulpo, message_id: str | None) -> str:
    buried = app.queue_adapter.peek(message_id or "")
    assert buried is not None, f"job {message_id} is gone, expected it buried"
    return str(buried.header["buried_reason"])


def empty(app: Pulpo) -> bool:
    stats = app.queue_adapter.stats()
    return (stats["ready"], stats["delayed"], stats["reserved"], stats["buried"]) == (0, 0, 0, 0)


class TestDiscovery:
    def test_every_sample_is_routed_through_its_entry_point(self, make_app: MakeApp) -> None:
        app = make_app()
        origins = {name: app.handlers.specs[name].origin for name in SAMPLES}
        assert set(origins.values()) == {"entry point of pulpo-samples 0.1.0"}

    def test_the_handlers_command_lists_them(self, tmp_path: Path) -> None:
        config = tmp_path / "pulpo.json"
        config.write_text(json.dumps({"queue_adapter_type": "memory"}))
        done = subprocess.run(
            [sys.executable, "-m", "pulpo_core", "--config", str(config), "handlers"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        rows = [line.split(None, 2) for line in done.stdout.splitlines()]
        for name in SAMPLES:
            origin = "entry point of pulpo-samples 0.1.0"
            assert [name, f"pulpo_samples.handlers:{name}", origin] in rows

    def test_the_plugins_command_lists_the_package_with_its_version(self) -> None:
        done = subprocess.run([sys.executable, "-m", "pulpo_core", "plugins"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows = [line.split(None, 3) for line in done.stdout.splitlines()]
        assert ["(handlers)", "pulpo-samples", "0.1.0",
                f"pulpo.handlers: {', '.join(SAMPLES)}"] in rows


class TestPrintingHandlers:
    def test_echo_prints_the_payload(
        self, make_app: MakeApp, capsys: pytest.CaptureFixture[str]
    ) -> None:
        app = make_app()
        assert run(app, Message("echo", payload="hello there")).succeeded == 1
        assert capsys.readouterr().out == "hello there\n"
        assert empty(app)

    def test_echo_prints_a_body_without_payload_as_json(
        self, make_app: MakeApp, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(make_app(), Message("echo", {"to": "ops", "n": 2}))
        assert json.loads(capsys.readouterr().out) == {"to": "ops", "n": 2}

    def test_upper_prints_the_payload_in_upper_case(
        self, make_app: MakeApp, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(make_app(), Message("upper", payload="Make Me Loud")).succeeded == 1
        assert capsys.readouterr().out == "MAKE ME LOUD\n"

    def test_lower_prints_the_payload_in_lower_case(
        self, make_app: MakeApp, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(make_app(), Message("lower", payload="QUIET Please")).succeeded == 1
        assert capsys.readouterr().out == "quiet please\n"

    def test_upper_buries_a_payload_that_is_not_text(self, make_app: MakeApp) -> None:
        app = make_app()
        sent = app.publish(Message("upper", payload=42))
        report = run_until_empty(app, include_delayed=False)
        assert [r.is_fatal for r in report.results] == [True]
        assert "upper needs a text payload, not int" in buried_reason(app, sent.id)

    def test_greet_structures_its_typed_body(
        self, make_app: MakeApp, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(make_app(), Message("greet", {"name": "Ada"}), Message("greet", {"name": "Bo",
                                                                             "greeting": "Hi"}))
        assert capsys.readouterr().out == "Hello, Ada!\nHi, Bo!\n"

    def test_greet_buries_a_body_that_does_not_fit(self, make_app: MakeApp) -> None:
        app = make_app()
        sent = app.publish(Message("greet", {"nom": "Ada"}))
        run_until_empty(app, include_delayed=False)
        assert "body does not fit Greeting" in buried_reason(app, sent.id)


class TestOutcomeHandlers:
    def test_always_succeed_succeeds_and_the_job_is_deleted(self, make_app: MakeApp) -> None:
        app = make_app()
        report = run(app, Message("always_succeed"))
        assert [r.is_success for r in report.results] == [True]
        assert empty(app)

    def test_always_fail_is_buried_after_one_run(self, make_app: MakeApp) -> None:
        app = make_app(max_number_of_attempts=5)
        sent = app.publish(Message("always_fail"))
        report = run_until_empty(app, include_delayed=False)
        assert [r.is_fatal for r in report.results] == [True]
        assert buried_reason(app, sent.id) == "FatalError: always_fail always fails"

    def test_always_transient_is_retried_then_buried(self, make_app: MakeApp) -> None:
        app = make_app(max_number_of_attempts=3)
        sent = app.publish(Message("always_transient"))
        report = run_until_empty(app, include_delayed=False)
        assert [r.is_transient for r in report.results] == [True, True, True]
        assert [p.message.attempts for p in report.processed] == [0, 1, 2]
        assert "always_transient failed attempt 3" in buried_reason(app, sent.id)

    def test_fifty_fifty_both_succeeds_and_fails_transiently(self, make_app: MakeApp) -> None:
        app = make_app(max_number_of_attempts=1)
        report = run(app, *(Message("fifty_fifty") for _ in range(40)))
        outcomes = {r.outcome.value for r in report.results}
        # Each outcome has a chance of one half per job: both appear in 40 jobs but for 2**-39.
        assert outcomes == {"success", "transient"}
        assert app.queue_adapter.stats()["buried"] == report.failed


GUIDE = Path(__file__).resolve().parent.parent / "docs" / "handler-packages.md"


class TestHandlerPackageGuide:
    def test_its_tests_pass_on_the_installed_samples(self, tmp_path: Path) -> None:
        blocks = re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(encoding="utf-8"),
                            re.DOTALL | re.MULTILINE)
        tests = [block for block in blocks if "def test_" in block]
        assert len(tests) == 1, "docs/handler-packages.md should have one block of tests"
        (tmp_path / "test_guide.py").write_text(tests[0], encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_guide.py"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 passed" in done.stdout
