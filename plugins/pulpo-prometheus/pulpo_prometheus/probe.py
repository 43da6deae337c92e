"""The queue as a scrape sees it: the adapter's ``stats()``, cached, asked with a timeout.

One thread of its own asks the queue (with an adapter of its own: clients such as greenstalk are
not thread-safe), so a scrape never waits longer than the timeout, however the queue hangs, and a
hung call is waited on by the next scrape rather than joined by another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import attrs

from pulpo_core.adapter import QueueAdapter

log = logging.getLogger("pulpo.prometheus")


@attrs.frozen
class Reading:
    """One answer of the queue: its counts by state, or why there are none."""

    at: float
    counts: Mapping[str, int] | None
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.counts is not None


class QueueProbe:
    """Reads the queue's ``stats()`` at most once per ``cache`` seconds.

    :param open_adapter: makes the adapter the probe's thread uses (called in that thread).
    :param close_adapter: closes it (called in that thread, after a failure and at the end).
    """

    def __init__(
        self,
        open_adapter: Callable[[], QueueAdapter],
        close_adapter: Callable[[], None],
        cache: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        self._open = open_adapter
        self._close = close_adapter
        self.cache = cache
        self.timeout = timeout
        self._lock = threading.Lock()
        self._wanted = threading.Condition(self._lock)
        self._asked = 0  # readings asked for
        self._answered = 0  # readings made
        self._last: Reading | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pulpo-prometheus-probe",
                                        daemon=True)
        self._thread.start()

    def read(self) -> Reading:
        """A reading at most ``cache`` seconds old, or a fresh one (down after ``timeout``)."""
        with self._wanted:
            last = self._last
            if last is not None and time.monotonic() - last.at < self.cache:
                return last
            if self._asked == self._answered:  # no call under way: ask for one
                self._asked += 1
                self._wanted.notify_all()
            wanted = self._asked
            deadline = time.monotonic() + self.timeout
            while self._answered < wanted and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    late = Reading(time.monotonic(), None, f"no answer within {self.timeout:g}s")
                    self._last = late
                    return late
                self._wanted.wait(left)
            assert self._last is not None or self._closed
            return self._last or Reading(time.monotonic(), None, "closed")

    def close(self) -> None:
        """Stop the probe's thread (at once when idle; a hung call is left to the daemon)."""
        with self._wanted:
            self._closed = True
            self._wanted.notify_all()
        self._thread.join(self.timeout)

    def _run(self) -> None:
        adapter: QueueAdapter | None = None
        try:
            while True:
                with self._wanted:
                    while self._asked == self._answered and not self._closed:
                        self._wanted.wait()
                    if self._closed:
                        return
                try:
                    if adapter is None:
                        adapter = self._open()
                    counts = {str(k): int(v) for k, v in adapter.stats().items()}
                    reading = Reading(time.monotonic(), counts)
                except Exception as error:
                    reading = Reading(time.monotonic(), None, f"{type(error).__name__}: {error}")
                    log.debug("queue stats failed: %s", reading.error)
                    adapter = None
                    self._quietly_close()  # a fresh adapter (connection) next time
                with self._wanted:
                    self._last = reading
                    self._answered = self._asked
                    self._wanted.notify_all()
        finally:
            if adapter is not None:
                self._quietly_close()

    def _quietly_close(self) -> None:
        try:
            self._close()
        except Exception as error:
            log.debug("closing the probe's adapter failed: %s", error)
