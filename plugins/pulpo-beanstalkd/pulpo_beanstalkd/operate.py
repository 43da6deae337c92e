"""The operator's commands on beanstalkd: peek, delete, kick, stats and the job listing.

beanstalkd can look at one job of a state per tube, the next one (``peek-ready``,
``peek-delayed``, ``peek-buried``), and at no reserved job but by its id, so the listing shows at
most that one job of each state per tube (:data:`LISTING_NOTE`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import greenstalk

from pulpo_beanstalkd.client import PipelinedClient
from pulpo_beanstalkd.codec import decode, parse_job_id, unreadable
from pulpo_beanstalkd.connection import Connection
from pulpo_beanstalkd.reservations import Reasons, Reservation, failed_runs
from pulpo_beanstalkd.settings import BeanstalkdSettings
from pulpo_core.errors import AdapterError
from pulpo_core.message import BURIED_REASON, Message

#: The job states beanstalkd counts per tube, as ``stats()`` names them.
STATES = ("ready", "delayed", "reserved", "buried")
#: What the job listing shows and what it cannot, for the dashboard to say.
LISTING_NOTE = (
    "beanstalkd shows only the next job of each state (per tube: the one peek-ready, "
    "peek-delayed and peek-buried return) and no reserved job; the counts are complete."
)
#: Server-wide figures ``stats()`` adds, as ``server_<name>``.
SERVER_FIGURES = (
    "current-connections", "current-workers", "current-producers", "current-waiting",
    "total-jobs", "job-timeouts", "max-job-size", "uptime", "binlog-current-index",
)


class Operations:
    """peek, delete, kick and stats, on the producer connection (deletes of jobs this process
    holds on the worker connection)."""

    def __init__(
        self, settings: BeanstalkdSettings, producer: Connection, worker: Connection,
        reasons: Reasons, reserved: dict[int, Reservation],
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.worker = worker
        self.reasons = reasons
        self.reserved = reserved
        self.encoding = settings.encoding
        self.wait = settings.reconnect_timeout

    def _ours_to_operate(self, job_id: int, stats: greenstalk.StatsJob) -> None:
        tube = stats["tube"]
        if tube not in self.settings.tubes:
            raise ValueError(
                f"job {job_id} is in the tube {tube!r}, not in this configuration's tubes "
                f"({', '.join(self.settings.tubes)})")

    def _stats_of(self, job_id: int) -> greenstalk.StatsJob | None:
        try:
            return self.producer.call(lambda client: client.stats_job(job_id), wait=self.wait)
        except greenstalk.NotFoundError:
            return None

    def peek(self, message_id: str) -> Message | None:
        job_id = parse_job_id(message_id)
        self.worker.flush()

        def look(client: PipelinedClient) -> tuple[greenstalk.Job[bytes], greenstalk.StatsJob]:
            return client.peek(job_id), client.stats_job(job_id)

        try:
            job, stats = self.producer.call(look, wait=self.wait)
        except greenstalk.NotFoundError:
            return None
        self._ours_to_operate(job_id, stats)
        state = stats["state"]
        attempts = failed_runs(stats, reserved=state == "reserved")
        why_buried = None
        try:
            message = decode(job.body, job_id, self.encoding, attempts)
        except ValueError as error:
            message = unreadable(job.body, job_id, self.encoding, error)
            why_buried = f"not a pulpo message: {error}"  # why any worker buries it
        if state == "buried":
            reason = self.reasons.get(job_id) or why_buried or (
                "unknown here: beanstalkd does not store bury reasons; the worker that buried "
                f"the job logged it (search its log for 'job {job_id}')")
            message = attrs.evolve(
                message, extra_header={**message.extra_header, BURIED_REASON: reason})
        return message

    def delete(self, message_id: str) -> bool:
        job_id = parse_job_id(message_id)
        self.worker.flush()
        stats = self._stats_of(job_id)
        if stats is None:
            return False
        self._ours_to_operate(job_id, stats)
        try:
            self.producer.call(lambda client: client.delete(job_id), wait=self.wait)
        except greenstalk.NotFoundError:
            if self._stats_of(job_id) is None:
                return False  # deleted meanwhile
            # Reserved: beanstalkd lets only the connection that reserved it delete it.
            if job_id not in self.reserved:
                raise AdapterError(
                    f"job {job_id} is reserved by a worker, and beanstalkd lets only that "
                    f"worker delete it; try again once it is released or buried") from None
            try:
                self.worker.call(lambda client: client.delete(job_id), wait=self.wait,
                                  retry=False)
            except greenstalk.NotFoundError:
                return False
            del self.reserved[job_id]
        self.reasons.forget(job_id)
        return True

    def kick(self, bound: int | None = None) -> int:
        """Move buried jobs back to ready, oldest first; delayed jobs are left alone.

        beanstalkd's ``kick`` would kick delayed jobs when a tube has no buried one, so each job
        is found with ``peek-buried`` and moved with ``kick-job``.
        """
        if bound is not None and bound < 0:
            raise ValueError(f"kick bound must be at least 0, not {bound}")
        self.worker.flush()
        tubes = self.settings.tubes
        default = self.settings.default_tube

        def kick_buried(client: PipelinedClient) -> int:
            kicked = 0
            try:
                for tube in tubes:
                    if tube != default:
                        client.use(tube)
                    while bound is None or kicked < bound:
                        try:
                            job = client.peek_buried()
                            client.kick_job(job)
                        except greenstalk.NotFoundError:
                            if job_in_tube_buried(client, tube):
                                continue  # kicked or deleted by someone else meanwhile
                            break
                        kicked += 1
                        self.reasons.forget(job.id)
            finally:
                if len(tubes) > 1:
                    client.use(default)
            return kicked

        return self.producer.call(kick_buried, wait=self.wait, retry=False)

    def list_jobs(self, state: str, limit: int, after: str | None) -> list[Message]:
        """The next job in ``state`` of each tube (at most ``limit``); nothing for ``reserved``
        and nothing past the first page (``after`` given): beanstalkd peeks no further.

        :raises ValueError: naming ``state`` when it is not a job state.
        """
        if state not in STATES:
            raise ValueError(f"{state!r} is not a job state (one of {', '.join(STATES)})")
        if state == "reserved" or after is not None or limit <= 0:
            return []
        self.worker.flush()
        tubes = self.settings.tubes
        default = self.settings.default_tube

        def next_of_each_tube(client: PipelinedClient) -> list[int]:
            peek = {"ready": client.peek_ready, "delayed": client.peek_delayed,
                    "buried": client.peek_buried}[state]
            found = []
            try:
                for tube in tubes:
                    if tube != default:
                        client.use(tube)
                    with contextlib.suppress(greenstalk.NotFoundError):
                        found.append(peek().id)
            finally:
                if len(tubes) > 1:
                    client.use(default)
            return found

        ids = self.producer.call(next_of_each_tube, wait=self.wait)
        messages = [self.peek(str(job_id)) for job_id in ids[:limit]]
        return [message for message in messages if message is not None]  # gone meanwhile

    def stats(self) -> dict[str, int]:
        """The tubes' job counts by state, ``total``, and server-wide figures (``server_*``)."""
        self.worker.flush()
        tubes = self.settings.tubes

        def read(client: PipelinedClient) -> tuple[list[greenstalk.StatsTube], greenstalk.Stats]:
            found = []
            for tube in tubes:
                # A tube exists only while it has jobs or clients.
                with contextlib.suppress(greenstalk.NotFoundError):
                    found.append(client.stats_tube(tube))
            return found, client.stats()

        found, server = self.producer.call(read, wait=self.wait)
        tube_stats: Sequence[Mapping[str, Any]] = found
        counts = {
            state: sum(int(t[f"current-jobs-{state}"]) for t in tube_stats) for state in STATES
        }
        counts["total"] = sum(counts.values())
        counts["urgent"] = sum(int(t["current-jobs-urgent"]) for t in tube_stats)
        counts["waiting_workers"] = sum(int(t["current-waiting"]) for t in tube_stats)
        figures: Mapping[str, Any] = server
        for figure in SERVER_FIGURES:
            value = figures.get(figure)
            if isinstance(value, int):
                counts["server_" + figure.replace("-", "_")] = value
        counts["server_draining"] = int(figures.get("draining") == "true")
        return counts


def job_in_tube_buried(client: PipelinedClient, tube: str) -> bool:
    """Whether the tube still has buried jobs (after a kick-job lost a race)."""
    try:
        return int(client.stats_tube(tube)["current-jobs-buried"]) > 0
    except greenstalk.NotFoundError:
        return False
