"""Errors pulpo raises for users: each message is one sentence naming the bad value."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulpo_core.message import Message


class PulpoError(Exception):
    """Base of pulpo's own errors."""


class ConfigError(PulpoError, ValueError):
    """A configuration key is unknown or has a bad value (the message names the key)."""


class PluginError(PulpoError):
    """A plugin could not be loaded, or a handler could not be imported."""


class AdapterError(PulpoError):
    """The queue could not do what was asked (server gone, disk full, job too big, ...)."""


class PartialEnqueue(AdapterError):
    """``publish_many`` (an adapter's ``enqueue_many``) queued some of the jobs, not all."""

    def __init__(self, text: str, queued: list[Message | None]) -> None:
        super().__init__(text)
        #: Per message given, in order: the queued message with its id, or None if not queued.
        self.queued = queued


class NotFound(PulpoError, LookupError):
    """No job has that id."""
