"""pulpo-banner: the worker prints banner_name in banner_font, drawn by pyfiglet, as it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyfiglet
import pytest

from pulpo_core import ConfigError, Message, Pulpo

MakeApp = Callable[..., Pulpo]
BANNER = {"enable_banner": True, "banner_name": "pulpo test", "banner_font": "slant"}
STOP_WHEN_EMPTY = {"shutdown_after_number_of_empty_iterations": 1, "sleep_duration": 0}


def run_command(
    settings: dict[str, Any], tmp_path: Path, *command: str
) -> subprocess.CompletedProcess[str]:
    """``pulpo --config <settings as JSON> <command>`` in a fresh interpreter."""
    config = tmp_path / "pulpo.json"
    config.write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULPO_")}
    return subprocess.run(
        [sys.executable, "-m", "pulpo_core", "--config", str(config), *command],
        capture_output=True, text=True, timeout=60, env=env,
    )


class TestBanner:
    def test_a_worker_prints_it_exactly_as_pyfiglet_renders_it(
        self, adapter_config: dict[str, Any], tmp_path: Path
    ) -> None:
        done = run_command({**adapter_config, **BANNER, **STOP_WHEN_EMPTY}, tmp_path, "worker")
        assert done.returncode == 0, done.stderr
        assert done.stdout == pyfiglet.figlet_format("pulpo test", font="slant")

    def test_comes_before_the_first_job(
        self, make_app: MakeApp, capsys: pytest.CaptureFixture[str]
    ) -> None:
        app = make_app({"job": lambda message: print("job ran")}, **BANNER, **STOP_WHEN_EMPTY)
        app.publish(Message("job"))
        app.start()
        assert capsys.readouterr().out == pyfiglet.figlet_format("pulpo test", font="slant") + (
            "job ran\n"
        )

    def test_pyfiglet_is_imported_only_by_a_worker_that_draws_it(self, tmp_path: Path) -> None:
        probe = (
            "import sys\n"
            "from pulpo_core import Pulpo\n"
            "app = Pulpo({'queue_adapter_type': 'memory', 'enable_banner': %s,\n"
            "             'shutdown_after_number_of_empty_iterations': 1, 'sleep_duration': 0})\n"
            "app.start()\n"
            "print('pyfiglet' in sys.modules, file=sys.stderr)\n"
        )
        imported = []
        for enabled in ("False", "True"):
            done = subprocess.run([sys.executable, "-c", probe % enabled],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            imported.append(done.stderr.strip().splitlines()[-1])
        assert imported == ["False", "True"]


class TestUnknownFont:
    def test_stops_the_start_before_any_job_runs(self, make_app: MakeApp) -> None:
        ran: list[Message] = []
        app = make_app({"job": ran.append}, **{**BANNER, "banner_font": "no-such-font"},
                       **STOP_WHEN_EMPTY)
        app.publish(Message("job"))
        with pytest.raises(ConfigError, match=r"'no-such-font'.*pyfiglet --list_fonts"):
            app.start()
        assert ran == []
        assert app.queue_adapter.stats()["ready"] == 1

    def test_the_worker_command_exits_2_with_one_sentence_and_no_traceback(
        self, adapter_config: dict[str, Any], tmp_path: Path
    ) -> None:
        settings = {**adapter_config, **BANNER, **STOP_WHEN_EMPTY, "banner_font": "no-such-font"}
        done = run_command(settings, tmp_path, "worker")
        assert done.returncode == 2
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("pulpo: error: ")
        assert "'no-such-font'" in lines[0]
        assert "pyfiglet --list_fonts" in lines[0]


class TestListing:
    def test_the_plugins_command_shows_it_with_its_version_and_hook(self) -> None:
        done = subprocess.run([sys.executable, "-m", "pulpo_core", "plugins"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows = [line.split(None, 3) for line in done.stdout.splitlines()]
        assert ["banner", "pulpo-banner", "0.1.0",
                "pulpo_register_config_sections, pulpo_worker_start"] in rows


class TestItsKeys:
    """The banner's keys are pulpo-banner's, declared through the config hook, not the core's."""

    @pytest.mark.parametrize(("key", "value"), [("enable_banner", "yes"), ("banner_name", 3),
                                                ("banner_name", ""), ("banner_font", None)])
    def test_a_bad_value_is_refused_naming_the_key(self, key: str, value: Any) -> None:
        with pytest.raises(ConfigError, match=f"'{key}'") as caught:
            Pulpo({"queue_adapter_type": "memory", key: value})
        assert "\n" not in str(caught.value)

    def test_the_defaults_come_from_the_plugin(self) -> None:
        config = Pulpo({"queue_adapter_type": "memory"}).config
        assert (config.enable_banner, config.banner_name, config.banner_font) == (
            False, "pulpo", "standard")

    def test_without_the_plugin_they_are_keys_of_a_plugin_not_installed(
        self, tmp_path: Path
    ) -> None:
        config = tmp_path / "pulpo.json"
        config.write_text(json.dumps({"queue_adapter_type": "memory", "enable_banner": True}))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PULPO_")},
               "PULPO_DISABLE_PLUGINS": "banner"}
        done = subprocess.run([sys.executable, "-m", "pulpo_core", "--config", str(config),
                               "stats"], capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 2, done.stderr
        assert "'enable_banner': no installed plugin declares it" in done.stderr
        assert "Traceback" not in done.stderr
