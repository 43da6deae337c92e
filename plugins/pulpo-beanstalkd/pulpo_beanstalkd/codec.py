"""Messages as beanstalkd job bodies: the JSON of ``Message.to_json()``, encoded to bytes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from pulpo_core.message import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    PRIORITY_LOWEST,
    AttemptsSource,
    Message,
    load_json,
)

#: beanstalkd takes delays and ttrs as unsigned 32-bit numbers of seconds.
MAX_SECONDS = 2**32 - 1

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_dumps_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: A str as a JSON string, non-ASCII characters as they are (as ``ensure_ascii=False``).
_string: Any = json.encoder.encode_basestring


def encode(message: Message, encoding: str) -> bytes:
    """The job body of ``message``: the same JSON as ``message.to_json()``, in ``encoding``.

    Written here rather than through the converter because publishing is a hot path: the
    header's fields are written straight into the text, only the body and any extra header
    keys go through the JSON encoder. A new job carries ``attempts`` 0: beanstalkd's own
    counters give the attempts of a job it hands out.
    """
    request_type, priority, ttr = message.request_type, message.priority, message.ttr
    delay, expiration, extra = message.delay, message.expiration, message.extra_header
    name = "null" if request_type is None else _string(request_type)
    urgency = "null" if priority is None else int(priority)
    start = "null" if delay is None else f'"{delay.isoformat()}"'
    end = "null" if expiration is None else f'"{expiration.isoformat()}"'
    lease = "null" if ttr is None else int(ttr)
    try:
        more = "," + _dumps(extra)[1:-1] if extra else ""
        text = (f'{{"id":null,"header":{{"request_type":{name},"priority":{urgency},'
                f'"delay":{start},"expiration":{end},"ttr":{lease},"attempts":0{more}}},'
                f'"body":{_dumps(message.body)}}}')
    except (TypeError, ValueError) as error:
        raise ValueError(f"the message cannot be written as JSON: {error}") from None
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        # \u escapes are plain ASCII, which every encoding beanstalkd users pick can carry.
        return _dumps_ascii(json.loads(text)).encode(encoding)


def decode(data: bytes, job_id: int, encoding: str, attempts: AttemptsSource) -> Message:
    """The message in a job body; ``ValueError`` saying why when it is not a pulpo message."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise ValueError(f"the body is not {encoding} text ({error.reason} at byte "
                         f"{error.start})") from None
    try:
        document = load_json(text)
    except ValueError as error:
        raise ValueError(f"the body is not JSON ({error})") from None
    if (
        not isinstance(document, dict)
        or "header" not in document
        or "body" not in document
        or not document.keys() <= {"id", "header", "body"}
    ):
        raise ValueError("the body is JSON but not a pulpo message (an object of header and body)")
    header = document["header"]
    if not isinstance(header, dict):
        raise ValueError(f"the header is a {type(header).__name__}, not a JSON object")
    try:
        return Message(header=header, body=document["body"], id=str(job_id), attempts=attempts)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"the message does not read back: {error}") from None


def unreadable(data: bytes, job_id: int, encoding: str, error: ValueError) -> Message:
    """What ``peek`` shows of a job that is not a pulpo message: its text in ``body["raw"]``."""
    return Message(
        body={"raw": data.decode(encoding, errors="backslashreplace")},
        id=str(job_id),
        extra_header={"unreadable": str(error)},
    )


def priority_of(message: Message) -> int:
    """The beanstalkd priority: the message's own, or the middle of the range when unset."""
    priority = message.priority
    return DEFAULT_PRIORITY if priority is None else min(priority, PRIORITY_LOWEST)


def ttr_of(message: Message) -> int:
    """The job's ttr: its own (the core sets one at publish), else the core's default."""
    return message.ttr or DEFAULT_TTR


def delay_of(moment: datetime | None) -> int:
    """Whole seconds from now until ``moment``, rounded up (a job never runs early), at least 0."""
    if moment is None:
        return 0
    seconds = (moment - datetime.now(UTC)).total_seconds()
    return min(max(math.ceil(seconds), 0), MAX_SECONDS)


def seconds(value: float) -> int:
    """A retry delay in whole seconds for ``release``, rounded up."""
    return min(max(math.ceil(value), 0), MAX_SECONDS)


def parse_job_id(value: object) -> int:
    """A beanstalkd job id from a message id; ``ValueError`` for anything else."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise ValueError(f"{value!r} is not a beanstalkd job id (a whole number above 0)")
    return int(text)
