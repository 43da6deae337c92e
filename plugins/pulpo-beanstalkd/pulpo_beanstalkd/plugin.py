"""The plugin pulpo loads: registers the ``beanstalkd`` adapter and its configuration section.

greenstalk is imported by the adapter factory, never here, so ``pulpo --help`` and plugin
discovery stay cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pulpo_beanstalkd.settings import SECTION, BeanstalkdSettings
from pulpo_core.markers import hookimpl

if TYPE_CHECKING:
    from pulpo_core.adapter import QueueAdapter
    from pulpo_core.hookspecs import RegisterAdapter, RegisterConfigSection

ALIASES = ("beanstalkd_queue_adapter", "BeanstalkdQueueAdapter")


def create_adapter(section: Mapping[str, Any]) -> QueueAdapter:
    """Build the adapter from the ``beanstalkd_queue_adapter`` section (imports greenstalk)."""
    from pulpo_beanstalkd.adapter import BeanstalkdQueueAdapter

    return BeanstalkdQueueAdapter(section)


@hookimpl
def pulpo_register_adapters(register: RegisterAdapter) -> None:
    register("beanstalkd", create_adapter, aliases=ALIASES)


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    register(SECTION, BeanstalkdSettings)
