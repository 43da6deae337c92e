"""The registry of queue adapters: the one a configuration selects among those plugins register,
and the distribution to install when the selected one is missing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from pulpo_core.adapter import AdapterFactory, QueueAdapter
from pulpo_core.errors import ConfigError

#: The one hint the core gives with no plugin installed: the default adapter's distribution.
#: Every other hint comes from the plugins (hook ``pulpo_register_hints``).
KNOWN_DISTRIBUTIONS = dict.fromkeys(
    ("file", "file_queue_adapter", "FileQueueAdapter"), "pulpo-file"
)


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


def collect_hints(pm: pluggy.PluginManager) -> dict[str, str]:
    """Names (adapter types, config sections, top-level keys) → the distribution that provides
    them, for errors about what is not installed: the core's hint, then the plugins'."""
    hints = dict(KNOWN_DISTRIBUTIONS)

    def register(name: str, distribution: str) -> None:
        hints.setdefault(name, distribution)

    pm.hook.pulpo_register_hints(register=register)
    return hints


def select_adapter(
    adapters: Mapping[str, AdapterEntry], type_name: str, hints: Mapping[str, str]
) -> AdapterEntry:
    """The entry for ``queue_adapter_type``, or a :class:`ConfigError` saying what to do."""
    entry = adapters.get(type_name)
    if entry is not None:
        return entry
    available = ", ".join(sorted({e.name for e in adapters.values()}))
    missing = hints.get(type_name)
    if missing:
        raise ConfigError(
            f"queue_adapter_type {type_name!r} needs the distribution {missing}, which is not "
            f"installed (pip install {missing}); installed adapters: {available}"
        )
    raise ConfigError(f"unknown queue_adapter_type {type_name!r} (available: {available})")


def create_adapter(entry: AdapterEntry, section: Mapping[str, Any]) -> QueueAdapter:
    """Call the adapter's factory with its section."""
    return entry.factory(dict(section))
