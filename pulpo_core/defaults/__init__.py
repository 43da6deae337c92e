"""The core's own behaviour, registered as plugins through the public hooks."""
