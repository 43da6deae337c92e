"""The ``[prometheus]`` section and the ``--metrics-port`` flag."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import attrs

from pulpo_core.config import between, load_section, more_than

if TYPE_CHECKING:
    from pulpo_core.host import App

#: The configuration section this plugin reads.
SECTION = "prometheus"
#: Set by a supervisor that serves metrics, to its folder: its children record there and serve
#: nothing (they get no ``--metrics-port``; this says metrics are on).
POOL_ENV = "PULPO_PROMETHEUS_POOL_DIR"


@attrs.frozen
class PrometheusSettings:
    """``[prometheus]``: where the metrics are served and how the queue is asked."""

    #: TCP port of ``/metrics`` and ``/healthz`` (0: metrics off).
    port: int = attrs.field(default=0, validator=between(0, 65535))
    #: Address the server binds to.
    host: str = "127.0.0.1"
    #: Seconds a reading of the queue's ``stats()`` is kept for later scrapes (at least 1).
    stats_cache: float = attrs.field(default=1.0, validator=between(1, 3600, "seconds"))
    #: Seconds a scrape waits for ``stats()`` before it reports the queue down.
    stats_timeout: float = attrs.field(default=2.0, validator=more_than(0, "seconds"))


def settings_of(app: App) -> PrometheusSettings:
    """The checked ``[prometheus]`` section of the app's configuration."""
    return load_section(SECTION, app.config.section(SECTION), PrometheusSettings)


def port_flag(text: str) -> int:
    """``--metrics-port N``: a whole number from 0 to 65535 (argparse makes the error exit 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 0 to 65535")
    return port
