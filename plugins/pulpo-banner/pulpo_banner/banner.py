"""The start-up banner: ``banner_name`` drawn in ``banner_font`` by pyfiglet, on stdout.

pyfiglet is imported only when a banner is drawn, so publishers and the operator commands never
load it. An unknown font stops the worker before its first job with a :class:`ConfigError`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import attrs

from pulpo_core.errors import ConfigError
from pulpo_core.markers import hookimpl

if TYPE_CHECKING:
    from pulpo_core.hookspecs import RegisterKeys
    from pulpo_core.host import App


@attrs.frozen
class BannerSettings:
    """The top-level keys pulpo-banner reads, with their defaults."""

    enable_banner: bool = False
    banner_name: str = "pulpo"
    banner_font: str = "standard"


@hookimpl
def pulpo_register_config_sections(register_keys: RegisterKeys) -> None:
    register_keys(BannerSettings)


def render_banner(name: str, font: str) -> str:
    """``name`` as ``pyfiglet.figlet_format(name, font=font)`` draws it.

    :raises ConfigError: naming the font when pyfiglet has no such font.
    """
    import pyfiglet

    try:
        return str(pyfiglet.figlet_format(name, font=font))
    except pyfiglet.FontNotFound:
        raise ConfigError(
            f"configuration key 'banner_font' names no pyfiglet font: {font!r} "
            "(list the fonts with: pyfiglet --list_fonts)"
        ) from None
    except pyfiglet.FontError as error:
        raise ConfigError(
            f"configuration key 'banner_font' names a font pyfiglet cannot read: {font!r} ({error})"
        ) from None


@hookimpl(tryfirst=True)  # the font is checked before any other plugin starts work
def pulpo_worker_start(app: App) -> None:
    if not app.config.enable_banner:
        return
    sys.stdout.write(render_banner(app.config.banner_name, app.config.banner_font))
    sys.stdout.flush()
