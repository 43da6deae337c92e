"""Handlers for the worker pool's subprocess tests, imported by pool children.

Each handling appends ``<id> <event> <pid>`` as one line to the file named by
``PULPO_TEST_LOG`` (O_APPEND: lines from many processes and threads never interleave).
"""

from __future__ import annotations

import os
import time

from pulpo_core import FatalError, Message, TransientError

LOG_ENV = "PULPO_TEST_LOG"


def note(message: Message, event: str) -> None:
    line = f"{message.id} {event} {os.getpid()}\n".encode()
    fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def record(message: Message) -> None:
    """Note that the job ran."""
    note(message, "done")


def slow(message: Message) -> None:
    """Note the start, sleep ``body["seconds"]``, note the end."""
    note(message, "start")
    time.sleep(float(message.body.get("seconds", 0)))
    note(message, "done")


def flaky(message: Message) -> None:
    """Fail transiently on the first attempt (retried), succeed on the next."""
    if message.attempts == 0:
        note(message, "failed")
        raise TransientError("the first attempt fails")
    note(message, "done")


def doomed(message: Message) -> None:
    """Fail fatally (buried)."""
    note(message, "buried")
    raise FatalError("this job can never succeed")
