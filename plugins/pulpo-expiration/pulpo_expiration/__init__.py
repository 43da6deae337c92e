"""pulpo-expiration: a job whose expiration has passed when it is dequeued is never run.

The plugin module pluggy loads is :mod:`pulpo_expiration.expiration`.
"""

__version__ = "0.1.0"
