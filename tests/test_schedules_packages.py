"""Schedules a handler package declares in the ``pulpo.schedules`` entry-point group.

Each test lays out an installed distribution by hand (a module and its ``.dist-info`` with
``entry_points.txt``) in a temporary folder and runs ``pulpo`` in a fresh interpreter that sees
it only through ``PYTHONPATH``: importlib.metadata finds it as it finds any installed package.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pulpo_core import Pulpo

MODULE = '''
TICK = {"every": 3600, "request_type": "acme.report", "body": {"kind": "hourly"}}
BROKEN = {"every": 0, "request_type": "acme.report"}
NOT_A_TABLE = ["every", 60]
'''


def install(site: Path, schedules: dict[str, str]) -> None:
    """A distribution ``acme-reports 2.0`` whose entry points are ``schedules``."""
    info = site / "acme_reports-2.0.dist-info"
    info.mkdir(parents=True)
    (site / "acme_reports.py").write_text(MODULE)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-reports\nVersion: 2.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in schedules.items())
    (info / "entry_points.txt").write_text(f"[pulpo.schedules]\n{lines}")


def config_file(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "pulpo.toml"
    config.write_text(f'[file_queue_adapter]\nbase_path = "{tmp_path / "q"}"\n{extra}')
    return config


def environment(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULPO_")}
    env["PYTHONPATH"] = str(site)
    return env


def pulpo(site: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulpo_core", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, env=environment(site),
    )


def test_a_package_schedule_is_listed_with_its_origin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, {"hourly-report": "acme_reports:TICK"})
    done = pulpo(site, config_file(tmp_path), "schedules")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "hourly-report: acme.report, every 3600 s, time zone UTC, catch_up latest, "
        "from the entry point of acme-reports 2.0"
    )
    rows = [line.split(None, 3) for line in pulpo(site, config_file(tmp_path), "plugins")
            .stdout.splitlines()]
    assert ["(schedules)", "acme-reports", "2.0", "pulpo.schedules: hourly-report"] in rows


def test_the_scheduler_publishes_a_package_schedule(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, {"hourly-report": "acme_reports:TICK"})
    config = config_file(tmp_path)
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "pulpo_core", "--config", str(config), "scheduler"],
        stderr=subprocess.PIPE, text=True, env=environment(site),
    )
    try:
        deadline = time.monotonic() + 60
        ready = 0
        while time.monotonic() < deadline and not ready:
            app = Pulpo({"file_queue_adapter": {"base_path": str(tmp_path / "q")}})
            ready = app.queue_adapter.stats()["ready"]
            app.close()
            time.sleep(0.2)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        _, stderr = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, stderr
    assert ready == 1, f"the package's schedule was not published: {stderr}"
    app = Pulpo({"file_queue_adapter": {"base_path": str(tmp_path / "q")}})
    job = app.queue_adapter.dequeue()
    app.close()
    assert job is not None
    assert (job.request_type, job.body, job.header["schedule"]) == (
        "acme.report", {"kind": "hourly"}, "hourly-report")


def test_the_configuration_replaces_a_package_schedule_of_the_same_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, {"hourly-report": "acme_reports:TICK"})
    config = config_file(tmp_path, '[schedules.hourly-report]\nevery = 60\nrequest_type = "x"\n')
    done = pulpo(site, config, "schedules")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "hourly-report: x, every 60 s, time zone UTC, catch_up latest"
    )


def test_a_bad_package_schedule_exits_2_naming_it_and_its_package(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, {"broken": "acme_reports:BROKEN"})
    done = pulpo(site, config_file(tmp_path), "schedules")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pulpo: error: schedule 'broken': 'every' must be a whole number of at least 1, not 0 "
        "(declared by the entry point of acme-reports 2.0)"
    )
    assert "Traceback" not in done.stderr


def test_a_package_schedule_that_is_no_table_or_missing_exits_2(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, {"listed": "acme_reports:NOT_A_TABLE"})
    done = pulpo(site, config_file(tmp_path), "schedules")
    assert done.returncode == 2
    assert "schedule 'listed' (entry point of acme-reports 2.0): 'acme_reports:NOT_A_TABLE' " \
        "must be a mapping" in done.stderr
    assert "Traceback" not in done.stderr
    install_again = tmp_path / "site2"
    install(install_again, {"missing": "acme_reports:GONE"})
    done = pulpo(install_again, config_file(tmp_path), "schedules")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "pulpo: error: schedule 'missing' (entry point of acme-reports 2.0) cannot be loaded "
        "from 'acme_reports:GONE': AttributeError"
    ), done.stderr
