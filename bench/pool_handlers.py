"""Handlers for ``bench_pool``: each appends one byte to ``PULPO_BENCH_LOG`` when it is done."""

from __future__ import annotations

import asyncio
import os
import time

from pulpo_core import Message


def _done() -> None:
    fd = os.open(os.environ["PULPO_BENCH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


def noop(_message: Message) -> None:
    _done()


def sleep10(_message: Message) -> None:
    time.sleep(0.01)
    _done()


async def sleep10_async(_message: Message) -> None:
    await asyncio.sleep(0.01)
    _done()


def cpu5(_message: Message) -> None:
    deadline = time.thread_time() + 0.005
    total = 0
    while time.thread_time() < deadline:
        total += sum(range(100))
    _done()
