"""pulpo on beanstalkd against a plain greenstalk loop: publish rate and worker drain rate.

One beanstalkd, started here on a free loopback port (no binlog: the server's own cost stays
small, so the clients' costs show), N jobs of about 200 bytes each, the median of ROUNDS rounds;
in each round the plain loop and pulpo run one after the other on tubes of their own.

- publish: the plain loop puts ``json.dumps({...})`` with greenstalk; pulpo calls
  ``Pulpo.publish(Message(...))`` once per job, and ``Pulpo.publish_many`` with all N.
- drain: the plain loop reserves, reads the JSON and deletes; pulpo runs its real worker loop
  (``Pulpo.start()``) with a no-op handler, stopped by the handler after the N-th job; and, to
  tell the adapter's share from the core's, the adapter alone (``dequeue`` then ``commit``).
- pulpo runs with its default settings, and again with ``spin_wait = 0`` (reads sleep at once
  instead of polling briefly for the answer) to show what that setting gives and costs: each
  row also has the client process's CPU time per job.

pulpo should reach at least GOAL times the plain loop's rates. Run alone with
``python bench/bench_beanstalkd.py`` (exit status 1 when pulpo with its defaults misses the goal on
one call per job, ``publish_many`` or the worker drain).
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

N = 5000
ROUNDS = 5
GOAL = 0.9
#: Makes a job body of about 200 bytes (pulpo's JSON adds its header around it).
PAYLOAD = "x" * 60
_tubes = itertools.count()
TIMES = "\u00d7"  # the multiplication sign


class Server:
    """A beanstalkd on a free loopback port, for the length of a ``with`` block."""

    def __init__(self) -> None:
        binary = shutil.which("beanstalkd") or "/usr/bin/beanstalkd"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.command = [binary, "-l", "127.0.0.1", "-p", str(self.port)]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        try:
            self.process = subprocess.Popen(self.command, stderr=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RuntimeError("beanstalkd is not installed (apt-get install beanstalkd)") from None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"beanstalkd did not answer on port {self.port}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def tube() -> str:
    return f"bench-{next(_tubes)}"


Figure = tuple[float, float]


def rate(work: Callable[[], None]) -> Figure:
    """Jobs per second of ``work`` (which handles N jobs), and this process's CPU time per job
    in microseconds (the server's excluded)."""
    started, cpu = time.perf_counter(), time.process_time()
    work()
    return N / (time.perf_counter() - started), (time.process_time() - cpu) / N * 1e6


# -- the plain greenstalk loop ------------------------------------------------------------------


def plain_job(number: int, pad: str = "") -> str:
    """The plain loop's job: what a hand-written producer would put (``pad``: to pulpo's size)."""
    return json.dumps({"request_type": "bench", "n": number, "payload": PAYLOAD, "pad": pad})


def plain_publish(port: int, name: str, pad: str) -> Figure:
    import greenstalk

    with greenstalk.Client(("127.0.0.1", port), use=name, watch=name) as client:

        def work() -> None:
            for number in range(N):
                client.put(plain_job(number, pad), ttr=60)

        return rate(work)


def plain_drain(port: int, name: str) -> Figure:
    import greenstalk

    with greenstalk.Client(("127.0.0.1", port), use=name, watch=name) as client:

        def work() -> None:
            for _ in range(N):
                job = client.reserve(timeout=1)
                json.loads(job.body)
                client.delete(job)

        return rate(work)


# -- pulpo ------------------------------------------------------------------------------------


def make_app(port: int, name: str, spin_wait: float | None = None, **settings: Any) -> Any:
    from pulpo_core import Pulpo

    section: dict[str, Any] = {"port": port, "default_tube": name}
    if spin_wait is not None:
        section["spin_wait"] = spin_wait
    return Pulpo({"queue_adapter_type": "beanstalkd", "beanstalkd_queue_adapter": section,
                  **settings})


def pulpo_publish(port: int, name: str, spin_wait: float | None = None) -> Figure:
    from pulpo_core import Message

    app = make_app(port, name, spin_wait)
    try:
        app.queue_adapter.stats()  # connect before the clock starts, as the plain loop does

        def work() -> None:
            for number in range(N):
                app.publish(Message("bench", {"n": number}, payload=PAYLOAD))

        return rate(work)
    finally:
        app.close()


def pulpo_publish_many(port: int, name: str) -> Figure:
    from pulpo_core import Message

    app = make_app(port, name)
    try:
        app.queue_adapter.stats()

        def work() -> None:
            app.publish_many(Message("bench", {"n": number}, payload=PAYLOAD)
                             for number in range(N))

        return rate(work)
    finally:
        app.close()


def pulpo_drain(port: int, name: str, spin_wait: float | None = None) -> Figure:
    app = make_app(port, name, spin_wait, sleep_duration=0)
    done = itertools.count(1)

    def noop(message: Any) -> None:
        if next(done) == N:
            app.stop()  # the loop ends after this job, without waiting for an empty reserve

    app.register_handler("bench", noop)
    try:
        app.queue_adapter.stats()
        return rate(app.start)
    finally:
        app.close()


def pulpo_adapter_drain(port: int, name: str) -> Figure:
    """The adapter alone: ``dequeue`` and ``commit``, without ``handle_message``."""
    app = make_app(port, name)
    adapter = app.queue_adapter
    try:
        adapter.stats()

        def work() -> None:
            for _ in range(N):
                message = adapter.dequeue()
                assert message is not None
                adapter.commit(message)

        return rate(work)
    finally:
        app.close()


def pulpo_job_size(port: int) -> int:
    """Bytes in the body of a pulpo job (the plain loop's jobs are padded to it)."""
    import greenstalk

    from pulpo_core import Message

    app = make_app(port, tube())
    try:
        job_id = app.publish(Message("bench", {"n": N - 1}, payload=PAYLOAD)).id
        with greenstalk.Client(("127.0.0.1", port), encoding=None) as client:
            return len(client.peek(int(str(job_id))).body)
    finally:
        app.close()


def cpu_costs() -> list[tuple[str, float]]:
    """Microseconds of CPU per job for each step pulpo adds, measured without any I/O."""
    from pulpo_beanstalkd.codec import decode, encode

    from pulpo_core import Message, Pulpo, Result

    class NullQueue:  # handle_message settles the job here, at no cost
        def commit(self, message: Message) -> None:
            pass

        def close(self) -> None:
            pass

    app = Pulpo({"queue_adapter_type": "memory"})
    app._queue_adapter = NullQueue()  # type: ignore[assignment]
    app.register_handler("bench", lambda message: None)
    message = Message("bench", {"n": 1}, payload=PAYLOAD, ttr=60)
    body = encode(message, "utf-8")
    success = Result.success()
    plain = plain_job(1)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("`Message(...)`, built by the caller", lambda: Message("bench", {"n": 1},
                                                               payload=PAYLOAD)),
        ("publish checks and hooks (`Pulpo._prepare`)", lambda: app._prepare(message)),
        ("of which `pulpo_before_publish` hook calls", lambda: app.plugin_manager.call_chain(
            "pulpo_before_publish", "message", {"message": message, "app": app}, Message)),
        ("of which `validate_for_publish`", message.validate_for_publish),
        ("message to job body (`codec.encode`)", lambda: encode(message, "utf-8")),
        ("returned copy with the id (`with_id`)", lambda: message.with_id("1")),
        ("job body to message (`codec.decode`)", lambda: decode(body, 1, "utf-8", 0)),
        ("`handle_message`, queue calls excluded", lambda: app.handle_message(message)),
        ("of which three hook calls", lambda: (
            app.plugin_manager.call_first("pulpo_before_process", {"message": message, "app": app}),
            app.plugin_manager.call_first("pulpo_result_policy",
                            {"message": message, "result": success, "app": app}),
            app.plugin_manager.call_each("pulpo_after_process",
                           {"message": message, "result": success, "action": None, "app": app}))),
        ("the same three through pluggy's dispatch", lambda: (
            app.hook.pulpo_before_process(message=message, app=app),
            app.hook.pulpo_result_policy(message=message, result=success, app=app),
            app.hook.pulpo_after_process(message=message, result=success, action=None,
                                         app=app))),
        ("plain loop: `json.dumps` of its job", lambda: plain_job(1)),
        ("plain loop: `json.loads` of its job", lambda: json.loads(plain)),
    ]
    costs = []
    for label, step in steps:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(5000):
                step()
            times.append((time.perf_counter() - started) / 5000 * 1e6)
        costs.append((label, min(times)))
    app.close()
    return costs


