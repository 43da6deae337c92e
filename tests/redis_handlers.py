"""Handlers for the redis worker-process tests, imported by ``pulpo worker`` subprocesses."""

from __future__ import annotations

import json
import os

from pulpo_core import Message


def note(message: Message) -> None:
    """Append the job's number and this process's pid to the file the body names (one line,
    one ``write`` on an ``O_APPEND`` file, so concurrent workers' lines never interleave)."""
    line = json.dumps({"n": message.body["n"], "pid": os.getpid(), "id": message.id}) + "\n"
    fd = os.open(message.body["file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
