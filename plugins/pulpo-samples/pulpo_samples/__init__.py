"""pulpo-samples: sample handlers, and the model for a handler package of your own.

The handlers live in :mod:`pulpo_samples.handlers`; ``pyproject.toml`` declares each one as a
``pulpo.handlers`` entry point (``request_type = "module:object"``).
"""

__version__ = "0.1.0"
