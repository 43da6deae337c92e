"""A worker that starts on a deep backlog still in publish logs runs its first job at once.

Publishers killed in the middle of publishing leave thousands of jobs in their logs. A worker
used to make files of all of them before its first dequeue returned (tens of seconds at 60,000
jobs, which looked like a worker that runs nothing); it now makes at most ``LOOK_BUDGET`` per
look, so jobs flow from the first dequeue on, and every acknowledged job is still run once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pulpo_file.adapter import FileQueueAdapter
from pulpo_file.materialize import LOOK_BUDGET

from pulpo_core import Message

PUBLISHER = textwrap.dedent("""
    import sys
    from pulpo_core import Message
    from pulpo_file.adapter import FileQueueAdapter
    queue = FileQueueAdapter({"base_path": sys.argv[1]})
    n = 0
    while True:
        queue.enqueue(Message("t", payload=f"{sys.argv[2]}-{n}"))
        print(f"{sys.argv[2]}-{n}", flush=True)
        n += 1
""")


def test_the_first_job_runs_before_the_whole_backlog_is_made_files(tmp_path: Path) -> None:
    FileQueueAdapter({"base_path": str(tmp_path)}).close()
    acknowledged: list[str] = []
    for name in ("a", "b", "c"):
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(tmp_path), name],
                                     stdout=subprocess.PIPE, text=True)
        assert publisher.stdout is not None
        acknowledged += [publisher.stdout.readline().strip() for _ in range(1500)]
        publisher.kill()  # in the middle of publishing
        acknowledged += publisher.communicate()[0].split()
    assert os.listdir(tmp_path / "ready") == []  # all of them in publish logs
    worker = FileQueueAdapter({"base_path": str(tmp_path)})
    first = worker.dequeue()
    assert first is not None
    made = len(os.listdir(tmp_path / "ready")) + 1
    assert made <= LOOK_BUDGET, f"{made} jobs were made files before the first one ran"
    worker.commit(first)
    handled = [first.payload]
    while (message := worker.dequeue()) is not None:
        handled.append(message.payload)
        worker.commit(message)
    assert sorted(handled) == sorted(set(handled))
    assert set(acknowledged) <= set(handled)
    assert worker.stats()["total"] == 0
    worker.enqueue(Message("t", payload="after"))
