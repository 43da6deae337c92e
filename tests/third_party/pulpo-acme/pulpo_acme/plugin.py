"""The module pluggy loads (entry point ``acme`` in the group ``pulpo.plugins``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pulpo_core import Result, hookimpl

if TYPE_CHECKING:
    from pulpo_core import Message, Pulpo, QueueAdapter
    from pulpo_core.hookspecs import RegisterAdapter


def make_sqlite_adapter(section: Mapping[str, Any]) -> QueueAdapter:
    from pulpo_acme.adapter import SqliteQueueAdapter  # imported only when it is selected

    return SqliteQueueAdapter(section)


@hookimpl
def pulpo_register_adapters(register: RegisterAdapter) -> None:
    register("sqlite", make_sqlite_adapter, aliases=("SqliteQueueAdapter",))


@hookimpl
def pulpo_before_process(message: Message, app: Pulpo) -> Result | None:
    """Jobs flagged ``"blocked"`` in their body never reach their handler: they are buried."""
    if message.body.get("blocked"):
        return Result.fatal("blocked by acme")
    return None
