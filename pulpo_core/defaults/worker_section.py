"""Declares the core's ``[worker]`` section (the pool's shape and limits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pulpo_core.markers import hookimpl
from pulpo_core.pool.settings import SECTION, WorkerSettings

if TYPE_CHECKING:
    from pulpo_core.hookspecs import RegisterConfigSection


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    register(SECTION, WorkerSettings)
