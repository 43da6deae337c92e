"""T slots in one process: each a thread with its own adapter, taking a job only when free."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pulpo_core.pool.settings import WorkerSettings

if TYPE_CHECKING:
    from pulpo_core.adapter import QueueAdapter
    from pulpo_core.host import App

log = logging.getLogger("pulpo.pool")

#: A slot's loop: takes jobs through the adapter until the app stops; returns how many it ran.
Loop = Callable[["App", "QueueAdapter", Callable[[], None]], int]


def resident_mib() -> float:
    """This process's resident memory in MiB (Linux ``/proc``; 0 when unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)


class Recycler:
    """Counts the process's jobs and asks it to stop once ``max_jobs_per_child`` or
    ``max_memory_per_child`` is reached (after the running jobs; a supervisor replaces it)."""

    def __init__(self, app: App, settings: WorkerSettings) -> None:
        self._app = app
        self._settings = settings
        self._lock = threading.Lock()
        self.jobs = 0
        self.reason: str | None = None

    def after_job(self) -> None:
        settings = self._settings
        with self._lock:
            self.jobs += 1
            if self.reason is not None:
                return
            if settings.max_jobs_per_child and self.jobs >= settings.max_jobs_per_child:
                self.reason = f"ran {self.jobs} job(s), max_jobs_per_child"
            elif settings.max_memory_per_child:
                rss = resident_mib()
                if rss > settings.max_memory_per_child:
                    self.reason = (
                        f"uses {rss:.0f} MiB, above max_memory_per_child "
                        f"{settings.max_memory_per_child} MiB"
                    )
            if self.reason is None:
                return
        log.info("recycling this worker process: it %s", self.reason)
        self._app.stop()


def run_slots(app: App, settings: WorkerSettings, loop: Loop, recycler: Recycler) -> int:
    """Run ``settings.threads`` slots until the app stops; once asked to stop, wait for the
    running jobs at most ``shutdown_timeout`` seconds. Returns how many jobs were run."""
    counts: list[int] = []
    new_adapter: Callable[[], QueueAdapter] = app.new_adapter  # type: ignore[attr-defined]
    drop_adapter: Callable[[], None] = app.drop_adapter  # type: ignore[attr-defined]

    def slot() -> None:
        try:
            adapter = new_adapter()
        except Exception as error:
            log.error("a worker slot could not open the queue: %s", error)
            app.stop()
            return
        try:
            counts.append(loop(app, adapter, recycler.after_job))
        except Exception:
            log.exception("a worker slot failed")
            app.stop()
        finally:
            try:
                drop_adapter()
            except Exception as error:
                log.warning("a worker slot could not close its adapter: %s", error)

    threads = [
        threading.Thread(target=slot, name=f"pulpo-slot-{number}", daemon=True)
        for number in range(settings.threads)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads) and not app.stopping.is_set():
        app.stopping.wait(0.2)
    deadline = time.monotonic() + settings.shutdown_timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    running = sum(thread.is_alive() for thread in threads)
    if running:
        log.warning(
            "%d job(s) still running after shutdown_timeout %gs: leaving them to the queue "
            "(released when this process exits)",
            running,
            settings.shutdown_timeout,
        )
    return sum(counts)
