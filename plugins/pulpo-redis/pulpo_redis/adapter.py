"""The ``redis`` queue adapter: jobs in Redis or Valkey, each change one Lua script.

A worker's ``dequeue`` runs the claim script on each watched queue in order (one round trip
a queue: promote what came due, take back leases that ran out, reserve the best ready job).
When none is ready it waits on the queues' wake-up lists (``BLPOP``) for at most
``reserve_timeout``, or until the next delayed job comes due or the next lease runs out,
whichever is first, so an idle worker costs the server one blocked command.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pulpo_core.adapter import JOB_STATES
from pulpo_core.config import load_section
from pulpo_core.errors import AdapterError, PartialEnqueue
from pulpo_core.message import BURIED_REASON, DEFAULT_TTR, Message
from pulpo_redis import codec
from pulpo_redis.connection import LOST, Connection
from pulpo_redis.keys import QueueKeys, job_id, parse_id
from pulpo_redis.pipelined import Owed, Pipeline
from pulpo_redis.settings import SECTION, RedisSettings

log = logging.getLogger("pulpo.redis")
#: Longest wait in one ``BLPOP`` on a cluster watching queues on several shards (it cannot
#: wait on keys of different slots at once, so it waits on each in turn).
CLUSTER_WAIT_SLICE = 0.1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisQueueAdapter:
    """Jobs in Redis: priorities, delays, ttr leases, burial, kick, peek, stats."""

    def __init__(self, section: Mapping[str, Any] | None = None) -> None:
        self.settings = load_section(SECTION, section or {}, RedisSettings)
        self.connection = Connection(self.settings)
        self._keys = {q: QueueKeys(q, self.settings.key_prefix)
                      for q in dict.fromkeys((self.settings.queue, *self.settings.watched))}
        #: message id -> lease token, for the jobs this adapter holds.
        self._held: dict[str, str] = {}
        #: message id -> when its lease runs out (monotonic seconds, a second early).
        self._deadlines: dict[str, float] = {}
        self._lock = threading.Lock()
        #: Commits answered with the next claim (a single server only: see pulpo_redis.pipelined).
        self._pipeline = None if self.settings.is_cluster else Pipeline(self.connection,
                                                                        self._commit_again)

    # -- plumbing ----------------------------------------------------------------------------
    def _queue(self, name: str) -> QueueKeys:
        keys = self._keys.get(name)
        if keys is None:
            keys = self._keys[name] = QueueKeys(name, self.settings.key_prefix)
        return keys

    def _script(self, name: str, keys: QueueKeys, *args: Any, what: str,
                wait: float | None = None) -> Any:
        """Run a script on a queue, retrying while Redis is away (``reconnect_timeout``)."""
        return self.connection.call(
            lambda: self.connection.run(name, keys.all, [keys.jobs, *args]),
            wait=self.settings.reconnect_timeout if wait is None else wait, what=what)

    def _lease(self, message: Message) -> tuple[QueueKeys, str, str] | None:
        """The queue, job number and lease token of a job this adapter holds."""
        token = self._held.get(message.id or "")
        if token is None:
            return None
        queue, number = parse_id(message.id)
        return self._queue(queue), number, token

    # -- publishing --------------------------------------------------------------------------
    def _enqueue_args(self, message: Message) -> list[Any]:
        return [codec.encode(message), codec.priority_of(message),
                codec.ready_at_ms(message.delay), codec.ttr_of(message)]

    def enqueue(self, message: Message) -> Message:
        keys = self._queue(self.settings.queue)
        try:
            args = self._enqueue_args(message)
        except ValueError as error:
            raise AdapterError(str(error)) from None
        number = self._script("ENQUEUE", keys, *args, what="publish the job")
        return message.with_id(job_id(keys.queue, number))

    def enqueue_unique(self, message: Message) -> tuple[Message, bool]:
        """Queue the message unless a live job (or one done less than ``unique_for`` ago)
        holds its ``unique_key``: one script, so atomic against every other publisher."""
        keys = self._queue(self.settings.queue)
        try:
            args = self._enqueue_args(message)
        except ValueError as error:
            raise AdapterError(str(error)) from None
        number, created = self._script("ENQUEUE_UNIQUE", keys, *args, message.unique_key,
                                       message.unique_for or 0, what="publish the job")
        message_id = job_id(keys.queue, _text(number))
        if created:
            return message.with_id(message_id), True
        held = self.peek(message_id)
        return (held if held is not None else message.with_id(message_id)), False

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """Queue the messages in one pipeline (one round trip for the whole batch)."""
        keys = self._queue(self.settings.queue)
        try:
            batch = [self._enqueue_args(m) for m in messages]
        except ValueError as error:
            raise AdapterError(str(error)) from None
        script = self.connection.scripts["ENQUEUE"]

        def send() -> list[Any]:
            pipe = self.connection.client.pipeline(transaction=False)
            for args in batch:
                script(keys=keys.all, args=[keys.jobs, *args], client=pipe)
            return list(pipe.execute(raise_on_error=False))

        replies = self.connection.call(send, wait=self.settings.reconnect_timeout,
                                       what="publish the jobs")
        queued: list[Message | None] = [
            None if isinstance(r, Exception) else m.with_id(job_id(keys.queue, r))
            for m, r in zip(messages, replies, strict=True)]
        if all(q is None for q in queued) and queued:
            raise AdapterError(f"cannot publish the jobs: Redis answered: {replies[0]}")
        if any(q is None for q in queued):
            raise PartialEnqueue(
                f"{sum(q is None for q in queued)} of {len(queued)} jobs were not queued",
                queued)
        return [q for q in queued if q is not None]

    # -- taking jobs -------------------------------------------------------------------------
    def _claim(self, keys: QueueKeys) -> tuple[Message | None, float]:
        """One claim on a queue: the job, or None and the seconds until something is due."""
        while True:
            reply = None
            if self._pipeline is not None and self._pipeline.owed:
                reply = self._pipeline.claim(keys, DEFAULT_TTR)
            if reply is None:
                reply = self.connection.run("CLAIM", keys.all, [keys.jobs, DEFAULT_TTR])
            number = _text(reply[0])
            if not number:
                soon = int(reply[1])
                return None, (-1.0 if soon < 0 else soon / 1000)
            message_id = job_id(keys.queue, number)
            token = _text(reply[4])
            try:
                message = codec.decode(reply[1], message_id, int(reply[2]), int(reply[3]))
            except ValueError as error:
                # Never deleted: kept aside with the reason, for an operator to look at.
                log.warning("job %s is not a pulpo message, buried: %s", message_id, error)
                self.connection.run("BURY", keys.all, [keys.jobs, number, token,
                                                       f"unreadable: {error}"])
                continue
            with self._lock:
                self._held[message_id] = token
                self._deadlines[message_id] = time.monotonic() + int(reply[3]) - 1
            return message, 0.0

    def dequeue(self) -> Message | None:
        deadline = time.monotonic() + self.settings.reserve_timeout
        pause = self.settings.reconnect_delay
        while True:
            try:
                return self._take(deadline)
            except LOST as error:
                left = deadline - time.monotonic()
                log.warning("Redis at %s is not reachable (%s)", self.settings.address, error)
                if left <= 0:
                    return None
                time.sleep(min(pause, left))
                pause = min(pause * 2, self.settings.max_reconnect_delay)

    def _take(self, deadline: float) -> Message | None:
        queues = [self._queue(q) for q in self.settings.watched]
        while True:
            soonest = -1.0
            for keys in queues:
                message, soon = self._claim(keys)
                if message is not None:
                    return message
                if soon >= 0 and (soonest < 0 or soon < soonest):
                    soonest = soon
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait = left if soonest < 0 else min(left, soonest + 0.001)
            self._wait([k.key("wake") for k in queues], wait)

    def _wait(self, wake_keys: list[str], seconds: float) -> None:
        """Block on the wake-up lists for at most ``seconds``."""
        client = self.connection.client
        if self.settings.is_cluster and len(wake_keys) > 1:
            for key in wake_keys:
                client.blpop([key], timeout=max(min(seconds / len(wake_keys),
                                                    CLUSTER_WAIT_SLICE), 0.001))
            return
        client.blpop(wake_keys, timeout=max(seconds, 0.001))

    # -- settling ----------------------------------------------------------------------------
    def _settle(self, name: str, message: Message, *args: Any, what: str) -> bool:
        lease = self._lease(message)
        if lease is None:
            return False
        keys, number, token = lease
        done = self._script(name, keys, number, token, *args, what=what)
        with self._lock:
            self._held.pop(message.id or "", None)
            self._deadlines.pop(message.id or "", None)
        return bool(done)

    def commit(self, message: Message) -> bool:
        """Delete the done job; ``False`` when this worker no longer holds it. While its lease
        runs, the commit is sent and its answer read with the next claim (True at once)."""
        pipeline, message_id = self._pipeline, message.id or ""
        if pipeline is not None and time.monotonic() < self._deadlines.get(message_id, 0.0):
            lease = self._lease(message)
            if lease is not None:
                with self._lock:
                    self._held.pop(message_id, None)
                    self._deadlines.pop(message_id, None)
                keys, number, token = lease
                pipeline.commit(message_id, keys, number, token)
                return True
        return self._settle("COMMIT", message, what=f"delete job {message.id}")

    def _commit_again(self, owed: Owed) -> None:
        """An owed commit run through the client (its first sending may have arrived: then
        the lease token no longer matches and nothing happens)."""
        self._script("COMMIT", owed.keys, owed.number, owed.token,
                     what=f"delete job {owed.message_id}")

    def rollback(self, message: Message, delay: float = 0) -> bool:
        return self._settle("ROLLBACK", message, max(0, round(delay * 1000)), 1,
                            what=f"release job {message.id}")

    def release(self, message: Message) -> None:
        """Give a job back to ready at once, unrun: its attempts stay as they were."""
        self._settle("ROLLBACK", message, 0, 0, what=f"release job {message.id}")

    def bury(self, message: Message, reason: str) -> bool:
        return self._settle("BURY", message, reason, what=f"bury job {message.id}")

    def touch(self, message: Message) -> None:
        lease = self._lease(message)
        if lease is None:
            return
        keys, number, token = lease
        if not self._script("TOUCH", keys, number, token, what=f"renew job {message.id}"):
            log.warning("job %s: its lease ran out before it was renewed", message.id)
            return
        with self._lock:
            if message.id in self._deadlines:
                self._deadlines[message.id or ""] = (
                    time.monotonic() + (message.ttr or DEFAULT_TTR) - 1)

    def flush(self) -> None:
        """Read the answers owed for commits sent without waiting (the worker stops)."""
        if self._pipeline is not None:
            self._pipeline.settle()

    # -- operators ---------------------------------------------------------------------------
    def _read(self, keys: QueueKeys, number: str) -> Message | None:
        message_id = job_id(keys.queue, number)
        client = self.connection.client
        why = client.hget(keys.key("foreign"), number)
        kind = _text(client.type(keys.job(number)))
        if kind != "hash":
            if why is None:
                return None
            return codec.unreadable(None, message_id, _text(why))
        fields = {_text(k): v for k, v in client.hgetall(keys.job(number)).items()}
        try:
            message = codec.decode(fields.get("d", b""), message_id, int(fields.get("a", 0)),
                                   int(fields.get("t", DEFAULT_TTR)))
        except ValueError as error:
            return codec.unreadable(fields.get("d"), message_id, str(error))
        reason = fields.get("w")
        if reason is not None and _text(fields.get("s", b"")) == "buried":
            message = message._replace(
                extra_header={**message.extra_header, BURIED_REASON: _text(reason)})
        return message

    def peek(self, message_id: str) -> Message | None:
        try:
            queue, number = parse_id(message_id)
        except ValueError:
            return None
        keys = self._queue(queue)
        return self.connection.call(lambda: self._read(keys, number),
                                    wait=self.settings.reconnect_timeout,
                                    what=f"read job {message_id}")

    def delete(self, message_id: str) -> bool:
        try:
            queue, number = parse_id(message_id)
        except ValueError:
            return False
        return bool(self._script("DELETE", self._queue(queue), number,
                                 what=f"delete job {message_id}"))

    def kick(self, bound: int | None = None) -> int:
        total = 0
        for queue in self._queue_names():
            left = -1 if bound is None else bound - total
            if left == 0:
                break
            total += int(self._script("KICK", self._queue(queue), left, what="kick jobs"))
        return total

    def _queue_names(self) -> list[str]:
        return list(dict.fromkeys((self.settings.queue, *self.settings.watched)))

    def stats(self) -> dict[str, int]:
        counts = dict.fromkeys(JOB_STATES, 0)
        for queue in self._queue_names():
            reply = self._script("STATS", self._queue(queue), what="count the jobs")
            for state, count in zip(JOB_STATES, reply, strict=True):
                counts[state] += int(count)
        counts["total"] = sum(counts.values())
        return counts

    def published_total(self) -> int:
        """Jobs published into the default queue and the watched ones: each queue's job
        number counter (``seq``), which every publish raises by one."""
        client = self.connection.client

        def read() -> int:
            return sum(int(client.get(self._queue(queue).key("seq")) or 0)
                       for queue in self._queue_names())

        return int(self.connection.call(read, wait=self.settings.reconnect_timeout,
                                        what="count the publishes"))

    def oldest_ready_age(self) -> float | None:
        """Seconds since the longest-waiting ready job became ready (server time)."""
        oldest: float | None = None
        for queue in self._queue_names():
            now, at = self._script("READY_AGE", self._queue(queue), what="find the oldest job")
            if at is not None:
                age = max(0.0, (int(now) - int(at)) / 1000)
                oldest = age if oldest is None else max(oldest, age)
        return oldest

    def list_jobs(self, state: str, limit: int = 50, after: str | None = None) -> list[Message]:
        """Jobs in ``state`` in the default queue, then the watched ones, in their order."""
        if state not in JOB_STATES:
            raise ValueError(f"{state!r} is not a job state (one of {', '.join(JOB_STATES)})")
        return self.connection.call(lambda: self._list(state, limit, after),
                                    wait=self.settings.reconnect_timeout, what="list the jobs")

    def _list(self, state: str, limit: int, after: str | None) -> list[Message]:
        client = self.connection.client
        found: list[Message] = []
        skipping = after is not None
        for queue in self._queue_names():
            keys = self._queue(queue)
            members = [_text(m) for m in client.zrange(keys.key(state), 0, -1)]
            numbers = [str(int(m[25:])) if state == "ready" else m for m in members]
            for number in numbers:
                if skipping:
                    skipping = job_id(queue, number) != after
                    continue
                message = self._read(keys, number)
                if message is not None:
                    found.append(message)
                if len(found) >= limit:
                    return found
        return found

    def close(self) -> None:
        try:
            if self._pipeline is not None:
                self._pipeline.close()
        finally:
            self.connection.close()
