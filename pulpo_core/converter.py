"""The one cattrs converter pulpo uses for messages and typed bodies (configuration has its own,
stricter one: :data:`pulpo_core.config.config_converter`).

Datetimes travel as ISO-8601 strings with an offset; they come back as aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import cattrs

from pulpo_core.timeutil import to_utc

converter = cattrs.Converter(forbid_extra_keys=True)


def _unstructure_datetime(value: datetime) -> str:
    return value.isoformat()


def _structure_datetime(value: Any, _type: Any) -> datetime:
    moment = to_utc(value, "datetime")
    assert moment is not None  # to_utc returns None only for None, which cattrs never passes here
    return moment


converter.register_unstructure_hook(datetime, _unstructure_datetime)
converter.register_structure_hook(datetime, _structure_datetime)


def describe_error(error: BaseException, path: str = "body") -> str:
    """One readable line for a cattrs structuring error (or any other exception); ``path``
    names the structured value in it."""
    if isinstance(error, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(error, path=path))
    return str(error) or type(error).__name__
