"""Declares the ``schedules`` table of tables, so a bad schedule stops any command at once."""

from __future__ import annotations

from pulpo_core.hookspecs import RegisterConfigSection
from pulpo_core.markers import hookimpl
from pulpo_core.schedules.spec import SECTION, check_schedules


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    register(SECTION, check_schedules)
