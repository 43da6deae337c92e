"""The redis-py client, its scripts, and retrying with back-off while the server is away."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from pulpo_core.errors import AdapterError
from pulpo_redis import scripts
from pulpo_redis.settings import RedisSettings

T = TypeVar("T")
log = logging.getLogger("pulpo.redis")

#: What tells that the server is away (or the connection broke), not that a command is wrong.
LOST = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
#: The scripts by name, as :mod:`pulpo_redis.scripts` spells them.
SCRIPT_NAMES = ("ENQUEUE", "ENQUEUE_UNIQUE", "CLAIM", "COMMIT", "ROLLBACK", "BURY", "TOUCH",
                "KICK", "DELETE", "STATS", "READY_AGE")


def make_client(settings: RedisSettings) -> Any:
    """A client for ``settings.url``: a plain client, or a cluster client.

    redis-py's own retries are off: :meth:`Connection.call` retries with pulpo's back-off and
    gives up after its deadline.
    """
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": min(settings.socket_timeout, 5.0),
        "health_check_interval": 30,
    }
    if settings.is_cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(settings.client_url, **options)  # type: ignore[no-untyped-call]
    return redis.Redis.from_url(settings.client_url, retry=Retry(NoBackoff(), 0), **options)


class Connection:
    """One client shared by the adapter's calls, with the scripts registered on it.

    redis-py's :class:`Script` calls ``EVALSHA`` and, when the server answers ``NOSCRIPT``
    (a restarted or flushed server), loads the script again and retries: a script is sent in
    full once per server, then called by its SHA1.
    """

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.client = make_client(settings)
        self.scripts: dict[str, Script] = {
            name: self.client.register_script(getattr(scripts, name)) for name in SCRIPT_NAMES
        }

    def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run the named script once (no retry)."""
        return self.scripts[name](keys=keys, args=args)

    def call(self, op: Callable[[], T], *, wait: float, what: str) -> T:
        """``op()``, retried with back-off for up to ``wait`` seconds while Redis is away.

        :raises AdapterError: naming the server when it stays away, or answers an error.
        """
        deadline = time.monotonic() + wait
        pause = self.settings.reconnect_delay
        while True:
            try:
                return op()
            except LOST as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AdapterError(
                        f"cannot {what}: Redis at {self.settings.address} is not reachable "
                        f"({error})") from None
                log.warning("Redis at %s is not reachable (%s); retrying in %.1f s",
                            self.settings.address, error, min(pause, left))
                time.sleep(min(pause, left))
                pause = min(pause * 2, self.settings.max_reconnect_delay)
            except redis.ResponseError as error:
                raise AdapterError(
                    f"cannot {what}: Redis at {self.settings.address} answered: {error}"
                ) from None

    def close(self) -> None:
        self.client.close()
