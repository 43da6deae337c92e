"""Configuration: a mapping, a TOML or JSON file, or the file named by ``PULPO_CONFIG``.

Top-level scalars are the core's settings; top-level tables are sections handed to the adapter
or plugin that declared them. Unknown keys and bad values raise :class:`ConfigError` naming the
key, before any work starts.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs

from pulpo_core.converter import describe_error
from pulpo_core.errors import ConfigError
from pulpo_core.logformat import LOG_FORMATS
from pulpo_core.message import DEFAULT_TTR, MAX_TTR, TTR_RANGE, check_ttr, load_json

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
    max_number_of_attempts: int = 5
    retry_delay: float = 1.0
    max_retry_delay: float = 300.0
    ttr: int = DEFAULT_TTR
    log_format: str = "text"
    handlers: dict[str, str] = attrs.field(factory=dict)
    #: Every top-level table that is not a core key: ``{section name: its mapping}``.
    sections: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: The top-level keys the settings gave (the others have their defaults).
    given: frozenset[str] = attrs.field(factory=frozenset)
    #: The top-level keys plugins declare (hook ``pulpo_register_config_sections``), checked,
    #: with their defaults: read them as attributes, ``config.enable_banner``.
    plugin_settings: dict[str, Any] = attrs.field(factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """The named section, or an empty mapping when absent."""
        return dict(self.sections.get(name, {}))

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_"):
            settings = object.__getattribute__(self, "plugin_settings")
            if name in settings:
                return settings[name]
        raise AttributeError(
            f"no configuration key {name!r} (is the plugin that declares it installed?)"
        )


#: The fields of :class:`Config` that are not settings of their own.
_NOT_KEYS = ("sections", "given", "plugin_settings")
CORE_KEYS = tuple(f.name for f in attrs.fields(Config) if f.name not in _NOT_KEYS)


class _Refused(ValueError):
    """A value that does not fit its key; ``expects`` says what the key takes."""

    def __init__(self, expects: str, value: Any) -> None:
        super().__init__(expects)
        self.expects = expects
        self.value = value


class InvalidValue(ValueError):
    """Raised by a section's validator: the key ``name`` takes ``expects``, not ``value``.

    Loading the section turns it into the one sentence every plugin's settings use:
    ``configuration key 'section.name' must be <expects>, not <value>[: <why>]``.
    """

    def __init__(self, name: str, expects: str, value: Any, why: str | None = None) -> None:
        super().__init__(f"{name} must be {expects}, not {value!r}")
        self.name = name
        self.expects = expects
        self.value = value
        self.why = why


Validator = Any  # an attrs validator: (instance, attribute, value) -> None


def _number(value: float) -> str:
    """A bound as a sentence shows it: whole numbers in full (4294967295), others short."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def at_least(minimum: float, unit: str | None = None, why: str | None = None) -> Validator:
    """A validator: the value is ``minimum`` or more (``unit``, e.g. ``"second"``, is named)."""
    expects = f"at least {_number(minimum)}" + (f" {unit}" if unit else "")

    def check(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if value < minimum:
            raise InvalidValue(attribute.name, expects, value, why)

    return check


def more_than(minimum: float, unit: str | None = None) -> Validator:
    """A validator: the value is above ``minimum`` (``more_than(0, "seconds")``)."""
    expects = f"more than {_number(minimum)}" + (f" {unit}" if unit else "")

    def check(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if value <= minimum:
            raise InvalidValue(attribute.name, expects, value)

    return check


def between(low: float, high: float, unit: str | None = None) -> Validator:
    """A validator: ``low <= value <= high``."""
    expects = f"{_number(low)} to {_number(high)}" + (f" {unit}" if unit else "")

    def check(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if not low <= value <= high:
            raise InvalidValue(attribute.name, expects, value)

    return check


def one_of(*choices: str) -> Validator:
    """A validator: the value is one of ``choices``."""
    expects = f"one of {', '.join(map(repr, choices))}"

    def check(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise InvalidValue(attribute.name, expects, value)

    return check


def _bool(value: Any, _type: Any = bool) -> bool:
    if not isinstance(value, bool):
        raise _Refused("true or false", value)
    return value


def _int(value: Any, _type: Any = int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Refused("a whole number of at least 0", value)
    return value


def _float(value: Any, _type: Any = float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise _Refused("a number of at least 0", value)
    return float(value)


def _str(value: Any, _type: Any = str) -> str:
    if not isinstance(value, str) or not value:
        raise _Refused("a non-empty string", value)
    return value


def _strings(value: Any, _type: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _Refused("a list of strings", value)
    try:
        return tuple(_str(item) for item in value)
    except _Refused:
        raise _Refused("a list of strings", value) from None


#: Structures the core's settings and every plugin section's attrs class: strict about types
#: (TOML and JSON say what they mean: ``"5"`` is not a number), unlike the message converter.
config_converter = cattrs.Converter(forbid_extra_keys=True)
config_converter.register_structure_hook(bool, _bool)
config_converter.register_structure_hook(int, _int)
config_converter.register_structure_hook(float, _float)
config_converter.register_structure_hook(str, _str)
config_converter.register_structure_hook_func(
    lambda kind: kind in (tuple[str, ...], list[str]), _strings
)


def _structure(prefix: str, values: Mapping[str, Any], cls: type[T]) -> T:
    """``cls`` structured from ``values``; a refused value raises ``ConfigError`` naming its key."""
    try:
        return config_converter.structure(values, cls)
    except cattrs.ClassValidationError as error:
        noted, bare = error.group_exceptions()
        for cause, note in noted:  # a field's value: the first in field order is named
            key = prefix + note.name
            if isinstance(cause, _Refused):
                raise ConfigError(
                    f"configuration key {key!r} must be {cause.expects}, not {cause.value!r}"
                ) from None
            if isinstance(cause, KeyError):
                raise ConfigError(f"configuration key {key!r} must be set") from None
            raise ConfigError(
                f"configuration key {key!r} is not valid: {describe_error(cause, 'value')}"
            ) from None
        first = bare[0] if bare else error  # raised by the class itself, e.g. a validator
        if isinstance(first, InvalidValue):
            why = f": {first.why}" if first.why else ""
            raise ConfigError(
                f"configuration key {prefix + first.name!r} must be {first.expects}, "
                f"not {first.value!r}{why}"
            ) from None
        if isinstance(first, ConfigError):
            raise first from None
        where = f"section {prefix[:-1]!r}" if prefix else "settings"
        raise ConfigError(f"configuration {where}: {describe_error(first, 'value')}") from None


def _check_handlers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"configuration key 'handlers' must be a table of request_type = \"module:object\", "
            f"not {value!r}"
        )
    checked = {}
    for request_type, path in value.items():
        if not isinstance(request_type, str) or not request_type:
            raise ConfigError(
                f"configuration key 'handlers' must name each request type, not {request_type!r}"
            )
        if not isinstance(path, str) or not HANDLER_PATH.match(path):
            raise ConfigError(
                f"configuration key 'handlers.{request_type}' must be \"module:object\", "
                f"not {path!r}"
            )
        checked[str(request_type)] = path
    return checked


def load_config(
    data: Mapping[str, Any] | Config | None = None,
    *,
    plugin_keys: Iterable[type] = (),
    hints: Mapping[str, str] | None = None,
) -> Config:
    """Build a :class:`Config` from a mapping (``None``: the ``PULPO_CONFIG`` file or defaults).

    :param plugin_keys: the attrs classes of top-level keys that installed plugins declare.
    :param hints: names → the distribution that provides them, for an unknown key.
    """
    if isinstance(data, Config):
        return data
    plugin_key_owners = {f.name: cls for cls in plugin_keys for f in attrs.fields(cls)}
    if data is None:
        path = os.environ.get(ENV_VAR)
        data = read_config_file(path) if path else {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"configuration must be a mapping, not {type(data).__name__}")
    values: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    plugin_values: dict[type, dict[str, Any]] = {cls: {} for cls in plugin_key_owners.values()}
    for key, value in data.items():
        if key == "handlers":
            values[key] = _check_handlers(value)
        elif key in CORE_KEYS:
            values[key] = value
        elif key in plugin_key_owners:
            plugin_values[plugin_key_owners[key]][key] = value
        elif isinstance(value, Mapping):
            sections[str(key)] = dict(value)
        else:
            raise ConfigError(_unknown_key(str(key), [*CORE_KEYS, *plugin_key_owners], hints))
    ttr = values.get("ttr")
    if type(ttr) is int or (type(ttr) is float and not 0 <= ttr <= MAX_TTR):
        check_ttr_key("ttr", ttr)  # out of the bound: the one sentence, before the type's
    config = _structure("", values, Config)
    plugin_settings: dict[str, Any] = {}
    for cls, given in plugin_values.items():
        plugin_settings.update(attrs.asdict(_structure("", given, cls), recurse=False))
    if config.max_number_of_attempts == 0:
        raise ConfigError("configuration key 'max_number_of_attempts' must be at least 1, not 0")
    check_ttr_key("ttr", config.ttr)
    if config.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"configuration key 'log_format' must be one of {', '.join(LOG_FORMATS)}, "
            f"not {config.log_format!r}"
        )
    return attrs.evolve(
        config,
        sections=sections,
        given=frozenset(values) | frozenset(k for v in plugin_values.values() for k in v),
        plugin_settings=plugin_settings,
    )


def check_ttr_key(key: str, value: Any) -> int:
    """A configured ttr, with the one bound every ttr has; ``ConfigError`` naming ``key``."""
    try:
        checked = check_ttr(value)
    except ValueError:
        raise ConfigError(f"configuration key {key!r} must be {TTR_RANGE}, not {value!r}") from None
    if checked is None:
        raise ConfigError(f"configuration key {key!r} must be {TTR_RANGE}, not None")
    return checked


def _unknown_key(key: str, known: Iterable[str], hints: Mapping[str, str] | None) -> str:
    distribution = (hints or {}).get(key)
    where = (
        f"it belongs to {distribution}, which is not installed (pip install {distribution})"
        if distribution
        else "no installed plugin declares it"
    )
    return f"unknown configuration key {key!r}: {where} (known keys: {', '.join(known)})"


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
        data = load_json(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except RecursionError:  # tomllib's arrays and tables, nested too deeply
        raise ConfigError(
            f"configuration file {str(file)!r} is not valid: it is nested too deeply to be read"
        ) from None
    except ValueError as error:
        raise ConfigError(f"configuration file {str(file)!r} is not valid: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {str(file)!r} must hold a table of settings")
    return data


def check_section(name: str, section: Mapping[str, Any], keys: Any) -> None:
    """Refuse keys a section does not declare, and values of the wrong type (attrs classes).

    ``keys`` is an attrs class, an iterable of key names, or a checker function
    ``check(name, section)`` that raises ``ConfigError`` (a table of tables, such as
    ``schedules``, whose keys are the user's own names).
    """
    if isinstance(keys, type) and attrs.has(keys):
        load_section(name, section, keys)
        return
    if callable(keys) and not isinstance(keys, type):
        keys(name, section)
        return
    known = set(keys)
    for key in section:
        if key not in known:
            raise ConfigError(
                f"unknown configuration key '{name}.{key}' "
                f"(known keys: {', '.join(sorted(known)) or 'none'})"
            )


def load_section(name: str, section: Mapping[str, Any], cls: type[T]) -> T:
    """Structure a plugin's section into its attrs class, naming ``section.key`` on errors."""
    fields = [f.name for f in attrs.fields(cls)]  # type: ignore[arg-type]
    if not isinstance(section, Mapping):
        raise ConfigError(f"configuration section {name!r} must be a table, not {section!r}")
    for key in section:
        if key not in fields:
            raise ConfigError(
                f"unknown configuration key '{name}.{key}' (known keys: {', '.join(fields)})"
            )
    return _structure(f"{name}.", section, cls)
