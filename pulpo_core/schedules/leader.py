"""Schedules on an adapter that elects one scheduler instead of refusing duplicates (beanstalkd).

Every scheduler holds a seat in the adapter's election (:class:`~pulpo_core.adapter.TickLedger`)
and only the leader publishes: each tick as a plain job, then recorded in the ledger as the
schedule's last tick. A scheduler that becomes leader goes on from the last tick recorded: the
ticks after it that fell within ``TAKEOVER_GRACE`` seconds (the previous leader died or stepped
down just before them) are published, the older ones as the schedule's ``catch_up`` says, as for
a scheduler starting after all were down.

What this guarantees, and where it stops, is the adapter's to say (see the beanstalkd adapter's
page): a leader killed between a tick's publish and its record leaves the tick to be published
again by the next leader.
"""

from __future__ import annotations

from pulpo_core.schedules.spec import Schedule
from pulpo_core.schedules.ticks import missed_ticks, ticks_between

#: Seconds back from now in which a new leader publishes every tick after the last recorded
#: one, whatever the schedule's ``catch_up``: a handover is not an outage.
TAKEOVER_GRACE = 10.0


def takeover_ticks(schedule: Schedule, last: float | None, now: float) -> list[float]:
    """The ticks a new leader publishes first, in order, given the ``last`` tick recorded."""
    if last is None:
        return missed_ticks(schedule, now)
    recent = ticks_between(schedule, max(last, now - TAKEOVER_GRACE), now)
    older = [t for t in missed_ticks(schedule, now) if last < t <= now - TAKEOVER_GRACE]
    return sorted({*older, *recent})
