"""The ``beanstalkd_queue_adapter`` configuration section, checked before any work starts."""

from __future__ import annotations

import codecs
import re
from typing import Any

import attrs

from pulpo_core.config import InvalidValue, at_least, between, more_than
from pulpo_core.errors import ConfigError

SECTION = "beanstalkd_queue_adapter"

#: beanstalkd's tube names: these characters, at most 200 bytes, not starting with a hyphen.
TUBE_NAME = re.compile(r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}$")


def _key(name: str) -> str:
    return f"'{SECTION}.{name}'"


#: What a tube name may be, in the words of every refusal.
TUBE_NAME_RULE = ("a beanstalkd tube name (1 to 200 of the characters "
                  "A-Z a-z 0-9 - + / ; . $ _ ( ), not starting with '-')")


def _tube(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not TUBE_NAME.match(value):
        raise InvalidValue(attribute.name, TUBE_NAME_RULE, value)


def _tubes(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for tube in value:
        _tube(instance, attribute, tube)


def _encoding(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        codecs.lookup(value)
    except LookupError:
        raise InvalidValue(attribute.name, "a text encoding", value) from None


#: Observed with beanstalkd 1.12: while clients poll (reserve-with-timeout 0 in a loop) the
#: server does not time out reserved jobs, so a worker must wait in reserve.
_NO_POLLING = "a worker that polls keeps beanstalkd from timing out other workers' jobs"


@attrs.frozen
class BeanstalkdSettings:
    """How to reach beanstalkd and which tubes to use (all keys optional)."""

    #: The server's address.
    host: str = "127.0.0.1"
    port: int = attrs.field(default=11300, validator=between(1, 65535))
    #: Seconds any single wait on the server may take; a half-open connection fails after it.
    socket_timeout: float = attrs.field(default=10.0, validator=more_than(0, "seconds"))
    #: The tube jobs are published to. Not beanstalkd's "default": a worker buries whatever is
    #: not a pulpo message, so pulpo keeps to a tube of its own.
    default_tube: str = attrs.field(default="pulpo", validator=_tube)
    #: How job bodies (JSON text) are encoded to bytes.
    encoding: str = attrs.field(default="utf-8", validator=_encoding)
    #: Whole seconds a worker's ``reserve`` waits for a job before ``dequeue`` returns None.
    reserve_timeout: int = attrs.field(default=1, validator=at_least(1, "second", _NO_POLLING))
    #: The tubes a worker takes jobs from; empty means ``[default_tube]``.
    watch: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_tubes)
    #: First pause before reconnecting after a failed attempt; doubled after each failure.
    reconnect_delay: float = attrs.field(default=0.1, validator=more_than(0, "seconds"))
    #: The longest pause between two reconnection attempts.
    max_reconnect_delay: float = attrs.field(default=5.0, validator=more_than(0, "seconds"))
    #: How long publish and the operator commands keep trying to reach a server that is down.
    reconnect_timeout: float = attrs.field(default=10.0, validator=at_least(0, "seconds"))
    #: Seconds a read polls for the server's answer before it sleeps (0: sleep at once).
    #: Answers from a nearby server come sooner than a sleeping process wakes up.
    spin_wait: float = attrs.field(default=0.00005, validator=between(0, 1, "second"))
    #: Whether a worker process runs a watchdog that closes its worker connection when the
    #: process is frozen past a job's ttr (beanstalkd 1.12 may otherwise keep the job reserved).
    watchdog: bool = True

    def __attrs_post_init__(self) -> None:
        if self.reserve_timeout >= self.socket_timeout:
            raise ConfigError(
                f"configuration key {_key('reserve_timeout')} ({self.reserve_timeout}) must be "
                f"below {_key('socket_timeout')} ({self.socket_timeout}): a reserve that waits "
                f"longer than the socket timeout would be taken for a dead connection"
            )

    @property
    def watched(self) -> tuple[str, ...]:
        """The tubes a worker watches."""
        return self.watch or (self.default_tube,)

    @property
    def tubes(self) -> tuple[str, ...]:
        """Every tube this configuration uses: the default tube, then the watched ones."""
        return tuple(dict.fromkeys((self.default_tube, *self.watched)))

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"
