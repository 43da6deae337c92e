"""Schedules on beanstalkd: the schedulers elect a leader through a lease job, the leader records
each tick, and a new leader goes on from the last record (``pulpo_core.schedules.leader``,
``pulpo_beanstalkd.leadership``), on a real beanstalkd."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator

import greenstalk
import pytest
from conftest import BeanstalkdServer
from pulpo_beanstalkd.leadership import BeanstalkdLedger, tick_tube
from pulpo_beanstalkd.settings import BeanstalkdSettings

from pulpo_core.schedules.leader import TAKEOVER_GRACE, takeover_ticks
from pulpo_core.schedules.spec import parse_schedule

_tubes = itertools.count()
NOW = 1_800_000_000.0  # a whole minute


def every(seconds: int, catch_up: str = "latest") -> object:
    return parse_schedule("tick", {"every": seconds, "request_type": "echo",
                                   "catch_up": catch_up})


class TestTakeoverTicks:
    def test_no_record_is_a_fresh_start(self) -> None:
        assert takeover_ticks(every(60), None, NOW + 30) == [NOW]  # catch_up latest

    def test_a_handover_publishes_every_tick_after_the_record(self) -> None:
        # The leader recorded NOW - 1 and died; the next leads 3 s later.
        assert takeover_ticks(every(1), NOW - 1, NOW + 2) == [NOW, NOW + 1, NOW + 2]
        assert takeover_ticks(every(1, "none"), NOW - 1, NOW + 2) == [NOW, NOW + 1, NOW + 2]

    def test_an_outage_goes_by_catch_up(self) -> None:
        down = 600
        last = NOW - down
        recent = [NOW - TAKEOVER_GRACE + n for n in range(1, int(TAKEOVER_GRACE) + 1)]
        assert takeover_ticks(every(1, "none"), last, NOW) == recent
        latest = takeover_ticks(every(1, "latest"), last, NOW)
        assert latest == recent  # the latest missed tick is the newest of them
        assert takeover_ticks(every(60, "latest"), last, NOW + 30) == [NOW]
        assert takeover_ticks(every(60, "none"), last, NOW + 30) == []

    def test_nothing_twice_that_is_recorded(self) -> None:
        assert takeover_ticks(every(60), NOW, NOW + 30) == []


@pytest.fixture
def settings(beanstalkd: BeanstalkdServer) -> BeanstalkdSettings:
    return BeanstalkdSettings(host=beanstalkd.host, port=beanstalkd.port,
                              default_tube=f"leader-{os.getpid()}-{next(_tubes)}")


@pytest.fixture
def ledgers(settings: BeanstalkdSettings) -> Iterator[list[BeanstalkdLedger]]:
    made = [BeanstalkdLedger(settings) for _ in range(4)]
    yield made
    for ledger in made:
        ledger.close()


def lease_jobs(settings: BeanstalkdSettings) -> int:
    client = greenstalk.Client((settings.host, settings.port))
    try:
        stats = client.stats_tube(f"{settings.default_tube}.schedulers")
        return int(stats["current-jobs-ready"]) + int(stats["current-jobs-reserved"])
    except greenstalk.NotFoundError:
        return 0
    finally:
        client.close()


def test_one_leads_the_others_wait_and_a_close_hands_the_lead_on(
    settings: BeanstalkdSettings, ledgers: list[BeanstalkdLedger]
) -> None:
    first, second = ledgers[:2]
    assert first.lead(1)
    assert first.lead(1)  # renewed
    started = time.monotonic()
    assert not second.lead(1)
    assert time.monotonic() - started >= 0.9  # it waited for the lease
    first.close()
    started = time.monotonic()
    assert second.lead(1)
    assert time.monotonic() - started < 0.5  # at once, not after the lease's ttr
    assert not first.lead(1) or not second.lead(1)
    assert lease_jobs(settings) == 1


def test_schedulers_starting_at_once_end_with_one_lease_and_one_leader(
    settings: BeanstalkdSettings, ledgers: list[BeanstalkdLedger]
) -> None:
    # Four seats start together on an empty tube, each asking for the lead again as soon as it
    # has its answer, as a scheduler's loop does. Seats that made a lease at once give theirs
    # up and retry after a random pause (a seat that led just before such a lease appeared
    # steps down at its next look). Never do two lead at once: between two answers "you lead"
    # to different seats, the first seat was told it leads no more.
    barrier = threading.Barrier(len(ledgers))
    answers: list[tuple[float, float, int, bool]] = []  # (asked, answered, seat, leads)
    until = time.monotonic() + 6

    def seat(n: int) -> None:
        barrier.wait()
        while (asked := time.monotonic()) < until:
            answer = ledgers[n].lead(0.5)
            answers.append((asked, time.monotonic(), n, answer))

    threads = [threading.Thread(target=seat, args=(n,)) for n in range(len(ledgers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    leads = sorted((answered, n) for _, answered, n, answer in answers if answer)
    assert leads, "no seat ever led"
    for (first_at, first), (then_at, then) in itertools.pairwise(leads):
        if first != then:  # the first seat asked again, and was told no, before the second led
            assert any(n == first and not answer and first_at < asked < then_at
                       for asked, _, n, answer in answers), (first, then, sorted(answers))
    assert until - leads[-1][0] < 1.5, "no seat leads at the end"
    assert lease_jobs(settings) == 1


def test_a_leader_whose_connection_breaks_hands_the_lead_on_at_once(
    ledgers: list[BeanstalkdLedger],
) -> None:
    # (A leader that hangs with its connection open keeps the lead until the lease's ttr runs
    # out, and beanstalkd 1.12 can miss that moment: see the adapter's page. A broken
    # connection is handed on at once.)
    cut, waiting = ledgers[:2]
    assert cut.lead(1)
    assert cut._client is not None
    cut._client._sock.shutdown(socket.SHUT_RDWR)  # the host went away, as beanstalkd sees it
    started = time.monotonic()
    assert waiting.lead(1)
    assert time.monotonic() - started < 0.5
    assert not cut.lead(1)  # it finds its connection gone, and the lease taken
    assert not cut.lead(1)


def test_the_last_tick_recorded_is_read_back_and_old_records_go(
    settings: BeanstalkdSettings, ledgers: list[BeanstalkdLedger]
) -> None:
    leader, reader = ledgers[:2]
    assert reader.last_tick("tick") is None
    for tick in (NOW, NOW + 1, NOW + 2):
        leader.record_tick("tick", tick)
    assert reader.last_tick("tick") == NOW + 2
    client = greenstalk.Client((settings.host, settings.port))
    try:
        stats = client.stats_tube(tick_tube(settings.default_tube, "tick"))
        assert int(stats["current-jobs-ready"]) == 1
    finally:
        client.close()
    assert tick_tube("pulpo", "a name with spaces").startswith("pulpo.ticks.x")
