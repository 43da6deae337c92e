"""Handlers for the file queue's multi-process tests, imported by worker subprocesses.

Each handling of a job leaves one empty file ``<id>.<event>.<pid>.<n>`` in the folder named by
``PULPO_TEST_RECORDS``, so a test can count how often, and by which process, every job ran
without the workers sharing a lock or a file.
"""

from __future__ import annotations

import itertools
import os
import signal
import time

from pulpo_core import Message

RECORDS_ENV = "PULPO_TEST_RECORDS"
_serial = itertools.count()


def _record(message: Message, event: str) -> None:
    folder = os.environ[RECORDS_ENV]
    name = f"{message.id}.{event}.{os.getpid()}.{next(_serial)}"
    with open(os.path.join(folder, name), "x"):
        pass


def record(message: Message) -> None:
    """Note that the job ran."""
    _record(message, "done")


def slow(message: Message) -> None:
    """Note the start, sleep ``body["seconds"]`` (on the first attempt only), note the end."""
    _record(message, "start")
    if message.attempts == 0:
        time.sleep(float(message.body.get("seconds", 0)))
    _record(message, "done")


def crash(message: Message) -> None:
    """Note the start, then kill this worker process outright (a job that crashes its worker)."""
    _record(message, "start")
    os.kill(os.getpid(), signal.SIGKILL)
