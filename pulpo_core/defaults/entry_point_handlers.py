"""Handlers published by packages in the ``pulpo.handlers`` entry-point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from pulpo_core.handlers import LazyHandler
from pulpo_core.hookspecs import RegisterHandler
from pulpo_core.markers import hookimpl
from pulpo_core.plugins import HANDLERS_GROUP, disabled_plugins


def handler_entry_points() -> list[tuple[EntryPoint, str, str]]:
    """Each ``pulpo.handlers`` entry point of a distribution not disabled, with its name and
    version, by request type."""
    skip = disabled_plugins()
    found = []
    for ep in sorted(entry_points(group=HANDLERS_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        if "*" in skip or dist in skip:
            continue
        found.append((ep, dist, ep.dist.version if ep.dist is not None else "unknown"))
    return found


@hookimpl(tryfirst=True)  # called first, so plugins and the config table override these
def pulpo_register_handlers(register: RegisterHandler) -> None:
    for ep, dist, version in handler_entry_points():
        # Imported when a worker starts, never by publish or the operator commands.
        register(ep.name, LazyHandler(ep.value, f"entry point of {dist} {version}"))
