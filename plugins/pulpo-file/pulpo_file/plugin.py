"""The pulpo plugin: registers the ``file`` adapter and declares its configuration section.

Loaded through the ``pulpo.plugins`` entry point ``file``; the adapter module is imported only
when a queue is actually opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pulpo_core import hookimpl
from pulpo_file.config import SECTION, FileQueueConfig

if TYPE_CHECKING:
    from pulpo_core.hookspecs import RegisterAdapter, RegisterConfigSection
    from pulpo_file.adapter import FileQueueAdapter


def create_adapter(section: Mapping[str, Any]) -> FileQueueAdapter:
    """The adapter factory: ``section`` is the ``file_queue_adapter`` table."""
    from pulpo_file.adapter import FileQueueAdapter

    return FileQueueAdapter(section)


@hookimpl
def pulpo_register_adapters(register: RegisterAdapter) -> None:
    register("file", create_adapter, aliases=("file_queue_adapter", "FileQueueAdapter"))


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    register(SECTION, FileQueueConfig)
