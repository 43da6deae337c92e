"""The queue's counts over the last minutes, sampled by a background thread for the chart.

Where the adapter counts its publishes (:class:`~pulpo_core.adapter.PublishCounting`) a sample
also holds that count, and the rates include the publish rate and the drain rate (the jobs that
left the queue: the publishes less the growth of the queue)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

import attrs

from pulpo_core.adapter import JOB_STATES

#: The key under which a read of the queue gives its publish count (beside the state counts).
PUBLISHED = "published"

log = logging.getLogger("pulpo.dashboard")

#: Seconds of history the chart shows.
WINDOW = 15 * 60.0
#: Seconds over which the rates are worked out.
RATE_SPAN = 60.0


@attrs.frozen
class Sample:
    """The counts per state at one time (``time.time()``)."""

    at: float
    counts: Mapping[str, int]
    #: The adapter's publish count, ``None`` when it does not count them.
    published: int | None = None


class Sampler:
    """Reads ``stats()`` every ``interval`` seconds in a thread of its own and keeps the samples
    of the last :data:`WINDOW` seconds; the error of the last read that failed, if any."""

    def __init__(self, read: Callable[[], Mapping[str, int]], interval: float,
                 window: float = WINDOW) -> None:
        self._read = read
        self.interval = interval
        self.window = window
        self._samples: deque[Sample] = deque(maxlen=max(2, int(window / interval) + 1))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pulpo-dashboard-sampler",
                                        daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sample(self) -> None:
        """Read the counts once and keep them (or the error)."""
        try:
            counts = self._read()
        except Exception as error:  # the server may be gone for a while: the page says so
            self.error = str(error) or type(error).__name__
            log.warning("the dashboard could not read the queue's counts: %s", self.error)
            return
        self.error = None
        kept = {state: int(counts.get(state, 0)) for state in JOB_STATES}
        published = counts.get(PUBLISHED)
        with self._lock:
            self._samples.append(Sample(time.time(), kept,
                                        None if published is None else int(published)))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def samples(self) -> list[Sample]:
        """The samples of the last :data:`WINDOW` seconds, oldest first."""
        cutoff = time.time() - self.window
        with self._lock:
            return [sample for sample in self._samples if sample.at >= cutoff]


def rates(samples: list[Sample], span: float = RATE_SPAN) -> dict[str, float] | None:
    """Each state's change per minute over about the last ``span`` seconds (and ``total``, and
    ``publish`` and ``drain`` where the adapter counts its publishes); ``None`` until there are
    two samples."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = next((s for s in samples if s.at >= last.at - span), samples[0])
    if first is last:
        first = samples[-2]
    minutes = (last.at - first.at) / 60
    if minutes <= 0:
        return None
    found = {state: (last.counts[state] - first.counts[state]) / minutes for state in JOB_STATES}
    found["total"] = sum(found.values())
    if first.published is not None and last.published is not None:
        published = (last.published - first.published) / minutes
        if published >= 0:  # a count that started over (a restarted server) shows no rate
            found["publish"] = published
            found["drain"] = max(0.0, published - found["total"])
    return found
