"""What serves the metrics: the worker itself when it runs alone, the supervisor of a pool.

A pool serves one endpoint per machine with prometheus-client's multiprocess mode. The
supervisor makes a private (0700) folder and names it in ``PROMETHEUS_MULTIPROC_DIR`` of its own
environment before it starts any child. Children are new interpreters (``subprocess``, not
``fork``), so each sees the variable before its first import of ``prometheus_client``, and its
metrics write their values to files in that folder. The supervisor sums the files at each
scrape, so the numbers add up across children and outlive a child that died; its in-flight count
is dropped as it ends (``mark_process_dead``). The folder is removed when the supervisor stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from pulpo_core.adapter import JOB_STATES
from pulpo_prometheus.metrics import JobMetrics
from pulpo_prometheus.probe import QueueProbe
from pulpo_prometheus.server import MetricsServer
from pulpo_prometheus.settings import POOL_ENV, PrometheusSettings

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo

log = logging.getLogger("pulpo.prometheus")

#: prometheus-client's own variable: the folder multiprocess metrics write to.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class QueueCollector:
    """``pulpo_queue_jobs{state}`` and ``pulpo_queue_up``, read from the probe at scrape time."""

    def __init__(self, probe: QueueProbe) -> None:
        self.probe = probe

    def describe(self) -> list[Metric]:
        return []  # nothing to ask the queue when the collector is registered

    def collect(self) -> Iterator[Metric]:
        reading = self.probe.read()
        jobs = GaugeMetricFamily(
            "pulpo_queue_jobs", "Jobs in the queue by state, from the adapter's stats().",
            labels=["state"],
        )
        if reading.counts is not None:
            for state in JOB_STATES:
                jobs.add_metric([state], float(reading.counts.get(state, 0)))
        yield jobs
        yield GaugeMetricFamily(
            "pulpo_queue_up", "1 when the queue answered stats() in time, else 0.",
            value=1.0 if reading.up else 0.0,
        )


def _probe(app: Pulpo, settings: PrometheusSettings) -> QueueProbe:
    return QueueProbe(app.new_adapter, app.drop_adapter, settings.stats_cache,
                      settings.stats_timeout)


def _health(probe: QueueProbe) -> tuple[bool, str]:
    reading = probe.read()
    return reading.up, reading.error or ""


def _serve(app: Pulpo, settings: PrometheusSettings,
           registry: CollectorRegistry) -> tuple[QueueProbe, MetricsServer]:
    """A queue probe with its collector on ``registry``, and the server of ``registry`` (the
    probe is closed again when the server cannot start)."""
    probe = _probe(app, settings)
    registry.register(QueueCollector(probe))
    try:
        return probe, MetricsServer(settings.host, settings.port, registry,
                                    lambda: _health(probe))
    except BaseException:
        probe.close()
        raise


class WorkerExporter:
    """A worker alone: its own metrics, served from its own process."""

    def __init__(self, app: Pulpo, settings: PrometheusSettings) -> None:
        self.registry = CollectorRegistry()
        self.metrics = JobMetrics(self.registry)
        self.probe, self.server = _serve(app, settings, self.registry)

    def close(self) -> None:
        self.server.close()
        self.probe.close()


class ChildRecorder:
    """A pool child: records into the supervisor's folder; serves nothing."""

    def __init__(self, folder: str) -> None:
        if os.environ.get(MULTIPROC_ENV) != folder:
            log.warning("%s is not %s: this child's metrics are not shared", MULTIPROC_ENV, folder)
        self.metrics = JobMetrics(CollectorRegistry())

    def close(self) -> None:
        pass  # the files stay for the supervisor, which removes the folder


class PoolExporter:
    """A supervisor: owns the folder and the port; sums its children's metrics."""

    def __init__(self, app: Pulpo, settings: PrometheusSettings) -> None:
        self.folder = tempfile.mkdtemp(prefix="pulpo-prometheus-")  # mode 0700
        self._previous = {name: os.environ.get(name) for name in (MULTIPROC_ENV, POOL_ENV)}
        os.environ[MULTIPROC_ENV] = self.folder
        os.environ[POOL_ENV] = self.folder
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=self.folder)  # type: ignore[no-untyped-call]
        try:
            self.probe, self.server = _serve(app, settings, self.registry)
        except BaseException:
            self._remove()
            raise

    def child_exited(self, pid: int) -> None:
        # Its counters and histograms stay (they add up); its in-flight gauge goes.
        mark_process_dead(pid, self.folder)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.server.close()
        self.probe.close()
        self._remove()

    def _remove(self) -> None:
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        with contextlib.suppress(OSError):
            shutil.rmtree(self.folder)
