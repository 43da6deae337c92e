"""The message: a job request with an `id`, a routing/control `header` and a `body` of work."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from pulpo_core.converter import converter
from pulpo_core.timeutil import When, to_utc

#: The most urgent priority.
PRIORITY_HIGHEST = 0
#: The least urgent priority (2**32 - 1), as beanstalkd counts.
PRIORITY_LOWEST = 2**32 - 1
#: Where a message with no priority is queued (set by the core at publish).
DEFAULT_PRIORITY = 2**31
#: The lease, in seconds, of a job published with no ttr and no configured ``ttr`` (the core's
#: default; adapters trust the message's ttr and never default it themselves).
DEFAULT_TTR = 60
#: The longest lease a job may ask for, in seconds: every adapter can hold it (beanstalkd
#: counts ttr in 32 bits).
MAX_TTR = 2**32 - 1
#: The header key holding why a job was buried (every adapter writes it the same way).
BURIED_REASON = "buried_reason"
#: Header keys with a meaning of their own; every other header key is kept as it is.
HEADER_KEYS = ("request_type", "priority", "delay", "expiration", "ttr", "attempts")
#: The header key of a unique job's key (see :attr:`Message.unique_key`).
UNIQUE_KEY = "unique_key"
#: The header key of how long, in seconds, a unique key stays held (:attr:`Message.unique_for`).
UNIQUE_FOR = "unique_for"
#: The longest unique key, in characters.
MAX_UNIQUE_KEY_LENGTH = 250

AttemptsSource = int | Callable[[], int]
_HEADER_KEY_SET = frozenset(HEADER_KEYS)


def clamp_priority(value: Any) -> int | None:
    """A priority within 0..2**32-1: negative numbers become 0, larger ones the lowest."""
    if value is None:
        return None
    if type(value) is int and PRIORITY_HIGHEST <= value <= PRIORITY_LOWEST:
        return value  # the common case, checked first
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"priority must be a whole number, not {value!r}")
    return int(min(max(value, PRIORITY_HIGHEST), PRIORITY_LOWEST))


#: What a ttr may be, in the words every refusal uses.
TTR_RANGE = f"a number of seconds above 0 and at most {MAX_TTR}"


def check_ttr(value: Any) -> int | None:
    """A ttr in whole seconds (rounded up), from 1 to :data:`MAX_TTR`."""
    if value is None:
        return None
    if type(value) is int and 0 < value <= MAX_TTR:
        return value  # the common case, checked first
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"ttr must be {TTR_RANGE}, not {value!r}")
    if not 0 < value <= MAX_TTR:
        raise ValueError(f"ttr must be {TTR_RANGE}, not {value!r}")
    return math.ceil(value)


def check_unique(key: Any, hold: Any) -> None:
    """Raise `ValueError` naming a bad unique key (a non-empty string of at most
    :data:`MAX_UNIQUE_KEY_LENGTH` characters) or ``unique_for`` (seconds above 0)."""
    if key is None and hold is not None:
        raise ValueError("unique_for needs a unique_key")
    if not isinstance(key, str) or not key:
        raise ValueError(f"unique_key must be a non-empty string, not {key!r}")
    if len(key) > MAX_UNIQUE_KEY_LENGTH:
        raise ValueError(
            f"unique_key {key[:40]!r}... is {len(key)} characters long, "
            f"more than the {MAX_UNIQUE_KEY_LENGTH} allowed"
        )
    if hold is not None and (
        isinstance(hold, bool)
        or not isinstance(hold, int | float)
        or not math.isfinite(hold)
        or hold <= 0
    ):
        raise ValueError(f"unique_for must be a number of seconds above 0, not {hold!r}")


def _check_attempts(value: Any) -> AttemptsSource:
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"attempts must be a whole number of at least 0, not {value!r}")
    return value


def load_json(text: str | bytes) -> Any:
    """The document in ``text``; ``ValueError`` saying why when it is not JSON — also for a
    document nested deeper than the parser can follow (say, 20,000 ``[``), which would
    otherwise raise ``RecursionError``. Every decoder of untrusted JSON goes through here."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("it is nested too deeply to be read") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"it is not UTF-8 text ({error.reason} at byte {error.start})") from None


@attrs.define(frozen=True, init=False)
class Message:
    """A job request.

    Build one with `Message("send_email", {"to": ...})`; change one with `attrs.evolve`.
    `delay` and `expiration` accept an aware or naive datetime (naive = local time), a
    `timedelta` or a number of seconds from now, and are kept as aware UTC datetimes.
    """

    id: str | None
    request_type: str | None
    body: dict[str, Any]
    priority: int | None
    delay: datetime | None
    expiration: datetime | None
    ttr: int | None
    _attempts: AttemptsSource = attrs.field(eq=False, repr=False)
    extra_header: dict[str, Any]

    def __init__(
        self,
        request_type: str | None = None,
        body: Mapping[str, Any] | None = None,
        payload: Any = None,
        priority: int | None = None,
        delay: When | None = None,
        expiration: When | None = None,
        ttr: float | None = None,
        header: Mapping[str, Any] | None = None,
        id: str | int | None = None,
        *,
        attempts: AttemptsSource | None = None,
        extra_header: Mapping[str, Any] | None = None,
        unique_key: str | None = None,
        unique_for: float | None = None,
    ) -> None:
        # Written for speed (every publish builds one, every dequeue reads one): the checks
        # below are those of the fields, skipped only for values that need none.
        if extra_header and not extra_header.keys().isdisjoint(_HEADER_KEY_SET):
            taken = sorted(_HEADER_KEY_SET.intersection(extra_header))
            raise ValueError(
                f"extra_header cannot hold {', '.join(taken)}: a field of its own "
                f"(pass it as an argument)"
            )
        if header is not None:
            if not isinstance(header, Mapping):
                raise ValueError(f"header must be a mapping, not {type(header).__name__}")
            given = header
            if request_type is None:
                request_type = given.get("request_type")
            if priority is None:
                priority = given.get("priority")
            if delay is None:
                delay = given.get("delay")
            if expiration is None:
                expiration = given.get("expiration")
            if ttr is None:
                ttr = given.get("ttr")
            if attempts is None:
                attempts = given.get("attempts")
            extras = (
                {}
                if given.keys() <= _HEADER_KEY_SET
                else {k: v for k, v in given.items() if k not in HEADER_KEYS}
            )
            if extra_header:
                extras.update(extra_header)
        else:
            extras = dict(extra_header) if extra_header else {}
        if unique_key is not None:
            extras[UNIQUE_KEY] = unique_key
        if unique_for is not None:
            extras[UNIQUE_FOR] = unique_for
        if UNIQUE_KEY in extras or UNIQUE_FOR in extras:
            check_unique(extras.get(UNIQUE_KEY), extras.get(UNIQUE_FOR))
        if body is None:
            body = {}
        elif type(body) is dict or isinstance(body, Mapping):
            body = dict(body)
        else:
            raise ValueError(f"body must be a mapping (a JSON object), not {type(body).__name__}")
        if payload is not None:
            body["payload"] = payload
        if request_type is not None and not isinstance(request_type, str):
            raise ValueError(f"request_type must be a string, not {request_type!r}")
        self.__attrs_init__(
            id=None if id is None else str(id),
            request_type=request_type,
            body=body,
            priority=None if priority is None else clamp_priority(priority),
            delay=None if delay is None else to_utc(delay, "delay"),
            expiration=None if expiration is None else to_utc(expiration, "expiration"),
            ttr=None if ttr is None else check_ttr(ttr),
            attempts=_check_attempts(attempts) if attempts else 0,
            extra_header=extras,
        )

    @property
    def attempts(self) -> int:
        """Failed attempts so far (0 on a job's first run); resolved lazily by some adapters."""
        source = self._attempts
        if callable(source):
            source = int(source())
            object.__setattr__(self, "_attempts", source)  # cache what the adapter told us
        return source

    @property
    def known_attempts(self) -> int | None:
        """`attempts` if already known, without asking the adapter (None while unresolved)."""
        source = self._attempts
        return None if callable(source) else source

    def with_id(self, message_id: str) -> Message:
        """This message with its ``id`` set: what an adapter's ``enqueue`` returns.

        The same as ``attrs.evolve(message, id=message_id)``, but without checking again the
        fields that were checked when this message was built (publishing is a hot path).
        """
        copy = self._copy()
        _set(copy, "id", str(message_id))
        return copy

    def _replace(self, **changes: Any) -> Message:
        # A copy with trusted `changes` (valid field values), skipping `__init__`'s checks.
        copy = self._copy()
        for name, value in changes.items():
            _set(copy, name, value)
        return copy

    def _copy(self) -> Message:
        # Field by field, unrolled: a loop over the fields costs half as much again.
        copy = _new(Message)
        _set(copy, "id", self.id)
        _set(copy, "request_type", self.request_type)
        _set(copy, "body", self.body)
        _set(copy, "priority", self.priority)
        _set(copy, "delay", self.delay)
        _set(copy, "expiration", self.expiration)
        _set(copy, "ttr", self.ttr)
        _set(copy, "_attempts", self._attempts)
        _set(copy, "extra_header", self.extra_header)
        return copy

    @property
    def unique_key(self) -> str | None:
        """While a job with this key is queued, delayed or running (or for ``unique_for``
        seconds), publishing another with it returns the first one (header ``unique_key``)."""
        return self.extra_header.get(UNIQUE_KEY)

    @property
    def unique_for(self) -> float | None:
        """Seconds from publishing that the unique key stays held even once the job is done."""
        return self.extra_header.get(UNIQUE_FOR)

    @property
    def payload(self) -> Any:
        """`body["payload"]`, the single value of a simple job (None when absent)."""
        return self.body.get("payload")

    @property
    def header(self) -> dict[str, Any]:
        """The routing and control header, as it travels on the wire."""
        return {
            "request_type": self.request_type,
            "priority": self.priority,
            "delay": self.delay,
            "expiration": self.expiration,
            "ttr": self.ttr,
            "attempts": self.attempts,
            **self.extra_header,
        }

    def to_dict(self) -> dict[str, Any]:
        """`{"id", "header", "body"}` with datetimes as ISO-8601 strings with an offset."""
        return converter.unstructure(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """The inverse of `to_dict`; raises `ValueError` naming what does not fit."""
        return converter.structure(data, cls)

    def to_json(self) -> str:
        """The message as compact JSON (the form adapters store)."""
        return _to_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Message:
        """Read a message written by `to_json`; raises `ValueError` when it is not one."""
        try:
            data = load_json(text)
        except ValueError as error:
            raise ValueError(f"not JSON: {error}") from None
        return cls.from_dict(data)

    def validate_for_publish(self) -> None:
        """Raise `ValueError` naming the field when this message cannot be queued."""
        if not self.request_type:
            raise ValueError("request_type must be a non-empty string")
        try:
            if not _flat_json(self.body):  # most bodies are: skip the encoder then
                _check_json(self.body)
        except RecursionError:
            raise ValueError("body is not JSON serialisable: it is nested too deeply") from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"body is not JSON serialisable: {error}") from None
        try:
            if self.extra_header:  # most messages have none: skip the encoder then
                _check_json(self.extra_header)
        except RecursionError:
            raise ValueError("header is not JSON serialisable: it is nested too deeply") from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"header is not JSON serialisable: {error}") from None
        self.check_schedule()

    def check_schedule(self) -> None:
        """Raise `ValueError` when the delay is later than the expiration: the job could never
        run (part of `validate_for_publish`)."""
        if self.delay and self.expiration and self.delay > self.expiration:
            raise ValueError(
                f"delay {self.delay.isoformat()} is later than expiration "
                f"{self.expiration.isoformat()}: the job could never run"
            )


