"""A real ``pulpo dashboard`` in a subprocess on a free loopback port, and HTTP through urllib.

Shared by ``test_dashboard.py`` (HTTP) and ``test_dashboard_browser.py`` (chromium).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from email.message import Message as Headers
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import free_port

from pulpo_core.config import ENV_VAR
from pulpo_core.plugins import DISABLE_ENV

TOKEN = "t0ken-for-the-tests"


@attrs.frozen
class Answer:
    status: int
    headers: Headers
    text: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 303 is the answer the test looks at


_opener = urllib.request.build_opener(_NoRedirects)


class DashboardProcess:
    """``pulpo --config FILE dashboard --port N --token T ...`` until :meth:`stop`."""

    def __init__(self, settings: Mapping[str, Any], folder: Path, *extra: str,
                 token: str | None = TOKEN) -> None:
        self.config = folder / "pulpo.json"
        self.config.write_text(json.dumps(settings))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = token
        args = [sys.executable, "-m", "pulpo_core", "--config", str(self.config), "dashboard",
                "--port", str(self.port), *extra]
        if token is not None:
            args += ["--token", token]
        env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, DISABLE_ENV)}
        self.process = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.first_lines = self._read_start_lines()

    def _read_start_lines(self) -> list[str]:
        """The lines the command prints once it listens (it binds before it prints)."""
        stdout = self.process.stdout
        assert stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        # A thread reads the lines: the text stream buffers what select() would wait for.
        threading.Thread(target=lambda: [lines.put(line) for line in stdout],
                         daemon=True).start()
        wanted = 1 if self.token is not None else 2
        found: list[str] = []
        deadline = time.monotonic() + 30
        while len(found) < wanted:
            try:
                found.append(lines.get(timeout=0.1).rstrip("\n"))
            except queue.Empty:
                if self.process.poll() is not None:
                    error = self.process.stderr.read() if self.process.stderr else ""
                    pytest.fail(f"pulpo dashboard stopped at start: {error}", pytrace=False)
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("pulpo dashboard printed no address within 30 s",
                                pytrace=False)
        assert found[0].startswith(f"pulpo dashboard: {self.base}/"), found
        return found

    def request(self, path: str, *, form: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, method: str | None = None) -> Answer:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=dict(headers or {}))
        try:
            with _opener.open(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, error.headers, error.read().decode())

    def get(self, path: str, **headers: str) -> Answer:
        return self.request(path, headers=headers)

    def post(self, path: str, form: Mapping[str, str], *, origin: str | None = "own",
             **headers: str) -> Answer:
        """A POST as the dashboard's own page sends it (``origin="own"``), or from elsewhere."""
        sent = dict(headers)
        if origin == "own":
            sent["Origin"] = self.base
        elif origin is not None:
            sent["Origin"] = origin
        return self.request(path, form=form, headers=sent)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def counts_on(page: str) -> dict[str, int]:
    """The counts the overview shows, by state."""
    return {state: int(count)
            for state, count in re.findall(r'data-state="(\w+)">(\d+)<', page)}


def job_ids_on(page: str) -> list[str]:
    """The ids a job list links to, in order."""
    return [urllib.parse.unquote(i) for i in re.findall(r'href="/job\?id=([^"]+)"', page)]


def wait_for(condition: Any, what: str, timeout: float = 20) -> Any:
    """``condition()``'s first true value, polled; a failure naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.05)
