"""pulpo-banner: the worker prints ``banner_name`` in ``banner_font`` with pyfiglet as it starts.

The plugin module pluggy loads is :mod:`pulpo_banner.banner`.
"""

__version__ = "0.1.0"
