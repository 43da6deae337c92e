"""The schedulers' election on beanstalkd (:class:`pulpo_core.adapter.TickLedger`).

beanstalkd cannot refuse a duplicate job, so the schedulers of a queue elect one of them, the
leader, to publish the ticks (see :mod:`pulpo_core.schedules.leader`):

- **The lease** is one job in the tube ``<default_tube>.schedulers``. The scheduler that has it
  reserved leads, and touches it at each round (``LEASE_TTR`` seconds). The others wait for it
  with ``reserve``. When the leader's connection closes (it stopped, was killed, its host went
  away) beanstalkd makes the job ready at once and a waiting scheduler reserves it; when the
  leader hangs, the job comes back once its ttr has run out.
- **One lease only**: a scheduler puts the lease job only when that tube holds no job, and a
  holder leads only while the tube holds exactly one job, the one it reserved. While it does, no
  other can hold one. Two that found the tube empty at once each hold a job and see two: each
  deletes its own and tries again after a random pause.
- **The ledger** of ticks: one tube per schedule, ``<default_tube>.ticks.<name>``, that no one
  reserves. The leader records each tick it published as a job there whose priority is
  ``2**32 - 1`` minus the tick's second, so ``peek-ready`` shows the latest; the record before
  it is deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import greenstalk

from pulpo_beanstalkd.client import describe
from pulpo_beanstalkd.settings import BeanstalkdSettings
from pulpo_core.errors import AdapterError

log = logging.getLogger("pulpo.beanstalkd")

#: Seconds of the lease job's ttr: how long a hung leader keeps the lead.
LEASE_TTR = 5
#: The lowest priority a job can have (the largest number).
LOWEST = 2**32 - 1
SAFE_NAME = re.compile(r"[A-Za-z0-9+/;.$_()-]{1,150}")
#: What tells that the server is away or the connection broke.
LOST = (OSError, greenstalk.UnknownResponseError)


def tick_tube(default_tube: str, schedule: str) -> str:
    """The ledger tube of ``schedule`` (its name in hex when it is not a valid tube name)."""
    name = schedule if SAFE_NAME.fullmatch(schedule) else "x" + schedule.encode().hex()[:148]
    return f"{default_tube}.ticks.{name}"


class BeanstalkdLedger:
    """One scheduler's seat in the election, on a connection of its own."""

    def __init__(self, settings: BeanstalkdSettings) -> None:
        self.settings = settings
        self.lease_tube = f"{settings.default_tube}.schedulers"
        self._client: greenstalk.Client[bytes] | None = None
        self._lease: greenstalk.Job[bytes] | None = None
        self._records: dict[str, int] = {}  # schedule -> the id of its latest record

    def _connect(self) -> greenstalk.Client[bytes]:
        if self._client is None:
            sock = socket.create_connection((self.settings.host, self.settings.port),
                                            timeout=self.settings.socket_timeout)
            self._client = greenstalk.Client(sock, encoding=None, use=self.lease_tube,
                                             watch=self.lease_tube)
        return self._client

    def _drop(self, error: BaseException) -> None:
        log.warning("the scheduler lost beanstalkd at %s (%s); it leads no more",
                    self.settings.address, describe(error))
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.close()
        self._client, self._lease = None, None

    def _jobs_in_lease_tube(self, client: greenstalk.Client[bytes]) -> int:
        try:
            stats = client.stats_tube(self.lease_tube)
        except greenstalk.NotFoundError:
            return 0
        return (int(stats["current-jobs-ready"]) + int(stats["current-jobs-reserved"])
                + int(stats["current-jobs-delayed"]) + int(stats["current-jobs-buried"]))

    def lead(self, wait: float) -> bool:
        try:
            return self._lead(wait)
        except LOST as error:
            self._drop(error)
            time.sleep(wait)
            return False

    def _lead(self, wait: float) -> bool:
        client = self._connect()
        if self._lease is not None:
            try:
                client.touch(self._lease)
            except greenstalk.NotFoundError:
                log.warning("the scheduler's lease ran out (it hung for over %d s)", LEASE_TTR)
                self._lease = None
        if self._lease is None:
            if self._jobs_in_lease_tube(client) == 0:
                client.use(self.lease_tube)
                client.put(b"the schedulers' lease", priority=0, ttr=LEASE_TTR)
            try:
                job = client.reserve(timeout=max(1, math.ceil(wait)))
            except greenstalk.TimedOutError:
                return False
            self._lease = job
        if self._jobs_in_lease_tube(client) != 1:
            client.delete(self._lease)  # two were made at once: give this one up
            self._lease = None
            time.sleep(random.uniform(0, wait))
            return False
        return True

    def _call(self, op: Callable[[greenstalk.Client[bytes]], Any], what: str) -> Any:
        try:
            return op(self._connect())
        except LOST as error:
            self._drop(error)
            raise AdapterError(f"cannot {what}: beanstalkd at {self.settings.address} is not "
                               f"reachable ({describe(error)})") from None

    def last_tick(self, schedule: str) -> float | None:
        return self._call(lambda client: self._last_tick(client, schedule),  # type: ignore[no-any-return]
                          f"read the last tick of schedule {schedule!r}")

    def _last_tick(self, client: greenstalk.Client[bytes], schedule: str) -> float | None:
        client.use(tick_tube(self.settings.default_tube, schedule))
        try:
            job = client.peek_ready()
        except greenstalk.NotFoundError:
            return None
        self._records[schedule] = job.id
        try:
            return float(json.loads(job.body)["tick"])
        except (ValueError, KeyError, TypeError):
            log.warning("the tick record %d of schedule %r is not one: ignored", job.id, schedule)
            return None

    def record_tick(self, schedule: str, tick: float) -> None:
        self._call(lambda client: self._record_tick(client, schedule, tick),
                   f"record a tick of schedule {schedule!r}")

    def _record_tick(self, client: greenstalk.Client[bytes], schedule: str, tick: float) -> None:
        client.use(tick_tube(self.settings.default_tube, schedule))
        body = json.dumps({"schedule": schedule, "tick": tick}).encode()
        record = client.put(body, priority=max(0, LOWEST - int(tick)), ttr=1)
        previous, self._records[schedule] = self._records.get(schedule), record
        if previous is not None:
            with contextlib.suppress(greenstalk.NotFoundError):
                client.delete(previous)

    def close(self) -> None:
        if self._client is None:
            return
        try:
            if self._lease is not None:
                self._client.release(self._lease)  # the next scheduler leads at once
            self._client.close()
        except (*LOST, greenstalk.NotFoundError):
            pass
        self._client, self._lease = None, None
