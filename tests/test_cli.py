"""The `pulpo` command: every command and flag, exit codes, stdout for results, stderr for logs.

Most tests call ``cli.main`` in this process (fast); those about logging, start-up imports and
the worker run the real command in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import free_port
from distributions import write_distribution

from pulpo_core.cli import main
from pulpo_core.config import ENV_VAR
from pulpo_core.plugins import DISABLE_ENV, HANDLERS_GROUP, PLUGINS_GROUP

LOWEST = 2**32 - 1


@attrs.frozen
class Run:
    code: int | str | None
    out: str
    err: str

    def assert_one_sentence(self, code: int, *names: str) -> None:
        """Failed with ``code``: one line on stderr naming ``names``, nothing on stdout."""
        assert self.code == code, self
        assert "Traceback" not in self.err
        assert self.err.strip(), self
        assert "\n" not in self.err.strip(), self.err
        for name in names:
            assert name in self.err, (name, self.err)
        assert self.out == ""


class Cli:
    """Runs ``pulpo`` in this process, in a folder of its own."""

    def __init__(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.folder = folder
        self.capsys = capsys

    def config(self, settings: dict[str, Any], name: str = "pulpo.json") -> Path:
        path = self.folder / name
        path.write_text(json.dumps(settings))
        return path

    def memory(self, **settings: Any) -> Path:
        return self.config({"queue_adapter_type": "memory", **settings}, "memory.json")

    def file(self, **settings: Any) -> Path:
        return self.config({"queue_adapter_type": "file",
                            "file_queue_adapter": {"base_path": str(self.folder / "queue")},
                            **settings}, "file.json")

    def __call__(self, *args: str | Path) -> Run:
        self.capsys.readouterr()
        try:
            code: int | str | None = main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    return Cli(tmp_path, capsys)


def run_pulpo(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess."""
    environment = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, DISABLE_ENV)}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pulpo_core", *map(str, args)],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout,
    )


# -- usage ----------------------------------------------------------------------------------


class TestHelp:
    def test_help_lists_every_command(self, cli: Cli) -> None:
        run = cli("--help")
        assert run.code == 0
        for command in ("worker", "publish", "peek", "delete", "kick", "stats", "plugins",
                        "handlers"):
            assert command in run.out

    def test_publish_help_lists_every_flag(self, cli: Cli) -> None:
        run = cli("publish", "--help")
        assert run.code == 0
        for flag in ("--request-type", "--payload", "--body", "--priority", "--delay",
                     "--expiration", "--ttr", "--count"):
            assert flag in run.out

    def test_no_command_is_a_usage_error(self, cli: Cli) -> None:
        cli("").assert_one_sentence(2, "''")
        run = cli()
        assert run.code == 2 and "COMMAND" in run.err and "Traceback" not in run.err

    def test_an_unknown_command(self, cli: Cli) -> None:
        cli("frobnicate").assert_one_sentence(2, "frobnicate")

    def test_an_unknown_flag(self, cli: Cli) -> None:
        cli("stats", "--yaml").assert_one_sentence(2, "--yaml")

    def test_publish_needs_a_request_type(self, cli: Cli) -> None:
        cli("--config", cli.memory(), "publish").assert_one_sentence(2, "--request-type")


BAD_FLAGS = [
    ("--priority", "high"),
    ("--priority", "1.5"),
    ("--priority", ""),
    ("--delay", "soon"),
    ("--delay", "-1"),
    ("--delay", "inf"),
    ("--delay", "nan"),
    ("--expiration", "next week"),
    ("--expiration", "-5"),
    ("--ttr", "0"),
    ("--ttr", "-3"),
    ("--ttr", "long"),
    ("--count", "0"),
    ("--count", "-2"),
    ("--count", "many"),
    ("--body", "{not json"),
    ("--body", "[1, 2]"),
    ("--body", '"text"'),
    ("--body", "3"),
]


