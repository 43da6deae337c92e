"""Finding the queue adapter a configuration selects among those plugins registered."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from pulpo_core.adapter import QueueAdapter
from pulpo_core.errors import ConfigError
from pulpo_core.hookspecs import AdapterFactory

#: Adapters that live in their own distribution, so a missing one can be named.
KNOWN_DISTRIBUTIONS = {
    "file": "pulpo-file",
    "file_queue_adapter": "pulpo-file",
    "FileQueueAdapter": "pulpo-file",
    "beanstalkd": "pulpo-beanstalkd",
    "beanstalkd_queue_adapter": "pulpo-beanstalkd",
    "BeanstalkdQueueAdapter": "pulpo-beanstalkd",
}


@attrs.frozen
class AdapterEntry:
    name: str
    factory: AdapterFactory
    aliases: tuple[str, ...]

    @property
    def section(self) -> str:
        """The config section handed to the factory."""
        return f"{self.name}_queue_adapter"


def collect_adapters(pm: pluggy.PluginManager) -> dict[str, AdapterEntry]:
    """Every adapter name and alias → its entry."""
    found: dict[str, AdapterEntry] = {}

    def register(name: str, factory: AdapterFactory, aliases: Iterable[str] = ()) -> None:
        entry = AdapterEntry(name, factory, tuple(aliases))
        for key in (name, *entry.aliases):
            found[key] = entry

    pm.hook.pulpo_register_adapters(register=register)
    return found


def select_adapter(adapters: Mapping[str, AdapterEntry], type_name: str) -> AdapterEntry:
    """The entry for ``queue_adapter_type``, or a :class:`ConfigError` saying what to do."""
    entry = adapters.get(type_name)
    if entry is not None:
        return entry
    available = ", ".join(sorted({e.name for e in adapters.values()}))
    missing = KNOWN_DISTRIBUTIONS.get(type_name)
    if missing:
        raise ConfigError(
            f"queue_adapter_type {type_name!r} needs the distribution {missing}, which is not "
            f"installed (pip install {missing}); installed adapters: {available}"
        )
    raise ConfigError(f"unknown queue_adapter_type {type_name!r} (available: {available})")


def create_adapter(entry: AdapterEntry, section: Mapping[str, Any]) -> QueueAdapter:
    """Call the adapter's factory with its section."""
    return entry.factory(dict(section))
