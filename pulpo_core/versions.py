"""``pulpo --version``: the versions a bug report needs, read from the installed metadata.

pulpo-core's version, then each installed distribution that plugs in (``pulpo.plugins``,
``pulpo.handlers`` or ``pulpo.schedules`` entry points) with its version, then Python's. A plugin
that fails to load is marked and its error returned for stderr; a version that cannot be read
shows as ``unknown``.
"""

from __future__ import annotations

import platform
from importlib.metadata import Distribution, PackageNotFoundError, distribution, entry_points

from pulpo_core.errors import PluginError
from pulpo_core.plugins import (
    HANDLERS_GROUP,
    PLUGINS_GROUP,
    SCHEDULES_GROUP,
    build_plugin_manager,
)

#: The core's own distribution.
CORE_DISTRIBUTION = "pulpo-core"
#: Shown for a version that cannot be read.
UNKNOWN = "unknown"


def version_of(dist: Distribution | None) -> str:
    """The distribution's version, or ``unknown`` when its metadata does not say."""
    if dist is None:
        return UNKNOWN
    try:
        version = dist.version
    except Exception:  # unreadable or malformed metadata
        return UNKNOWN
    return version if isinstance(version, str) and version.strip() else UNKNOWN


def name_of(dist: Distribution | None) -> str:
    if dist is None:
        return UNKNOWN
    try:
        name = dist.name
    except Exception:
        return UNKNOWN
    return name if isinstance(name, str) and name.strip() else UNKNOWN


def core_version() -> str:
    try:
        return version_of(distribution(CORE_DISTRIBUTION))
    except PackageNotFoundError:  # run from a source tree that was never installed
        return UNKNOWN


def version_report() -> tuple[list[str], list[str]]:
    """The lines for stdout and the errors for stderr (one sentence per plugin that failed)."""
    failures: list[PluginError] = []
    try:
        loaded = build_plugin_manager(failures=failures).has_plugin
    except Exception as error:  # never a traceback from --version
        failures.append(PluginError(f"the plugins could not be loaded: {error}"))
        loaded = _nothing_loaded
    found: dict[str, str] = {}
    notes: dict[str, str] = {}
    for ep in entry_points(group=PLUGINS_GROUP):
        name = name_of(ep.dist)
        found[name] = version_of(ep.dist)
        if not loaded(ep.name):  # disabled, or it failed to load
            notes.setdefault(name, " (not loaded)")
    for group in (HANDLERS_GROUP, SCHEDULES_GROUP):  # packages that plug in without hooks
        for ep in entry_points(group=group):
            found.setdefault(name_of(ep.dist), version_of(ep.dist))
    for failure in failures:
        for name in found:
            if f" from {name} " in str(failure):
                notes[name] = " (failed to load)"
    found.pop(CORE_DISTRIBUTION, None)
    lines = [f"{CORE_DISTRIBUTION} {core_version()}"]
    lines += [f"{name} {found[name]}{notes.get(name, '')}" for name in sorted(found)]
    lines.append(
        f"Python {platform.python_version()} ({platform.python_implementation()}, "
        f"{platform.system() or UNKNOWN})"
    )
    return lines, [str(failure) for failure in failures]


def _nothing_loaded(name: str) -> bool:
    return False