class TestPublishFlags:
    @pytest.mark.parametrize(("flag", "value"), BAD_FLAGS)
    def test_a_wrong_type_is_one_sentence_naming_the_value(
        self, cli: Cli, flag: str, value: str
    ) -> None:
        run = cli("--config", cli.memory(), "publish", "--request-type", "t", flag, value)
        run.assert_one_sentence(2, flag, repr(value))

    def test_prints_each_new_id_on_its_own_line(self, cli: Cli) -> None:
        run = cli("--config", cli.memory(), "publish", "--request-type", "t", "--count", "3")
        assert run.code == 0
        ids = run.out.splitlines()
        assert len(ids) == 3 and len(set(ids)) == 3
        assert all(i.strip() == i and i for i in ids)

    def test_every_flag_reaches_the_message(self, cli: Cli) -> None:
        config = cli.file()
        run = cli("--config", config, "publish", "--request-type", "resize",
                  "--payload", "a.png", "--body", '{"width": 300}', "--priority", "12",
                  "--delay", "60", "--expiration", "3600", "--ttr", "45")
        assert run.code == 0, run
        [job_id] = run.out.split()
        peeked = cli("--config", config, "peek", job_id)
        assert peeked.code == 0, peeked
        data = json.loads(peeked.out)
        assert data["id"] == job_id
        assert data["body"] == {"width": 300, "payload": "a.png"}
        header = data["header"]
        assert (header["request_type"], header["priority"], header["ttr"]) == ("resize", 12, 45)
        assert header["delay"] < header["expiration"]

    def test_expiration_as_an_iso_date(self, cli: Cli) -> None:
        config = cli.file()
        run = cli("--config", config, "publish", "--request-type", "t",
                  "--expiration", "2031-05-06T07:08:09+02:00")
        assert run.code == 0, run
        data = json.loads(cli("--config", config, "peek", run.out.strip()).out)
        assert data["header"]["expiration"].startswith("2031-05-06T05:08:09")

    @pytest.mark.parametrize(("given", "used"), [("-5", 0), ("99999999999", LOWEST)])
    def test_a_priority_out_of_range_is_clamped_and_said(
        self, cli: Cli, given: str, used: int
    ) -> None:
        config = cli.file()
        run = cli("--config", config, "publish", "--request-type", "t", "--priority", given)
        assert run.code == 0, run
        assert given in run.err and str(used) in run.err
        assert "\n" not in run.err.strip()
        data = json.loads(cli("--config", config, "peek", run.out.strip()).out)
        assert data["header"]["priority"] == used

    def test_a_delay_after_the_expiration(self, cli: Cli) -> None:
        run = cli("--config", cli.memory(), "publish", "--request-type", "t",
                  "--delay", "120", "--expiration", "60")
        run.assert_one_sentence(2, "delay", "expiration")

    @pytest.mark.parametrize(("flag", "value"), [
        ("--delay", "1e12"),
        ("--expiration", "1e300"),
        ("--expiration", "0001-01-01T00:00:00+05:00"),  # year 0 in UTC
    ])
    def test_a_moment_out_of_range(self, cli: Cli, flag: str, value: str) -> None:
        run = cli("--config", cli.memory(), "publish", "--request-type", "t", flag, value)
        run.assert_one_sentence(2, flag.lstrip("-"), "out of range")

    def test_an_empty_request_type(self, cli: Cli) -> None:
        run = cli("--config", cli.memory(), "publish", "--request-type", "")
        run.assert_one_sentence(2, "request_type")


class TestOtherFlags:
    @pytest.mark.parametrize("value", ["0", "-1", "all", "1.5"])
    def test_kick_bound(self, cli: Cli, value: str) -> None:
        cli("--config", cli.memory(), "kick", value).assert_one_sentence(2, repr(value))

    def test_peek_needs_an_id(self, cli: Cli) -> None:
        cli("--config", cli.memory(), "peek").assert_one_sentence(2, "id")

    def test_delete_needs_an_id(self, cli: Cli) -> None:
        cli("--config", cli.memory(), "delete").assert_one_sentence(2, "id")


# -- configuration errors -------------------------------------------------------------------


