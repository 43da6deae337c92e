"""``pulpo dashboard [--host H] [--port N] [--token T]``: its flags, and serving the pages."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from pulpo_core.errors import PulpoError
from pulpo_core.host import App

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8188
#: Read when ``--token`` is not given (a command line is visible to every user of the host).
TOKEN_ENV = "PULPO_DASHBOARD_TOKEN"
#: Threads that answer requests.
THREADS = 4


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"the port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _refresh(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _seconds(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"the address to listen on (default {DEFAULT_HOST}: this host only)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, metavar="N",
                        help=f"the port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--token", metavar="T",
                        help=f"the token the kick and delete forms need (default: ${TOKEN_ENV}, "
                             "else a new one, printed at start)")
    parser.add_argument("--interval", type=_seconds, default=5.0, metavar="SECONDS",
                        help="seconds between two samples of the counts for the chart (default 5)")
    parser.add_argument("--refresh", type=_refresh, default=10.0, metavar="SECONDS",
                        help="reload the overview page every SECONDS (default 10; 0: never)")


class _Stop(Exception):
    """SIGTERM arrived: stop serving."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run(args: argparse.Namespace, app: App) -> int:
    """Serve the dashboard until SIGTERM or SIGINT (exit 0)."""
    from waitress.server import create_server

    from pulpo_dashboard.app import Dashboard
    from pulpo_dashboard.sampler import Sampler
    from pulpo_dashboard.security import Origins, new_token
    from pulpo_dashboard.views import Queue, Views

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    if token is not None and not token.strip():
        raise ValueError("the dashboard's token must not be empty")
    generated = token is None
    token = token or new_token()
    adapter = app.queue_adapter
    name = str(app.config.queue_adapter_type)
    queue = Queue(adapter, name)
    sampler = Sampler(queue.sample, args.interval)
    origins = Origins(args.host, args.port)
    dashboard = Dashboard(Views(queue, sampler, args.refresh), origins, token)
    try:
        server = create_server(dashboard, host=args.host, port=args.port, threads=THREADS,
                               ident="pulpo-dashboard", clear_untrusted_proxy_headers=True)
    except OSError as error:
        raise PulpoError(f"the dashboard cannot listen on {args.host}:{args.port}: "
                         f"{error.strerror or error}") from None
    shown = args.host if ":" not in args.host else f"[{args.host}]"
    previous = signal.signal(signal.SIGTERM, _stop)  # before the address: it may come at once
    try:
        sampler.start()
        print(f"pulpo dashboard: http://{shown}:{args.port}/ ({name} queue)", flush=True)
        if generated:
            print(f"token: {token}", flush=True)
        server.run()
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sampler.stop()
        server.close()
        print("pulpo dashboard: stopped", file=sys.stderr)
    return 0
