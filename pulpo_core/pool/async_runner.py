"""One event loop per worker process for ``async def`` handlers, and a watch on its lag."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("pulpo.pool")

#: A loop that falls this many seconds behind has a handler blocking it (a sync sleep).
LAG_WARNING = 1.0
_TICK = 0.25


class AsyncRunner:
    """Runs coroutines from any thread on one loop in a daemon thread (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Schedule the coroutine on the loop; its future (``cancel()`` cancels the task)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._ensure())

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
