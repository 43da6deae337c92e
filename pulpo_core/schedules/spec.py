"""The ``[schedules.NAME]`` tables: read and checked before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from pulpo_core.errors import ConfigError
from pulpo_core.message import check_ttr, clamp_priority

#: The top-level table that holds the schedules.
SECTION = "schedules"
#: What ``catch_up`` takes: after all schedulers were down, fire the latest missed tick once,
#: none of them, or each of them (at most ``catch_up_limit``).
CATCH_UP = ("latest", "none", "all")
#: How many missed ticks ``catch_up = "all"`` fires at most (the bound), by default.
DEFAULT_CATCH_UP_LIMIT = 100
#: How far back, in seconds, a starting scheduler looks for missed ticks, by default.
DEFAULT_CATCH_UP_WINDOW = 86400
#: The origin of a schedule declared in the configuration's ``[schedules.NAME]`` table.
CONFIG_ORIGIN = "configuration"
KEYS = (
    "cron", "every", "request_type", "body", "priority", "ttr", "timezone", "expiration",
    "catch_up", "catch_up_limit", "catch_up_window",
)


@attrs.frozen
class Schedule:
    """One schedule: when it ticks and the job each tick publishes."""

    name: str
    request_type: str
    cron: str | None = None
    every: int | None = None
    body: dict[str, Any] = attrs.field(factory=dict)
    priority: int | None = None
    ttr: int | None = None
    timezone: str = "UTC"
    #: Seconds after its tick a job expires; ``None``: at the next tick.
    expiration: float | None = None
    catch_up: str = "latest"
    catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT
    catch_up_window: int = DEFAULT_CATCH_UP_WINDOW
    #: Where the schedule was declared: the configuration, or a package's entry point.
    origin: str = CONFIG_ORIGIN

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        return f"cron {self.cron!r}" if self.cron is not None else f"every {self.every} s"


def check_cron(expression: str) -> str | None:
    """Why ``expression`` is not a five-field cron expression, or ``None`` when it is one."""
    from croniter import croniter

    if len(expression.split()) != 5:
        return "a cron expression has five fields (minute hour day month weekday)"
    try:
        croniter(expression)
    except (ValueError, KeyError) as error:
        return str(error) or type(error).__name__
    return None


def _bad(name: str, key: str, expects: str, value: Any) -> ConfigError:
    return ConfigError(f"schedule {name!r}: {key!r} must be {expects}, not {value!r}")


def _whole(name: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(name, key, f"a whole number of at least {minimum}", value)
    return value


def parse_schedule(name: str, table: Any, origin: str = CONFIG_ORIGIN) -> Schedule:
    """One ``[schedules.NAME]`` table; a bad value raises ``ConfigError`` naming both (and, for
    a schedule a package declares, the package)."""
    try:
        return _parse(name, table, origin)
    except ConfigError as error:
        if origin == CONFIG_ORIGIN:
            raise
        raise ConfigError(f"{error} (declared by the {origin})") from None


def _parse(name: str, table: Any, origin: str) -> Schedule:
    if not isinstance(table, Mapping):
        raise ConfigError(f"schedule {name!r} must be a table, not {table!r}")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"schedule {name!r}: unknown key {unknown[0]!r} (known keys: {', '.join(KEYS)})"
        )
    values = dict(table)
    request_type = values.get("request_type")
    if not isinstance(request_type, str) or not request_type:
        raise _bad(name, "request_type", "a non-empty string", request_type)
    if ("cron" in values) == ("every" in values):
        raise ConfigError(f"schedule {name!r} must have exactly one of 'cron' and 'every'")
    if "every" in values:
        values["every"] = _whole(name, "every", values["every"], 1)
    else:
        cron = values["cron"]
        if not isinstance(cron, str):
            raise _bad(name, "cron", "a cron expression", cron)
        why = check_cron(cron)
        if why:
            raise ConfigError(f"schedule {name!r}: 'cron' {cron!r} is not valid: {why}")
    if "body" in values and not isinstance(values["body"], Mapping):
        raise _bad(name, "body", "a table (a JSON object)", values["body"])
    try:
        if "priority" in values:
            values["priority"] = clamp_priority(values["priority"])
        if "ttr" in values:
            values["ttr"] = check_ttr(values["ttr"])
    except ValueError as error:
        raise ConfigError(f"schedule {name!r}: {error}") from None
    zone = values.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise _bad(name, "timezone", "an IANA time zone such as 'Europe/Berlin'", zone) from None
    if "expiration" in values:
        expiration = values["expiration"]
        if isinstance(expiration, bool) or not isinstance(expiration, int | float) or (
            expiration <= 0
        ):
            raise _bad(name, "expiration", "a number of seconds above 0", expiration)
    if values.get("catch_up", "latest") not in CATCH_UP:
        raise _bad(name, "catch_up", "one of 'latest', 'none', 'all'", values["catch_up"])
    if "catch_up_limit" in values:
        values["catch_up_limit"] = _whole(name, "catch_up_limit", values["catch_up_limit"], 1)
    if "catch_up_window" in values:
        values["catch_up_window"] = _whole(name, "catch_up_window", values["catch_up_window"], 1)
    return Schedule(name=name, origin=origin, **values)


def parse_schedules(
    tables: Any, declared: Mapping[str, tuple[Any, str]] | None = None
) -> list[Schedule]:
    """Every schedule: those ``declared`` by packages (name → (table, origin)), then those of
    the ``schedules`` table, in the order given; a configured schedule replaces a package's
    schedule of the same name."""
    if not isinstance(tables, Mapping):
        raise ConfigError(
            f"configuration key 'schedules' must be a table of tables, not {tables!r}"
        )
    found = {name: (table, origin) for name, (table, origin) in (declared or {}).items()}
    for name, table in tables.items():
        found.pop(str(name), None)
        found[str(name)] = (table, CONFIG_ORIGIN)
    return [parse_schedule(name, table, origin) for name, (table, origin) in found.items()]


def check_schedules(_section: str, tables: Mapping[str, Any]) -> None:
    """The ``schedules`` section's checker (declared through ``pulpo_register_config_sections``)."""
    parse_schedules(tables)
