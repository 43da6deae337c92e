"""When a schedule ticks: cron expressions (croniter) in the schedule's zone, or every N seconds.

Ticks are instants, handled as POSIX timestamps. ``every = N`` ticks at the multiples of N
seconds since the Unix epoch, whatever the zone. A cron schedule is read in its zone's wall
time with these rules at daylight-saving changes: a time that does not exist (spring forward)
fires once, at the first instant after the gap; a time that happens twice (fall back) fires once,
at its first occurrence, unless the hour field is ``*`` (an hourly or finer job then fires in
each real hour).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

from pulpo_core.schedules.spec import Schedule


def _repeated_wall_time(moment: datetime) -> bool:
    """Whether ``moment`` is the second occurrence of a wall time that happens twice."""
    wall = moment.replace(tzinfo=None)
    zone = moment.tzinfo
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    return first != second and moment.utcoffset() == second and first is not None and (
        second is not None and first > second
    )


def _cron_ticks(schedule: Schedule, after: float) -> Iterator[float]:
    from croniter import croniter

    assert schedule.cron is not None
    hourly = schedule.cron.split()[1] == "*"
    zone = schedule.zone
    start = datetime.fromtimestamp(after, zone)
    iterator = croniter(schedule.cron, start)
    last = after
    while True:
        moment: datetime = iterator.get_next(datetime)
        moment = moment.astimezone(zone)
        stamp = moment.timestamp()
        if stamp <= last:
            continue
        if not hourly and _repeated_wall_time(moment):
            continue
        last = stamp
        yield stamp


def _every_ticks(every: int, after: float) -> Iterator[float]:
    tick = (math.floor(after / every) + 1) * every
    while True:
        yield float(tick)
        tick += every


def ticks_after(schedule: Schedule, after: float) -> Iterator[float]:
    """The schedule's ticks later than ``after``, in order, without end."""
    if schedule.every is not None:
        return _every_ticks(schedule.every, after)
    return _cron_ticks(schedule, after)


def ticks_between(schedule: Schedule, start: float, end: float) -> list[float]:
    """The ticks later than ``start`` and at most ``end``."""
    found = []
    for tick in ticks_after(schedule, start):
        if tick > end:
            break
        found.append(tick)
    return found


def next_tick(schedule: Schedule, after: float) -> float:
    """The first tick later than ``after``."""
    return next(iter(ticks_after(schedule, after)))


def missed_ticks(schedule: Schedule, now: float) -> list[float]:
    """The past ticks a starting scheduler publishes, by the schedule's ``catch_up``: the
    latest tick at most ``now`` (``latest``), none, or the last ``catch_up_limit`` ticks
    (``all``), looking back at most ``catch_up_window`` seconds."""
    if schedule.catch_up == "none":
        return []
    if schedule.every is not None:  # counted, not walked: a short period has many ticks
        latest = math.floor(now / schedule.every) * schedule.every
        oldest = latest - schedule.every * schedule.catch_up_limit
        first = max(now - schedule.catch_up_window, oldest)
        ticks = ticks_between(schedule, first, now)
    else:
        ticks = ticks_between(schedule, now - schedule.catch_up_window, now)
    if schedule.catch_up == "latest":
        return ticks[-1:]
    return ticks[-schedule.catch_up_limit :]


def iso(schedule: Schedule, tick: float) -> str:
    """A tick as ISO-8601 in the schedule's zone."""
    return datetime.fromtimestamp(tick, schedule.zone).isoformat()


def tick_key(schedule: Schedule, tick: float) -> str:
    """The unique key of one (schedule, tick): the same in every scheduler."""
    return f"schedule:{schedule.name}:{datetime.fromtimestamp(tick, UTC).isoformat()}"
