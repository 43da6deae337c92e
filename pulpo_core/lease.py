"""Keeping a reserved job's lease alive while its handler runs longer than the ttr."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from pulpo_core.adapter import LeaseKeeping, QueueAdapter
from pulpo_core.message import Message

log = logging.getLogger("pulpo.lease")


@contextlib.contextmanager
def keep_lease(adapter: QueueAdapter, message: Message, ttr: float) -> Iterator[None]:
    """Touch the job every third of its ttr until the block ends (adapters with ``touch``)."""
    if not isinstance(adapter, LeaseKeeping) or ttr <= 0:
        yield
        return
    done = threading.Event()
    interval = max(ttr / 3.0, 0.05)

    def beat() -> None:
        while not done.wait(interval):
            try:
                adapter.touch(message)
            except Exception as error:  # a missed beat is retried; the lease may still hold
                log.warning("could not renew the lease of job %s: %s", message.id, error)

    thread = threading.Thread(target=beat, name=f"pulpo-lease-{message.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
