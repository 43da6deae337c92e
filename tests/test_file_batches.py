"""``publish_many`` on the file queue is all or nothing, whatever instant the publisher dies at.

A forked publisher is killed (``os._exit``, as abrupt as SIGKILL for the folder) at a chosen
rename of its batch: while the jobs are written aside, right at the commit, and while the
committed batch moves into ``ready/``. Then a random SIGKILL of a publisher of many batches.
Every batch is then queued whole or not at all.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from pulpo_file import batch
from pulpo_file.adapter import FileQueueAdapter

from pulpo_core import Message


def queued(path: Path) -> collections.Counter[str]:
    """How many jobs of each batch a fresh worker takes (it finishes orphaned batches)."""
    worker = FileQueueAdapter({"base_path": str(path)})
    counts: collections.Counter[str] = collections.Counter()
    try:
        while (message := worker.dequeue()) is not None:
            counts[str(message.payload).split("-")[0]] += 1
            worker.commit(message)
    finally:
        worker.close()
    return counts


def killed_at_rename(path: Path, renames: int) -> None:
    """Publish one batch of 100 from a forked child that dies at its ``renames``-th rename."""
    pid = os.fork()
    if pid == 0:
        try:
            queue = FileQueueAdapter({"base_path": str(path)})
            real, count = os.rename, [0]

            def rename(*args: Any, **kwargs: Any) -> None:
                count[0] += 1
                if count[0] == renames:
                    os._exit(9)
                real(*args, **kwargs)

            os.rename = rename  # type: ignore[assignment]
            queue.enqueue_many([Message("t", payload=f"b-{n}") for n in range(100)])
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) in (0, 9)


@pytest.mark.parametrize("renames", [1, 50, 100, 101, 102, 130, 201])
def test_a_batch_killed_at_any_rename_is_queued_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames: int
) -> None:
    # Renames 1-100: the jobs written aside (tmp/ into the batch's folder); 101: the commit;
    # 102-201: the moves into ready/, which a worker finishes.
    monkeypatch.setattr(batch, "ORPHAN_S", 0.0)  # a worker finishes an orphaned batch at once
    FileQueueAdapter({"base_path": str(tmp_path)}).close()
    killed_at_rename(tmp_path, renames)
    expected = 0 if renames <= 101 else 100
    assert queued(tmp_path) == ({"b": 100} if expected else {})
    leftovers = [name for name in os.listdir(tmp_path / "tmp") if name.endswith(batch.COMMITTED)]
    assert leftovers == [], "a committed batch was left unfinished"


def test_an_orphaned_batch_is_finished_once_its_publisher_had_its_chance(
    tmp_path: Path,
) -> None:
    FileQueueAdapter({"base_path": str(tmp_path)}).close()
    killed_at_rename(tmp_path, 150)  # after the commit, 48 of its jobs moved
    counts = queued(tmp_path)
    assert counts == {"b": 48}  # the rest is younger than ORPHAN_S: left to its publisher
    committed = [n for n in os.listdir(tmp_path / "tmp") if n.endswith(batch.COMMITTED)]
    assert len(committed) == 1
    deadline = time.monotonic() + batch.ORPHAN_S + 10
    while time.monotonic() < deadline and counts["b"] < 100:
        time.sleep(1)
        counts += queued(tmp_path)
    assert counts == {"b": 100}


PUBLISHER = textwrap.dedent("""
    import sys
    from pulpo_core import Message
    from pulpo_file.adapter import FileQueueAdapter
    queue = FileQueueAdapter({"base_path": sys.argv[1]})
    for k in range(1000):
        batch = f"r{sys.argv[2]}b{k}"
        queue.enqueue_many([Message("t", payload=f"{batch}-{n}") for n in range(100)])
        print(k, flush=True)
""")


def test_publishers_killed_at_random_leave_whole_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "ORPHAN_S", 0.0)
    FileQueueAdapter({"base_path": str(tmp_path)}).close()
    returned: set[str] = set()
    rng = random.Random(7)
    for run in range(4):
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(tmp_path), str(run)],
                                     stdout=subprocess.PIPE, text=True)
        assert publisher.stdout is not None
        first = publisher.stdout.readline().strip()  # it is publishing
        time.sleep(rng.uniform(0.0, 0.3))
        publisher.send_signal(signal.SIGKILL)
        out = publisher.communicate()[0]
        returned |= {f"r{run}b{k}" for k in [first, *out.split()] if k}
    counts = queued(tmp_path)
    assert all(count == 100 for count in counts.values()), counts
    assert returned <= set(counts), "a batch whose publish_many returned is missing"
