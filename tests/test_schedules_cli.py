"""`pulpo scheduler`, `pulpo schedules` and `pulpo worker --with-scheduler` as a user runs them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from pulpo_core import Pulpo


def write_config(tmp_path: Path, schedules: str) -> Path:
    config = tmp_path / "pulpo.toml"
    config.write_text(f'[file_queue_adapter]\nbase_path = "{tmp_path / "q"}"\n{schedules}')
    return config


def pulpo(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pulpo_core", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)


class TestSchedulesCommand:
    def test_it_prints_next_fire_times_in_the_schedules_zone(self, tmp_path: Path) -> None:
        config = write_config(tmp_path, '[schedules.nightly]\ncron = "30 2 * * *"\n'
                              'timezone = "Europe/Berlin"\nrequest_type = "echo"\n')
        done = pulpo(config, "schedules", "--next", "2")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("nightly: echo, cron '30 2 * * *', time zone Europe/Berlin")
        nexts = [line.split()[1] for line in lines if line.strip().startswith("next ")]
        assert len(nexts) == 2
        assert all("T02:30:00+0" in moment for moment in nexts)
        assert "last tick" in lines[-1]

    def test_it_shows_the_job_of_the_last_tick_published(self, tmp_path: Path) -> None:
        config = write_config(tmp_path, '[schedules.tick]\nevery = 3600\nrequest_type = "e"\n')
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "pulpo_core", "--config", str(config), "scheduler"],
            stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                app = Pulpo({"file_queue_adapter": {"base_path": str(tmp_path / "q")}})
                ready = app.queue_adapter.stats()["ready"]
                app.close()
                if ready:
                    break
                time.sleep(0.2)
        finally:
            scheduler.send_signal(signal.SIGTERM)
            _, stderr = scheduler.communicate(timeout=30)
        assert scheduler.returncode == 0, stderr
        assert "'e', which has no known handler" in stderr  # a warning only
        done = pulpo(config, "schedules")
        assert "last published" in done.stdout and "as job " in done.stdout

    def test_a_bad_schedule_exits_2_naming_it_before_anything_runs(self, tmp_path: Path) -> None:
        config = write_config(tmp_path, '[schedules.broken]\nevery = 0\nrequest_type = "e"\n')
        for command in ("scheduler", "schedules", "worker"):
            done = pulpo(config, command)
            assert done.returncode == 2
            assert "schedule 'broken'" in done.stderr and "Traceback" not in done.stderr


class TestWorkerWithScheduler:
    def test_the_worker_runs_the_ticks_it_publishes_and_stops_on_sigterm(
        self, tmp_path: Path
    ) -> None:
        config = write_config(tmp_path, '[schedules.tick]\nevery = 1\nrequest_type = "echo"\n')
        worker = subprocess.Popen(
            [sys.executable, "-m", "pulpo_core", "--config", str(config), "worker",
             "--with-scheduler"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(5)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
        assert worker.returncode == 0, stderr
        assert "type=echo outcome=success" in stderr
        assert "scheduler stopped" in stderr
