"""The worker's reserve loop: the next job on the worker connection, read into a message.

A job that is not a pulpo message (not JSON, not the message's shape, too deep to read) is
buried with the reason and the loop goes on: nothing is lost, and it is never handed out again
until kicked.
"""

from __future__ import annotations

import logging
import time

import attrs
import greenstalk

from pulpo_beanstalkd.client import PipelinedClient, describe
from pulpo_beanstalkd.codec import decode, unreadable_reason
from pulpo_beanstalkd.connection import Connection
from pulpo_beanstalkd.jobs import (
    LEASE_MARGIN,
    LazyAttempts,
    Reservation,
    failed_runs,
    job_stats,
)
from pulpo_beanstalkd.settings import BeanstalkdSettings
from pulpo_beanstalkd.settle import Settler
from pulpo_core.errors import AdapterError
from pulpo_core.message import DEFAULT_TTR, Message

log = logging.getLogger("pulpo.beanstalkd")


class Reserver:
    """Takes jobs from the watched tubes for :class:`Settler` to settle."""

    def __init__(self, settings: BeanstalkdSettings, worker: Connection,
                 settler: Settler) -> None:
        self.settings = settings
        self._worker = worker
        self._settler = settler

    def dequeue(self) -> Message | None:
        timeout = self.settings.reserve_timeout
        encoding = self.settings.encoding
        worker = self._worker

        def reserve(client: PipelinedClient) -> tuple[int, bytes, int, str]:
            job_id, body = client.reserve_raw(timeout)
            return job_id, body, worker.generation, worker.server_id  # under the lock

        while True:
            try:
                job_id, body, generation, server = worker.call(reserve, wait=timeout)
            except greenstalk.TimedOutError:
                return None
            except greenstalk.DeadlineSoonError:
                log.warning("reserve answered DEADLINE_SOON: this worker holds a job whose "
                            "ttr is about to run out and that was never settled")
                return None
            except greenstalk.BeanstalkdError as error:
                raise AdapterError(f"beanstalkd at {self.settings.address} refused to "
                                   f"reserve: {describe(error)}") from None
            attempts = LazyAttempts(self._attempts_of, job_id)
            try:
                message = decode(body, job_id, encoding, attempts)
            except ValueError as error:
                self._bury_unreadable(job_id, error)
                continue
            reservation = Reservation(generation, server, attempts, body)
            reservation.renew(message.ttr or 0, time.monotonic())
            self._settler.reserved[job_id] = reservation
            if message.ttr is None:  # put by another client in pulpo's format, without a ttr
                ttr = self._server_ttr(job_id)
                reservation.renew(ttr, reservation.deadline + LEASE_MARGIN)
                message = attrs.evolve(message, ttr=ttr)
            return message

    def _stats(self, job_id: int) -> greenstalk.StatsJob:
        return job_stats(self._worker, job_id, self.settings.reconnect_timeout)

    def _server_ttr(self, job_id: int) -> int:
        """The ttr beanstalkd holds the job to (the core's default if it cannot be read)."""
        try:
            return int(self._stats(job_id)["ttr"])
        except (AdapterError, greenstalk.Error):
            return DEFAULT_TTR

    def _attempts_of(self, job_id: int) -> int:
        """Failed runs of a job before the run it was dequeued for (see :class:`LazyAttempts`)."""
        try:
            return failed_runs(self._stats(job_id), reserved=True)
        except greenstalk.NotFoundError:
            log.debug("job %d is gone; its attempts are no longer known", job_id)
        except (AdapterError, greenstalk.Error) as error:
            log.warning("could not read the attempts of job %d (%s); counting 0",
                        job_id, describe(error))
        return 0

    def _bury_unreadable(self, job_id: int, error: ValueError) -> None:
        reason = unreadable_reason(error)
        log.warning("job %d buried: %s", job_id, reason)
        try:
            priority = int(self._stats(job_id)["pri"])
        except (AdapterError, greenstalk.Error) as failure:
            log.warning("job %d could not be buried (%s); beanstalkd hands it out again after "
                        "its ttr", job_id, describe(failure))
            return
        self._settler.bury_reserved(job_id, priority, reason)
