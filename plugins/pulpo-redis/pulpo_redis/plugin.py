"""The plugin pulpo loads: registers the ``redis`` adapter and its configuration section.

redis-py is imported by the adapter factory, never here, so ``pulpo --help`` and plugin
discovery stay cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pulpo_core.markers import hookimpl
from pulpo_redis.settings import SECTION, RedisSettings

if TYPE_CHECKING:
    from pulpo_core.adapter import QueueAdapter
    from pulpo_core.hookspecs import RegisterAdapter, RegisterConfigSection, RegisterHint

DISTRIBUTION = "pulpo-redis"
ALIASES = ("redis_queue_adapter", "RedisQueueAdapter")


def create_adapter(section: Mapping[str, Any]) -> QueueAdapter:
    """Build the adapter from the ``redis_queue_adapter`` section (imports redis-py)."""
    from pulpo_redis.adapter import RedisQueueAdapter

    return RedisQueueAdapter(section)


@hookimpl
def pulpo_register_adapters(register: RegisterAdapter) -> None:
    register("redis", create_adapter, aliases=ALIASES)


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    register(SECTION, RedisSettings)


@hookimpl
def pulpo_register_hints(register: RegisterHint) -> None:
    for name in ("redis", *ALIASES, SECTION):
        register(name, DISTRIBUTION)
