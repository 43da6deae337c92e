"""Settling reserved jobs on the worker connection: delete, release, bury, touch.

beanstalkd lets only the connection that reserved a job settle or touch it. Each settle
returns ``True`` when it was done and ``False`` when the job was no longer this worker's (its
ttr ran out, the connection that reserved it dropped, or the server refused): the core then
logs that nothing was changed. Why, and what happens to the job, is logged here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import greenstalk

from pulpo_beanstalkd.client import PipelinedClient, describe
from pulpo_beanstalkd.codec import parse_job_id, priority_of, seconds
from pulpo_beanstalkd.connection import Connection
from pulpo_beanstalkd.jobs import BuryReasons, Reservation, job_ref
from pulpo_core.errors import AdapterError
from pulpo_core.message import Message

log = logging.getLogger("pulpo.beanstalkd")

#: Why a settle found the job gone from this worker's reservations.
TTR_RAN_OUT = "it is no longer reserved by this worker (its ttr ran out)"
CONNECTION_DROPPED = "the connection that reserved it dropped"


class Settler:
    """The jobs the worker connection holds, and how each one ends."""

    def __init__(self, worker: Connection, reasons: BuryReasons, wait: float) -> None:
        self._worker = worker
        self._reasons = reasons
        self._wait = wait
        #: The jobs dequeued here and not settled yet, by id.
        self.reserved: dict[int, Reservation] = {}

    def _ours(self, reservation: Reservation | None) -> bool:
        """Whether the job is still reserved on the worker connection as it is now (True when
        it was not dequeued here: the server has the last word)."""
        return reservation is None or reservation.generation == self._worker.generation

    def _held(self, job_id: int, what: str, op: Callable[[PipelinedClient], object],
              then: str) -> bool:
        """``op`` on the worker connection for a job it holds; False (logged: ``could not
        <what>``, then ``then`` for a failure) when the job is no longer held."""
        try:
            self._worker.call(op, wait=self._wait, retry=False)
        except greenstalk.NotFoundError:
            log.warning("job %d could not be %s: %s", job_id, what, TTR_RAN_OUT)
            return False
        except greenstalk.BuriedError:
            raise
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be %s (%s); %s", job_id, what, describe(error), then)
            return False
        return True

    def commit(self, message: Message) -> bool:
        job_id = parse_job_id(message.id)
        reservation = self.reserved.pop(job_id, None)
        worker = self._worker
        with worker.lock:
            client = worker.client
            if client is not None and reservation is not None and self._ours(reservation):
                if time.monotonic() >= reservation.deadline:
                    # Its ttr may have run out: ask, so the core learns whether it was ours.
                    return self._held(job_id, "deleted", lambda client: client.delete(job_id),
                                      "it will run again")
                # Sent now, its answer read with the next command's (the worker's next
                # reserve): the server deletes the job at once, and no one waits for that.
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
        except greenstalk.NotFoundError:
            log.warning("job %d was done but could not be deleted: its reservation was lost "
                        "(connection dropped or ttr ran out) and another worker has it or it "
                        "is gone; it may run again", job_id)
            return False
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d was done but could not be deleted (%s); it will run again",
                        job_id, describe(error))
            return False
        if why_not:
            log.info("job %d was done; %s", job_id, why_not)
            return False
        if reservation is not None:
            log.info("job %d deleted after reconnecting", job_id)
        return True

    def rollback(self, message: Message, delay: float = 0) -> bool:
        job_id = parse_job_id(message.id)
        message.attempts  # noqa: B018  (read now: the job's counters change once it runs again)
        reservation = self.reserved.pop(job_id, None)
        priority, pause = priority_of(message), seconds(delay)
        if not self._ours(reservation):
            log.warning("job %d could not be released for a retry: %s, so beanstalkd released "
                        "it already, without the delay", job_id, CONNECTION_DROPPED)
            return False
        try:
            return self._held(
                job_id, "released",
                lambda client: client.release(job_ref(job_id), priority, pause),
                "beanstalkd puts it back when the connection closes, without the retry delay")
        except greenstalk.BuriedError:
            self._reasons.remember(job_id, "beanstalkd was out of memory when the job was "
                                           "released")
            log.error("job %d: beanstalkd ran out of memory and buried it instead of "
                      "releasing it; kick it when the server has memory again", job_id)
            return True

    def release(self, message: Message) -> None:
        """Give a reserved job back to ready at once, its attempts unchanged: it did not run.

        beanstalkd counts every reservation, and a plain ``release`` would make the job's next
        run see one more failed attempt. A reservation that ends buried is not counted as a
        failure (see :func:`~pulpo_beanstalkd.jobs.failed_runs`), so the job is buried and then
        kicked back to ready, with its priority. Two round trips, not one write: the kick must
        follow a bury that worked, or it could kick a job another worker buried.
        """
        job_id = parse_job_id(message.id)
        reservation = self.reserved.pop(job_id, None)
        priority = priority_of(message)
        if not self._ours(reservation):
            log.warning("job %d could not be handed back: %s, so beanstalkd released it "
                        "already", job_id, CONNECTION_DROPPED)
            return
        if not self._held(job_id, "handed back",
                          lambda client: client.bury(job_ref(job_id), priority),
                          "beanstalkd puts it back when the connection closes"):
            return
        try:
            self._worker.call(lambda client: client.kick_job(job_id), wait=self._wait)
        except (AdapterError, greenstalk.Error) as error:
            self._reasons.remember(job_id, "handed back at a worker's stop, then not kicked")
            log.error("job %d was buried to be handed back but not kicked (%s); `pulpo kick` "
                      "returns it to ready", job_id, describe(error))

    def bury(self, message: Message, reason: str) -> bool:
        job_id = parse_job_id(message.id)
        message.attempts  # noqa: B018  (read now: burying changes the counters it comes from)
        # beanstalkd keeps no reason with a buried job: the log is its durable record.
        log.warning("job %s (%s) buried: %s", job_id, message.request_type, reason)
        return self.bury_reserved(job_id, priority_of(message), reason)

    def bury_reserved(self, job_id: int, priority: int, reason: str) -> bool:
        """Bury a job the worker connection reserved, with ``reason`` kept for ``peek``."""
        reservation = self.reserved.pop(job_id, None)
        self._reasons.remember(job_id, reason)
        if self._ours(reservation):
            try:
                self._worker.call(lambda client: client.bury(job_ref(job_id), priority),
                                  wait=self._wait, retry=False)
                return True
            except greenstalk.NotFoundError:
                log.warning("job %d could not be buried: %s; it may run again",
                            job_id, TTR_RAN_OUT)
                return False
            except greenstalk.Error as error:
                log.warning("job %d could not be buried (%s); beanstalkd hands it out again "
                            "after its ttr", job_id, describe(error))
                return False
            except AdapterError:
                pass  # the connection broke, and with it the reservation: bury it again below
        return self._bury_again(job_id, priority)

    def _bury_again(self, job_id: int, priority: int) -> bool:
        """Bury a job whose reservation went with a dropped connection, if no one took it."""

        def reclaim(client: PipelinedClient) -> None:
            client.reserve_job(job_id)
            client.bury(job_ref(job_id), priority)

        try:
            self._worker.call(reclaim, wait=self._wait)
        except greenstalk.NotFoundError:
            log.warning("job %d could not be buried: %s and another worker has it or it is "
                        "gone; it may run again", job_id, CONNECTION_DROPPED)
            return False
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be buried (%s); it will run again",
                        job_id, describe(error))
            return False
        log.info("job %d buried after reconnecting", job_id)
        return True

    def touch(self, message: Message) -> None:
        """Renew the job's lease for another ttr (the core's heartbeat calls this)."""
        job_id = parse_job_id(message.id)
        worker = self._worker
        with worker.lock:
            if not self._ours(self.reserved.get(job_id)):
                raise AdapterError(f"job {job_id} was reserved on a connection that dropped; "
                                   f"beanstalkd has released it")
            reservation = self.reserved.get(job_id)
            now = time.monotonic()
            try:
                worker.call(lambda client: client.touch(job_ref(job_id)), wait=0, retry=False)
            except greenstalk.NotFoundError:
                raise AdapterError(f"job {job_id} is no longer reserved by this worker; its "
                                   f"lease cannot be renewed") from None
            if reservation is not None:
                reservation.renew(message.ttr or 0, now)
