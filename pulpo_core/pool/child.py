"""A worker process: run by the supervisor (a child) or alone (``--processes 1``)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from pulpo_core.pool.settings import WorkerSettings
from pulpo_core.pool.supervisor import EXIT_RECYCLE

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo

#: Set in a child's environment by its supervisor.
CHILD_ENV = "PULPO_POOL_CHILD"
IS_CHILD = os.environ.get(CHILD_ENV) == "1"


def child_command(config: str | None, verbose: bool, settings: WorkerSettings) -> list[str]:
    """The command line of one child: the same settings, one process, this pool's threads."""
    os.environ[CHILD_ENV] = "1"  # inherited by the children the supervisor starts
    command = [sys.executable, "-m", "pulpo_core"]
    if config:
        command += ["--config", config]
    if verbose:
        command.append("--verbose")
    return [
        *command,
        "worker",
        "--processes",
        "1",
        "--threads",
        str(settings.threads),
        "--time-limit",
        repr(settings.time_limit),
    ]


def run_child(app: Pulpo) -> int:
    """Run the worker in this process; exit code :data:`EXIT_RECYCLE` when a child recycles."""
    from pulpo_core.worker import run_worker

    try:
        recycled = run_worker(app)
    finally:
        app.close()
    return EXIT_RECYCLE if recycled and IS_CHILD else 0
