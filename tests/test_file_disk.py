"""The file queue's folder stays bounded: publish logs that hold nothing are retired.

Real processes: publishers and workers are separate interpreters on one queue folder with
small publish logs (16 slots), so logs fill, new ones are taken and old ones drain while the
others run; one publisher and one worker are killed with SIGKILL in the middle. Nothing
acknowledged is lost, nothing runs twice but the killed worker's job, and once the publishers
are gone and the jobs drained, ``logs/`` is back to one small log and ``journal/`` to one
segment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pulpo_file.adapter import FileQueueAdapter
from pulpo_file.journal import QUIET_S, RETIRE_INTERVAL_S
from pulpo_file.publog import FIRST_SIZE, SLOT

from pulpo_core import Message

SETTINGS = {"publish_log_size": 16 * SLOT, "journal_segment_size": 16 * 1024,
            "lease_check_interval": 0.2}

PUBLISHER = textwrap.dedent("""
    import sys
    from pulpo_core import Message
    from pulpo_file.adapter import FileQueueAdapter
    base, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queue = FileQueueAdapter({"base_path": base, **SETTINGS})
    for n in range(count):
        queue.enqueue(Message("t", payload=f"{name}-{n}", ttr=2))
        print(f"{name}-{n}", flush=True)  # acknowledged: the publish returned
    queue.close()
""")

WORKER = textwrap.dedent("""
    import os, sys, time
    from pulpo_file.adapter import FileQueueAdapter
    base, record, done = sys.argv[1], sys.argv[2], sys.argv[3]
    queue = FileQueueAdapter({"base_path": base, **SETTINGS})
    idle_since = time.monotonic()
    with open(record, "a", buffering=1) as out:
        while True:
            message = queue.dequeue()
            if message is None:
                if os.path.exists(done) and time.monotonic() - idle_since > 3:
                    break
                time.sleep(0.01)
                continue
            idle_since = time.monotonic()
            out.write(message.payload + "\\n")  # handled: recorded before the commit
            queue.commit(message)
    queue.close()
