"""A queue folder written by an earlier release opens, writable or as a read-only copy.

The earlier layout differs from today's in two ways that matter: a publish log's ``.pos`` holds
two numbers (today a third records the slots the log was written with), and there is no
``unique/`` folder. Nothing released may strand a job: every job of such a folder is still
worked, and a read-only copy can still be counted and peeked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pulpo_file.adapter import FileQueueAdapter
from test_file_adapter import UNPRIVILEGED, drain, read_only

from pulpo_core import Message


def earlier_layout(queue: Path) -> dict[str, str]:
    """A queue as an earlier release left it: jobs in a publish log, in ready/ and buried."""
    publisher = FileQueueAdapter({"base_path": str(queue)})
    in_log = [publisher.enqueue(Message("t", payload=f"log {n}")) for n in range(3)]
    in_ready = publisher.enqueue_many([Message("t", payload="ready")])[0]
    publisher.close()
    worker = FileQueueAdapter({"base_path": str(queue)})
    worker.enqueue_many([Message("t", payload="to bury", priority=0)])
    taken = worker.dequeue()
    assert taken is not None and taken.payload == "to bury"
    worker.bury(taken, "for the test")
    worker.close()
    publisher = FileQueueAdapter({"base_path": str(queue)})
    late = publisher.enqueue(Message("t", payload="log late"))  # left in the log
    publisher.close()
    for pos in (queue / "logs").glob("*.pos"):
        os.truncate(pos, 16)  # materialized, synced: no slot count
    shutil.rmtree(queue / "unique", ignore_errors=True)
    return {"log": str(in_log[0].id), "ready": str(in_ready.id), "buried": str(taken.id),
            "late": str(late.id)}


def in_a_child(work: Callable[[], object]) -> str:
    """Run ``work`` in a forked process (unprivileged under root); its result as JSON."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(UNPRIVILEGED)
                os.setuid(UNPRIVILEGED)
            outcome = json.dumps(work())
        except BaseException as error:
            outcome = json.dumps(f"unexpected {error!r}")
        os.write(writing, outcome.encode())
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


@pytest.fixture
def queue_path() -> Iterator[Path]:
    # Not under tmp_path: its parents are closed to other users, and the child may be one.
    parent = Path(tempfile.mkdtemp(prefix="pulpo-layout-"))
    try:
        yield parent / "queue"
    finally:
        shutil.rmtree(parent)


def test_every_job_of_an_earlier_layout_is_worked(queue_path: Path) -> None:
    ids = earlier_layout(queue_path)
    worker = FileQueueAdapter({"base_path": str(queue_path)})
    buried = worker.peek(ids["buried"])
    assert buried is not None and buried.extra_header["buried_reason"] == "for the test"
    assert sorted(drain(worker)) == ["log 0", "log 1", "log 2", "log late", "ready"]
    assert worker.kick() == 1
    assert drain(worker) == ["to bury"]
    publisher = FileQueueAdapter({"base_path": str(queue_path)})
    publisher.enqueue(Message("t", payload="today"))
    assert drain(worker) == ["today"]
    unique, created = publisher.enqueue_unique(Message("t", payload="u", unique_key="k"))
    assert created and unique.id is not None


def test_a_read_only_copy_of_an_earlier_layout_is_counted_and_peeked(queue_path: Path) -> None:
    ids = earlier_layout(queue_path)
    FileQueueAdapter({"base_path": str(queue_path)}).stats()  # a worker made the log's files
    with read_only(queue_path, ""):
        def look() -> object:
            adapter = FileQueueAdapter({"base_path": str(queue_path)})
            job = adapter.peek(ids["ready"])
            return [adapter.stats(), None if job is None else job.payload]

        outcome = json.loads(in_a_child(look))
    assert outcome != str(outcome), outcome  # not an error text
    stats, payload = outcome
    assert payload == "ready"
    assert (stats["ready"], stats["buried"]) == (5, 1)
