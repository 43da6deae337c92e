"""The hooks of pulpo-prometheus (the module pluggy loads: kept light, it imports
``prometheus_client`` only once metrics are on).

- ``pulpo worker`` alone (no pool): the worker records and serves its own metrics.
- ``pulpo worker --processes N``: the supervisor serves; its children record into its folder
  (see :mod:`pulpo_prometheus.exporter`).

The hooks that watch jobs and children are not in this module: once metrics are on, the start
hook registers an observer object on the app's own plugin manager, and the stop hook removes it.
So an app with metrics off has no ``pulpo_after_process`` implementation of this plugin (the
core then saves beanstalkd's attempts round trip), and no state outlives its app.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from pulpo_core.markers import hookimpl
from pulpo_core.result import outcome_name
from pulpo_prometheus.settings import (
    POOL_ENV,
    SECTION,
    PrometheusSettings,
    port_flag,
    settings_of,
)

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo
    from pulpo_core.hookspecs import RegisterCommand, RegisterConfigSection, RegisterWorkerOption
    from pulpo_core.message import Message
    from pulpo_core.result import Action
    from pulpo_prometheus.exporter import PoolExporter
    from pulpo_prometheus.metrics import JobMetrics


class _Recording(Protocol):
    metrics: JobMetrics

    def close(self) -> None: ...


class JobObserver:
    """Registered on a worker's plugin manager while it exports: counts its jobs."""

    def __init__(self, app: Pulpo, recording: _Recording) -> None:
        self.app = app
        self.recording = recording

    @hookimpl(tryfirst=True)  # before filters that may answer first (expiration)
    def pulpo_before_process(self, app: Pulpo) -> None:
        if app is self.app:
            self.recording.metrics.started()

    @hookimpl
    def pulpo_after_process(
        self, message: Message, action: Action, app: Pulpo, duration: float
    ) -> None:
        if app is self.app:
            self.recording.metrics.settled(message.request_type, outcome_name(action), duration)


class ChildWatcher:
    """Registered on a supervisor's plugin manager while it exports: forgets dead children."""

    def __init__(self, app: Pulpo, exporter: PoolExporter) -> None:
        self.app = app
        self.exporter = exporter

    @hookimpl
    def pulpo_supervisor_child_exit(self, pid: int, app: Pulpo) -> None:
        if app is self.app:
            self.exporter.child_exited(pid)


def _name(kind: str, app: Pulpo) -> str:
    return f"pulpo_prometheus.{kind}.{id(app)}"


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    register(SECTION, PrometheusSettings)


@hookimpl
def pulpo_register_cli(
    register_command: RegisterCommand, register_worker_option: RegisterWorkerOption
) -> None:
    register_worker_option(
        "--metrics-port",
        SECTION,
        "port",
        "serve Prometheus metrics and /healthz on this port (0: off; default [prometheus] port)",
        port_flag,
    )


@hookimpl
def pulpo_supervisor_start(app: Pulpo) -> None:
    settings = settings_of(app)
    if settings.port == 0:
        return
    from pulpo_prometheus.exporter import PoolExporter

    exporter = PoolExporter(app, settings)
    app.plugin_manager.register(ChildWatcher(app, exporter), name=_name("supervisor", app))


@hookimpl
def pulpo_supervisor_stop(app: Pulpo) -> None:
    watcher = app.plugin_manager.unregister(name=_name("supervisor", app))
    if isinstance(watcher, ChildWatcher):
        watcher.exporter.close()


@hookimpl
def pulpo_worker_start(app: Pulpo) -> None:
    recording: _Recording
    folder = os.environ.get(POOL_ENV)
    if folder:  # a child of a supervisor that serves: record only
        from pulpo_prometheus.exporter import ChildRecorder

        recording = ChildRecorder(folder)
    else:
        settings = settings_of(app)
        if settings.port == 0:
            return
        from pulpo_prometheus.exporter import WorkerExporter

        recording = WorkerExporter(app, settings)
    app.plugin_manager.register(JobObserver(app, recording), name=_name("worker", app))


@hookimpl
def pulpo_worker_stop(app: Pulpo) -> None:
    observer = app.plugin_manager.unregister(name=_name("worker", app))
    if isinstance(observer, JobObserver):
        observer.recording.close()
