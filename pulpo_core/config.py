"""Configuration: a mapping, a TOML or JSON file, or the file named by ``PULPO_CONFIG``.

Top-level scalars are the core's settings; top-level tables are sections handed to the adapter
or plugin that declared them. Unknown keys and bad values raise :class:`ConfigError` naming the
key, before any work starts.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from pulpo_core.errors import ConfigError

T = TypeVar("T")
ENV_VAR = "PULPO_CONFIG"
HANDLER_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@attrs.frozen
class Config:
    """The core's settings, with their defaults."""

    queue_adapter_type: str = "file"
    shutdown_after_number_of_empty_iterations: int = 0
    sleep_duration: float = 1.0
    enable_output_buffering: bool = False
    enable_banner: bool = False
    banner_name: str = "pulpo"
    banner_font: str = "standard"
    max_number_of_attempts: int = 5
    retry_delay: float = 1.0
    max_retry_delay: float = 300.0
    ttr: int = 60
    handlers: dict[str, str] = attrs.field(factory=dict)
    #: Every top-level table that is not a core key: ``{section name: its mapping}``.
    sections: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """The named section, or an empty mapping when absent."""
        return dict(self.sections.get(name, {}))


CORE_KEYS = tuple(f.name for f in attrs.fields(Config) if f.name != "sections")


def check_value(key: str, value: Any, kind: Any) -> Any:
    """Check one scalar against the type named in a field annotation; return it normalised."""
    # A class (str) must read as its name, like the string a postponed annotation gives ("str").
    kind = kind.__name__ if isinstance(kind, type) else str(kind)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"configuration key {key!r} must be true or false, not {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"configuration key {key!r} must be a whole number of at least 0, not {value!r}"
            )
        return value
    if kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise ConfigError(
                f"configuration key {key!r} must be a number of at least 0, not {value!r}"
            )
        return float(value)
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"configuration key {key!r} must be a non-empty string, not {value!r}"
            )
        return value
    if kind.startswith("str | None") or kind.startswith("None | str"):
        return None if value is None else check_value(key, value, "str")
    if kind.startswith("int | None") or kind.startswith("None | int"):
        return None if value is None else check_value(key, value, "int")
    if kind.startswith("float | None") or kind.startswith("None | float"):
        return None if value is None else check_value(key, value, "float")
    if kind.startswith("list[str]") or kind.startswith("tuple[str"):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"configuration key {key!r} must be a list of strings, not {value!r}")
        return tuple(check_value(key, item, "str") for item in value)
    return value


def _check_handlers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"configuration key 'handlers' must be a table of request_type = \"module:object\", "
            f"not {value!r}"
        )
    checked = {}
    for request_type, path in value.items():
        if not isinstance(path, str) or not HANDLER_PATH.match(path):
            raise ConfigError(
                f"configuration key 'handlers.{request_type}' must be \"module:object\", "
                f"not {path!r}"
            )
        checked[str(request_type)] = path
    return checked


def load_config(data: Mapping[str, Any] | Config | None = None) -> Config:
    """Build a :class:`Config` from a mapping (``None``: the ``PULPO_CONFIG`` file or defaults)."""
    if isinstance(data, Config):
        return data
    if data is None:
        path = os.environ.get(ENV_VAR)
        data = read_config_file(path) if path else {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"configuration must be a mapping, not {type(data).__name__}")
    fields = {f.name: f for f in attrs.fields(Config)}
    values: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "handlers":
            values[key] = _check_handlers(value)
        elif key in CORE_KEYS:
            values[key] = check_value(key, value, fields[key].type)
        elif isinstance(value, Mapping):
            sections[str(key)] = dict(value)
        else:
            raise ConfigError(
                f"unknown configuration key {key!r} (known keys: {', '.join(CORE_KEYS)})"
            )
    if values.get("max_number_of_attempts") == 0:
        raise ConfigError("configuration key 'max_number_of_attempts' must be at least 1, not 0")
    if values.get("ttr") == 0:
        raise ConfigError("configuration key 'ttr' must be at least 1 second, not 0")
    return Config(**values, sections=sections)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML or JSON configuration file (by its extension; TOML otherwise)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(file)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {str(file)!r} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"configuration file {str(file)!r} cannot be read: {reason}") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except ValueError as error:
        raise ConfigError(f"configuration file {str(file)!r} is not valid: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {str(file)!r} must hold a table of settings")
    return data


def check_section(name: str, section: Mapping[str, Any], keys: type | Iterable[str]) -> None:
    """Refuse keys a section does not declare, and values of the wrong type (attrs classes)."""
    if isinstance(keys, type) and attrs.has(keys):
        load_section(name, section, keys)
        return
    known = set(keys)  # type: ignore[arg-type]
    for key in section:
        if key not in known:
            raise ConfigError(
                f"unknown configuration key '{name}.{key}' "
                f"(known keys: {', '.join(sorted(known)) or 'none'})"
            )


def load_section(name: str, section: Mapping[str, Any], cls: type[T]) -> T:
    """Structure a plugin's section into its attrs class, naming ``section.key`` on errors."""
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    if not isinstance(section, Mapping):
        raise ConfigError(f"configuration section {name!r} must be a table, not {section!r}")
    values = {}
    for key, value in section.items():
        if key not in fields:
            raise ConfigError(
                f"unknown configuration key '{name}.{key}' (known keys: {', '.join(fields)})"
            )
        values[key] = check_value(f"{name}.{key}", value, fields[key].type)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"configuration section {name!r}: {error}") from None
