"""pulpo: distributed delayed job processing.

The public names are imported on first use (PEP 562), so ``pulpo --help`` and plugin discovery
(``from pulpo_core import hookimpl``) do not pay for the message model, cattrs or the worker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulpo_core.adapter import QueueAdapter
    from pulpo_core.app import Pulpo
    from pulpo_core.config import Config
    from pulpo_core.errors import (
        AdapterError,
        ConfigError,
        NotFound,
        PartialEnqueue,
        PluginError,
        PulpoError,
    )
    from pulpo_core.markers import hookimpl
    from pulpo_core.message import Message
    from pulpo_core.result import FatalError, Result, TransientError

#: Public name -> the module that defines it.
_LAZY = {
    "AdapterError": "pulpo_core.errors",
    "Config": "pulpo_core.config",
    "ConfigError": "pulpo_core.errors",
    "FatalError": "pulpo_core.result",
    "Message": "pulpo_core.message",
    "NotFound": "pulpo_core.errors",
    "PartialEnqueue": "pulpo_core.errors",
    "PluginError": "pulpo_core.errors",
    "Pulpo": "pulpo_core.app",
    "PulpoError": "pulpo_core.errors",
    "QueueAdapter": "pulpo_core.adapter",
    "Result": "pulpo_core.result",
    "TransientError": "pulpo_core.result",
    "hookimpl": "pulpo_core.markers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pulpo_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AdapterError",
    "Config",
    "ConfigError",
    "FatalError",
    "Message",
    "NotFound",
    "PartialEnqueue",
    "PluginError",
    "Pulpo",
    "PulpoError",
    "QueueAdapter",
    "Result",
    "TransientError",
    "hookimpl",
]

__version__ = "0.1.0"