_new = object.__new__
#: json.dumps with an option builds an encoder per call; these are built once.
_check_json = json.JSONEncoder(allow_nan=False).encode
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_set = object.__setattr__
_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _flat_json(mapping: Mapping[str, Any]) -> bool:
    """Whether ``mapping`` holds only strings, whole numbers, booleans and None under string
    keys: JSON as it is, without encoding it to find out."""
    for key, value in mapping.items():
        if type(key) is not str or type(value) not in _JSON_SCALARS:
            return False
    return True


def _unstructure_message(message: Message) -> dict[str, Any]:
    # Written out rather than through the converter for each header value: every adapter that
    # stores JSON calls this once per publish.
    delay, expiration, extra = message.delay, message.expiration, message.extra_header
    header = {
        "request_type": message.request_type,
        "priority": message.priority,
        "delay": None if delay is None else delay.isoformat(),
        "expiration": None if expiration is None else expiration.isoformat(),
        "ttr": message.ttr,
        "attempts": message.attempts,
    }
    if extra:
        header.update({key: converter.unstructure(value) for key, value in extra.items()})
    return {"id": message.id, "header": header, "body": message.body}


def _structure_message(data: Any, _type: Any) -> Message:
    if not isinstance(data, Mapping):
        raise ValueError(f"a message must be a JSON object, not {type(data).__name__}")
    unknown = set(data) - {"id", "header", "body"}
    if unknown:
        raise ValueError(f"a message has only id, header and body, not {sorted(unknown)}")
    header = data.get("header") or {}
    if not isinstance(header, Mapping):
        raise ValueError(f"header must be a JSON object, not {type(header).__name__}")
    return Message(header=header, body=data.get("body"), id=data.get("id"))


converter.register_unstructure_hook(Message, _unstructure_message)
converter.register_structure_hook(Message, _structure_message)
