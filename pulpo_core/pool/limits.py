"""Time limits: which applies to a job, and running a handler so it is settled at its deadline."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pulpo_core.message import Message
from pulpo_core.pool.async_runner import RUNNER, RanOut
from pulpo_core.pool.settings import WorkerSettings
from pulpo_core.result import Result

#: The attribute a handler sets for a limit of its own: ``handler.time_limit = 30``.
HANDLER_ATTRIBUTE = "time_limit"


class JobTimeout(Exception):
    """A job ran past its time limit."""


def time_limit_error(seconds: float) -> str:
    """The reason a job over its limit fails with (and is buried with, in the end)."""
    return f"time limit of {seconds:g} s exceeded"


def limit_for(settings: WorkerSettings, request_type: str | None, target: object) -> float:
    """The job's limit in seconds (0: none): the handler's, else its request type's, else the
    section's ``time_limit``."""
    own = getattr(target, HANDLER_ATTRIBUTE, None)
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return float(own)
    if request_type is not None and request_type in settings.time_limits:
        return float(settings.time_limits[request_type])
    return settings.time_limit


def is_async(call: object) -> bool:
    """Whether the handler (function or object with ``handle``) is ``async def``."""
    handle = getattr(call, "handle", None) if not inspect.isfunction(call) else None
    return inspect.iscoroutinefunction(handle if callable(handle) else call)


def run_limited(run: Callable[[Message], Any], message: Message, seconds: float) -> Any:
    """``run(message)``, but give up at ``seconds``: the job fails with the time limit reason
    and the slot goes on without waiting for the handler's thread (or its task is cancelled)."""
    if seconds <= 0:
        return run(message)
    future: Future[Any] = Future()

    def target() -> None:
        try:
            future.set_result(run(message))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=target, name="pulpo-limited", daemon=True).start()
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        return Result.transient(JobTimeout(time_limit_error(seconds)))


def await_limited(coroutine: Any, seconds: float) -> Any:
    """Run an async handler's coroutine on the process's loop and wait for its outcome; its
    task is cancelled at its time limit (``seconds``, 0: none)."""
    try:
        return RUNNER.run(coroutine, seconds)
    except RanOut:
        return Result.transient(JobTimeout(time_limit_error(seconds)))