def measure() -> tuple[int, dict[str, list[Figure]]]:
    results: dict[str, list[Figure]] = {key: [] for key in (
        "plain publish", "pulpo publish", "pulpo publish, no spin", "pulpo publish_many",
        "plain drain", "pulpo drain", "pulpo drain, no spin", "pulpo adapter drain")}
    with Server() as server:
        port = server.port
        size = pulpo_job_size(port)
        pad = " " * max(0, size - len(plain_job(N - 1).encode()))
        for _ in range(ROUNDS):
            plain, pulpo, still, many = tube(), tube(), tube(), tube()
            results["plain publish"].append(plain_publish(port, plain, pad))
            results["pulpo publish"].append(pulpo_publish(port, pulpo))
            results["pulpo publish, no spin"].append(pulpo_publish(port, still, spin_wait=0))
            results["pulpo publish_many"].append(pulpo_publish_many(port, many))
            results["plain drain"].append(plain_drain(port, plain))
            results["pulpo drain"].append(pulpo_drain(port, pulpo))
            results["pulpo drain, no spin"].append(pulpo_drain(port, still, spin_wait=0))
            results["pulpo adapter drain"].append(pulpo_adapter_drain(port, many))
    return size, results


def run(report: list[str]) -> None:
    """Measure and append a Markdown section to ``report``."""
    size, results = measure()
    median = {key: statistics.median(rate for rate, _ in values)
              for key, values in results.items()}
    cpu = {key: statistics.median(cost for _, cost in values) for key, values in results.items()}
    report += [
        "## beanstalkd",
        "",
        f"{N} jobs per run, median of {ROUNDS} rounds, one beanstalkd without binlog on "
        f"loopback; job bodies of {size} bytes for both.",
        "",
        "Rates are medians of the rounds; a ratio is the median of the rounds' ratios (each",
        "round runs both side by side).",
        "",
        "| what | plain greenstalk loop | pulpo | ratio | CPU µs per job, plain / pulpo |",
        "|---|---|---|---|---|",
    ]
    # (label, plain key, pulpo key, whether the goal applies: pulpo with its defaults)
    rows = [
        ("publish, one call per job", "plain publish", "pulpo publish", True),
        ("the same, `spin_wait = 0`", "plain publish", "pulpo publish, no spin", False),
        ("publish, `publish_many` (pipelined)", "plain publish", "pulpo publish_many", True),
        ("worker drain (reserve, no-op, delete)", "plain drain", "pulpo drain", True),
        ("the same, `spin_wait = 0`", "plain drain", "pulpo drain, no spin", False),
        ("adapter only: `dequeue` + `commit`", "plain drain", "pulpo adapter drain", False),
    ]
    missed = []
    for label, plain, pulpo, goal in rows:
        # Each round measures both side by side: the ratio is the median of the rounds'.
        ratio = statistics.median(ours / theirs for (ours, _), (theirs, _)
                                  in zip(results[pulpo], results[plain], strict=True))
        mark = "" if ratio >= GOAL else f" (below {GOAL}{TIMES})"
        if goal and ratio < GOAL:
            missed.append(f"{label}: {ratio:.2f}{TIMES}, below the goal of {GOAL}{TIMES}")
        report.append(f"| {label} | {median[plain]:,.0f}/s | {median[pulpo]:,.0f}/s | "
                      f"**{ratio:.2f}{TIMES}**{mark} | {cpu[plain]:.0f} / {cpu[pulpo]:.0f} |")
    report += ["", "Every round (jobs/s):", ""]
    for key, values in results.items():
        report.append(f"- {key}: {', '.join(f'{value:,.0f}' for value, _ in values)}")
    report += ["", "CPU per job of the steps pulpo adds (no I/O; best of 3 runs of 5,000):", "",
               "| step | µs |", "|---|---|"]
    report += [f"| {label} | {cost:.1f} |" for label, cost in cpu_costs()]
    report.append("")
    if missed:
        report += ["Goals missed:", "", *(f"- {line}" for line in missed), ""]
        raise RuntimeError(f"{len(missed)} goal(s) missed: " + "; ".join(missed))
    report += [f"Every goal met (pulpo with its defaults at least {GOAL}{TIMES} the plain loop).",
               ""]


def main() -> int:
    report: list[str] = []
    status = 0
    try:
        run(report)
    except RuntimeError as error:
        print(f"bench_beanstalkd: {error}", file=sys.stderr)
        status = 1
    print("\n".join(report))
    return status


if __name__ == "__main__":
    sys.exit(main())
