"""A worker's commit sent at once and answered with its next claim: one round trip a job.

A done job's ``COMMIT`` script is written to a connection of the worker's own as soon as the job
is done, without waiting for the answer; the next ``dequeue`` writes its ``CLAIM`` behind it and
reads both answers together. The server runs the commit when it arrives, before the claim, so
the job is deleted as early as if the worker had waited, and a worker that drains a backlog
pays one round trip a job instead of two.

What is owed is settled before anything else this connection does: by the next claim, by
``flush`` (the worker stops) and by ``close``. An answer that says the lease had run out is
logged (the job may run again); a server that lost its scripts (``NOSCRIPT``, restarted or
flushed) or a connection that broke has the owed commits run again through the client, with its
retries: a commit is checked against its lease token, so running one twice deletes nothing else.

Only on a single server: in a Redis Cluster a claim and a commit may belong to different shards,
and each settles in its own round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
import redis
from redis.exceptions import NoScriptError

from pulpo_redis.connection import LOST, Connection
from pulpo_redis.keys import QueueKeys

log = logging.getLogger("pulpo.redis")


@attrs.frozen
class Owed:
    """A commit written to the connection whose answer is not read yet."""

    message_id: str
    keys: QueueKeys
    number: str
    token: str


class Pipeline:
    """The worker's own connection, with the commits whose answers it still owes."""

    def __init__(self, connection: Connection, redo: Callable[[Owed], Any]) -> None:
        self._connection = connection
        self._redo = redo  # runs an owed commit again through the client (with retries)
        self._raw: Any = None
        self._owed: list[Owed] = []

    @property
    def owed(self) -> bool:
        return bool(self._owed)

    def _conn(self) -> Any:
        if self._raw is None:
            self._raw = self._connection.client.connection_pool.get_connection()
        return self._raw

    def _send(self, name: str, keys: QueueKeys, args: list[Any]) -> None:
        script = self._connection.scripts[name]
        self._conn().send_command("EVALSHA", script.sha, len(keys.all), *keys.all, keys.jobs,
                                  *args)

    def commit(self, message_id: str, keys: QueueKeys, number: str, token: str) -> None:
        """Write the commit now; its answer is read later. A connection that cannot be
        written runs it through the client at once instead."""
        owed = Owed(message_id, keys, number, token)
        try:
            self._send("COMMIT", keys, [number, token])
        except LOST as error:
            self._drop(error)
            self._redo_all()
            self._redo(owed)
            return
        self._owed.append(owed)

    def claim(self, keys: QueueKeys, default_ttr: int) -> Any:
        """Write a claim behind the owed commits, settle them, and return the claim's answer;
        ``None`` when the claim could not be answered here (the caller claims through the
        client)."""
        try:
            self._send("CLAIM", keys, [default_ttr])
        except LOST as error:
            self._drop(error)
            self._redo_all()
            return None
        self._read_owed()
        if self._raw is None:  # the connection broke while the owed answers were read
            return None
        try:
            return self._raw.read_response()
        except NoScriptError:
            return None
        except LOST as error:
            self._drop(error)
            return None

    def settle(self) -> None:
        """Read every owed answer (or run the commits again where that fails)."""
        if self._owed:
            self._read_owed()

    def _redo_all(self) -> None:
        owed, self._owed = self._owed, []
        for commit in owed:
            self._redo(commit)

    def _read_owed(self) -> None:
        owed, self._owed = self._owed, []
        for index, commit in enumerate(owed):
            try:
                done = self._raw.read_response()
            except NoScriptError:
                self._redo(commit)
                continue
            except LOST as error:
                self._drop(error)
                for again in owed[index:]:
                    self._redo(again)
                return
            except redis.ResponseError as error:
                log.error("job %s could not be committed: Redis answered: %s",
                          commit.message_id, error)
                continue
            if not done:
                log.warning("job %s: its lease ran out before its commit arrived; another "
                            "worker may run it again", commit.message_id)

    def _drop(self, error: BaseException) -> None:
        log.warning("Redis connection lost (%s): the commits it owed are run again", error)
        if self._raw is not None:
            self._raw.disconnect()
            self._connection.client.connection_pool.release(self._raw)
            self._raw = None

    def close(self) -> None:
        """Settle what is owed and give the connection back to the pool."""
        try:
            self.settle()
        finally:
            if self._raw is not None:
                self._connection.client.connection_pool.release(self._raw)
                self._raw = None
