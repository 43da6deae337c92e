"""Handlers for the beanstalkd worker-process tests, imported by ``pulpo worker`` subprocesses.

The job body names files in the test's temporary folder: the handler writes ``<started>`` when it
begins (with its pid and the job's attempts), waits for ``<release>`` to exist (or sleeps
``seconds``, computing in Python instead if ``busy``), then writes ``<done>``. A test can so
kill a worker in the middle of a job, or let the job run past its ttr, and see which process
ran what.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pulpo_core import Message


def _note(path: str, message: Message) -> None:
    record = {"pid": os.getpid(), "attempts": message.attempts, "id": message.id}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


def work(message: Message) -> None:
    """Note the start, wait for the release file or sleep, note the end."""
    body = message.body
    _note(body["started"], message)
    if "release" in body:
        deadline = time.monotonic() + 30
        while not Path(body["release"]).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if body.get("busy"):  # computes in Python rather than sleeping
        until = time.monotonic() + float(body.get("seconds", 0))
        while time.monotonic() < until:
            sum(range(1000))
    else:
        time.sleep(float(body.get("seconds", 0)))
    _note(body["done"], message)
