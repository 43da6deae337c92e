"""A stranger's plugin plugs in without any change to pulpo_core.

``tests/third_party/pulpo-acme`` is a distribution as a third party would publish it: its own
adapter on SQLite (``pulpo_register_adapters``), a ``pulpo_before_process`` middleware and a
handler in the ``pulpo.handlers`` entry-point group (the plugin author's guide shows its code).
The test copies it into a temporary folder, builds and installs it into a target folder with pip,
and drives it with the ``pulpo`` command from fresh interpreters that see it only through
``PYTHONPATH``: one publishes, another works.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import pulpo_core

SOURCE = Path(__file__).parent / "third_party" / "pulpo-acme"
SETTINGS = {
    "queue_adapter_type": "sqlite",
    "sqlite_queue_adapter": {"path": "jobs.sqlite3"},
    "shutdown_after_number_of_empty_iterations": 1,
    "sleep_duration": 0,
}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pulpo-acme built from a copy of its source and installed into a target folder."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.fail(
            "hatchling is not installed: the third-party plugin is built without network "
            "(pip --no-build-isolation) with the build backend of the test environment "
            "(pip install hatchling)",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("third_party")
    source = root / "pulpo-acme"
    shutil.copytree(SOURCE, source)
    installed = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(installed),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, f"pip could not install pulpo-acme:\n{done.stderr}"
    return installed


class Interpreter:
    """Fresh interpreters that see pulpo-acme only through ``PYTHONPATH``, in one folder."""

    def __init__(self, target: Path, folder: Path) -> None:
        self.folder = folder
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PULPO_")}
        self.env["PYTHONPATH"] = str(target)
        (folder / "pulpo.json").write_text(json.dumps(SETTINGS))

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                              timeout=60, env=self.env, cwd=self.folder)

    def pulpo(self, *args: str) -> str:
        """``pulpo --config pulpo.json ARGS``; its stdout."""
        done = self.python("-m", "pulpo_core", "--config", "pulpo.json", *args)
        assert done.returncode == 0, f"pulpo {' '.join(args)}: {done.stderr}"
        return done.stdout


@attrs.frozen
class Run:
    """What a publisher, then a worker, did with pulpo-acme installed."""

    interpreter: Interpreter
    plain_id: str
    blocked_id: str
    worker_output: str


@pytest.fixture(scope="module")
def run(target: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Two jobs published by one fresh interpreter and worked by another."""
    interpreter = Interpreter(target, tmp_path_factory.mktemp("run"))
    plain = interpreter.pulpo("publish", "--request-type", "shout", "--payload", "hello").strip()
    blocked = interpreter.pulpo("publish", "--request-type", "shout", "--payload", "psst",
                                "--body", json.dumps({"blocked": True})).strip()
    return Run(interpreter, plain, blocked, interpreter.pulpo("worker"))


class TestInstallation:
    def test_the_plugin_is_installed_only_in_the_target_folder(self, target: Path) -> None:
        assert (target / "pulpo_acme" / "plugin.py").is_file()
        assert list(target.glob("pulpo_acme-1.2.3.dist-info"))
        assert not (target / "pulpo_core").exists()
        assert importlib.util.find_spec("pulpo_acme") is None

    def test_the_fresh_interpreter_runs_the_unchanged_core(self, run: Run) -> None:
        done = run.interpreter.python("-c", "import pulpo_core; print(pulpo_core.__file__)")
        assert done.stdout.strip() == pulpo_core.__file__


class TestThirdPartyPlugin:
    def test_queue_adapter_type_selects_its_adapter(self, run: Run) -> None:
        assert (run.plain_id, run.blocked_id) == ("1", "2")
        with sqlite3.connect(run.interpreter.folder / "jobs.sqlite3") as db:
            states = db.execute("SELECT id, state FROM jobs").fetchall()
        assert states == [(2, "buried")]

    def test_its_handler_is_routed_to(self, run: Run) -> None:
        assert run.worker_output == "HELLO!\n"

    def test_its_middleware_runs_before_the_handler(self, run: Run) -> None:
        assert "PSST" not in run.worker_output
        buried = json.loads(run.interpreter.pulpo("peek", run.blocked_id))
        assert buried["header"]["buried_reason"] == "blocked by acme"
        stats = json.loads(run.interpreter.pulpo("stats", "--json"))
        assert stats == {"ready": 0, "delayed": 0, "reserved": 0, "buried": 1, "total": 1}

    def test_the_plugins_command_lists_it_with_its_version_and_hooks(self, run: Run) -> None:
        rows = [line.split(None, 3) for line in run.interpreter.pulpo("plugins").splitlines()]
        assert ["acme", "pulpo-acme", "1.2.3", "pulpo_before_process, pulpo_register_adapters"] in (
            rows
        )
        assert ["(handlers)", "pulpo-acme", "1.2.3", "pulpo.handlers: shout"] in rows

    def test_the_handlers_command_lists_its_handler_and_origin(self, run: Run) -> None:
        rows = [line.split(None, 2) for line in run.interpreter.pulpo("handlers").splitlines()]
        assert ["shout", "pulpo_acme.handlers:shout", "entry point of pulpo-acme 1.2.3"] in rows


GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugin-authors.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


class TestPluginAuthorsGuide:
    @pytest.mark.parametrize("name", ["pyproject.toml", "pulpo_acme/plugin.py",
                                      "pulpo_acme/adapter.py", "pulpo_acme/handlers.py"])
    def test_shows_the_code_of_this_plugin_as_it_is(self, name: str) -> None:
        shown = [body for _lang, body in FENCE.findall(GUIDE.read_text(encoding="utf-8"))]
        assert (SOURCE / name).read_text(encoding="utf-8") in shown, (
            f"docs/plugin-authors.md does not show tests/third_party/pulpo-acme/{name} as it is"
        )

    def test_its_plugin_tests_pass_on_the_installed_plugin(
        self, target: Path, tmp_path: Path
    ) -> None:
        tests = [body for lang, body in FENCE.findall(GUIDE.read_text(encoding="utf-8"))
                 if lang == "python" and "def test_" in body]
        assert len(tests) == 1, "docs/plugin-authors.md should have one block of plugin tests"
        (tmp_path / "test_guide.py").write_text(tests[0], encoding="utf-8")
        done = Interpreter(target, tmp_path).python(
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_guide.py"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 passed" in done.stdout
