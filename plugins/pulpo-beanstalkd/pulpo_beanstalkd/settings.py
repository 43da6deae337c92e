"""The ``beanstalkd_queue_adapter`` configuration section, checked before any work starts."""

from __future__ import annotations

import codecs
import re
from typing import Any

import attrs

from pulpo_core.errors import ConfigError

SECTION = "beanstalkd_queue_adapter"

#: beanstalkd's tube names: these characters, at most 200 bytes, not starting with a hyphen.
TUBE_NAME = re.compile(r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}$")


def _key(name: str) -> str:
    return f"'{SECTION}.{name}'"


def check_tube(key: str, value: str) -> None:
    """Refuse a name beanstalkd would not take as a tube."""
    if not TUBE_NAME.match(value):
        raise ConfigError(
            f"configuration key {key} must be a beanstalkd tube name (1 to 200 of the "
            f"characters A-Z a-z 0-9 - + / ; . $ _ ( ), not starting with '-'), not {value!r}"
        )


def _port(_instance: Any, _attribute: Any, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ConfigError(f"configuration key {_key('port')} must be 1 to 65535, not {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ConfigError(
            f"configuration key {_key(attribute.name)} must be more than 0 seconds, not {value!r}"
        )


def _zero_to_one_second(_instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(
            f"configuration key {_key(attribute.name)} must be 0 to 1 second, not {value!r}"
        )


def _at_least_one(_instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        # Observed with beanstalkd 1.12: while clients poll (reserve-with-timeout 0 in a loop)
        # the server does not time out reserved jobs, so a worker must wait in reserve.
        raise ConfigError(
            f"configuration key {_key(attribute.name)} must be at least 1 second, not {value!r}: "
            f"a worker that polls keeps beanstalkd from timing out other workers' jobs"
        )


def _tube(_instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    check_tube(_key(attribute.name), value)


def _tubes(_instance: Any, attribute: attrs.Attribute[tuple[str, ...]], value: Any) -> None:
    for tube in value:
        check_tube(_key(attribute.name), tube)


def _encoding(_instance: Any, _attribute: Any, value: str) -> None:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ConfigError(
            f"configuration key {_key('encoding')} must name a text encoding, not {value!r}"
        ) from None


@attrs.frozen
class BeanstalkdSettings:
    """How to reach beanstalkd and which tubes to use (all keys optional)."""

    #: The server's address.
    host: str = "127.0.0.1"
    port: int = attrs.field(default=11300, validator=_port)
    #: Seconds any single wait on the server may take; a half-open connection fails after it.
    socket_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: The tube jobs are published to. Not beanstalkd's "default": a worker buries whatever is
    #: not a pulpo message, so pulpo keeps to a tube of its own.
    default_tube: str = attrs.field(default="pulpo", validator=_tube)
    #: How job bodies (JSON text) are encoded to bytes.
    encoding: str = attrs.field(default="utf-8", validator=_encoding)
    #: Whole seconds a worker's ``reserve`` waits for a job before ``dequeue`` returns None.
    reserve_timeout: int = attrs.field(default=1, validator=_at_least_one)
    #: The tubes a worker takes jobs from; empty means ``[default_tube]``.
    watch: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_tubes)
    #: First pause before reconnecting after a failed attempt; doubled after each failure.
    reconnect_delay: float = attrs.field(default=0.1, validator=_positive)
    #: The longest pause between two reconnection attempts.
    max_reconnect_delay: float = attrs.field(default=5.0, validator=_positive)
    #: How long publish and the operator commands keep trying to reach a server that is down.
    reconnect_timeout: float = 10.0
    #: Seconds a read polls for the server's answer before it sleeps (0: sleep at once).
    #: Answers from a nearby server come sooner than a sleeping process wakes up.
    spin_wait: float = attrs.field(default=0.00005, validator=_zero_to_one_second)

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
