"""The scheduler loop: publish each schedule's ticks as they fall due, each exactly once.

Any number of schedulers may run at once: every tick is published with a key of its own
(:func:`~pulpo_core.schedules.ticks.tick_key`) through the adapter's unique publish, so the
second scheduler to publish a tick gets the first one's job back instead of a duplicate. No
lock, no lease whose expiry could let two fire. An adapter that cannot refuse a duplicate but
can elect one scheduler (beanstalkd) runs the schedules through its election instead (see
:mod:`pulpo_core.schedules.leader`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pulpo_core.adapter import ScheduleLeadership, TickLedger, UniquePublishing
from pulpo_core.errors import AdapterError
from pulpo_core.message import Message
from pulpo_core.schedules.leader import takeover_ticks
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
        #: The adapter's election, when it elects a scheduler instead of refusing duplicates.
        self.ledger: TickLedger | None = None

    def check_adapter(self) -> None:
        """Refuse an adapter that cannot publish a tick once however many schedulers run."""
        adapter = self.app.queue_adapter
        if not isinstance(adapter, UniquePublishing | ScheduleLeadership):
            raise AdapterError(
                f"the {self.app.config.queue_adapter_type} adapter cannot publish unique jobs "
                f"nor elect a scheduler, so schedules cannot run on it without double firing"
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
            unique_key=tick_key(schedule, tick) if self.ledger is None else None,
            unique_for=hold if self.ledger is None else None,
            extra_header={SCHEDULE_HEADER: schedule.name, TICK_HEADER: iso(schedule, tick)},
        )
        if self.ledger is None:
            job, created = self.app.publish_unique(message)
        else:  # the leader: a plain job, then the record the next leader goes on from
            job, created = self.app.publish(message), True
            self.ledger.record_tick(schedule.name, tick)
        self.last_published[schedule.name] = (tick, job.id or "")
        log.info(
            "schedule %r tick %s: %s job %s",
            schedule.name,
            iso(schedule, tick),
            "published" if created else "already published as",
            job.id,
        )
        return job, created

    def take_over(self) -> None:
        """Now the leader: publish what the last tick recorded per schedule leaves due."""
        assert self.ledger is not None
        now = self.clock()
        for schedule in self.schedules:
            self._cursor[schedule.name] = now
            for tick in takeover_ticks(schedule, self.ledger.last_tick(schedule.name), now):
                self.publish_tick(schedule, tick, now)

    def run(self, stop: threading.Event) -> None:
        """Publish ticks until ``stop`` is set."""
        self.check_adapter()
        log.info("scheduler started with %d schedule(s)", len(self.schedules))
        adapter = self.app.queue_adapter
        if isinstance(adapter, UniquePublishing):
            self.start_up()
        else:
            assert isinstance(adapter, ScheduleLeadership)
            self.ledger = adapter.schedule_ledger()
            try:
                self._run_elected(stop, self.ledger)
            finally:
                self.ledger.close()
            log.info("scheduler stopped")
            return
        while not stop.is_set():
            try:
                wake = self.run_once()
            except Exception:  # the loop stays up: a tick not published is tried again
                log.exception("the scheduler failed a round; trying again")
                wake = self.clock() + MAX_SLEEP
            stop.wait(min(max(wake - self.clock(), 0.01), MAX_SLEEP))
        log.info("scheduler stopped")

    def _run_elected(self, stop: threading.Event, ledger: TickLedger) -> None:
        """Publish ticks while this scheduler leads; wait for the lead otherwise."""
        leading = False
        while not stop.is_set():
            try:
                if not ledger.lead(MAX_SLEEP):  # a follower waits here for the lead
                    if leading:
                        log.warning("this scheduler lost the lead; another publishes the ticks")
                    leading = False
                    continue
                if stop.is_set():  # the lead came while stopping: the close hands it on
                    break
                if not leading:
                    log.info("this scheduler leads: it publishes the ticks")
                    self.take_over()
                    leading = True
                wake = self.run_once()
            except AdapterError as error:  # the ledger tells the next leader where to go on
                log.warning("the scheduler failed a round (%s); trying again", error)
                leading = False
                wake = self.clock() + MAX_SLEEP
            except Exception:
                log.exception("the scheduler failed a round; trying again")
                leading = False
                wake = self.clock() + MAX_SLEEP
            stop.wait(min(max(wake - self.clock(), 0.01), MAX_SLEEP))
