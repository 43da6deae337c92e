"""Handlers published by packages in the ``pulpo.handlers`` entry-point group."""

from __future__ import annotations

from pulpo_core.handlers import LazyHandler
from pulpo_core.hookspecs import RegisterHandler
from pulpo_core.markers import hookimpl
from pulpo_core.plugins import HANDLERS_GROUP, distribution_entry_points


@hookimpl(tryfirst=True)  # called first, so plugins and the config table override these
def pulpo_register_handlers(register: RegisterHandler) -> None:
    for ep, dist, version in distribution_entry_points(HANDLERS_GROUP):
        # Imported when a worker starts, never by publish or the operator commands.
        register(ep.name, LazyHandler(ep.value, f"entry point of {dist} {version}"))
