"""Sample handlers, one per way a job can end.

A handler takes the dequeued :class:`~pulpo_core.Message` (or, with a typed body, the body as an
attrs object) and says how the job went:

- return ``None`` (or ``Result.success()``): done, the job is deleted;
- return ``Result.transient(error)`` or raise ``TransientError`` (or any other exception): the job
  is retried with back-off, and buried once it has run ``max_number_of_attempts`` times;
- return ``Result.fatal(error)`` or raise ``FatalError``: the job is buried at once.

Output: ``echo``, ``upper``, ``lower`` and ``greet`` print their job's output on stdout, one line
per job, as a script would; pulpo itself writes only log lines, on stderr, so the two never mix.
"""

from __future__ import annotations

import json
import logging
import random

import attrs

from pulpo_core.message import Message
from pulpo_core.result import FatalError, Result, TransientError

log = logging.getLogger("pulpo.samples")


def _text_payload(message: Message) -> str:
    """The payload as text, or a fatal failure: a retry cannot turn a number into text."""
    payload = message.payload
    if not isinstance(payload, str):
        raise FatalError(
            f"{message.request_type} needs a text payload, not {type(payload).__name__}"
        )
    return payload


def echo(message: Message) -> None:
    """Print the payload, or the whole body as JSON when there is no payload."""
    value = message.payload if message.payload is not None else message.body
    print(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def upper(message: Message) -> None:
    """Print the text payload in upper case."""
    print(_text_payload(message).upper())


def lower(message: Message) -> None:
    """Print the text payload in lower case."""
    print(_text_payload(message).lower())


def always_succeed(message: Message) -> Result:
    """Succeed without doing anything."""
    log.info("always_succeed: job %s succeeded", message.id)
    return Result.success()


def always_fail(message: Message) -> None:
    """Fail fatally: the job is buried at once and never retried."""
    raise FatalError("always_fail always fails")


def always_transient(message: Message) -> Result:
    """Fail transiently: retried until it has run ``max_number_of_attempts`` times, then buried."""
    return Result.transient(f"always_transient failed attempt {message.attempts + 1}")


def fifty_fifty(message: Message) -> None:
    """Succeed or fail transiently, at random, half the time each."""
    if random.random() < 0.5:
        raise TransientError("fifty_fifty lost the coin toss")


@attrs.frozen
class Greeting:
    """The body of a ``greet`` job: ``{"name": "Ada", "greeting": "Hello"}``."""

    name: str
    greeting: str = "Hello"


def greet(greeting: Greeting) -> None:
    """Print ``"<greeting>, <name>!"``.

    A typed body: the first parameter is annotated with an attrs class, so pulpo structures the
    job's body into it first; a body that does not fit buries the job with the reason.
    """
    print(f"{greeting.greeting}, {greeting.name}!")
