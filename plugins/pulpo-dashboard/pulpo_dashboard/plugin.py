"""The plugin pulpo loads: registers the ``pulpo dashboard`` command.

The web server and the templates are imported when the command runs, never here, so ``pulpo
--help`` and plugin discovery stay cheap.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pulpo_core.markers import hookimpl

if TYPE_CHECKING:
    from pulpo_core.hookspecs import RegisterCommand, RegisterWorkerOption
    from pulpo_core.host import App

HELP = "serve a web page of the queue: counts, jobs by state, buried jobs to kick or delete"


def _arguments(parser: argparse.ArgumentParser) -> None:
    from pulpo_dashboard.cli import add_arguments

    add_arguments(parser)


def _run(args: argparse.Namespace, app: App) -> int:
    from pulpo_dashboard.cli import run

    return run(args, app)


@hookimpl
def pulpo_register_cli(
    register_command: RegisterCommand, register_worker_option: RegisterWorkerOption
) -> None:
    register_command("dashboard", HELP, _run, _arguments)
