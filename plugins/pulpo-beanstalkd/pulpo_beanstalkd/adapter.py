"""The beanstalkd queue adapter: the facade over its connections and parts.

Two connections, each opened on first use: the *producer* connection uses ``default_tube``
and carries publishing (:mod:`pulpo_beanstalkd.publish`) and the operator commands
(:mod:`pulpo_beanstalkd.operate`); the *worker* connection watches the worker's tubes and
carries reserve, delete, release, bury and touch (beanstalkd lets only the connection that
reserved a job settle or touch it), here. A process that only publishes never opens the second
one.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import greenstalk

from pulpo_beanstalkd import activity
from pulpo_beanstalkd.client import PipelinedClient, describe
from pulpo_beanstalkd.codec import decode, parse_job_id, priority_of, seconds
from pulpo_beanstalkd.connection import Connection
from pulpo_beanstalkd.leadership import BeanstalkdLedger
from pulpo_beanstalkd.operate import LISTING_NOTE, Operations
from pulpo_beanstalkd.publish import Publisher
from pulpo_beanstalkd.reservations import (
    LEASE_MARGIN,
    LazyAttempts,
    Reasons,
    Reservation,
    earliest_lease,
    failed_runs,
)
from pulpo_beanstalkd.settings import SECTION, BeanstalkdSettings
from pulpo_core.config import load_section
from pulpo_core.errors import AdapterError
from pulpo_core.message import DEFAULT_TTR, Message

log = logging.getLogger("pulpo.beanstalkd")

#: Seconds ``flush`` tries to reconnect to send deletes lost with a connection.
FLUSH_WAIT = 2.0


def _job(job_id: int) -> greenstalk.Job[bytes]:
    return greenstalk.Job(job_id, b"")


class BeanstalkdQueueAdapter:
    """Jobs in beanstalkd tubes, shared by workers on any number of hosts.

    :param settings: the ``beanstalkd_queue_adapter`` section, as a mapping or already loaded.
    :raises ConfigError: naming the key of a bad setting.
    """

    def __init__(self, settings: BeanstalkdSettings | Mapping[str, Any] | None = None) -> None:
        if not isinstance(settings, BeanstalkdSettings):
            settings = load_section(SECTION, settings or {}, BeanstalkdSettings)
        self.settings = settings
        self._encoding = settings.encoding
        self._wait = settings.reconnect_timeout
        self._producer = Connection(settings, use=settings.default_tube,
                                    watch=greenstalk.DEFAULT_TUBE, role="producer")
        self._reserved: dict[int, Reservation] = {}
        self._worker = Connection(
            settings, use=greenstalk.DEFAULT_TUBE, watch=settings.watched, role="worker",
            lease_of=earliest_lease(self._reserved)
            if settings.watchdog else None)
        self._reasons = Reasons()
        self._publisher = Publisher(settings, self._producer, self._reasons)
        self._operations = Operations(settings, self._producer, self._worker, self._reasons,
                                      self._reserved)
        # A commit's answer is read with the next command's: when the adapter is dropped or
        # the interpreter exits without close(), the last one is still read (and a delete lost
        # with a broken connection sent again).
        weakref.finalize(self, self._worker.close)

    def __repr__(self) -> str:
        return (f"BeanstalkdQueueAdapter({self.settings.address}, "
                f"tube={self.settings.default_tube!r})")

    # -- publishing ---------------------------------------------------------------------------

    def enqueue(self, message: Message) -> Message:
        return self._publisher.enqueue(message)

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """Queue many messages with pipelined puts (see :meth:`Publisher.enqueue_many`)."""
        return self._publisher.enqueue_many(messages)

    # -- working ------------------------------------------------------------------------------

    def dequeue(self) -> Message | None:
        timeout = self.settings.reserve_timeout
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
                message = decode(body, job_id, self._encoding, attempts)
            except ValueError as error:
                self._bury_unreadable(job_id, error)
                continue
            reservation = Reservation(generation, server, attempts, body)
            reserved_at = time.monotonic()
            self._reserved[job_id] = reservation
            if message.ttr is None:  # put by another client in pulpo's format, without a ttr
                message = attrs.evolve(message, ttr=self._server_ttr(job_id))
            reservation.renew(message.ttr or 0, reserved_at)
            worker.note_lease(reservation.deadline + LEASE_MARGIN, job_id)
            return message

    def _server_ttr(self, job_id: int) -> int:
        try:
            return int(self._job_stats(job_id)["ttr"])
        except (AdapterError, greenstalk.Error):
            return DEFAULT_TTR

    def _attempts_of(self, job_id: int) -> int:
        """Failed runs of a job before the run it was dequeued for (see :class:`LazyAttempts`)."""
        try:
            return failed_runs(self._job_stats(job_id), reserved=True)
        except greenstalk.NotFoundError:
            log.debug("job %d is gone; its attempts are no longer known", job_id)
        except (AdapterError, greenstalk.Error) as error:
            log.warning("could not read the attempts of job %d (%s); counting 0",
                        job_id, describe(error))
        return 0

    def _job_stats(self, job_id: int) -> greenstalk.StatsJob:
        return self._worker.call(lambda client: client.stats_job(job_id), wait=self._wait)

    def _bury_unreadable(self, job_id: int, error: ValueError) -> None:
        reason = f"not a pulpo message: {error}"
        self._reasons.remember(job_id, reason)
        log.warning("job %d buried: %s", job_id, reason)
        try:
            priority = self._job_stats(job_id)["pri"]
            self._worker.call(lambda client: client.bury(_job(job_id), priority),
                              wait=self._wait, retry=False)
        except (AdapterError, greenstalk.Error) as failure:
            log.warning("job %d could not be buried (%s); beanstalkd hands it out again after "
                        "its ttr", job_id, describe(failure))

    def _ours(self, reservation: Reservation | None) -> bool:
        """Whether the job is still reserved on the worker connection as it is now (True when
        it was not dequeued here: the server has the last word)."""
        return reservation is None or reservation.generation == self._worker.generation

    def commit(self, message: Message) -> bool | None:
        """Delete the done job; ``False`` when this worker no longer holds it, ``None`` when
        the server could not be asked."""
        job_id = parse_job_id(message.id)
        reservation = self._reserved.pop(job_id, None)
        worker = self._worker
        with worker.lock:
            client = worker.client
            if (client is not None and reservation is not None and self._ours(reservation)
                    and time.monotonic() < reservation.deadline):
                # Sent now, its answer read with the next command's (the worker's next
                # reserve): the server deletes the job at once, and no one waits for that.
                # Past the lease's deadline it is asked below, so a job another worker took
                # after its ttr ran out is reported as no longer held.
                try:
                    client.send_delete(job_id, reservation.body)
                except OSError as error:
                    worker.drop(error)  # the delete is sent again on the new connection
                return True
        # Reserved on a connection that has since dropped (the job went back to ready), or not
        # dequeued here: delete it on the current connection if it is not another worker's,
        # and if its id still names it (see Connection.other_job).

        def delete_again(client: PipelinedClient) -> str:
            if reservation is not None:
                why_not = worker.other_job(client, job_id, reservation.body, reservation.server)
                if why_not:
                    return why_not
            client.delete(job_id)
            return ""

        try:
            why_not = worker.call(delete_again, wait=self._wait)
            if why_not:
                log.info("job %d was done; %s", job_id, why_not)
                return False
            if reservation is not None and not self._ours(reservation):
                log.info("job %d deleted after reconnecting", job_id)
            return True
        except greenstalk.NotFoundError:
            log.warning("job %d was done but could not be deleted: its reservation was lost "
                        "(connection dropped or ttr ran out) and another worker has it or it "
                        "is gone; it may run again", job_id)
            return False
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d was done but could not be deleted (%s); it will run again",
                        job_id, describe(error))
            return None

    def rollback(self, message: Message, delay: float = 0) -> bool | None:
        job_id = parse_job_id(message.id)
        message.attempts  # noqa: B018  (read now: the job's counters change once it runs again)
        reservation = self._reserved.pop(job_id, None)
        priority, pause = priority_of(message), seconds(delay)
        if not self._ours(reservation):
            log.warning("job %d could not be released for a retry: the connection that reserved "
                        "it dropped, so beanstalkd released it already, without the delay",
                        job_id)
            return False
        try:
            self._worker.call(lambda client: client.release(_job(job_id), priority, pause),
                              wait=self._wait, retry=False)
            return True
        except greenstalk.BuriedError:
            self._reasons.remember(job_id,
                                   "beanstalkd was out of memory when the job was released")
            log.error("job %d: beanstalkd ran out of memory and buried it instead of "
                      "releasing it; kick it when the server has memory again", job_id)
        except greenstalk.NotFoundError:
            log.warning("job %d could not be released: it is no longer reserved by this worker "
                        "(its ttr ran out), so it is back in the queue already", job_id)
            return False
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be released (%s); beanstalkd puts it back when the "
                        "connection closes, without the retry delay", job_id, describe(error))
        return None

    def release(self, message: Message) -> bool | None:
        """Give a reserved job back to ready at once, its attempts unchanged: it did not run.

        beanstalkd counts every reservation, and a plain ``release`` would make the job's next
        run see one more failed attempt. A reservation that ends buried is not counted as a
        failure (see :func:`failed_runs`), so the job is buried and then kicked back to ready,
        with its priority. Two round trips, not one write: the kick must follow a bury that
        worked, or it could kick a job another worker buried.
        """
        job_id = parse_job_id(message.id)
        reservation = self._reserved.pop(job_id, None)
        priority = priority_of(message)
        if not self._ours(reservation):
            log.warning("job %d could not be handed back: the connection that reserved it "
                        "dropped, so beanstalkd released it already", job_id)
            return False
        worker = self._worker
        try:
            worker.call(lambda client: client.bury(_job(job_id), priority),
                        wait=self._wait, retry=False)
        except greenstalk.NotFoundError:
            log.warning("job %d could not be handed back: it is no longer reserved by this "
                        "worker (its ttr ran out), so it is back in the queue already", job_id)
            return False
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be handed back (%s); beanstalkd puts it back when "
                        "the connection closes", job_id, describe(error))
            return None
        try:
            worker.call(lambda client: client.kick_job(job_id), wait=self._wait)
        except (AdapterError, greenstalk.Error) as error:
            self._reasons.remember(job_id, "handed back at a worker's stop, then not kicked")
            log.error("job %d was buried to be handed back but not kicked (%s); `pulpo kick` "
                      "returns it to ready", job_id, describe(error))
            return None
        return True

    def flush(self) -> None:
        """Read the answers owed for commits (the worker calls this when its loop ends).

        A delete lost with a broken connection is sent again if the server can be reached
        within :data:`FLUSH_WAIT` seconds: a stopping worker must not outwait its grace period.
        """
        self._worker.flush(wait=FLUSH_WAIT)

    def bury(self, message: Message, reason: str) -> bool | None:
        job_id = parse_job_id(message.id)
        message.attempts  # noqa: B018  (read now: burying changes the counters it comes from)
        reservation = self._reserved.pop(job_id, None)
        priority = priority_of(message)
        self._reasons.remember(job_id, reason)
        # beanstalkd keeps no reason with a buried job: the log is its durable record.
        log.warning("job %s (%s) buried: %s", job_id, message.request_type, reason)
        if self._ours(reservation):
            try:
                self._worker.call(lambda client: client.bury(_job(job_id), priority),
                                  wait=self._wait, retry=False)
                return True
            except greenstalk.NotFoundError:
                log.warning("job %d could not be buried: it is no longer reserved by this "
                            "worker (its ttr ran out); it may run again", job_id)
                return False
            except greenstalk.Error as error:
                log.warning("job %d could not be buried (%s)", job_id, describe(error))
                return None
            except AdapterError:
                pass  # the connection broke, and with it the reservation: bury it again below
        return self._bury_again(job_id, priority)

    def _bury_again(self, job_id: int, priority: int) -> bool | None:
        """Bury a job whose reservation went with a dropped connection, if no one took it."""

        def reclaim(client: PipelinedClient) -> None:
            client.reserve_job(job_id)
            client.bury(_job(job_id), priority)

        try:
            self._worker.call(reclaim, wait=self._wait)
            log.info("job %d buried after reconnecting", job_id)
            return True
        except greenstalk.NotFoundError:
            log.warning("job %d could not be buried: the connection that reserved it dropped "
                        "and another worker has it or it is gone; it may run again", job_id)
            return False
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be buried (%s); it will run again",
                        job_id, describe(error))
            return None

    def touch(self, message: Message) -> None:
        """Renew the job's lease for another ttr (the core's heartbeat calls this)."""
        job_id = parse_job_id(message.id)
        worker = self._worker
        with worker.lock:
            if not self._ours(self._reserved.get(job_id)):
                raise AdapterError(f"job {job_id} was reserved on a connection that dropped; "
                                   f"beanstalkd has released it")
            now = time.monotonic()
            try:
                worker.call(lambda client: client.touch(_job(job_id)), wait=0, retry=False)
            except greenstalk.NotFoundError:
                raise AdapterError(f"job {job_id} is no longer reserved by this worker; its "
                                   f"lease cannot be renewed") from None
            reservation = self._reserved.get(job_id)
            if reservation is not None:
                reservation.renew(message.ttr or 0, now)
                worker.refresh_lease()

    # -- operating ----------------------------------------------------------------------------

    def peek(self, message_id: str) -> Message | None:
        return self._operations.peek(message_id)

    def delete(self, message_id: str) -> bool:
        return self._operations.delete(message_id)

    def kick(self, bound: int | None = None) -> int:
        """Move buried jobs back to ready, oldest first; delayed jobs are left alone."""
        return self._operations.kick(bound)

    def stats(self) -> dict[str, int]:
        """The tubes' job counts by state, ``total``, and server-wide figures (``server_*``)."""
        return self._operations.stats()

    def published_total(self) -> int:
        """Jobs put into the configured tubes since the server started (see
        :mod:`pulpo_beanstalkd.activity`)."""
        self._worker.flush()
        return activity.published_total(self.settings, self._producer)

    def oldest_ready_age(self) -> float | None:
        """How long the next ready job has waited (beanstalkd shows only that one)."""
        self._worker.flush()
        return activity.next_ready_wait(self.settings, self._producer)

    def list_jobs(self, state: str, limit: int = 50, after: str | None = None) -> list[Message]:
        """The next job in ``state`` of each tube, nothing for ``reserved``, and nothing past
        that first page: beanstalkd can peek at no further job (see :meth:`listing_note`)."""
        return self._operations.list_jobs(state, limit, after)

    def listing_note(self) -> str:
        """What :meth:`list_jobs` leaves out (the capability ``PartialListing``)."""
        return LISTING_NOTE

    def schedule_ledger(self) -> BeanstalkdLedger:
        """A seat in the schedulers' election (see :mod:`pulpo_beanstalkd.leadership`)."""
        return BeanstalkdLedger(self.settings)

    def close(self) -> None:
        self._worker.close()
        self._producer.close()
