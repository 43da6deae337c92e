"""``pulpo worker``: run one worker process, or start and supervise a pool of them."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pulpo_core.pool.child import IS_CHILD, child_command, run_child
from pulpo_core.pool.supervisor import Supervisor

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo

log = logging.getLogger("pulpo.pool")
#: Builds the app from the command line, with overrides of config sections.
MakeApp = Callable[[argparse.Namespace, "dict[str, Any] | None"], "Pulpo"]


def run_worker_command(args: argparse.Namespace, make_app: MakeApp) -> int:
    """``pulpo worker``: one worker process, or the supervisor of a pool of them."""
    flags = {"processes": args.processes, "threads": args.threads, "time_limit": args.time_limit}
    overrides = {key: value for key, value in flags.items() if value is not None}
    app = make_app(args, {"worker": overrides} if overrides else None)
    settings = app.worker_settings
    supervised = settings.processes > 1 or settings.max_jobs_per_child or (
        settings.max_memory_per_child
    )
    if IS_CHILD or not supervised:
        return run_child(app)
    app.close()
    command = child_command(args.config, args.verbose, settings)
    log.info(
        "pool of %d process(es) x %d thread(s) on the %s adapter",
        settings.processes,
        settings.threads,
        app.config.queue_adapter_type,
    )
    # The app (its adapter closed) goes on to the supervisor's hooks: plugins see the pool start,
    # each child end and the pool stop.
    try:
        return Supervisor(command, settings.processes, settings.shutdown_timeout, app).run()
    finally:
        app.close()  # whatever a supervisor hook opened
