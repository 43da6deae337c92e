"""One event loop per worker process for ``async def`` handlers, and a watch on its lag."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("pulpo.pool")

#: A loop that falls this many seconds behind has a handler blocking it (a sync sleep).
LAG_WARNING = 1.0
_TICK = 0.25


class RanOut(Exception):
    """A coroutine run with a timeout ran past it (its task is being cancelled)."""


class _Waiter:
    """One coroutine run for a slot thread: the task on the loop, and a lock the slot thread
    waits on, released when the task is done (lighter than a ``concurrent.futures.Future``
    chained to the task: no condition variable, no second future, one call onto the loop)."""

    __slots__ = ("coroutine", "done", "loop", "task")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop):
        self.coroutine = coroutine
        self.loop = loop
        self.done = threading.Lock()
        self.done.acquire()
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:  # on the loop
        self.task = task = self.loop.create_task(self.coroutine)
        task.add_done_callback(self.finish)

    def finish(self, _task: asyncio.Task[Any]) -> None:  # on the loop
        self.done.release()

    def cancel(self) -> None:  # on the loop, after start (calls run in order)
        if self.task is not None:
            self.task.cancel()


class AsyncRunner:
    """Runs coroutines from any thread on one loop in a daemon thread (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 0.0) -> Any:
        """Run the coroutine on the loop and wait for it: its result, or its exception raised
        here. With ``timeout`` (seconds, 0: none) the task is cancelled when it runs longer,
        and :class:`RanOut` raised at once (the task's cancellation happens on the loop)."""
        loop = self._ensure()
        waiter = _Waiter(coroutine, loop)
        loop.call_soon_threadsafe(waiter.start)
        if not waiter.done.acquire(timeout=timeout if timeout > 0 else -1):
            loop.call_soon_threadsafe(waiter.cancel)
            raise RanOut(f"the coroutine ran past {timeout:g} s")
        assert waiter.task is not None
        return waiter.task.result()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    self._watch = loop.create_task(_watch_lag())
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="pulpo-async", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop


async def _watch_lag() -> None:
    """Warn when the loop wakes more than :data:`LAG_WARNING` late: something blocks it."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(_TICK)
        lag = time.monotonic() - before - _TICK
        if lag > LAG_WARNING:
            log.warning(
                "the event loop was blocked for %.1f s: an async handler runs blocking code "
                "(use await, or a sync handler in a thread)",
                lag,
            )


#: The process's runner: every slot thread submits to the same loop.
RUNNER = AsyncRunner()
