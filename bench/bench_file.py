"""pulpo-file against its peers: publish and drain rates at depth 1,000 and 20,000.

The work: publish N small jobs (``{"n": i, "text": ...}``) into an empty queue, then drain them
with one consumer (take the next job, decode it, mark it done). Each system keeps one queue for
the whole benchmark, as a long-lived queue in production does; the first round at each depth is
a warm-up and is not counted (pulpo-file's figures for that cold round are reported apart). The
rounds run the systems in turn, so that a slow moment of the shared machine hits all of them;
each figure is the median of the counted rounds.

Pairs at equal durability:

- flushing off: pulpo-file with ``fsync = false``, Huey's ``FileHuey`` (never flushes),
  persist-queue's file ``Queue`` (flushes once per 100-item chunk);
- flushing on: pulpo-file with ``fsync = true`` (its default ``fsync_method = "log"``), Huey's
  ``SqliteHuey`` and persist-queue's ``SQLiteAckQueue``, both SQLite in WAL mode with
  ``synchronous = FULL``. pulpo-file with ``fsync_method = "journal"`` and with
  ``publish_many`` are reported beside them, not as goals.

Before every timed phase the system's dirty data is flushed (``sync``, not timed), so that one
system's files being written out do not slow the next one down.

Goals: pulpo-file publishes and drains faster than both peers of its pair, and its drain cost per
job at depth 20,000 is at most 1.5 times the cost at 1,000. The scaling is measured apart, with
drains of 1,000 and 20,000 jobs alternating on the same queue (five of each, medians), so that
both depths meet the same conditions on the machine. ``FileHuey`` lists and sorts its
whole folder on every dequeue, so at depth 20,000 only its first 500 dequeues are timed (the most
expensive ones; a full drain would take minutes).

Run alone with ``python bench/bench_file.py [--quick]`` (exit status 1 when a goal is missed);
``nox -s bench`` runs it with the others and installs the peers (``huey``, ``persist-queue``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

DEPTHS = (1_000, 20_000)
ROUNDS = {1_000: 5, 20_000: 3}  # counted rounds; one warm-up round comes first
QUICK_ROUNDS = {1_000: 3}
FILEHUEY_SAMPLE = 500
#: Jobs per ``publish_many`` call in the extra (not paired) pulpo-file row.
BATCH = 100
DRAIN_SCALING_GOAL = 1.5
TEXT = "a small job body, much like a real one"


class Subject:
    """One queue implementation under test: publish ``n`` jobs, drain up to ``limit``."""

    name = ""
    flushing = False

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def publish(self, count: int) -> None:
        raise NotImplementedError

    def drain(self, limit: int) -> int:
        raise NotImplementedError

    def empty(self) -> None:
        """Remove what a sampled drain left (not timed)."""

    def close(self) -> None:
        """Release the queue."""


class PulpoFile(Subject):
    def __init__(self, folder: str, fsync: bool, batch: int = 0, method: str = "") -> None:
        super().__init__(folder)
        import pulpo_file.plugin

        from pulpo_core import Message, Pulpo
        from pulpo_core.plugins import build_plugin_manager

        self.flushing = fsync
        self.batch = batch
        self.name = f"pulpo-file (fsync {'on' if fsync else 'off'})"
        if batch:
            self.name = f"pulpo-file (fsync {'on' if fsync else 'off'}, publish_many by {batch})"
        if method:
            self.name = f"pulpo-file (fsync on, fsync_method = {method!r})"
        self.message = Message
        manager = build_plugin_manager(load_entry_points=False, plugins=[pulpo_file.plugin])
        section: dict[str, Any] = {"base_path": folder, "fsync": fsync}
        if method:
            section["fsync_method"] = method
        config = {"file_queue_adapter": section}
        self.app = Pulpo(config, plugin_manager=manager)
        self.adapter = self.app.queue_adapter

    def publish(self, count: int) -> None:
        publish, message = self.app.publish, self.message
        if self.batch:
            for start in range(0, count, self.batch):
                self.app.publish_many(
                    message("bench", {"n": n, "text": TEXT})
                    for n in range(start, min(start + self.batch, count))
                )
            return
        for n in range(count):
            publish(message("bench", {"n": n, "text": TEXT}))

    def drain(self, limit: int) -> int:
        dequeue, commit = self.adapter.dequeue, self.adapter.commit
        done = 0
        while done < limit and (job := dequeue()) is not None:
            commit(job)
            done += 1
        return done

    def close(self) -> None:
        self.app.close()


class HueySubject(Subject):
    def __init__(self, folder: str, kind: str) -> None:
        super().__init__(folder)
        import huey

        if kind == "file":
            self.name, self.flushing = "huey FileHuey", False
            self.huey = huey.FileHuey("bench", path=folder)
        else:
            self.name, self.flushing = "huey SqliteHuey (WAL, FULL)", True
            self.huey = huey.SqliteHuey(
                "bench", filename=os.path.join(folder, "huey.db"), fsync=True, journal_mode="wal"
            )

        @self.huey.task()
        def job(n: int, text: str) -> None:
            return None

        self.job = job

    def publish(self, count: int) -> None:
        job = self.job
        for n in range(count):
            job(n, TEXT)

    def drain(self, limit: int) -> int:
        dequeue = self.huey.dequeue  # takes the task out and decodes it (huey has no ack)
        done = 0
        while done < limit and dequeue() is not None:
            done += 1
        return done

    def empty(self) -> None:
        self.huey.flush()


class PersistQueueSubject(Subject):
    def __init__(self, folder: str, kind: str) -> None:
        super().__init__(folder)
        import persistqueue

        if kind == "file":
            self.name, self.flushing = "persist-queue Queue", False
            os.makedirs(os.path.join(folder, "tmp"))
            self.queue: Any = persistqueue.Queue(
                os.path.join(folder, "queue"), tempdir=os.path.join(folder, "tmp")
            )
            self.acked = False
        else:
            self.name, self.flushing = "persist-queue SQLiteAckQueue (WAL, FULL)", True
            self.queue = persistqueue.SQLiteAckQueue(os.path.join(folder, "queue"))
            # WAL is its default; the connection is not otherwise reachable to set FULL.
            self.queue._conn.execute("PRAGMA synchronous=FULL")
            self.acked = True

    def publish(self, count: int) -> None:
        put = self.queue.put
        for n in range(count):
            put({"n": n, "text": TEXT})

    def drain(self, limit: int) -> int:
        from persistqueue.exceptions import Empty

        queue, done = self.queue, 0
        while done < limit:
            try:
                item = queue.get(block=False, raw=True) if self.acked else queue.get(block=False)
            except Empty:
                break
            if self.acked:
                queue.ack(id=item["pqid"])
            else:
                queue.task_done()
            done += 1
        return done

    def close(self) -> None:
        if self.acked:
            self.queue.close()


def subjects(root: str) -> Iterator[tuple[str, Callable[[str], Subject]]]:
    yield "pulpo-off", lambda folder: PulpoFile(folder, fsync=False)
    yield "filehuey", lambda folder: HueySubject(folder, "file")
    yield "pq-file", lambda folder: PersistQueueSubject(folder, "file")
    yield "pulpo-on", lambda folder: PulpoFile(folder, fsync=True)
    yield "sqlitehuey", lambda folder: HueySubject(folder, "sqlite")
    yield "pq-sqlite", lambda folder: PersistQueueSubject(folder, "sqlite")
    yield "pulpo-on-journal", lambda folder: PulpoFile(folder, fsync=True, method="journal")
    yield "pulpo-on-many", lambda folder: PulpoFile(folder, fsync=True, batch=BATCH)


def measure_depth(depth: int, rounds: int, root: str) -> dict[str, dict[str, Any]]:
    """Per subject: its name, flushing, and the publish / drain seconds per job of each round."""
    opened: dict[str, Subject] = {}
    results: dict[str, dict[str, Any]] = {}
    for key, make in subjects(root):
        folder = os.path.join(root, f"{key}-{depth}")
        os.makedirs(folder)
        opened[key] = make(folder)
        results[key] = {"name": opened[key].name, "flushing": opened[key].flushing,
                        "publish": [], "drain": [], "sampled": False}
    try:
        for round_number in range(rounds + 1):
            for key, subject in opened.items():
                limit = FILEHUEY_SAMPLE if key == "filehuey" and depth > 1_000 else depth
                os.sync()
                started = time.perf_counter()
                subject.publish(depth)
                published = time.perf_counter() - started
                os.sync()
                started = time.perf_counter()
                drained = subject.drain(limit)
                drain_time = time.perf_counter() - started
                if drained != limit:
                    raise RuntimeError(f"{subject.name} drained {drained} of {limit} jobs")
                if limit < depth:
                    subject.empty()
                    results[key]["sampled"] = True
                if round_number == 0:
                    results[key]["cold"] = (published / depth, drain_time / drained)
                    continue
                results[key]["publish"].append(published / depth)
                results[key]["drain"].append(drain_time / drained)
            print(f"bench_file: depth {depth}, round {round_number} of {rounds} done",
                  file=sys.stderr, flush=True)
    finally:
        for subject in opened.values():
            subject.close()
    return results


def measure_scaling(root: str, depths: tuple[int, int], pairs: int) -> dict[bool, list[float]]:
    """Per fsync setting: drain seconds per job at each depth, the depths alternating."""
    scaling: dict[bool, list[float]] = {}
    for fsync in (False, True):
        folder = os.path.join(root, f"scaling-{fsync}")
        os.makedirs(folder)
        subject = PulpoFile(folder, fsync=fsync)
        costs: dict[int, list[float]] = {depth: [] for depth in depths}
        try:
            for round_number in range(pairs + 1):
                for depth in depths:
                    subject.publish(depth)
                    os.sync()
                    started = time.perf_counter()
                    drained = subject.drain(depth)
                    if round_number:  # the first pair warms the queue up
                        costs[depth].append((time.perf_counter() - started) / drained)
        finally:
            subject.close()
        scaling[fsync] = [statistics.median(costs[depth]) for depth in depths]
        print(f"bench_file: drain scaling with fsync {fsync} done", file=sys.stderr, flush=True)
    return scaling


def filesystem_of(path: str) -> str:
    """The file system type holding ``path`` (from /proc/mounts), or ``unknown``."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and path.startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    return kind


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def rate(seconds: float) -> str:
    return f"{1 / seconds:,.0f}/s"


