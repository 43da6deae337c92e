"""The handler the ``pulpo.handlers`` entry point ``shout`` names."""

from __future__ import annotations

from pulpo_core import Message


def shout(message: Message) -> None:
    print(f"{message.payload.upper()}!")
