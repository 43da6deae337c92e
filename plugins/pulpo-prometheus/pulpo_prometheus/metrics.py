"""The job metrics a worker process records: finished jobs, their durations, jobs in flight.

Imported only once metrics are on (it imports ``prometheus_client``). In a pool child the
supervisor has set ``PROMETHEUS_MULTIPROC_DIR`` before the child's interpreter started, so these
metrics write their values to files the supervisor sums; alone, they live in this process.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Buckets of ``pulpo_job_duration_seconds``: from a millisecond to ten minutes.
DURATION_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    600.0,
)
#: The label of a job published without a request type.
UNKNOWN_TYPE = "unknown"


class JobMetrics:
    """What the ``pulpo_before_process`` and ``pulpo_after_process`` hooks record.

    In flight is counted per worker thread: each thread runs one job at a time, so a job whose
    settle never reached ``pulpo_after_process`` (its lease was lost) is dropped from the count
    as soon as that thread takes its next job.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.finished = Counter(
            "pulpo_jobs_finished",
            "Jobs settled, by request type and outcome (success, retried, buried, expired).",
            ["request_type", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "pulpo_job_duration_seconds",
            "Seconds from taking a job to settling it, by request type.",
            ["request_type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "pulpo_jobs_in_flight",
            "Jobs taken and not yet settled.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._lock = threading.Lock()
        self._running: set[int] = set()

    def started(self) -> None:
        """A job starts in the calling thread."""
        with self._lock:
            self._running.add(threading.get_ident())
            self.in_flight.set(len(self._running))

    def settled(self, request_type: str | None, outcome: str, duration: float) -> None:
        """The calling thread's job was settled with ``outcome`` after ``duration`` seconds."""
        label = request_type or UNKNOWN_TYPE
        self.finished.labels(request_type=label, outcome=outcome).inc()
        self.duration.labels(request_type=label).observe(max(duration, 0.0))
        with self._lock:
            self._running.discard(threading.get_ident())
            self.in_flight.set(len(self._running))
