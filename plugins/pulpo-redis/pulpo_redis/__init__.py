"""pulpo-redis: the ``redis`` queue adapter for Redis and Valkey, on redis-py.

Importing this package does not import redis-py; the adapter module does, when the adapter is
first created.
"""

from __future__ import annotations

__version__ = "0.1.0"
