"""Handlers published by packages in the ``pulpo.handlers`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from pulpo_core.handlers import LazyHandler
from pulpo_core.hookspecs import RegisterHandler
from pulpo_core.markers import hookimpl
from pulpo_core.plugins import HANDLERS_GROUP, disabled_plugins


@hookimpl(tryfirst=True)  # called first, so plugins and the config table override these
def pulpo_register_handlers(register: RegisterHandler) -> None:
    skip = disabled_plugins()
    for ep in sorted(entry_points(group=HANDLERS_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        if "*" in skip or dist in skip:
            continue
        version = ep.dist.version if ep.dist is not None else "unknown"
        # Imported when a worker starts, never by publish or the operator commands.
        register(ep.name, LazyHandler(ep.value, f"entry point of {dist} {version}"))
