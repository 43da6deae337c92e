"""The worker loop: dequeue, handle, settle; sleep when empty; stop cleanly on a signal."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

from pulpo_core.adapter import Flushing, QueueAdapter, Releasing
from pulpo_core.errors import AdapterError
from pulpo_core.pool.settings import worker_settings
from pulpo_core.pool.slots import Recycler, run_slots

if TYPE_CHECKING:
    from pulpo_core.host import App
    from pulpo_core.message import Message

log = logging.getLogger("pulpo.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: The exit code of a worker stopped by a second SIGINT.
EXIT_INTERRUPTED = 130


@contextlib.contextmanager
def _stop_on_signals(app: App) -> Iterator[None]:
    """SIGTERM and SIGINT ask the worker to stop after the running job (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask_to_stop(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and app.stopping.is_set():
            # A second Ctrl-C: stop at once; the queue gets the running jobs back as this
            # process's connections close (beanstalkd) or their leases end (file).
            log.warning("received SIGINT again: stopping now, running jobs go back to the queue")
            os._exit(EXIT_INTERRUPTED)
        log.info(
            "received %s: finishing the running job(s), then stopping",
            signal.Signals(signum).name,
        )
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


def run_worker(app: App) -> bool:
    """Process jobs until the app is asked to stop or the queue stays empty long enough.

    A ``stop()`` that comes before this starts is kept: the loop then takes no job. The stop
    flag is cleared when the worker ends, so the app can be started again. With ``threads``
    above 1 (section ``[worker]``) that many slots run at once, each with its own adapter.
    Returns whether the worker stopped to be recycled (``max_jobs_per_child``,
    ``max_memory_per_child``).
    """
    config = app.config
    settings = worker_settings(config)
    recycler = Recycler(app, settings)
    if not config.enable_output_buffering:
        _line_buffer_output()
    with _stop_on_signals(app):
        try:
            app.load_handlers()
            app.hook.pulpo_worker_start(app=app)
            log.info(
                "worker started on the %s adapter: pool of %d process(es) x %d thread(s), "
                "pid %d",
                config.queue_adapter_type,
                settings.processes,
                settings.threads,
                os.getpid(),
            )
            processed = 0
            adapter: QueueAdapter | None = None
            try:
                if settings.threads > 1:
                    processed = run_slots(app, settings, _loop, recycler)
                else:
                    adapter = app.queue_adapter
                    processed = _loop(app, adapter, recycler.after_job)
            finally:
                if adapter is not None:
                    _flush(adapter)
                app.hook.pulpo_worker_stop(app=app)
                log.info("worker stopped after %d job(s)", processed)
        finally:
            app.stopping.clear()
    return recycler.reason is not None


def _loop(app: App, adapter: QueueAdapter, after_job: Callable[[], None]) -> int:
    config = app.config
    limit = config.shutdown_after_number_of_empty_iterations
    pause = max(config.sleep_duration, 0.1)
    empty = 0
    processed = 0
    while not app.stopping.is_set():
        try:
            message = adapter.dequeue()
        except AdapterError as error:
            log.warning("dequeue failed, retrying after %.1fs: %s", pause, error)
            app.stopping.wait(pause)
            continue
        except Exception as error:
            # A bug or an error the adapter did not wrap: the worker stays up to retry (a
            # KeyboardInterrupt or SystemExit is no Exception and still ends it).
            log.exception("dequeue failed unexpectedly, retrying after %.1fs: %r", pause, error)
            app.stopping.wait(pause)
            continue
        if message is None:
            empty += 1
            if limit and empty >= limit:
                log.info("no job in %d consecutive iteration(s): shutting down", empty)
                break
            app.stopping.wait(config.sleep_duration)
            continue
        if app.stopping.is_set():
            # Asked to stop while the dequeue waited: the job has not started, so it goes
            # back unrun rather than keeping the worker past its stop.
            _hand_back(adapter, message)
            break
        empty = 0
        try:
            app.handle_message(message)
        except AdapterError as error:
            # The job could not be settled (deleted meanwhile, lease lost, queue gone): the
            # queue still has it or it is gone for good; either way the worker goes on.
            log.error("job %s could not be settled: %s", message.id, error)
        except Exception:
            # A bug in an adapter or plugin while settling: the job is still reserved and goes
            # back to ready when its lease runs out; the worker goes on with the next one.
            log.exception("job %s could not be settled", message.id)
        processed += 1
        after_job()
    return processed


def _hand_back(adapter: QueueAdapter, message: Message) -> None:
    """Return a job taken but not run to ready: ``release`` if the adapter has it."""
    try:
        if isinstance(adapter, Releasing):
            adapter.release(message)
            log.info("stopping: job %s handed back unrun", message.id)
        else:
            log.info(
                "stopping: the %s adapter has no release, so job %s goes back through "
                "rollback, which counts an attempt",
                type(adapter).__name__,
                message.id,
            )
            adapter.rollback(message, 0)
    except Exception as error:
        # Still reserved: the adapter gives it back when its lease runs out.
        log.warning(
            "stopping: job %s could not be handed back: %s",
            message.id,
            error,
            exc_info=not isinstance(error, AdapterError),
        )


def _flush(adapter: QueueAdapter) -> None:
    """Let the adapter finish what it left pending (its optional ``flush``: beanstalkd reads
    the answers owed for its deletes)."""
    if not isinstance(adapter, Flushing):
        return
    try:
        adapter.flush()
    except Exception as error:
        log.warning(
            "the queue adapter could not flush: %s",
            error,
            exc_info=not isinstance(error, AdapterError),
        )
