"""Keeping a reserved job's lease alive while its handler runs longer than the ttr."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator

from pulpo_core.adapter import LeaseKeeping, QueueAdapter
from pulpo_core.message import Message

log = logging.getLogger("pulpo.lease")
_NO_LEASE = contextlib.nullcontext()


class _Lease:
    """One running job's lease: a context manager that registers it with its keeper."""

    __slots__ = ("adapter", "due", "interval", "keeper", "message", "touching")

    def __init__(
        self, keeper: LeaseKeeper, adapter: LeaseKeeping, message: Message, interval: float
    ) -> None:
        self.keeper = keeper
        self.adapter = adapter
        self.message = message
        self.interval = interval
        self.due = time.monotonic() + interval
        self.touching = False

    def __enter__(self) -> None:
        self.keeper._add(self)

    def __exit__(self, *exc: object) -> None:
        self.keeper._remove(self)


class LeaseKeeper:
    """Touches the jobs an app is running, every third of their ttr, from one thread.

    The thread starts on first use and serves every job after it, so a job that ends within a
    third of its ttr costs two dict operations instead of a thread start (about 0.1 ms a job).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._leases: dict[int, _Lease] = {}
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf
        self._idle_wait = 1.0
        self._keeps: dict[type, bool] = {}

    def keep(
        self, adapter: QueueAdapter, message: Message, ttr: float
    ) -> contextlib.AbstractContextManager[None]:
        """Keep the job's lease while the ``with`` block runs (adapters with ``touch``)."""
        keeps = self._keeps.get(type(adapter))
        if keeps is None:  # isinstance on a Protocol is slow: once per adapter class
            keeps = self._keeps[type(adapter)] = isinstance(adapter, LeaseKeeping)
        if not keeps or ttr <= 0:
            return _NO_LEASE
        return _Lease(self, adapter, message, max(ttr / 3.0, 0.05))  # type: ignore[arg-type]

    def _add(self, lease: _Lease) -> None:
        with self._cond:
            self._leases[id(lease)] = lease
            self._idle_wait = lease.interval
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="pulpo-lease", daemon=True)
                self._thread.start()
            elif lease.due < self._wake_at:
                self._cond.notify_all()

    def _remove(self, lease: _Lease) -> None:
        with self._cond:
            del self._leases[id(lease)]
            while lease.touching:  # the job is settled only after its last touch
                self._cond.wait()

    def _beat(self) -> None:
        with self._cond:
            while self._thread is threading.current_thread():
                now = time.monotonic()
                due = [lease for lease in self._leases.values() if lease.due <= now]
                if not due:
                    # Idle, it still wakes after a beat's interval rather than waiting to be
                    # notified: a job that starts later is due later, so short jobs in a row
                    # never have to wake the thread.
                    self._wake_at = min(
                        (lease.due for lease in self._leases.values()),
                        default=now + self._idle_wait,
                    )
                    self._cond.wait(self._wake_at - now)
                    continue
                for lease in due:
                    lease.touching = True
                self._cond.release()
                try:
                    for lease in due:
                        try:
                            lease.adapter.touch(lease.message)
                        except Exception as error:  # a missed beat is retried next interval
                            log.warning(
                                "could not renew the lease of job %s: %s", lease.message.id, error
                            )
                finally:
                    self._cond.acquire()
                now = time.monotonic()
                for lease in due:
                    lease.touching = False
                    lease.due = now + lease.interval
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread (a later ``keep`` starts a new one)."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()


@contextlib.contextmanager
def keep_lease(adapter: QueueAdapter, message: Message, ttr: float) -> Iterator[None]:
    """Touch the job every third of its ttr until the block ends (adapters with ``touch``).

    A keeper of its own for one job; an app keeps one :class:`LeaseKeeper` for all its jobs.
    """
    keeper = LeaseKeeper()
    try:
        with keeper.keep(adapter, message, ttr):
            yield
    finally:
        keeper.close()
