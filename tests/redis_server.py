"""A real redis-server for the tests: free loopback port, data in a temporary folder."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def find_redis_server() -> str:
    """The redis-server binary, or a test failure that says how to get one (never a skip)."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if found is None:
        pytest.fail(
            "redis-server is not installed: the redis tests need a real server "
            "(apt-get install redis-server, or run .ci/bootstrap, which installs it)",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """redis-server on a free loopback port; ``appendonly`` on unless told otherwise."""

    host = "127.0.0.1"

    def __init__(self, binary: str, folder: Path, appendonly: bool = True,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.folder = folder
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        args = [self.binary, "--bind", self.host, "--port", str(self.port),
                "--dir", str(self.folder), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always", "--daemonize", "no", "--protected-mode", "yes",
                "--loglevel", "warning", *self.extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                pytest.fail(f"redis-server did not start on port {self.port}: {error}",
                            pytrace=False)
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        pytest.fail(f"redis-server did not answer on port {self.port} within 10 s", pytrace=False)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.send_signal(signal.SIGCONT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM, or SIGKILL for a crash) and start on the same port and folder."""
        self.stop(sig)
        self.start()
