"""Test your handlers without a queue server: an app on the memory adapter, run to empty.

app = make_app({"send_email": send_email})
app.publish(Message("send_email", {"to": "ada@example.org"}))
assert run_until_empty(app).succeeded == 1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from pulpo_core.app import Pulpo
from pulpo_core.defaults.memory import MemoryQueueAdapter
from pulpo_core.message import Message
from pulpo_core.plugins import build_plugin_manager
from pulpo_core.result import Result

__all__ = ["Processed", "RunReport", "make_app", "run_until_empty"]


def make_app(
    handlers: Mapping[str, object] | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    plugins: Iterable[object] = (),
    installed_plugins: bool = False,
) -> Pulpo:
    """A :class:`Pulpo` on the ``memory`` adapter with ``handlers`` registered.

    :param config: settings over the test defaults (memory adapter, no retry delay).
    :param plugins: plugin objects to register, e.g. the middleware under test.
    :param installed_plugins: also load the ``pulpo.plugins`` entry points.
    """
    settings: dict[str, Any] = {"queue_adapter_type": "memory", "retry_delay": 0}
    settings.update(config or {})
    manager = build_plugin_manager(load_entry_points=installed_plugins, plugins=plugins)
    app = Pulpo(settings, plugin_manager=manager)
    for request_type, handler in (handlers or {}).items():
        app.register_handler(request_type, handler)
    return app


@attrs.frozen
class Processed:
    """One run of one job."""

    message: Message
    result: Result


@attrs.frozen
class RunReport:
    """What :func:`run_until_empty` ran, in order."""

    processed: tuple[Processed, ...]

    @property
    def succeeded(self) -> int:
        return sum(p.result.is_success for p in self.processed)

    @property
    def failed(self) -> int:
        return sum(not p.result.is_success for p in self.processed)

    @property
    def results(self) -> list[Result]:
        return [p.result for p in self.processed]


def run_until_empty(
    app: Pulpo, *, include_delayed: bool = True, max_jobs: int = 10_000
) -> RunReport:
    """Handle queued jobs until none is ready (and, by default, none is delayed).

    With ``include_delayed`` a delayed job or a retry waiting for its back-off is run at once
    (soonest first, without waiting), so retries run to their end. Buried jobs stay.
    """
    adapter = app.queue_adapter
    app.load_handlers()
    done: list[Processed] = []
    while len(done) < max_jobs:
        message = adapter.dequeue()
        if message is None and include_delayed and isinstance(adapter, MemoryQueueAdapter):
            message = _skip_to_next_delayed(adapter)
        if message is None:
            break
        done.append(Processed(message, app.handle_message(message)))
    return RunReport(tuple(done))


def _skip_to_next_delayed(adapter: MemoryQueueAdapter) -> Message | None:
    # One at a time, soonest first, so the order is the one a patient worker would see.
    return adapter.dequeue() if adapter.run_delayed_now() else None
