"""The scheduler loop: publish each schedule's ticks as they fall due, each exactly once.

Any number of schedulers may run at once: every tick is published with a key of its own
(:func:`~pulpo_core.schedules.ticks.tick_key`) through the adapter's unique publish, so the
second scheduler to publish a tick gets the first one's job back instead of a duplicate. No
lock, no lease whose expiry could let two fire.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pulpo_core.adapter import UniquePublishing
from pulpo_core.errors import AdapterError
from pulpo_core.message import Message
from pulpo_core.schedules.packages import declared_schedules
from pulpo_core.schedules.spec import SECTION, Schedule, parse_schedules
from pulpo_core.schedules.ticks import iso, missed_ticks, next_tick, tick_key, ticks_between

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo

log = logging.getLogger("pulpo.scheduler")

#: Seconds a tick's key stays held beyond the next tick, so a late scheduler never publishes
#: it again once its job is done.
HOLD_MARGIN = 300
#: The longest a scheduler sleeps between looks at the clock, in seconds.
MAX_SLEEP = 1.0
#: Header keys a scheduled job carries: its schedule's name and its tick (ISO-8601).
SCHEDULE_HEADER, TICK_HEADER = "schedule", "scheduled_at"


def schedules_of(app: Pulpo) -> list[Schedule]:
    """The app's schedules, those installed packages declare and those of its configuration,
    checked (``ConfigError`` naming a bad one)."""
    return parse_schedules(app.config.sections.get(SECTION, {}), declared_schedules())


def warn_unknown_request_types(app: Pulpo, schedules: Sequence[Schedule]) -> None:
    """A schedule whose request type has no known handler is only a warning: a scheduler, like a
    publisher, need not have the handler code."""
    for schedule in schedules:
        if schedule.request_type not in app.handlers.specs:
            log.warning(
                "schedule %r publishes request type %r, which has no known handler here",
                schedule.name,
                schedule.request_type,
            )


class Scheduler:
    """Publishes the ticks of ``schedules`` through ``app``.

    :param clock: the current time as a POSIX timestamp (injected by tests).
    """

    def __init__(
        self,
        app: Pulpo,
        schedules: Sequence[Schedule] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.schedules = list(schedules_of(app) if schedules is None else schedules)
        self.clock = clock
        self._cursor: dict[str, float] = {}
        #: ``(schedule name, tick)`` → the id of its job, for the ticks this scheduler published
        #: or found published (the most recent per schedule).
        self.last_published: dict[str, tuple[float, str]] = {}

    def check_adapter(self) -> None:
        """Refuse an adapter that cannot publish a tick once however many schedulers run."""
        adapter = self.app.queue_adapter
        if not isinstance(adapter, UniquePublishing):
            raise AdapterError(
                f"the {self.app.config.queue_adapter_type} adapter cannot publish unique jobs, "
                f"so schedules cannot run on it without double firing"
            )

    def start_up(self) -> None:
        """Publish the missed ticks each schedule's ``catch_up`` asks for; start the clock."""
        now = self.clock()
        for schedule in self.schedules:
            self._cursor[schedule.name] = now
            for tick in missed_ticks(schedule, now):
                self.publish_tick(schedule, tick, now)

    def run_once(self) -> float:
        """Publish every tick due since the last look; return when the next one falls."""
        now = self.clock()
        wake = now + MAX_SLEEP
        for schedule in self.schedules:
            cursor = self._cursor.setdefault(schedule.name, now)
            for tick in ticks_between(schedule, cursor, now):
                try:
                    self.publish_tick(schedule, tick, now)
                except AdapterError as error:  # left due: tried again on the next look
                    log.warning(
                        "schedule %r tick %s not published: %s",
                        schedule.name, iso(schedule, tick), error,
                    )
                    break
                cursor = tick
            else:
                cursor = max(cursor, now)
            self._cursor[schedule.name] = cursor
            wake = min(wake, next_tick(schedule, cursor))
        return wake

    def publish_tick(self, schedule: Schedule, tick: float, now: float) -> tuple[Message, bool]:
        """Publish one (schedule, tick); ``created`` is ``False`` when another scheduler did."""
        following = next_tick(schedule, max(tick, now))
        # By default a tick expires at the next one: a backlog never runs a stale tick.
        expiration = following if schedule.expiration is None else tick + schedule.expiration
        hold = following - tick + HOLD_MARGIN
        if schedule.catch_up == "all":
            hold = max(hold, schedule.catch_up_window + HOLD_MARGIN)
        message = Message(
            schedule.request_type,
            body=schedule.body,
            priority=schedule.priority,
            ttr=schedule.ttr,
            expiration=datetime.fromtimestamp(expiration, UTC),
            unique_key=tick_key(schedule, tick),
            unique_for=hold,
            extra_header={SCHEDULE_HEADER: schedule.name, TICK_HEADER: iso(schedule, tick)},
        )
        job, created = self.app.publish_unique(message)
        self.last_published[schedule.name] = (tick, job.id or "")
        log.info(
            "schedule %r tick %s: %s job %s",
            schedule.name,
            iso(schedule, tick),
            "published" if created else "already published as",
            job.id,
        )
        return job, created

    def run(self, stop: threading.Event) -> None:
        """Publish ticks until ``stop`` is set."""
        self.check_adapter()
        log.info("scheduler started with %d schedule(s)", len(self.schedules))
        self.start_up()
        while not stop.is_set():
            try:
                wake = self.run_once()
            except Exception:  # the loop stays up: a tick not published is tried again
                log.exception("the scheduler failed a round; trying again")
                wake = self.clock() + MAX_SLEEP
            stop.wait(min(max(wake - self.clock(), 0.01), MAX_SLEEP))
        log.info("scheduler stopped")