class TestConfigErrors:
    def test_a_missing_config_file(self, cli: Cli) -> None:
        cli("--config", "absent.toml", "stats").assert_one_sentence(2, "absent.toml")

    def test_a_folder_as_config_file(self, cli: Cli) -> None:
        (cli.folder / "conf.d").mkdir()
        cli("--config", "conf.d", "stats").assert_one_sentence(2, "conf.d")

    def test_a_config_file_that_is_not_utf8(self, cli: Cli) -> None:
        (cli.folder / "latin.toml").write_bytes(b'banner_name = "caf\xe9"\n')
        cli("--config", "latin.toml", "stats").assert_one_sentence(2, "latin.toml")

    def test_invalid_toml(self, cli: Cli) -> None:
        (cli.folder / "bad.toml").write_text("queue_adapter_type = \n")
        cli("--config", "bad.toml", "stats").assert_one_sentence(2, "bad.toml")

    def test_pulpo_config_naming_a_missing_file(
        self, cli: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(ENV_VAR, str(cli.folder / "gone.toml"))
        cli("stats").assert_one_sentence(2, "gone.toml")

    def test_an_unknown_adapter_type_lists_the_available_ones(self, cli: Cli) -> None:
        config = cli.config({"queue_adapter_type": "rabbitmq"})
        cli("--config", config, "stats").assert_one_sentence(2, "'rabbitmq'", "memory")

    def test_an_unknown_config_key(self, cli: Cli) -> None:
        config = cli.config({"queue_adapter_type": "memory", "max_retries": 3})
        cli("--config", config, "stats").assert_one_sentence(2, "'max_retries'")

    def test_a_bad_config_value(self, cli: Cli) -> None:
        config = cli.config({"queue_adapter_type": "memory", "sleep_duration": "fast"})
        cli("--config", config, "stats").assert_one_sentence(2, "'sleep_duration'", "'fast'")

    def test_a_bad_handler_form(self, cli: Cli) -> None:
        config = cli.config({"queue_adapter_type": "memory", "handlers": {"t": "no colon"}})
        cli("--config", config, "worker").assert_one_sentence(2, "handlers.t", "'no colon'")

    def test_an_unknown_section(self, cli: Cli) -> None:
        config = cli.config({"queue_adapter_type": "memory", "rabbit_queue_adapter": {}})
        cli("--config", config, "stats").assert_one_sentence(2, "'rabbit_queue_adapter'")

    def test_pulpo_config_is_read(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(ENV_VAR, str(cli.memory()))
        run = cli("stats", "--json")
        assert run.code == 0, run
        assert json.loads(run.out)["ready"] == 0

    def test_pulpo_toml_in_the_current_folder_is_read(self, cli: Cli) -> None:
        (cli.folder / "pulpo.toml").write_text('queue_adapter_type = "no-such-adapter"\n')
        cli("stats").assert_one_sentence(2, "no-such-adapter")

    def test_the_flag_wins_over_the_variable(
        self, cli: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(ENV_VAR, str(cli.folder / "gone.toml"))
        assert cli("--config", cli.memory(), "stats").code == 0


# -- commands -------------------------------------------------------------------------------


class TestOperatorCommands:
    def test_peek_unknown_id_exits_1(self, cli: Cli) -> None:
        config = cli.file()
        job_id = cli("--config", config, "publish", "--request-type", "t").out.strip()
        cli("--config", config, "delete", job_id)
        cli("--config", config, "peek", job_id).assert_one_sentence(1, job_id)

    @pytest.mark.parametrize("command", ["peek", "delete"])
    def test_an_id_that_is_not_the_queues_is_a_usage_error(self, cli: Cli, command: str) -> None:
        cli("--config", cli.file(), command, "not-an-id").assert_one_sentence(2, "'not-an-id'")

    def test_delete_unknown_id_exits_1(self, cli: Cli) -> None:
        config = cli.file()
        job_id = cli("--config", config, "publish", "--request-type", "t").out.strip()
        assert cli("--config", config, "delete", job_id).code == 0
        cli("--config", config, "delete", job_id).assert_one_sentence(1, job_id)
        cli("--config", config, "peek", job_id).assert_one_sentence(1, job_id)

    def test_peek_prints_the_message_as_json(self, cli: Cli) -> None:
        config = cli.file()
        job_id = cli("--config", config, "publish", "--request-type", "t",
                     "--payload", "hi").out.strip()
        run = cli("--config", config, "peek", job_id)
        assert run.code == 0 and run.err == ""
        data = json.loads(run.out)
        assert set(data) == {"id", "header", "body"}
        assert data["body"] == {"payload": "hi"}

    def test_delete_prints_the_id(self, cli: Cli) -> None:
        config = cli.file()
        job_id = cli("--config", config, "publish", "--request-type", "t").out.strip()
        run = cli("--config", config, "delete", job_id)
        assert (run.code, run.out.strip()) == (0, job_id)

    def test_stats_table_and_json(self, cli: Cli) -> None:
        config = cli.file()
        cli("--config", config, "publish", "--request-type", "t", "--count", "2")
        cli("--config", config, "publish", "--request-type", "t", "--delay", "600")
        counts = json.loads(cli("--config", config, "stats", "--json").out)
        assert {k: counts[k] for k in ("ready", "delayed", "reserved", "buried")} == {
            "ready": 2, "delayed": 1, "reserved": 0, "buried": 0}
        table = cli("--config", config, "stats")
        assert table.code == 0
        rows = dict(line.split() for line in table.out.splitlines())
        assert rows["ready"] == "2" and rows["delayed"] == "1"

    def test_kick_moves_buried_jobs_and_prints_how_many(self, cli: Cli) -> None:
        config = cli.file(shutdown_after_number_of_empty_iterations=1, sleep_duration=0)
        cli("--config", config, "publish", "--request-type", "nobody_handles_this",
            "--count", "3")
        assert cli("--config", config, "worker").code == 0
        assert json.loads(cli("--config", config, "stats", "--json").out)["buried"] == 3
        assert cli("--config", config, "kick", "2").out.strip() == "2"
        assert cli("--config", config, "kick").out.strip() == "1"
        counts = json.loads(cli("--config", config, "stats", "--json").out)
        assert (counts["ready"], counts["buried"]) == (3, 0)

    def test_kick_does_not_touch_delayed_jobs(self, cli: Cli) -> None:
        config = cli.file()
        cli("--config", config, "publish", "--request-type", "t", "--delay", "600")
        assert cli("--config", config, "kick").out.strip() == "0"


class TestDiscoveryCommands:
    def test_plugins_shows_distributions_versions_and_hooks(
        self, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        site = write_distribution(
            tmp_path / "site", "acme-metrics", "3.1.4",
            entry_points={PLUGINS_GROUP: {"acme_metrics": "acme_metrics_plugin"}},
            files={"acme_metrics_plugin.py": """
                from pulpo_core import hookimpl

                @hookimpl
                def pulpo_after_process(message, result, action, app):
                    pass
            """},
        )
        monkeypatch.syspath_prepend(str(site))
        try:
            run = cli("plugins")
        finally:
            sys.modules.pop("acme_metrics_plugin", None)
        assert run.code == 0, run
        rows = [line.split() for line in run.out.splitlines()]
        acme = next(row for row in rows if row[0] == "acme_metrics")
        assert acme[1:4] == ["acme-metrics", "3.1.4", "pulpo_after_process"]
        memory = next(row for row in rows if row[0] == "pulpo_core.defaults.memory")
        assert memory[1] == "pulpo-core"
        assert "pulpo_register_adapters" in " ".join(memory)

    @pytest.fixture
    def broken_plugin(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An installed plugin whose module fails to import."""
        site = write_distribution(
            tmp_path / "site", "acme-broken", "0.0.1",
            entry_points={PLUGINS_GROUP: {"acme_broken": "acme_broken_plugin"}},
            files={"acme_broken_plugin.py": "raise ImportError('needs libfoo')\n"},
        )
        monkeypatch.syspath_prepend(str(site))

    @pytest.mark.usefixtures("broken_plugin")
    def test_plugins_lists_the_others_when_one_is_broken(self, cli: Cli) -> None:
        run = cli("plugins")
        assert run.code == 1
        assert "pulpo_core.defaults.memory" in run.out
        assert "acme_broken" not in run.out
        assert "Traceback" not in run.err
        [error] = run.err.strip().splitlines()
        assert "'acme_broken'" in error and "acme-broken 0.0.1" in error and "libfoo" in error

    @pytest.mark.usefixtures("broken_plugin")
    def test_other_commands_refuse_to_run_with_a_broken_plugin(self, cli: Cli) -> None:
        cli("--config", cli.memory(), "stats").assert_one_sentence(1, "'acme_broken'", "libfoo")

    def test_handlers_shows_request_type_handler_and_origin(
        self, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        site = write_distribution(
            tmp_path / "site", "acme-jobs", "0.9.0",
            entry_points={HANDLERS_GROUP: {"acme_resize": "acme_jobs_mod:resize"}},
        )
        monkeypatch.syspath_prepend(str(site))
        config = cli.memory(handlers={"send_mail": "mail_not_installed_here:send"})
        run = cli("--config", config, "handlers")
        assert run.code == 0, run
        lines = run.out.splitlines()
        send = next(line for line in lines if line.startswith("send_mail "))
        assert "mail_not_installed_here:send" in send and send.rstrip().endswith("config")
        resize = next(line for line in lines if line.startswith("acme_resize "))
        assert "acme_jobs_mod:resize" in resize and "acme-jobs 0.9.0" in resize
        assert "mail_not_installed_here" not in sys.modules


class TestPublishersNeedNoHandlerCode:
    def test_publish_with_a_handler_that_does_not_import(self, cli: Cli) -> None:
        config = cli.memory(handlers={"t": "module_only_on_the_workers:handle"})
        run = cli("--config", config, "publish", "--request-type", "t")
        assert run.code == 0, run

    def test_stats_with_a_handler_that_does_not_import(self, cli: Cli) -> None:
        config = cli.memory(handlers={"t": "module_only_on_the_workers:handle"})
        assert cli("--config", config, "stats").code == 0


# -- subprocesses ---------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def write_config(folder: Path, settings: dict[str, Any]) -> Path:
    path = folder / "pulpo.json"
    path.write_text(json.dumps(settings))
    return path


class TestWorkerCommand:
    def test_a_handler_that_does_not_import_stops_the_worker_with_one_sentence(
        self, folder: Path
    ) -> None:
        config = write_config(folder, {"queue_adapter_type": "memory",
                                       "handlers": {"t": "no_such_module_here:handle"},
                                       "shutdown_after_number_of_empty_iterations": 1})
        done = run_pulpo("--config", config, "worker", cwd=folder)
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if "no_such_module_here" in line]
        assert len(errors) == 1 and "handle" in errors[0]
        assert done.stdout == ""

    def test_a_handler_that_is_not_callable_is_named_in_one_short_sentence(
        self, folder: Path
    ) -> None:
        # json.__doc__ is a long, many-line string: the sentence names the path, not the value.
        config = write_config(folder, {"queue_adapter_type": "memory",
                                       "handlers": {"t": "json:__doc__"},
                                       "shutdown_after_number_of_empty_iterations": 1})
        done = run_pulpo("--config", config, "worker", cwd=folder)
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines() == [
            "pulpo: error: handler 'json:__doc__' for 't' is not callable and has no "
            "handle(message) method (it is of type str)"
        ]

    def test_an_idle_worker_stops_after_its_empty_iterations_and_exits_0(
        self, folder: Path
    ) -> None:
        config = write_config(folder, {"queue_adapter_type": "memory", "sleep_duration": 0.01,
                                       "shutdown_after_number_of_empty_iterations": 3})
        done = run_pulpo("--config", config, "worker", cwd=folder)
        assert done.returncode == 0, done
        assert done.stdout == ""
        assert "worker" in done.stderr  # its log lines

    def test_job_logs_go_to_stderr_and_stdout_stays_empty(self, folder: Path) -> None:
        (folder / "quiet_jobs.py").write_text("def handle(message):\n    return None\n")
        config = write_config(folder, {
            "queue_adapter_type": "file", "sleep_duration": 0.01,
            "shutdown_after_number_of_empty_iterations": 1,
            "file_queue_adapter": {"base_path": str(folder / "queue")},
            "handlers": {"quiet": "quiet_jobs:handle"},
        })
        env = {"PYTHONPATH": str(folder)}
        published = run_pulpo("--config", config, "publish", "--request-type", "quiet",
                              cwd=folder, env=env)
        assert published.returncode == 0, published
        job_id = published.stdout.strip()
        done = run_pulpo("--config", config, "worker", cwd=folder, env=env)
        assert done.returncode == 0, done
        assert done.stdout == ""
        assert any(job_id in line and "quiet" in line and "success" in line
                   for line in done.stderr.splitlines()), done.stderr

    def test_verbose_shows_the_traceback(self, folder: Path) -> None:
        done = run_pulpo("--verbose", "--config", folder / "absent.toml", "stats", cwd=folder)
        assert done.returncode == 2
        assert "Traceback" in done.stderr
        assert "absent.toml" in done.stderr


class TestRuntimeErrors:
    def test_an_unreachable_beanstalkd_exits_1_with_one_sentence(self, folder: Path) -> None:
        port = free_port()
        config = write_config(folder, {
            "queue_adapter_type": "beanstalkd",
            "beanstalkd_queue_adapter": {"host": "127.0.0.1", "port": port,
                                         "reconnect_timeout": 0.5},
        })
        done = run_pulpo("--config", config, "stats", cwd=folder)
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("pulpo: error:")]
        assert len(errors) == 1, done.stderr
        assert f"127.0.0.1:{port}" in errors[0]
        assert done.stdout == ""


class TestStartUpImports:
    SCRIPT = """
import json, sys
from pulpo_core import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("greenstalk", "pyfiglet")
print(json.dumps({name: name in sys.modules for name in heavy}))
"""

    def loaded(self, folder: Path, *args: str) -> dict[str, bool]:
        done = subprocess.run([sys.executable, "-c", self.SCRIPT, *args], cwd=folder,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done
        result: dict[str, bool] = json.loads(done.stdout.splitlines()[-1])
        return result

    def test_the_heavy_libraries_are_installed(self) -> None:
        # Otherwise the tests below would pass for the wrong reason.
        import importlib.util

        for name in ("greenstalk", "pyfiglet"):
            assert importlib.util.find_spec(name) is not None, name

    def test_help_imports_no_adapter_library(self, folder: Path) -> None:
        assert self.loaded(folder, "--help") == {"greenstalk": False, "pyfiglet": False}

    def test_plugin_discovery_imports_no_adapter_library(self, folder: Path) -> None:
        assert self.loaded(folder, "plugins") == {"greenstalk": False, "pyfiglet": False}


class TestJsonNestedTooDeeply:
    """20,000 nested ``[`` is one clear sentence and exit 2, never a RecursionError."""

    DEEP = "[" * 20_000 + "]" * 20_000

    def test_a_body_given_on_the_command_line(self, tmp_path: Path) -> None:
        done = run_pulpo("publish", "--request-type", "t", "--body", '{"a": ' + self.DEEP + "}",
                         cwd=tmp_path)
        assert done.returncode == 2
        assert "nested too deeply" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 3  # usage line, and one sentence

    def test_a_configuration_file(self, tmp_path: Path) -> None:
        config = tmp_path / "deep.json"
        config.write_text('{"handlers": ' + self.DEEP + "}")
        done = run_pulpo("--config", config, "stats", cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"pulpo: error: configuration file {str(config)!r} is not valid: it is nested too "
            "deeply to be read"
        )

    def test_a_message_read_back(self) -> None:
        from pulpo_core import Message

        with pytest.raises(ValueError, match="nested too deeply"):
            Message.from_json('{"header": {"request_type": "t"}, "body": {"a": ' + self.DEEP + "}}")


@pytest.mark.parametrize("ttr", ["0", "-3", "1e12", "4294967296", "inf"])
def test_a_ttr_out_of_bounds_is_one_sentence_and_exit_2_on_every_adapter(
    adapter_config: dict[str, Any], tmp_path: Path, ttr: str
) -> None:
    config = tmp_path / "pulpo.json"
    config.write_text(json.dumps(adapter_config))
    done = run_pulpo("--config", config, "publish", "--request-type", "t", "--ttr", ttr,
                     cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        f"argument --ttr: {ttr!r} is not a ttr: a ttr is a number of seconds above 0 and at "
        "most 4294967295"
    ), done.stderr
    assert "Traceback" not in done.stderr


def test_the_largest_ttr_is_taken_on_every_adapter(
    adapter_config: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "pulpo.json"
    config.write_text(json.dumps(adapter_config))
    done = run_pulpo("--config", config, "publish", "--request-type", "t", "--ttr", "4294967295",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
