"""What hooks, the worker loop and plugins see of the running app: a protocol, so that the hook
specs and the worker need not import :mod:`pulpo_core.app` (which imports them)."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from pulpo_core.adapter import QueueAdapter
from pulpo_core.config import Config
from pulpo_core.message import Message
from pulpo_core.result import Result


class App(Protocol):
    """The surface of :class:`pulpo_core.Pulpo` that hooks and the worker loop use."""

    config: Config
    #: pluggy's hook relay: ``app.hook.pulpo_worker_start(app=app)``.
    hook: Any

    @property
    def queue_adapter(self) -> QueueAdapter: ...

    @property
    def stopping(self) -> threading.Event: ...

    def publish(self, message: Message) -> Message: ...

    def handle_message(self, message: Message) -> Result: ...

    def load_handlers(self) -> None: ...

    def stop(self) -> None: ...
