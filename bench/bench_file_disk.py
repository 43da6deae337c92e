"""pulpo-file's disk use: the queue folder is bounded by the live jobs, not by the jobs ever run.

Two runs with the default settings (durable publishes into publish logs), each of ``JOBS`` small
jobs published one by one by a publisher process:

- *stream*: a worker process drains while the publisher publishes;
- *backlog*: the publisher publishes everything first, then the worker drains.

The folder's size (blocks in use, outside ``spare/``, and ``spare/`` apart) is sampled every
0.2 s, during the run and until the worker, idle, has retired the publish logs that hold nothing
and the journal segments before the newest (at most ``SETTLE_S`` seconds). Goals: once the
publisher has closed and the jobs are drained, the folder outside ``spare/`` holds at most one
journal segment (``journal_segment_size``), the one publish log kept for the next publisher and
``SLACK_MIB`` of small files, and ``spare/`` never holds more files than ``max_spare_files``.
The report shows the size over time as a line of blocks.

Run alone with ``python bench/bench_file_disk.py [--quick]`` (exit status 1 when a goal is
missed); ``nox -s bench`` runs it with the others.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import NamedTuple

JOBS = 100_000
QUICK_JOBS = 10_000
SLACK_MIB = 0.25
SETTLE_S = 20.0
SAMPLE_S = 0.2
MIB = 1024 * 1024
BARS = " ▁▂▃▄▅▆▇█"

PUBLISHER = textwrap.dedent("""
    import sys
    from pulpo_core import Message
    from pulpo_file.adapter import FileQueueAdapter
    queue = FileQueueAdapter({"base_path": sys.argv[1]})
    for n in range(int(sys.argv[2])):
        queue.enqueue(Message("t", body={"n": n, "text": "a small job body, much like a real one"}))
        if n % 10_000 == 0:
            print(f"bench: published {n}", file=sys.stderr, flush=True)
    queue.close()
""")

WORKER = textwrap.dedent("""
    import os, sys, time
    from pulpo_file.adapter import FileQueueAdapter
    base, count, settle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    queue = FileQueueAdapter({"base_path": base})
    done = 0
    while done < count:
        message = queue.dequeue()
        if message is None:
            time.sleep(0.001)
            continue
        queue.commit(message)
        done += 1
    idle_until = time.monotonic() + settle  # idle, as a worker between jobs: it tidies up
    while time.monotonic() < idle_until:
        queue.dequeue()
        logs = [n for n in os.listdir(os.path.join(base, "logs")) if n.endswith(".log")]
        if len(logs) <= 1 and len(os.listdir(os.path.join(base, "journal"))) <= 1:
            break
        time.sleep(0.2)
    queue.close()
""")


def sizes(folder: Path) -> tuple[int, int, int]:
    """Bytes in use outside ``spare/``, bytes in ``spare/``, files in ``spare/``."""
    outside = spare = spare_files = 0
    for root, _dirs, files in os.walk(folder):
        in_spare = Path(root).name == "spare"
        for name in files:
            try:
                used = os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
            if in_spare:
                spare += used
                spare_files += 1
            else:
                outside += used
    return outside, spare, spare_files


def line(samples: list[int], width: int = 60) -> str:
    """The samples as one line of blocks, ``width`` wide, scaled to the largest."""
    if not samples:
        return ""
    step = max(1, len(samples) // width)
    points = [max(samples[i : i + step]) for i in range(0, len(samples), step)]
    top = max(points) or 1
    return "".join(BARS[round(p / top * (len(BARS) - 1))] for p in points)


class Result(NamedTuple):
    kind: str
    published_s: float
    elapsed_s: float
    peak_outside: int
    final_outside: int
    peak_spare: int
    peak_spare_files: int
    line: str


def run_once(kind: str, jobs: int) -> Result:
    folder = Path(tempfile.mkdtemp(prefix=f"pulpo-disk-{kind}-")) / "queue"
    samples: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            if folder.exists():
                samples.append(sizes(folder))
            stop.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        worker_args = [str(folder), str(jobs), str(SETTLE_S)]
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(folder), str(jobs)])
        worker = None
        if kind == "stream":
            worker = subprocess.Popen([sys.executable, "-c", WORKER, *worker_args])
        if publisher.wait() != 0:
            raise RuntimeError("the publisher failed")
        published = time.perf_counter() - started
        if worker is None:
            worker = subprocess.Popen([sys.executable, "-c", WORKER, *worker_args])
        if worker.wait() != 0:
            raise RuntimeError("the worker failed")
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        sampler.join()
    final = sizes(folder)
    shutil.rmtree(folder.parent, ignore_errors=True)
    return Result(
        kind, published, elapsed, max(s[0] for s in samples), final[0],
        max(s[1] for s in samples), max(s[2] for s in samples),
        line([s[0] + s[1] for s in samples]),
    )


def run(report: list[str], quick: bool = False) -> bool:
    from pulpo_file.config import FileQueueConfig
    from pulpo_file.publog import FIRST_SIZE

    jobs = QUICK_JOBS if quick else JOBS
    settings = FileQueueConfig()
    bound = settings.max_spare_files
    final_goal_mib = (settings.journal_segment_size + FIRST_SIZE) / MIB + SLACK_MIB
    results = [run_once(kind, jobs) for kind in ("stream", "backlog")]
    report += [
        "## pulpo-file disk use",
        "",
        f"{jobs:,} jobs published one by one (durable, default settings) and drained; sizes are "
        f"blocks in use, sampled every {SAMPLE_S} s.",
        "",
        "| run | publish / total time | peak outside `spare/` | after, outside `spare/` "
        "| peak `spare/` (files) | size over time |",
        "|---|---|---|---|---|---|",
    ]
    ok = True
    for r in results:
        final_mib = r.final_outside / MIB
        ok = ok and final_mib <= final_goal_mib and r.peak_spare_files <= bound
        report.append(
            f"| {r.kind} | {r.published_s:.1f} s / {r.elapsed_s:.1f} s "
            f"| {r.peak_outside / MIB:.1f} MiB | **{final_mib:.2f} MiB** "
            f"| {r.peak_spare / MIB:.1f} MiB ({r.peak_spare_files:,}) | `{r.line}` |"
        )
    report += [
        "",
        f"Goals: at most {final_goal_mib:g} MiB outside `spare/` afterwards (one journal "
        f"segment, one publish log, {SLACK_MIB:g} MiB of small files), `spare/` within "
        f"`max_spare_files` ({bound:,}): {'met' if ok else '**missed**'}.",
        "",
    ]
    return ok


if __name__ == "__main__":
    lines: list[str] = []
    met = run(lines, quick="--quick" in sys.argv)
    print("\n".join(lines))
    sys.exit(0 if met else 1)
