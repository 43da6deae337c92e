"""The beanstalkd queue adapter.

Two connections, each opened on first use: the *producer* connection uses ``default_tube`` and
carries publishing and the operator commands; the *worker* connection watches the worker's tubes
and carries reserve, delete, release, bury and touch (beanstalkd lets only the connection that
reserved a job settle or touch it). A process that only publishes never opens the second one.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import greenstalk

from pulpo_beanstalkd.codec import (
    DEFAULT_TTR,
    decode,
    delay_of,
    encode,
    parse_job_id,
    priority_of,
    seconds,
    unreadable,
)
from pulpo_beanstalkd.connection import Connection, PipelinedClient, describe
from pulpo_beanstalkd.settings import SECTION, BeanstalkdSettings
from pulpo_core.config import load_section
from pulpo_core.errors import AdapterError, PartialEnqueue
from pulpo_core.message import Message

log = logging.getLogger("pulpo.beanstalkd")

#: How many bury reasons a process remembers for ``peek`` (beanstalkd stores none).
REASONS_KEPT = 10_000
#: Seconds ``flush`` tries to reconnect to send deletes lost with a connection.
FLUSH_WAIT = 2.0
#: How many puts ``enqueue_many`` writes before reading their answers.
PUTS_PER_WRITE = 500
#: The job states beanstalkd counts per tube, as ``stats()`` names them.
STATES = ("ready", "delayed", "reserved", "buried")
#: Server-wide figures ``stats()`` adds, as ``server_<name>``.
SERVER_FIGURES = (
    "current-connections", "current-workers", "current-producers", "current-waiting",
    "total-jobs", "job-timeouts", "max-job-size", "uptime", "binlog-current-index",
)


def _job(job_id: int) -> greenstalk.Job[bytes]:
    return greenstalk.Job(job_id, b"")


def failed_runs(stats: Mapping[str, Any], reserved: bool) -> int:
    """Failed runs of a job from its counters.

    ``reserves`` counts every run: those released for a retry, those whose ttr ran out and those
    whose worker died (beanstalkd counts that in no other counter). Runs that ended buried are
    not failures to retry, and a run still going on (``reserved``) has not failed.
    """
    return max(0, int(stats["reserves"]) - int(stats["buries"]) - int(reserved))


class LazyAttempts:
    """A reserved job's ``attempts``, asked of the server only when something reads it.

    A job that succeeds without anyone reading its attempts costs no ``stats-job`` round trip.
    Once the job is deleted its counters are gone: the core reads the attempts before it
    commits when a ``pulpo_after_process`` hook may want them.
    """

    __slots__ = ("_adapter", "job_id", "value")

    def __init__(self, adapter: BeanstalkdQueueAdapter, job_id: int) -> None:
        self._adapter = adapter
        self.job_id = job_id
        self.value: int | None = None

    def __call__(self) -> int:
        if self.value is None:
            self.value = self._adapter._attempts_of(self)
        return self.value


@attrs.define
class Reservation:
    """A job this adapter's worker connection holds."""

    #: The worker connection's generation when the job was reserved.
    generation: int
    #: The ``id`` of the beanstalkd that handed it out.
    server: str
    attempts: LazyAttempts
    #: The job's body as reserved (kept to recognise the job after a reconnection).
    body: bytes


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
        self._worker = Connection(settings, use=greenstalk.DEFAULT_TUBE,
                                  watch=settings.watched, role="worker")
        self._reserved: dict[int, Reservation] = {}
        self._reasons: dict[int, str] = {}
        # A commit's answer is read with the next command's: when the adapter is dropped or
        # the interpreter exits without close(), the last one is still read (and a delete lost
        # with a broken connection sent again).
        weakref.finalize(self, self._worker.close)

    def __repr__(self) -> str:
        return (f"BeanstalkdQueueAdapter({self.settings.address}, "
                f"tube={self.settings.default_tube!r})")

    # -- publishing ---------------------------------------------------------------------------

    def enqueue(self, message: Message) -> Message:
        data = encode(message, self._encoding)
        priority = priority_of(message)
        delay = delay_of(message.delay)
        ttr = message.ttr or DEFAULT_TTR

        def put(client: PipelinedClient) -> int:
            return client.put_raw(data, priority, delay, ttr)

        try:
            # A put whose connection broke is sent again on a new one: the job is queued at
            # least once (twice only if the server stored it and then lost the line).
            job_id = self._producer.call(put, wait=self._wait)
        except greenstalk.BeanstalkdError as error:
            raise AdapterError(self._refused(error, len(data))) from None
        return message.with_id(str(job_id))

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """Queue many messages with pipelined puts, :data:`PUTS_PER_WRITE` to a write.

        A batch costs a few round trips instead of one per job, and the server stores one
        write's jobs while the next write is being encoded.

        :raises PartialEnqueue: when the server refused some of the jobs (the others are
            queued; the error lists which). A connection that breaks meanwhile is replaced and
            the puts not yet answered are sent again: every job is queued at least once.
        """
        messages = list(messages)
        sizes = [0] * len(messages)
        encoding = self._encoding

        def command_of(number: int) -> bytes:
            message = messages[number]
            data = encode(message, encoding)
            sizes[number] = len(data)
            return b"put %d %d %d %d\r\n%b\r\n" % (
                priority_of(message), delay_of(message.delay), message.ttr or DEFAULT_TTR,
                len(data), data)

        outcomes: list[int | greenstalk.BeanstalkdError] = []

        def put_all(client: PipelinedClient) -> None:
            client.put_stream(len(messages), command_of, outcomes, PUTS_PER_WRITE)

        try:
            self._producer.call(put_all, wait=self._wait)
        except (AdapterError, ValueError) as error:
            if not outcomes:
                raise
            answered = [message.with_id(str(outcome)) if isinstance(outcome, int) else None
                        for message, outcome in zip(messages, outcomes, strict=False)]
            raise PartialEnqueue(
                f"{len(outcomes)} of {len(messages)} jobs were answered before: {error}",
                answered + [None] * (len(messages) - len(outcomes))) from error
        queued: list[Message | None] = []
        refused: list[str] = []
        for number, (message, outcome) in enumerate(zip(messages, outcomes, strict=True)):
            if isinstance(outcome, int):
                queued.append(message.with_id(str(outcome)))
            else:
                queued.append(None)
                refused.append(f"message {number}: {self._refused(outcome, sizes[number])}")
        if refused:
            raise PartialEnqueue(
                f"{len(refused)} of {len(messages)} jobs were not queued ({refused[0]}"
                f"{'; ...' if len(refused) > 1 else ''}); the others were", queued)
        return [message for message in queued if message is not None]

    def _refused(self, error: greenstalk.BeanstalkdError, size: int) -> str:
        where = f"beanstalkd at {self.settings.address}"
        if isinstance(error, greenstalk.JobTooBigError):
            limit = self._max_job_size()
            return (f"the job is {size} bytes, more than the max-job-size of {limit} bytes of "
                    f"{where} (its -z option); the job was not queued")
        if isinstance(error, greenstalk.DrainingError):
            return (f"{where} is draining (shutting down) and takes no new jobs; the job was "
                    f"not queued")
        if isinstance(error, greenstalk.OutOfMemoryError):
            return f"{where} is out of memory; the job was not queued"
        if isinstance(error, greenstalk.BuriedError):
            if error.id is not None:
                self._remember(error.id, "beanstalkd was out of memory when the job was queued")
            return (f"{where} ran out of memory and buried the new job {error.id} at once: it is "
                    f"stored but will not run until kicked (pulpo kick)")
        return f"{where} refused the job: {describe(error)}"

    def _max_job_size(self) -> str:
        try:
            stats = self._producer.call(lambda client: client.stats(), wait=self._wait)
        except (AdapterError, greenstalk.Error):
            return "an unknown number of"
        return str(stats["max-job-size"])

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
            attempts = LazyAttempts(self, job_id)
            try:
                message = decode(body, job_id, self._encoding, attempts)
            except ValueError as error:
                self._bury_unreadable(job_id, error)
                continue
            self._reserved[job_id] = Reservation(generation, server, attempts, body)
            if message.ttr is None:  # put by another client in pulpo's format, without a ttr
                message = attrs.evolve(message, ttr=self._server_ttr(job_id))
            return message

    def _server_ttr(self, job_id: int) -> int:
        try:
            return int(self._job_stats(job_id)["ttr"])
        except (AdapterError, greenstalk.Error):
            return DEFAULT_TTR

    def _attempts_of(self, lazy: LazyAttempts) -> int:
        """Failed runs of a job before the run it was dequeued for (see :class:`LazyAttempts`)."""
        job_id = lazy.job_id
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
        self._remember(job_id, reason)
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

    def commit(self, message: Message) -> None:
        job_id = parse_job_id(message.id)
        reservation = self._reserved.pop(job_id, None)
        worker = self._worker
        with worker.lock:
            client = worker.client
            if client is not None and reservation is not None and self._ours(reservation):
                # Sent now, its answer read with the next command's (the worker's next
                # reserve): the server deletes the job at once, and no one waits for that.
                try:
                    client.send_delete(job_id, reservation.body)
                except OSError as error:
                    worker.drop(error)  # the delete is sent again on the new connection
                return
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
            elif reservation is not None:
                log.info("job %d deleted after reconnecting", job_id)
        except greenstalk.NotFoundError:
            log.warning("job %d was done but could not be deleted: its reservation was lost "
                        "(connection dropped or ttr ran out) and another worker has it or it "
                        "is gone; it may run again", job_id)
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d was done but could not be deleted (%s); it will run again",
                        job_id, describe(error))

    def rollback(self, message: Message, delay: float = 0) -> None:
        job_id = parse_job_id(message.id)
        message.attempts  # noqa: B018  (read now: the job's counters change once it runs again)
        reservation = self._reserved.pop(job_id, None)
        priority, pause = priority_of(message), seconds(delay)
        if not self._ours(reservation):
            log.warning("job %d could not be released for a retry: the connection that reserved "
                        "it dropped, so beanstalkd released it already, without the delay",
                        job_id)
            return
        try:
            self._worker.call(lambda client: client.release(_job(job_id), priority, pause),
                              wait=self._wait, retry=False)
        except greenstalk.BuriedError:
            self._remember(job_id, "beanstalkd was out of memory when the job was released")
            log.error("job %d: beanstalkd ran out of memory and buried it instead of "
                      "releasing it; kick it when the server has memory again", job_id)
        except greenstalk.NotFoundError:
            log.warning("job %d could not be released: it is no longer reserved by this worker "
                        "(its ttr ran out), so it is back in the queue already", job_id)
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be released (%s); beanstalkd puts it back when the "
                        "connection closes, without the retry delay", job_id, describe(error))

    def release(self, message: Message) -> None:
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
            return
        worker = self._worker
        try:
            worker.call(lambda client: client.bury(_job(job_id), priority),
                        wait=self._wait, retry=False)
        except greenstalk.NotFoundError:
            log.warning("job %d could not be handed back: it is no longer reserved by this "
                        "worker (its ttr ran out), so it is back in the queue already", job_id)
            return
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be handed back (%s); beanstalkd puts it back when "
                        "the connection closes", job_id, describe(error))
            return
        try:
            worker.call(lambda client: client.kick_job(job_id), wait=self._wait)
        except (AdapterError, greenstalk.Error) as error:
            self._remember(job_id, "handed back at a worker's stop, then not kicked")
            log.error("job %d was buried to be handed back but not kicked (%s); `pulpo kick` "
                      "returns it to ready", job_id, describe(error))

    def flush(self) -> None:
        """Read the answers owed for commits (the worker calls this when its loop ends).

        A delete lost with a broken connection is sent again if the server can be reached
        within :data:`FLUSH_WAIT` seconds: a stopping worker must not outwait its grace period.
        """
        self._worker.flush(wait=FLUSH_WAIT)

    def bury(self, message: Message, reason: str) -> None:
        job_id = parse_job_id(message.id)
        message.attempts  # noqa: B018  (read now: burying changes the counters it comes from)
        reservation = self._reserved.pop(job_id, None)
        priority = priority_of(message)
        self._remember(job_id, reason)
        # beanstalkd keeps no reason with a buried job: the log is its durable record.
        log.warning("job %s (%s) buried: %s", job_id, message.request_type, reason)
        if self._ours(reservation):
            try:
                self._worker.call(lambda client: client.bury(_job(job_id), priority),
                                  wait=self._wait, retry=False)
                return
            except greenstalk.NotFoundError:
                log.warning("job %d could not be buried: it is no longer reserved by this "
                            "worker (its ttr ran out); it may run again", job_id)
                return
            except greenstalk.Error as error:
                log.warning("job %d could not be buried (%s)", job_id, describe(error))
                return
            except AdapterError:
                pass  # the connection broke, and with it the reservation: bury it again below
        self._bury_again(job_id, priority)

    def _bury_again(self, job_id: int, priority: int) -> None:
        """Bury a job whose reservation went with a dropped connection, if no one took it."""

        def reclaim(client: PipelinedClient) -> None:
            client.reserve_job(job_id)
            client.bury(_job(job_id), priority)

        try:
            self._worker.call(reclaim, wait=self._wait)
            log.info("job %d buried after reconnecting", job_id)
        except greenstalk.NotFoundError:
            log.warning("job %d could not be buried: the connection that reserved it dropped "
                        "and another worker has it or it is gone; it may run again", job_id)
        except (AdapterError, greenstalk.Error) as error:
            log.warning("job %d could not be buried (%s); it will run again",
                        job_id, describe(error))

    def touch(self, message: Message) -> None:
        """Renew the job's lease for another ttr (the core's heartbeat calls this)."""
        job_id = parse_job_id(message.id)
        worker = self._worker
        with worker.lock:
            if not self._ours(self._reserved.get(job_id)):
                raise AdapterError(f"job {job_id} was reserved on a connection that dropped; "
                                   f"beanstalkd has released it")
            try:
                worker.call(lambda client: client.touch(_job(job_id)), wait=0, retry=False)
            except greenstalk.NotFoundError:
                raise AdapterError(f"job {job_id} is no longer reserved by this worker; its "
                                   f"lease cannot be renewed") from None

    def _remember(self, job_id: int, reason: str) -> None:
        reasons = self._reasons
        reasons.pop(job_id, None)
        reasons[job_id] = reason
        if len(reasons) > REASONS_KEPT:
            del reasons[next(iter(reasons))]

    # -- operating ----------------------------------------------------------------------------

    def _ours_to_operate(self, job_id: int, stats: greenstalk.StatsJob) -> None:
        tube = stats["tube"]
        if tube not in self.settings.tubes:
            raise ValueError(
                f"job {job_id} is in the tube {tube!r}, not in this configuration's tubes "
                f"({', '.join(self.settings.tubes)})")

    def _stats_of(self, job_id: int) -> greenstalk.StatsJob | None:
        try:
            return self._producer.call(lambda client: client.stats_job(job_id), wait=self._wait)
        except greenstalk.NotFoundError:
            return None

    def peek(self, message_id: str) -> Message | None:
        job_id = parse_job_id(message_id)
        self._worker.flush()

        def look(client: PipelinedClient) -> tuple[greenstalk.Job[bytes], greenstalk.StatsJob]:
            return client.peek(job_id), client.stats_job(job_id)

        try:
            job, stats = self._producer.call(look, wait=self._wait)
        except greenstalk.NotFoundError:
            return None
        self._ours_to_operate(job_id, stats)
        state = stats["state"]
        attempts = failed_runs(stats, reserved=state == "reserved")
        try:
            message = decode(job.body, job_id, self._encoding, attempts)
        except ValueError as error:
            message = unreadable(job.body, job_id, self._encoding, error)
        if state == "buried":
            reason = self._reasons.get(job_id) or (
                "unknown here: beanstalkd does not store bury reasons; the worker that buried "
                f"the job logged it (search its log for 'job {job_id}')")
            message = attrs.evolve(
                message, extra_header={**message.extra_header, "buried_reason": reason})
        return message

    def delete(self, message_id: str) -> bool:
        job_id = parse_job_id(message_id)
        self._worker.flush()
        stats = self._stats_of(job_id)
        if stats is None:
            return False
        self._ours_to_operate(job_id, stats)
        try:
            self._producer.call(lambda client: client.delete(job_id), wait=self._wait)
        except greenstalk.NotFoundError:
            if self._stats_of(job_id) is None:
                return False  # deleted meanwhile
            # Reserved: beanstalkd lets only the connection that reserved it delete it.
            if job_id not in self._reserved:
                raise AdapterError(
                    f"job {job_id} is reserved by a worker, and beanstalkd lets only that "
                    f"worker delete it; try again once it is released or buried") from None
            try:
                self._worker.call(lambda client: client.delete(job_id), wait=self._wait,
                                  retry=False)
            except greenstalk.NotFoundError:
                return False
            del self._reserved[job_id]
        self._reasons.pop(job_id, None)
        return True

    def kick(self, bound: int | None = None) -> int:
        """Move buried jobs back to ready, oldest first; delayed jobs are left alone.

        beanstalkd's ``kick`` would kick delayed jobs when a tube has no buried one, so each job
        is found with ``peek-buried`` and moved with ``kick-job``.
        """
        if bound is not None and bound < 0:
            raise ValueError(f"kick bound must be at least 0, not {bound}")
        self._worker.flush()
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
                        self._reasons.pop(job.id, None)
            finally:
                if len(tubes) > 1:
                    client.use(default)
            return kicked

        return self._producer.call(kick_buried, wait=self._wait, retry=False)

    def stats(self) -> dict[str, int]:
        """The tubes' job counts by state, ``total``, and server-wide figures (``server_*``)."""
        self._worker.flush()
        tubes = self.settings.tubes

        def read(client: PipelinedClient) -> tuple[list[greenstalk.StatsTube], greenstalk.Stats]:
            found = []
            for tube in tubes:
                # A tube exists only while it has jobs or clients.
                with contextlib.suppress(greenstalk.NotFoundError):
                    found.append(client.stats_tube(tube))
            return found, client.stats()

        found, server = self._producer.call(read, wait=self._wait)
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

    def close(self) -> None:
        self._worker.close()
        self._producer.close()


def job_in_tube_buried(client: PipelinedClient, tube: str) -> bool:
    """Whether the tube still has buried jobs (after a kick-job lost a race)."""
    try:
        return int(client.stats_tube(tube)["current-jobs-buried"]) > 0
    except greenstalk.NotFoundError:
        return False
