"""Shared fixtures: a real beanstalkd and redis-server per test session, and app configs for
every adapter.

Behaviour tests take the ``adapter_config`` fixture and so run on memory, file, beanstalkd
and redis.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer, find_redis_server

from pulpo_core import Pulpo
from pulpo_core.plugins import build_plugin_manager

ADAPTERS = ("memory", "file", "beanstalkd", "redis")
_tubes = itertools.count()


def find_beanstalkd() -> str:
    """The beanstalkd binary, or a test failure that says how to get one (never a skip)."""
    found = shutil.which("beanstalkd") or next(
        (p for p in ("/usr/bin/beanstalkd", "/usr/sbin/beanstalkd") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "beanstalkd is not installed: the beanstalkd tests need a real server "
            "(apt-get install beanstalkd, or run the README's test command, which installs it)",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BeanstalkdServer:
    """A beanstalkd on a free loopback port with a binlog in a temporary folder."""

    host = "127.0.0.1"

    def __init__(self, binary: str, binlog: Path | None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.binlog = binlog
        self.extra_args = extra_args  # e.g. ("-z", "1024") for a small max job size
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binlog: tuple[str, ...] = ()  # None: a server that keeps its jobs in memory only
        if self.binlog is not None:
            self.binlog.mkdir(parents=True, exist_ok=True)
            binlog = ("-b", str(self.binlog))
        self.process = subprocess.Popen(
            [self.binary, "-l", self.host, "-p", str(self.port), *binlog, *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                pytest.fail(f"beanstalkd did not start on port {self.port}: {error}", pytrace=False)
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        pytest.fail(f"beanstalkd did not answer on port {self.port} within 10 s", pytrace=False)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.send_signal(signal.SIGCONT)  # a server a test froze must see it
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Stop and start on the same port and binlog (jobs survive through the binlog)."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def beanstalkd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BeanstalkdServer]:
    """One real beanstalkd for the whole test session."""
    server = BeanstalkdServer(find_beanstalkd(), tmp_path_factory.mktemp("binlog"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server (append-only file on) for the whole test session."""
    server = RedisServer(find_redis_server(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def config_for(adapter: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that put an app on ``adapter`` with a queue of its own."""
    base: dict[str, Any] = {"queue_adapter_type": adapter, "retry_delay": 0}
    if adapter == "file":
        base["file_queue_adapter"] = {"base_path": str(tmp_path / "queue")}
    elif adapter == "beanstalkd":
        server: BeanstalkdServer = request.getfixturevalue("beanstalkd")
        base["beanstalkd_queue_adapter"] = {
            "host": server.host,
            "port": server.port,
            "default_tube": f"test-{os.getpid()}-{next(_tubes)}",
        }
    elif adapter == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        base["redis_queue_adapter"] = {
            "url": redis_server.url,
            "queue": f"test-{os.getpid()}-{next(_tubes)}",
        }
    return base


@pytest.fixture(params=ADAPTERS)
def adapter_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings for a fresh, empty queue on each adapter in turn."""
    return config_for(request.param, tmp_path, request)


@contextlib.contextmanager
def app_factory(
    settings_for: Callable[[dict[str, Any]], dict[str, Any]],
) -> Iterator[Callable[..., Pulpo]]:
    """``factory(handlers={...}, **more)``: apps from ``settings_for(more)``, closed after.

    Apps are built with the installed plugins (expiration, banner, ...) like a real worker.
    """
    apps: list[Pulpo] = []

    def factory(handlers: dict[str, object] | None = None, **more: Any) -> Pulpo:
        app = Pulpo(settings_for(more), plugin_manager=build_plugin_manager())
        for request_type, handler in (handlers or {}).items():
            app.register_handler(request_type, handler)
        apps.append(app)
        return app

    try:
        yield factory
    finally:
        for app in apps:
            app.close()


@pytest.fixture
def make_app(adapter_config: dict[str, Any]) -> Iterator[Callable[..., Pulpo]]:
    """``make_app(handlers={...}, **settings)``: an app on the adapter under test."""
    with app_factory(lambda more: {**adapter_config, **more}) as factory:
        yield factory
