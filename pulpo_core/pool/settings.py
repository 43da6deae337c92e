"""The ``[worker]`` section: the pool's shape and limits (one owner for their defaults)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from pulpo_core.config import Config, InvalidValue, at_least, between, load_section

SECTION = "worker"
#: The most threads (or async slots) one process runs; more is almost surely a typo.
MAX_THREADS = 1024
MAX_PROCESSES = 256
DEFAULT_SHUTDOWN_TIMEOUT = 30.0


def _limits(_instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
    for request_type, seconds in value.items():
        ok = isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0
        if not ok:
            raise InvalidValue(
                f"{attribute.name}.{request_type}", "a number of seconds above 0", seconds
            )


@attrs.frozen
class WorkerSettings:
    """``[worker]``: P processes x T threads, time limits and child recycling."""

    processes: int = attrs.field(default=1, validator=between(1, MAX_PROCESSES))
    threads: int = attrs.field(default=1, validator=between(1, MAX_THREADS))
    #: Seconds a job may run (0: no limit); a handler's ``time_limit`` attribute and
    #: ``time_limits.<request type>`` win over it.
    time_limit: float = attrs.field(default=0.0, validator=at_least(0, "seconds"))
    time_limits: dict[str, float] = attrs.field(factory=dict, validator=_limits)
    shutdown_timeout: float = attrs.field(
        default=DEFAULT_SHUTDOWN_TIMEOUT, validator=at_least(0, "seconds")
    )
    #: Recycle a child process after this many jobs (0: never).
    max_jobs_per_child: int = attrs.field(default=0, validator=at_least(0))
    #: Recycle a child process once its resident memory passes this many MiB (0: never).
    max_memory_per_child: int = attrs.field(default=0, validator=at_least(0, "MiB"))


def worker_settings(config: Config) -> WorkerSettings:
    """The checked ``[worker]`` section of ``config``."""
    return load_section(SECTION, config.section(SECTION), WorkerSettings)


def cpu_count() -> int:
    """What ``--processes auto`` means: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
