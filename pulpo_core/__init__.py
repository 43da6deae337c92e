"""pulpo: distributed delayed job processing."""

from pulpo_core.adapter import QueueAdapter
from pulpo_core.app import Pulpo
from pulpo_core.config import Config
from pulpo_core.errors import AdapterError, ConfigError, NotFound, PluginError, PulpoError
from pulpo_core.markers import hookimpl
from pulpo_core.message import Message
from pulpo_core.result import FatalError, Result, TransientError

__all__ = [
    "AdapterError",
    "Config",
    "ConfigError",
    "FatalError",
    "Message",
    "NotFound",
    "PluginError",
    "Pulpo",
    "PulpoError",
    "QueueAdapter",
    "Result",
    "TransientError",
    "hookimpl",
]

__version__ = "0.1.0"
