"""Messages as stored in a job hash: the JSON of ``Message.to_json()``; attempts kept aside."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from pulpo_core.message import DEFAULT_PRIORITY, DEFAULT_TTR, PRIORITY_LOWEST, Message


def encode(message: Message) -> str:
    """The stored text of a new job (its id and attempts are the job hash's own fields)."""
    try:
        return message.with_id("").to_json()
    except (TypeError, ValueError) as error:
        raise ValueError(f"the message cannot be written as JSON: {error}") from None


def decode(data: bytes | str, message_id: str, attempts: int, ttr: int) -> Message:
    """The message stored in a job hash; ``ValueError`` saying why when it is not one."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"the stored job is not JSON text ({error})") from None
    if not isinstance(document, dict) or not {"header", "body"} <= document.keys():
        raise ValueError("the stored job is JSON but not a pulpo message (header and body)")
    header = document["header"]
    if not isinstance(header, dict):
        raise ValueError(f"the header is a {type(header).__name__}, not a JSON object")
    header = {**header, "attempts": attempts}
    if header.get("ttr") is None:
        header["ttr"] = ttr
    try:
        return Message(header=header, body=document["body"], id=message_id)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"the message does not read back: {error}") from None


def unreadable(data: bytes | str | None, message_id: str, why: str) -> Message:
    """What ``peek`` shows of a job that is not a pulpo message: its text in ``body["raw"]``."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="backslashreplace")
    return Message(body={"raw": data}, id=message_id, extra_header={"unreadable": why})


def priority_of(message: Message) -> int:
    priority = message.priority
    return DEFAULT_PRIORITY if priority is None else min(priority, PRIORITY_LOWEST)


def ready_at_ms(moment: datetime | None) -> int:
    """The ready time in ms since the epoch, rounded up (a job never runs early); 0: now."""
    if moment is None:
        return 0
    return max(math.ceil(moment.astimezone(UTC).timestamp() * 1000), 0)


def ttr_of(message: Message) -> int:
    return message.ttr or DEFAULT_TTR
