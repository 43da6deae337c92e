"""`pulpo --version`: pulpo-core's, every installed plugin's and Python's version, for a bug report.

Run as the real command in a subprocess, with real installed distributions (``.dist-info``
folders on ``PYTHONPATH``) for the broken and unreadable plugins.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
from distributions import write_distribution

from pulpo_core.config import ENV_VAR
from pulpo_core.plugins import DISABLE_ENV, HANDLERS_GROUP, PLUGINS_GROUP, SCHEDULES_GROUP


def pulpo(*args: str, cwd: Path, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, DISABLE_ENV)}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pulpo_core", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def installed_plugin_distributions() -> dict[str, str]:
    found = {}
    for group in (PLUGINS_GROUP, HANDLERS_GROUP, SCHEDULES_GROUP):
        for ep in entry_points(group=group):
            assert ep.dist is not None
            found[ep.dist.name] = ep.dist.version
    found.pop("pulpo-core", None)
    return found


class TestVersionFlag:
    def test_prints_the_core_then_every_plugin_then_python(self, tmp_path: Path) -> None:
        done = pulpo("--version", cwd=tmp_path)
        assert done.returncode == 0, done
        assert done.stderr == ""
        lines = done.stdout.splitlines()
        plugins = installed_plugin_distributions()
        assert {"pulpo-file", "pulpo-beanstalkd", "pulpo-samples"} <= set(plugins)
        assert lines == [
            f"pulpo-core {version('pulpo-core')}",
            *(f"{name} {plugins[name]}" for name in sorted(plugins)),
            f"Python {platform.python_version()} ({platform.python_implementation()}, "
            f"{platform.system()})",
        ]

    def test_the_core_version_is_its_packages(self, tmp_path: Path) -> None:
        import pulpo_core

        first = pulpo("--version", cwd=tmp_path).stdout.splitlines()[0]
        assert first == f"pulpo-core {pulpo_core.__version__}"

    def test_needs_no_command_and_wins_over_one(self, tmp_path: Path) -> None:
        done = pulpo("--version", "stats", cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.startswith("pulpo-core "), done

    def test_listed_in_the_help(self, tmp_path: Path) -> None:
        assert "--version" in pulpo("--help", cwd=tmp_path).stdout


class TestVersionFlagWithBadPlugins:
    @pytest.fixture
    def site(self, tmp_path: Path) -> Path:
        site = tmp_path / "site"
        write_distribution(
            site, "acme-broken", "0.0.1",
            entry_points={PLUGINS_GROUP: {"acme_broken": "acme_broken_plugin"}},
            files={"acme_broken_plugin.py": "raise ImportError('needs libfoo')\n"},
        )
        return site

    def test_a_broken_plugin_is_named_and_the_rest_still_printed(
        self, tmp_path: Path, site: Path
    ) -> None:
        done = pulpo("--version", cwd=tmp_path, site=site)
        assert done.returncode == 0, done
        assert "Traceback" not in done.stderr
        [error] = done.stderr.strip().splitlines()
        assert "'acme_broken'" in error and "libfoo" in error
        lines = done.stdout.splitlines()
        assert "acme-broken 0.0.1 (failed to load)" in lines
        for name, number in installed_plugin_distributions().items():
            if name != "acme-broken":
                assert f"{name} {number}" in lines
        assert lines[0].startswith("pulpo-core ") and lines[-1].startswith("Python ")

    def test_a_version_that_cannot_be_read_shows_unknown(self, tmp_path: Path, site: Path) -> None:
        write_distribution(
            site, "acme-nameless", "9.9.9",
            entry_points={PLUGINS_GROUP: {"acme_nameless": "acme_nameless_plugin"}},
            files={"acme_nameless_plugin.py": ""},
        )
        # Metadata without a Version field: nothing to read.
        metadata = site / "acme_nameless-9.9.9.dist-info" / "METADATA"
        metadata.write_text("Metadata-Version: 2.1\nName: acme-nameless\n")
        done = pulpo("--version", cwd=tmp_path, site=site)
        assert done.returncode == 0, done
        assert "Traceback" not in done.stderr
        assert "acme-nameless unknown" in done.stdout.splitlines()

    def test_a_disabled_plugin_is_listed_as_not_loaded(self, tmp_path: Path) -> None:
        env = {**os.environ, DISABLE_ENV: "pulpo-banner"}
        done = subprocess.run([sys.executable, "-m", "pulpo_core", "--version"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done
        assert f"pulpo-banner {version('pulpo-banner')} (not loaded)" in done.stdout.splitlines()


    def test_a_schedules_package_is_listed(self, tmp_path: Path) -> None:
        site = tmp_path / "site"
        write_distribution(site, "acme-nightly", "2.3.4",
                           entry_points={SCHEDULES_GROUP: {"nightly": "acme_nightly:NIGHTLY"}},
                           files={"acme_nightly.py": "NIGHTLY = {}\n"})
        done = pulpo("--version", cwd=tmp_path, site=site)
        assert done.returncode == 0, done
        assert "acme-nightly 2.3.4" in done.stdout.splitlines()
