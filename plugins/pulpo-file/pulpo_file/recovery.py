"""Noticing a reboot, after which the journal's write-ahead records are replayed.

With ``fsync`` (``fsync_method = "journal"`` or ``"log"``) a job is safe once its record is
flushed to the journal or to a publish log; its file is written without a flush. A power cut can
therefore lose or damage files that the records describe, and the first worker to start after a
reboot replays the journal and the publish logs.
A process that merely died (no reboot) loses nothing: the system still writes its files out.
The queue remembers the boot it last replayed in (``base_path/boot_id``) so it replays once.
"""

from __future__ import annotations

import time

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
#: The file in ``base_path`` holding the boot the queue was last recovered in.
MARKER = "boot_id"


def current_boot_id() -> str | None:
    """This boot's id (Linux), or ``None`` where the system does not tell."""
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as file:
            return file.read().strip() or None
    except OSError:
        return None


def boot_instant() -> float:
    """The wall-clock time the machine booted, as well as the system tells."""
    try:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.time() - time.monotonic()
