"""The ``redis_queue_adapter`` configuration section, checked before any work starts."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import attrs

from pulpo_core.config import InvalidValue, at_least, more_than

SECTION = "redis_queue_adapter"
#: The URL schemes this adapter takes; ``redis+cluster`` (and ``rediss+cluster``) name a cluster.
SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
#: A queue name: printable, no braces (they would break the hash tag), at most 200 characters.
QUEUE_NAME = re.compile(r"^[^{}\s]{1,200}$")


def _url(_instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    scheme = urlsplit(value).scheme
    if scheme not in SCHEMES:
        starts = " or ".join(f"{s}://" for s in SCHEMES)
        raise InvalidValue(attribute.name, f"a URL starting with {starts}", value)


def _queue(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not QUEUE_NAME.match(value):
        raise InvalidValue(attribute.name, "a queue name (1 to 200 characters, no spaces or "
                           "braces)", value)


def _queues(_instance: Any, attribute: attrs.Attribute[tuple[str, ...]], value: Any) -> None:
    for name in value:
        _queue(_instance, attribute, name)


@attrs.frozen
class RedisSettings:
    """How to reach Redis and which queues to use (all keys optional)."""

    #: The server (``redis://host:port/db``, ``rediss://`` for TLS, ``unix:///path``), or a
    #: cluster node (``redis+cluster://host:port``, or ``cluster = true``).
    url: str = attrs.field(default="redis://127.0.0.1:6379/0", validator=_url)
    #: The queue jobs are published to.
    queue: str = attrs.field(default="default", validator=_queue)
    #: The queues a worker takes jobs from, highest first; empty means ``[queue]``.
    watch: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_queues)
    #: The URL names one node of a Redis Cluster.
    cluster: bool = False
    #: Prefix of every key (the queue's hash tag follows it).
    key_prefix: str = attrs.field(default="pulpo", validator=_queue)
    #: Seconds any single command may take; a half-open connection fails after it.
    socket_timeout: float = attrs.field(default=10.0, validator=more_than(0, "seconds"))
    #: Seconds an idle worker's ``dequeue`` waits for a job before it returns None.
    reserve_timeout: float = attrs.field(default=1.0, validator=more_than(0, "seconds"))
    #: First pause before reconnecting after a failed attempt; doubled after each failure.
    reconnect_delay: float = attrs.field(default=0.1, validator=more_than(0, "seconds"))
    #: The longest pause between two reconnection attempts.
    max_reconnect_delay: float = attrs.field(default=5.0, validator=more_than(0, "seconds"))
    #: How long publish and the operator commands keep trying to reach a server that is down.
    reconnect_timeout: float = attrs.field(default=10.0, validator=at_least(0, "seconds"))

    def __attrs_post_init__(self) -> None:
        if self.reserve_timeout >= self.socket_timeout:
            raise InvalidValue(
                "reserve_timeout", f"below socket_timeout ({self.socket_timeout:g})",
                self.reserve_timeout, "a wait longer than the socket timeout would be taken "
                "for a dead connection")

    @property
    def watched(self) -> tuple[str, ...]:
        """The queues a worker watches, highest first."""
        return self.watch or (self.queue,)

    @property
    def is_cluster(self) -> bool:
        return self.cluster or urlsplit(self.url).scheme.endswith("+cluster")

    @property
    def client_url(self) -> str:
        """The URL redis-py takes (the ``+cluster`` marker removed)."""
        return self.url.replace("+cluster://", "://", 1)

    @property
    def address(self) -> str:
        """``host:port`` (or the socket path), for messages."""
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"
