"""The hooks of pulpo-prometheus (the module pluggy loads: kept light, it imports
``prometheus_client`` only in the hooks that serve or record metrics).

- ``pulpo worker`` alone (no pool): the worker records and serves its own metrics.
- ``pulpo worker --processes N``: the supervisor serves; its children record into its folder
  (see :mod:`pulpo_prometheus.exporter`).

What a running worker or supervisor exports is kept per app, in a weak map: no state outlives
its app.
"""

from __future__ import annotations

import os
import weakref
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


_workers: weakref.WeakKeyDictionary[Pulpo, _Recording] = weakref.WeakKeyDictionary()
_supervisors: weakref.WeakKeyDictionary[Pulpo, PoolExporter] = weakref.WeakKeyDictionary()


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

    _supervisors[app] = PoolExporter(app, settings)


@hookimpl
def pulpo_supervisor_child_exit(pid: int, app: Pulpo) -> None:
    exporter = _supervisors.get(app)
    if exporter is not None:
        exporter.child_exited(pid)


@hookimpl
def pulpo_supervisor_stop(app: Pulpo) -> None:
    exporter = _supervisors.pop(app, None)
    if exporter is not None:
        exporter.close()


@hookimpl
def pulpo_worker_start(app: Pulpo) -> None:
    folder = os.environ.get(POOL_ENV)
    if folder:  # a child of a supervisor that serves: record only
        from pulpo_prometheus.exporter import ChildRecorder

        _workers[app] = ChildRecorder(folder)
        return
    settings = settings_of(app)
    if settings.port == 0:
        return
    from pulpo_prometheus.exporter import WorkerExporter

    _workers[app] = WorkerExporter(app, settings)


@hookimpl
def pulpo_worker_stop(app: Pulpo) -> None:
    recording = _workers.pop(app, None)
    if recording is not None:
        recording.close()


@hookimpl(tryfirst=True)  # before filters that may answer first (expiration)
def pulpo_before_process(app: Pulpo) -> None:
    recording = _workers.get(app)
    if recording is not None:
        recording.metrics.started()


@hookimpl
def pulpo_after_process(message: Message, action: Action, app: Pulpo, duration: float) -> None:
    recording = _workers.get(app)
    if recording is not None:
        recording.metrics.settled(message.request_type, outcome_name(action), duration)
