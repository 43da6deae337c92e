"""Start-up stays light: the command and plugin discovery import no adapter library."""

from __future__ import annotations

import subprocess
import sys

import pulpo_core

#: Libraries only adapters and plugins need, inside their hooks.
HEAVY = ("greenstalk", "pyfiglet")


def imported_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Run ``code`` in a fresh interpreter; which of ``modules`` it imported."""
    probe = (
        f"{code}\n"
        "import sys\n"
        f"print('IMPORTED:' + ','.join(m for m in {modules!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("IMPORTED:"))
    return [name for name in line.removeprefix("IMPORTED:").split(",") if name]


HELP = (
    "from pulpo_core.cli import main\n"
    "try:\n"
    "    main(['--help'])\n"
    "except SystemExit:\n"
    "    pass"
)


class TestCommandStartUp:
    def test_help_imports_no_adapter_library(self) -> None:
        assert imported_after(HELP, HEAVY) == []

    def test_help_imports_neither_the_app_nor_cattrs(self) -> None:
        assert imported_after(HELP, ("cattrs", "pulpo_core.app", "pulpo_core.message")) == []

    def test_plugin_discovery_imports_no_adapter_library(self) -> None:
        code = "from pulpo_core.plugins import build_plugin_manager\nbuild_plugin_manager()"
        assert imported_after(code, HEAVY) == []


class TestLazyPackage:
    def test_hookimpl_does_not_import_the_message_model(self) -> None:
        code = "from pulpo_core import hookimpl"
        assert imported_after(code, ("cattrs", "pulpo_core.message", "pulpo_core.app")) == []

    def test_every_public_name_resolves(self) -> None:
        for name in pulpo_core.__all__:
            assert getattr(pulpo_core, name) is not None, name
        assert set(pulpo_core.__all__) <= set(dir(pulpo_core))

    def test_an_unknown_name_is_an_attribute_error(self) -> None:
        try:
            pulpo_core.NoSuchName  # noqa: B018
        except AttributeError as error:
            assert "NoSuchName" in str(error)
        else:
            raise AssertionError("pulpo_core.NoSuchName did not raise AttributeError")
