"""The worker loop: dequeue, handle, settle; sleep when empty; stop cleanly on a signal."""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from pulpo_core.errors import AdapterError

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo

log = logging.getLogger("pulpo.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _stop_on_signals(app: Pulpo) -> Iterator[None]:
    """SIGTERM and SIGINT ask the worker to stop after the running job (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask_to_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the running job, then stopping",
                 signal.Signals(signum).name)
        app.stop()

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _line_buffer_output() -> None:
    """Make stdout and stderr line-buffered so output appears at once under a supervisor."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)


def run_worker(app: Pulpo) -> None:
    """Process jobs until the app is asked to stop or the queue stays empty long enough."""
    config = app.config
    if not config.enable_output_buffering:
        _line_buffer_output()
    app.stopping.clear()
    with _stop_on_signals(app):
        app.load_handlers()
        app.hook.pulpo_worker_start(app=app)
        log.info("worker started on the %s adapter", config.queue_adapter_type)
        processed = 0
        try:
            processed = _loop(app)
        finally:
            app.hook.pulpo_worker_stop(app=app)
            log.info("worker stopped after %d job(s)", processed)


def _loop(app: Pulpo) -> int:
    config = app.config
    limit = config.shutdown_after_number_of_empty_iterations
    adapter = app.queue_adapter
    empty = 0
    processed = 0
    while not app.stopping.is_set():
        try:
            message = adapter.dequeue()
        except AdapterError as error:
            log.warning("dequeue failed, retrying after %.1fs: %s", config.sleep_duration, error)
            app.stopping.wait(max(config.sleep_duration, 0.1))
            continue
        if message is None:
            empty += 1
            if limit and empty >= limit:
                log.info("no job in %d consecutive iteration(s): shutting down", empty)
                break
            app.stopping.wait(config.sleep_duration)
            continue
        empty = 0
        try:
            app.handle_message(message)
        except AdapterError as error:
            # The job could not be settled (deleted meanwhile, lease lost, queue gone): the
            # queue still has it or it is gone for good; either way the worker goes on.
            log.error("job %s could not be settled: %s", message.id, error)
        processed += 1
    return processed
