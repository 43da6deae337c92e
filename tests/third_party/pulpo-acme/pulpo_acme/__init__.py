"""pulpo-acme: a third-party pulpo plugin with a SQLite queue adapter, a middleware and a handler.

The plugin module is :mod:`pulpo_acme.plugin`; the handler :func:`pulpo_acme.handlers.shout`.
"""