def run(report: list[str], quick: bool = False) -> None:
    """Measure and append a Markdown section to ``report``; raise when a goal is missed."""
    rounds = QUICK_ROUNDS if quick else ROUNDS
    root = tempfile.mkdtemp(prefix="pulpo-bench-file-")
    try:
        measured = {depth: measure_depth(depth, count, root) for depth, count in rounds.items()}
        scaling = None if quick else measure_scaling(root, (DEPTHS[0], DEPTHS[-1]), 5)
        fs = filesystem_of(os.path.realpath(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {
        depth: {key: (statistics.median(r["publish"]), statistics.median(r["drain"]))
                for key, r in results.items()}
        for depth, results in measured.items()
    }
    report += [
        "## pulpo-file against its peers",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} cores, queue folders on {fs}. "
        "Per job: publish N jobs into an empty queue, then drain them with one consumer; "
        f"medians of {', '.join(f'{n} rounds at {d:,}' for d, n in rounds.items())} after one "
        "warm-up round each.",
        "",
    ]
    missed: list[str] = []
    for depth, results in measured.items():
        report += [f"### Depth {depth:,}", "",
                   "| queue | flushes | publish | publish rate | drain | drain rate |",
                   "|---|---|---|---|---|---|"]
        for key, r in results.items():
            publish, drain = medians[depth][key]
            note = f" (first {FILEHUEY_SAMPLE} of {depth:,})" if r["sampled"] else ""
            report.append(f"| {r['name']} | {'yes' if r['flushing'] else 'no'} | {us(publish)} "
                          f"| {rate(publish)} | {us(drain)}{note} | {rate(drain)} |")
        report += ["", "How many times faster pulpo-file is than each peer of its pair (below 1: "
                   "slower):", ""]
        for ours, peers in (("pulpo-off", ("filehuey", "pq-file")),
                            ("pulpo-on", ("sqlitehuey", "pq-sqlite"))):
            our_publish, our_drain = medians[depth][ours]
            for peer in peers:
                publish, drain = medians[depth][peer]
                line = (f"{results[ours]['name']} vs {results[peer]['name']}: publish "
                        f"{publish / our_publish:.2f}x, drain {drain / our_drain:.2f}x")
                report.append(f"- {line}")
                if publish <= our_publish or drain <= our_drain:
                    missed.append(f"depth {depth:,}: {line}")
        our_publish = medians[depth]["pulpo-on-many"][0]
        for peer in ("sqlitehuey", "pq-sqlite"):
            report.append(f"- not a goal (the peers publish one job at a time): "
                          f"{results['pulpo-on-many']['name']} publishes "
                          f"{medians[depth][peer][0] / our_publish:.2f}x faster than "
                          f"{results[peer]['name']}")
        our_publish, our_drain = medians[depth]["pulpo-on-journal"]
        for peer in ("sqlitehuey", "pq-sqlite"):
            publish, drain = medians[depth][peer]
            report.append(f"- not a goal (not the default): {results['pulpo-on-journal']['name']} "
                          f"vs {results[peer]['name']}: publish {publish / our_publish:.2f}x, "
                          f"drain {drain / our_drain:.2f}x")
        for key in ("pulpo-off", "pulpo-on"):
            cold_publish, cold_drain = results[key]["cold"]
            report.append(f"- {results[key]['name']}, cold queue (the warm-up round, no spare "
                          f"files yet): publish {us(cold_publish)}, drain {us(cold_drain)}")
        report.append("")
    if scaling is not None:
        small, large = DEPTHS[0], DEPTHS[-1]
        report += [f"### Drain cost per job, depth {large:,} against {small:,}", "",
                   "Drains of both depths alternating on one queue, five of each, medians.", ""]
        for fsync, (small_cost, large_cost) in scaling.items():
            ratio = large_cost / small_cost
            line = (f"- pulpo-file (fsync {'on' if fsync else 'off'}): {us(large_cost)} against "
                    f"{us(small_cost)}: {ratio:.2f}x (goal ≤ {DRAIN_SCALING_GOAL}x)")
            report.append(line)
            if ratio > DRAIN_SCALING_GOAL:
                missed.append(line)
        report.append("")
    if missed:
        report += ["Goals missed:", "", *(f"- {line.lstrip('- ')}" for line in missed), ""]
        raise RuntimeError(f"{len(missed)} goal(s) missed: " + "; ".join(missed))
    report += ["Every goal met.", ""]


def main(argv: list[str]) -> int:
    report: list[str] = []
    status = 0
    try:
        run(report, quick="--quick" in argv)
    except RuntimeError as error:
        print(f"bench_file: {error}", file=sys.stderr)
        status = 1
    print("\n".join(report))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
