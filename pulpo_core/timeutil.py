"""Turning the ways users say "when" into aware UTC datetimes."""

from __future__ import annotations

import math
import reprlib
from datetime import UTC, datetime, timedelta

#: What `delay` and `expiration` accept.
When = datetime | timedelta | int | float | str

_SHORT = reprlib.Repr()
_SHORT.maxlong, _SHORT.maxstring = 40, 80


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def to_utc(value: When | None, field: str) -> datetime | None:
    """Normalise `value` to an aware UTC datetime.

    An aware datetime keeps its instant; a naive one is taken as local time; a `timedelta` or a
    number of seconds counts from now; a string is read as ISO-8601. Anything else, or a moment
    outside the years 1..9999 once in UTC, raises `ValueError` naming `field`.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a datetime, a timedelta or seconds, not {value!r}")
    try:
        return _to_utc(value, field)
    except OverflowError:
        raise _out_of_range(field, value) from None
    except ValueError as error:
        # datetime says "year 0 is out of range" without naming the field or the value.
        if "out of range" not in str(error):
            raise
        raise _out_of_range(field, value) from None


def _to_utc(value: When, field: str) -> datetime:
    if isinstance(value, datetime):
        # astimezone() reads a naive datetime as local time, which is what we promise.
        return value.astimezone(UTC)
    if isinstance(value, timedelta):
        return now() + value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{field} must be a finite number of seconds, not {value!r}")
        return now() + timedelta(seconds=value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{field} {value!r} is not an ISO-8601 date and time") from None
        return parsed.astimezone(UTC)
    raise ValueError(
        f"{field} must be a datetime, a timedelta or seconds, not {type(value).__name__}"
    )


def _out_of_range(field: str, value: When) -> ValueError:
    if isinstance(value, datetime):
        shown = value.isoformat()
    elif isinstance(value, timedelta):
        shown = str(value)
    else:
        try:
            shown = _SHORT.repr(value)  # a whole number may have hundreds of digits
        except ValueError:  # too many digits for Python to print at all
            shown = "(a number too large to print)"
    return ValueError(
        f"{field} {shown} is out of range (it must fall within the years 1 to 9999 in UTC)"
    )


def seconds_until(moment: datetime | None) -> float:
    """Seconds from now until `moment`; 0 when it has passed or is unset."""
    if moment is None:
        return 0.0
    return max(0.0, (moment - now()).total_seconds())
