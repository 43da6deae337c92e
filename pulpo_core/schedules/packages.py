"""Schedules that handler packages declare in the ``pulpo.schedules`` entry-point group.

An entry point's name is the schedule's name and its value names a mapping with the keys of a
``[schedules.NAME]`` table (``"package.module:NIGHTLY"``). An entry-point group, like the
handlers' ``pulpo.handlers``, rather than a hook: a handler package then declares its schedules
the way it declares its handlers, as data beside them, without becoming a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulpo_core.errors import ConfigError
from pulpo_core.plugins import SCHEDULES_GROUP, distribution_entry_points


def declared_schedules() -> dict[str, tuple[Mapping[str, Any], str]]:
    """Schedule name → (its table, where it comes from), for every installed package's
    ``pulpo.schedules`` entry point; one that cannot be loaded raises ``ConfigError``."""
    found: dict[str, tuple[Mapping[str, Any], str]] = {}
    for ep, dist, version in distribution_entry_points(SCHEDULES_GROUP):
        origin = f"entry point of {dist} {version}"
        try:
            table = ep.load()
        except Exception as error:  # a broken package names itself, without a traceback
            raise ConfigError(
                f"schedule {ep.name!r} ({origin}) cannot be loaded from {ep.value!r}: "
                f"{type(error).__name__}: {error}"
            ) from None
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"schedule {ep.name!r} ({origin}): {ep.value!r} must be a mapping with the keys "
                f"of a [schedules.NAME] table, not {type(table).__name__}"
            )
        found[ep.name] = (table, origin)
    return found