""")


def python(script: str, *args: str, stdout: int | None = None) -> subprocess.Popen[str]:
    code = f"SETTINGS = {SETTINGS!r}\n{script}"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=stdout,
                            stderr=subprocess.PIPE, text=True)


def logs_in(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder / "logs") if name.endswith(".log"))


def size_outside_spare(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        if Path(root).name == "spare":
            continue
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def test_logs_are_retired_under_publishers_workers_and_kills(tmp_path: Path) -> None:
    base = str(tmp_path / "queue")
    FileQueueAdapter({"base_path": base, **SETTINGS}).close()
    done = str(tmp_path / "publishers-done")
    publishers = [python(PUBLISHER, base, f"p{n}", "600", stdout=subprocess.PIPE)
                  for n in range(3)]
    workers = [python(WORKER, base, str(tmp_path / f"handled-{n}"), done) for n in range(2)]
    acknowledged: list[str] = []
    most_logs = 0
    # Kill the first publisher once it has published 150 jobs.
    first = publishers[0]
    assert first.stdout is not None
    for _ in range(150):
        acknowledged.append(first.stdout.readline().strip())
    first.kill()
    acknowledged += [line.strip() for line in first.stdout.read().splitlines() if line.strip()]
    first.wait()
    # Kill a worker once it has handled 100 jobs; a new worker takes its place.
    deadline = time.monotonic() + 120
    handled_0 = tmp_path / "handled-0"
    while time.monotonic() < deadline:
        most_logs = max(most_logs, len(logs_in(Path(base))))
        if handled_0.exists() and len(handled_0.read_text().splitlines()) >= 100:
            break
        time.sleep(0.01)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    workers.append(python(WORKER, base, str(tmp_path / "handled-2"), done))
    for publisher in publishers[1:]:
        out, err = publisher.communicate(timeout=120)
        assert publisher.returncode == 0, err
        acknowledged += out.split()
    Path(done).touch()
    while any(worker.poll() is None for worker in workers[1:]):
        most_logs = max(most_logs, len(logs_in(Path(base))))
        assert time.monotonic() < deadline + 120, "the workers did not finish"
        time.sleep(0.05)
    for worker in workers[1:]:
        assert worker.returncode == 0, worker.stderr.read() if worker.stderr else ""

    handled: list[str] = []
    for n in range(3):
        path = tmp_path / f"handled-{n}"
        if path.exists():
            handled += path.read_text().split()
    # The killed worker's last job may have come back after its ttr and run again.
    assert set(acknowledged) <= set(handled), "acknowledged jobs were lost"
    duplicates = len(handled) - len(set(handled))
    assert duplicates <= 1, f"{duplicates} jobs ran twice"
    assert most_logs >= 2, "the test should have filled more than one publish log"

    # Once every job is done, the workers' next looks retire the logs that hold nothing.
    worker = FileQueueAdapter({"base_path": base, **SETTINGS})
    try:
        # The journal segments before the newest go once nobody wrote them for QUIET_S.
        deadline = time.monotonic() + QUIET_S + RETIRE_INTERVAL_S + 30
        while time.monotonic() < deadline and (
            len(logs_in(Path(base))) > 1 or len(segments_in(Path(base))) > 1
        ):
            assert worker.dequeue() is None
            time.sleep(0.1)
        assert len(logs_in(Path(base))) <= 1, logs_in(Path(base))
        assert len(segments_in(Path(base))) == 1, segments_in(Path(base))
        assert worker.stats()["total"] == 0
    finally:
        worker.close()
    assert size_outside_spare(Path(base)) <= FIRST_SIZE + 256 * 1024


def test_a_log_that_a_live_publisher_holds_is_never_retired(tmp_path: Path) -> None:
    settings = {"base_path": str(tmp_path), **SETTINGS}
    publisher = FileQueueAdapter(settings)
    worker = FileQueueAdapter(settings)
    big = "x" * 3000
    try:
        for n in range(40):  # more than one small log holds: the publisher takes new ones
            publisher.enqueue(Message("t", payload=f"{n} {big}"))
        while (message := worker.dequeue()) is not None:
            worker.commit(message)
        owned = publisher._logs.writer
        assert owned is not None
        own = f"{owned.log.number}.log"
        worker._logs.retire_idle()
        worker._logs.checkpoint()
        worker._logs.retire_idle()
        assert own in logs_in(tmp_path)
        publisher.enqueue(Message("t", payload="after"))
        message = worker.dequeue()
        assert message is not None and message.payload == "after"
    finally:
        publisher.close()
        worker.close()


def segments_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder / "journal"))


def test_quiet_journal_segments_are_retired_and_readers_behind_catch_up(tmp_path: Path) -> None:
    settings = {"base_path": str(tmp_path), "journal_segment_size": 4096}
    publisher, worker = FileQueueAdapter(settings), FileQueueAdapter(settings)
    behind = FileQueueAdapter(settings)
    try:
        assert behind.dequeue() is None  # it tails the journal from its first segment, then sleeps
        for n in range(300):
            publisher.enqueue(Message("t", payload=f"{n}"))
        while (message := worker.dequeue()) is not None:
            worker.commit(message)
        written = segments_in(tmp_path)
        assert len(written) >= 3, written
        # Just written: a writer or a reader may still be on them, so they stay.
        worker._journal._next_retire = 0.0
        assert worker.dequeue() is None
        assert segments_in(tmp_path) == written
        # Once nobody wrote them for QUIET_S, the next look of an idle worker removes all but
        # the newest.
        old = time.time() - 60
        for name in written[:-1]:
            os.utime(tmp_path / "journal" / name, (old, old))
        worker._journal._next_retire = 0.0
        assert worker.dequeue() is None
        assert segments_in(tmp_path) == written[-1:]
        # The reader whose segment is gone finds the gap and rebuilds: no job is missed.
        publisher.enqueue(Message("t", payload="after"))
        message = behind.dequeue()
        assert message is not None and message.payload == "after"
        behind.commit(message)
    finally:
        for queue in (publisher, worker, behind):
            queue.close()
