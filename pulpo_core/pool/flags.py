"""The ``pulpo worker`` pool flags: ``--processes N|auto`` and ``--threads N``, checked before
anything starts (argparse turns the error into one sentence and exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _bounded(text: str, high: int, what: str) -> int:
    value = _whole(text)
    if not 1 <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what} from 1 to {high}")
    return value


def processes_flag(text: str) -> int:
    from pulpo_core.pool.settings import MAX_PROCESSES, cpu_count  # (cheap `pulpo --help`)

    if text == "auto":
        return min(cpu_count(), MAX_PROCESSES)
    try:
        return _bounded(text, MAX_PROCESSES, "processes")
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither 'auto' nor a number of processes from 1 to {MAX_PROCESSES}"
        ) from None


def threads_flag(text: str) -> int:
    from pulpo_core.pool.settings import MAX_THREADS

    return _bounded(text, MAX_THREADS, "threads")


def add_pool_flags(worker: argparse.ArgumentParser, seconds: Callable[[str], float]) -> None:
    """``--processes``, ``--threads`` and ``--time-limit`` of ``pulpo worker``."""
    worker.add_argument(
        "--processes",
        type=processes_flag,
        metavar="N|auto",
        help="worker processes under a supervisor (auto: one per CPU; default [worker] processes)",
    )
    worker.add_argument(
        "--threads",
        type=threads_flag,
        metavar="N",
        help="jobs each process runs at once (default [worker] threads)",
    )
    worker.add_argument(
        "--time-limit",
        type=seconds,
        metavar="SECONDS",
        help="stop and fail a job running longer (0: no limit; default [worker] time_limit)",
    )
