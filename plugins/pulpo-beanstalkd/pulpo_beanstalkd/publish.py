"""Publishing to beanstalkd: one put, or many pipelined, and what a refusal means."""

from __future__ import annotations

from collections.abc import Sequence

import greenstalk

from pulpo_beanstalkd.client import PipelinedClient, describe
from pulpo_beanstalkd.codec import delay_of, encode, priority_of, ttr_of
from pulpo_beanstalkd.connection import Connection
from pulpo_beanstalkd.reservations import Reasons
from pulpo_beanstalkd.settings import BeanstalkdSettings
from pulpo_core.errors import AdapterError, PartialEnqueue
from pulpo_core.message import Message

#: How many puts ``enqueue_many`` writes before reading their answers.
PUTS_PER_WRITE = 500


class Publisher:
    """Puts jobs on the producer connection (which uses ``default_tube``)."""

    def __init__(
        self, settings: BeanstalkdSettings, producer: Connection, reasons: Reasons
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.reasons = reasons
        self.encoding = settings.encoding
        self.wait = settings.reconnect_timeout

    def enqueue(self, message: Message) -> Message:
        data = encode(message, self.encoding)
        priority = priority_of(message)
        delay = delay_of(message.delay)
        ttr = ttr_of(message)

        def put(client: PipelinedClient) -> int:
            return client.put_raw(data, priority, delay, ttr)

        try:
            # A put whose connection broke is sent again on a new one: the job is queued at
            # least once (twice only if the server stored it and then lost the line).
            job_id = self.producer.call(put, wait=self.wait)
        except greenstalk.BeanstalkdError as error:
            raise AdapterError(self.refused(error, len(data))) from None
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
        encoding = self.encoding

        def command_of(number: int) -> bytes:
            message = messages[number]
            data = encode(message, encoding)
            sizes[number] = len(data)
            return b"put %d %d %d %d\r\n%b\r\n" % (
                priority_of(message), delay_of(message.delay), ttr_of(message),
                len(data), data)

        outcomes: list[int | greenstalk.BeanstalkdError] = []

        def put_all(client: PipelinedClient) -> None:
            client.put_stream(len(messages), command_of, outcomes, PUTS_PER_WRITE)

        try:
            self.producer.call(put_all, wait=self.wait)
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
                refused.append(f"message {number}: {self.refused(outcome, sizes[number])}")
        if refused:
            raise PartialEnqueue(
                f"{len(refused)} of {len(messages)} jobs were not queued ({refused[0]}"
                f"{'; ...' if len(refused) > 1 else ''}); the others were", queued)
        return [message for message in queued if message is not None]

    def refused(self, error: greenstalk.BeanstalkdError, size: int) -> str:
        where = f"beanstalkd at {self.settings.address}"
        if isinstance(error, greenstalk.JobTooBigError):
            limit = self.max_job_size()
            return (f"the job is {size} bytes, more than the max-job-size of {limit} bytes of "
                    f"{where} (its -z option); the job was not queued")
        if isinstance(error, greenstalk.DrainingError):
            return (f"{where} is draining (shutting down) and takes no new jobs; the job was "
                    f"not queued")
        if isinstance(error, greenstalk.OutOfMemoryError):
            return f"{where} is out of memory; the job was not queued"
        if isinstance(error, greenstalk.BuriedError):
            if error.id is not None:
                self.reasons.remember(
                    error.id, "beanstalkd was out of memory when the job was queued"
                )
            return (f"{where} ran out of memory and buried the new job {error.id} at once: it is "
                    f"stored but will not run until kicked (pulpo kick)")
        return f"{where} refused the job: {describe(error)}"

    def max_job_size(self) -> str:
        try:
            stats = self.producer.call(lambda client: client.stats(), wait=self.wait)
        except (AdapterError, greenstalk.Error):
            return "an unknown number of"
        return str(stats["max-job-size"])
