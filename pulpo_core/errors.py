"""Errors pulpo raises for users: each message is one sentence naming the bad value."""

from __future__ import annotations


class PulpoError(Exception):
    """Base of pulpo's own errors."""


class ConfigError(PulpoError, ValueError):
    """A configuration key is unknown or has a bad value (the message names the key)."""


class PluginError(PulpoError):
    """A plugin could not be loaded, or a handler could not be imported."""


class AdapterError(PulpoError):
    """The queue could not do what was asked (server gone, disk full, job too big, ...)."""


class NotFound(PulpoError, LookupError):
    """No job has that id."""
