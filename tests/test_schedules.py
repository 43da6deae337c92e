"""Schedules: tick arithmetic, DST in Europe/Berlin, catch-up, and bad schedules refused."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pulpo_core import Pulpo, hookimpl
from pulpo_core.defaults.memory import MemoryQueueAdapter
from pulpo_core.errors import AdapterError, ConfigError
from pulpo_core.plugins import build_plugin_manager
from pulpo_core.schedules.scheduler import TICK_HEADER, Scheduler
from pulpo_core.schedules.spec import Schedule, parse_schedule
from pulpo_core.schedules.ticks import iso, missed_ticks, ticks_between

BERLIN = ZoneInfo("Europe/Berlin")


def at(*fields: int, zone: ZoneInfo = BERLIN) -> float:
    return datetime(*fields, tzinfo=zone).timestamp()  # type: ignore[misc]


def cron(expression: str, **more: Any) -> Schedule:
    return parse_schedule("job", {"cron": expression, "request_type": "echo",
                                  "timezone": "Europe/Berlin", **more})


class TestEvery:
    def test_ticks_fall_on_multiples_of_the_period_since_the_epoch(self) -> None:
        schedule = parse_schedule("s", {"every": 30, "request_type": "echo"})
        assert ticks_between(schedule, 1000.0, 1100.0) == [1020.0, 1050.0, 1080.0]
        assert ticks_between(schedule, 1020.0, 1050.0) == [1050.0]


class TestCronAcrossDaylightSaving:
    def test_a_0230_job_fires_once_on_the_spring_forward_day_right_after_the_gap(self) -> None:
        ticks = ticks_between(cron("30 2 * * *"), at(2026, 3, 28, 12), at(2026, 3, 31, 12))
        shown = [iso(cron("30 2 * * *"), t) for t in ticks]
        assert shown == [
            "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00",
        ]

    def test_a_0230_job_fires_once_on_the_fall_back_day(self) -> None:
        schedule = cron("30 2 * * *")
        ticks = ticks_between(schedule, at(2026, 10, 24, 12), at(2026, 10, 26, 12))
        assert [iso(schedule, t) for t in ticks] == [
            "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00",
        ]

    def test_an_every_half_hour_job_fires_in_each_real_hour_when_the_clock_goes_back(self) -> None:
        schedule = cron("*/30 * * * *")
        ticks = ticks_between(schedule, at(2026, 10, 25, 1, 45), at(2026, 10, 25, 3, 15))
        assert [iso(schedule, t) for t in ticks] == [
            "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]
        assert all(b - a == 1800 for a, b in itertools.pairwise(ticks))

    def test_ticks_are_iso_8601_in_the_schedules_zone(self) -> None:
        schedule = cron("0 9 * * 1")
        (tick,) = ticks_between(schedule, at(2026, 12, 6, 0), at(2026, 12, 7, 23))
        assert iso(schedule, tick) == "2026-12-07T09:00:00+01:00"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_app(schedule: dict[str, Any]) -> Pulpo:
    return Pulpo({"queue_adapter_type": "memory",
                  "schedules": {"tick": {"request_type": "echo", **schedule}}})


def published(app: Pulpo) -> list[str]:
    ticks = []
    while (job := app.queue_adapter.dequeue()) is not None:
        ticks.append(job.header[TICK_HEADER])
        app.queue_adapter.commit(job)
    return sorted(ticks)


class TestCatchUpAfterTenMinutesDown:
    START = at(2026, 12, 7, 10, 0, 30, zone=ZoneInfo("UTC"))

    def run_then_restart(self, catch_up: str, **more: Any) -> list[str]:
        app = memory_app({"every": 60, "catch_up": catch_up, **more})
        clock = Clock(self.START)
        first = Scheduler(app, clock=clock)
        first.start_up()
        clock.now += 60
        first.run_once()  # 10:01:00 published
        published(app)
        clock.now += 600  # all schedulers down from 10:01:30 to 10:11:30
        second = Scheduler(app, clock=clock)
        second.start_up()
        return [t[11:19] for t in published(app)]

    def test_latest_fires_the_latest_missed_tick_once(self) -> None:
        assert self.run_then_restart("latest") == ["10:11:00"]

    def test_none_fires_nothing_missed(self) -> None:
        assert self.run_then_restart("none") == []

    def test_all_fires_every_missed_tick_once_and_not_the_one_already_published(self) -> None:
        assert self.run_then_restart("all") == [f"10:{m:02}:00" for m in range(2, 12)]

    def test_all_is_bounded_by_catch_up_limit(self) -> None:
        assert self.run_then_restart("all", catch_up_limit=3) == ["10:09:00", "10:10:00",
                                                                   "10:11:00"]

    def test_missed_ticks_of_a_cron_schedule(self) -> None:
        schedule = cron("*/5 * * * *", catch_up="all")
        ticks = missed_ticks(schedule, at(2026, 12, 7, 10, 12))
        assert [iso(schedule, t)[11:16] for t in ticks[-3:]] == ["10:00", "10:05", "10:10"]


class TestBadSchedules:
    @pytest.mark.parametrize(
        ("table", "words"),
        [
            ({"cron": "61 * * * *"}, "'cron' '61 * * * *' is not valid"),
            ({"cron": "* * *"}, "five fields"),
            ({"every": 0}, "'every' must be a whole number of at least 1, not 0"),
            ({"every": 5, "timezone": "Mars/Olympus"}, "'timezone' must be an IANA time zone"),
            ({"every": 5, "catch_up": "some"}, "'catch_up' must be one of"),
            ({"every": 5, "cron": "* * * * *"}, "exactly one of 'cron' and 'every'"),
            ({"every": 5, "colour": "red"}, "unknown key 'colour'"),
        ],
    )
    def test_the_app_refuses_it_naming_the_schedule(self, table: dict[str, Any],
                                                     words: str) -> None:
        with pytest.raises(ConfigError) as caught:
            Pulpo({"queue_adapter_type": "memory",
                   "schedules": {"nightly": {"request_type": "echo", **table}}})
        assert "schedule 'nightly'" in str(caught.value)
        assert words in str(caught.value)


class PlainQueue:
    """An adapter of the whole protocol, without unique publish and without an election."""

    def __init__(self) -> None:
        self._queue = MemoryQueueAdapter()
        for name in ("enqueue", "dequeue", "commit", "rollback", "bury", "touch", "peek",
                     "delete", "kick", "stats", "close"):
            setattr(self, name, getattr(self._queue, name))


class PlainQueuePlugin:
    @hookimpl
    def pulpo_register_adapters(self, register: Any) -> None:
        register("plain", lambda _section: PlainQueue())


class TestAdaptersWithoutUniquePublish:
    def test_a_scheduler_refuses_to_run_rather_than_double_fire(self) -> None:
        app = Pulpo({"queue_adapter_type": "plain",
                     "schedules": {"tick": {"request_type": "echo", "every": 1}}},
                    plugin_manager=build_plugin_manager(load_entry_points=False,
                                                        plugins=[PlainQueuePlugin()]))
        try:
            with pytest.raises(AdapterError, match="cannot publish unique jobs nor elect"):
                Scheduler(app).check_adapter()
        finally:
            app.close()

    def test_beanstalkd_runs_schedules_through_its_election(
        self, beanstalkd: Any, tmp_path: Path
    ) -> None:
        app = Pulpo({"queue_adapter_type": "beanstalkd",
                     "beanstalkd_queue_adapter": {"host": beanstalkd.host,
                                                  "port": beanstalkd.port},
                     "schedules": {"tick": {"request_type": "echo", "every": 1}}})
        try:
            Scheduler(app).check_adapter()  # accepted: it elects one scheduler
        finally:
            app.close()
