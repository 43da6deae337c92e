"""The beanstalkd queue adapter: the facade over publishing, reserving, settling and operating.

Two connections, each opened on first use: the *producer* connection uses ``default_tube`` and
carries publishing and the operator commands; the *worker* connection watches the worker's tubes
and carries reserve, delete, release, bury and touch (beanstalkd lets only the connection that
reserved a job settle or touch it). A process that only publishes never opens the second one.

=============== =================================================================
``publish``      put and pipelined puts, the server's refusals in one sentence
``reserve``      the worker's reserve loop; unreadable jobs are buried
``settle``       commit, rollback, release, bury and touch of reserved jobs
``operate``      peek, delete, kick, stats
``jobs``         reservations, lazily read attempts, remembered bury reasons
``connection``   one self-healing connection (reconnect, resend lost deletes)
``client``       the protocol: greenstalk's client with pipelined deletes and puts
``reader``       answers read straight off the socket, kernel socket timeouts
``codec``        messages as job bodies (JSON), priorities, delays
``settings``     the ``beanstalkd_queue_adapter`` section
=============== =================================================================
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import greenstalk

from pulpo_beanstalkd.connection import Connection
from pulpo_beanstalkd.jobs import BuryReasons
from pulpo_beanstalkd.operate import Operator
from pulpo_beanstalkd.publish import Publisher
from pulpo_beanstalkd.reserve import Reserver
from pulpo_beanstalkd.settings import SECTION, BeanstalkdSettings
from pulpo_beanstalkd.settle import Settler
from pulpo_core.config import load_section
from pulpo_core.message import Message

#: Seconds ``flush`` tries to reconnect to send deletes lost with a connection.
FLUSH_WAIT = 2.0


class BeanstalkdQueueAdapter:
    """Jobs in beanstalkd tubes, shared by workers on any number of hosts.

    :param settings: the ``beanstalkd_queue_adapter`` section, as a mapping or already loaded.
    :raises ConfigError: naming the key of a bad setting.
    """

    def __init__(self, settings: BeanstalkdSettings | Mapping[str, Any] | None = None) -> None:
        if not isinstance(settings, BeanstalkdSettings):
            settings = load_section(SECTION, settings or {}, BeanstalkdSettings)
        self.settings = settings
        self._producer = Connection(settings, use=settings.default_tube,
                                    watch=greenstalk.DEFAULT_TUBE, role="producer")
        self._worker = Connection(settings, use=greenstalk.DEFAULT_TUBE,
                                  watch=settings.watched, role="worker")
        reasons = BuryReasons()
        self._settler = Settler(self._worker, reasons, settings.reconnect_timeout)
        self._publisher = Publisher(settings, self._producer, reasons)
        self._reserver = Reserver(settings, self._worker, self._settler)
        self._operator = Operator(settings, self._producer, self._worker, self._settler, reasons)
        # A commit's answer is read with the next command's: when the adapter is dropped or
        # the interpreter exits without close(), the last one is still read (and a delete lost
        # with a broken connection sent again).
        weakref.finalize(self, self._worker.close)

    def __repr__(self) -> str:
        return (f"BeanstalkdQueueAdapter({self.settings.address}, "
                f"tube={self.settings.default_tube!r})")

    # -- publishing (publish.py) -----------------------------------------------------------

    def enqueue(self, message: Message) -> Message:
        return self._publisher.enqueue(message)

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        return self._publisher.enqueue_many(messages)

    # -- working (reserve.py, settle.py) -----------------------------------------------------

    def dequeue(self) -> Message | None:
        return self._reserver.dequeue()

    def commit(self, message: Message) -> bool:
        return self._settler.commit(message)

    def rollback(self, message: Message, delay: float = 0) -> bool:
        return self._settler.rollback(message, delay)

    def release(self, message: Message) -> None:
        self._settler.release(message)

    def bury(self, message: Message, reason: str) -> bool:
        return self._settler.bury(message, reason)

    def touch(self, message: Message) -> None:
        """Renew the job's lease for another ttr (the core's heartbeat calls this)."""
        self._settler.touch(message)

    def flush(self) -> None:
        """Read the answers owed for commits (the worker calls this when its loop ends).

        A delete lost with a broken connection is sent again if the server can be reached
        within :data:`FLUSH_WAIT` seconds: a stopping worker must not outwait its grace period.
        """
        self._worker.flush(wait=FLUSH_WAIT)

    # -- operating (operate.py) --------------------------------------------------------------

    def peek(self, message_id: str) -> Message | None:
        return self._operator.peek(message_id)

    def delete(self, message_id: str) -> bool:
        return self._operator.delete(message_id)

    def kick(self, bound: int | None = None) -> int:
        return self._operator.kick(bound)

    def stats(self) -> dict[str, int]:
        return self._operator.stats()

    def close(self) -> None:
        self._worker.close()
        self._producer.close()
