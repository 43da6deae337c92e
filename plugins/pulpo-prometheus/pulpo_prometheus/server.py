"""The HTTP server: ``/metrics`` (the Prometheus text format) and ``/healthz``."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pulpo_core.errors import PluginError

log = logging.getLogger("pulpo.prometheus")

#: ``healthy() -> (ok, why)``: whether the worker's queue answers.
HealthCheck = Callable[[], "tuple[bool, str]"]


class MetricsServer:
    """Serves ``registry`` at ``/metrics`` and ``healthy`` at ``/healthz`` from a daemon thread.

    :raises PluginError: in one sentence when the address cannot be bound (the port is in use).
    """

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, healthy: HealthCheck
    ) -> None:
        handler = _handler_class(registry, healthy)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PluginError(
                    f"the metrics port {port} on {host} is in use by another program; choose "
                    f"another with --metrics-port or [prometheus] port"
                ) from None
            raise PluginError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}"
            ) from None
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="pulpo-prometheus-http", daemon=True
        )
        self._thread.start()
        log.info("serving metrics at http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def _handler_class(
    registry: CollectorRegistry, healthy: HealthCheck
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                ok, why = healthy()
                text = "ok\n" if ok else f"queue unreachable: {why}\n"
                self._send(200 if ok else 503, "text/plain; charset=utf-8", text.encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
