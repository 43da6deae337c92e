"""pulpo-dashboard: ``pulpo dashboard``, a small server-rendered web page of a queue.

Importing this package imports neither waitress nor Jinja2; the command does, when it starts.
"""

from __future__ import annotations

__version__ = "0.1.0"
