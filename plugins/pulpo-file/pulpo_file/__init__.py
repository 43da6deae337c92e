"""pulpo-file: a durable job queue in a local folder, shared by many worker processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulpo_file.adapter import FileQueueAdapter
    from pulpo_file.config import FileQueueConfig

__all__ = ["FileQueueAdapter", "FileQueueConfig"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use so that loading the plugin stays cheap.
    if name == "FileQueueAdapter":
        from pulpo_file.adapter import FileQueueAdapter

        return FileQueueAdapter
    if name == "FileQueueConfig":
        from pulpo_file.config import FileQueueConfig

        return FileQueueConfig
    raise AttributeError(f"module 'pulpo_file' has no attribute {name!r}")
