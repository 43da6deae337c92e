"""The ``pulpo scheduler`` and ``pulpo schedules`` commands, and ``worker --with-scheduler``."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo
    from pulpo_core.schedules.scheduler import Scheduler

MakeApp = Callable[[argparse.Namespace], "Pulpo"]
#: How many next fire times ``pulpo schedules`` shows by default.
DEFAULT_NEXT = 3


def add_commands(commands: argparse._SubParsersAction, make_app: MakeApp, ok: int) -> None:  # type: ignore[type-arg]
    """Add ``scheduler`` and ``schedules`` to the ``pulpo`` command."""

    def cmd_scheduler(args: argparse.Namespace) -> int:
        app = make_app(args)
        try:
            scheduler = prepare(app)
            stop = threading.Event()
            with _stop_on_signals(stop):
                scheduler.run(stop)
        finally:
            app.close()
        return ok

    def cmd_schedules(args: argparse.Namespace) -> int:
        app = make_app(args)
        try:
            show(app, args.next)
        finally:
            app.close()
        return ok

    commands.add_parser(
        "scheduler", help="publish the schedules' ticks until SIGTERM/SIGINT"
    ).set_defaults(run=cmd_scheduler)
    schedules = commands.add_parser(
        "schedules", help="each schedule, its next fire times and its last tick published"
    )
    schedules.add_argument(
        "--next", type=int, default=DEFAULT_NEXT, metavar="N", help="how many fire times"
    )
    schedules.set_defaults(run=cmd_schedules)


def prepare(app: Pulpo) -> Scheduler:
    """A scheduler for the app's schedules, its adapter checked, unknown request types warned."""
    # Imported here: building the command's parser (``pulpo --help``) must stay light.
    from pulpo_core.schedules.scheduler import Scheduler, warn_unknown_request_types

    scheduler = Scheduler(app)
    warn_unknown_request_types(app, scheduler.schedules)
    scheduler.check_adapter()
    return scheduler


def show(app: Pulpo, count: int) -> None:
    """Print each schedule: its name, rule, next fire times and its last tick published."""
    import time

    import attrs

    from pulpo_core.adapter import ScheduleLeadership, UniqueLookup
    from pulpo_core.schedules.scheduler import Scheduler
    from pulpo_core.schedules.spec import CONFIG_ORIGIN
    from pulpo_core.schedules.ticks import iso, missed_ticks, next_tick, tick_key

    scheduler = Scheduler(app)
    adapter = app.queue_adapter
    now = time.time()
    ledger = None
    if not isinstance(adapter, UniqueLookup) and isinstance(adapter, ScheduleLeadership):
        ledger = adapter.schedule_ledger()  # (a seat it never asks to lead with)
    for schedule in scheduler.schedules:
        print(f"{schedule.name}: {schedule.request_type}, {schedule.describe()}, "
              f"time zone {schedule.timezone}, catch_up {schedule.catch_up}"
              + ("" if schedule.origin == CONFIG_ORIGIN else f", from the {schedule.origin}"))
        tick = now
        for _ in range(max(count, 0)):
            tick = next_tick(schedule, tick)
            print(f"  next {iso(schedule, tick)}")
        if ledger is not None:
            recorded = ledger.last_tick(schedule.name)
            print(f"  last published {iso(schedule, recorded)}" if recorded is not None
                  else "  no tick published yet")
            continue
        latest = missed_ticks(attrs.evolve(schedule, catch_up="latest"), now)
        holder = None
        if latest and isinstance(adapter, UniqueLookup):
            holder = adapter.unique_holder(tick_key(schedule, latest[0]))
        if latest and holder is not None:
            print(f"  last published {iso(schedule, latest[0])} as job {holder}")
        elif latest:
            print(f"  last tick {iso(schedule, latest[0])}: not published (or no longer held)")
    if ledger is not None:
        ledger.close()


def run_worker_with_scheduler(app: Pulpo) -> None:
    """Run the worker loop with a scheduler in a thread beside it; both stop together."""
    scheduler = prepare(app)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="pulpo-scheduler")
    thread.start()
    try:
        app.start()
    finally:
        stop.set()
        thread.join()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def ask_to_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, ask_to_stop) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
