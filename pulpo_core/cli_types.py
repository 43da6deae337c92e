"""The ``pulpo`` command's argument types: each names the bad value in one sentence."""

from __future__ import annotations

import argparse
import math
from typing import Any


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def count(text: str) -> int:
    value = whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds of at least 0")
    return value


def positive_seconds(text: str) -> float:
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def ttr(text: str) -> int:
    """``--ttr``: the one bound and the one sentence of :func:`pulpo_core.message.check_ttr`."""
    from pulpo_core.message import TTR_RANGE, check_ttr

    try:
        value = float(text)
        checked = check_ttr(int(value) if value.is_integer() else value)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ttr: a ttr is {TTR_RANGE}"
        ) from None
    assert checked is not None
    return checked


def expiration(text: str) -> Any:
    try:
        return seconds(text)
    except argparse.ArgumentTypeError:
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number of seconds nor an ISO-8601 date and time"
        ) from None


def json_object(text: str) -> dict[str, Any]:
    from pulpo_core.message import load_json

    try:
        value = load_json(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object")
    return value


# -- the parser ---------------------------------------------------------------------------
