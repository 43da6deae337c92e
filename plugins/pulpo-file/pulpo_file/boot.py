"""Noticing a reboot, after which the journal's write-ahead records are replayed.

With ``fsync`` (``fsync_method = "journal"`` or ``"log"``) a job is safe once its record is
flushed to the journal or to a publish log; its file is written without a flush. A power cut can
therefore lose or damage files that the records describe, and the first worker to start after a
reboot replays the journal and the publish logs (see :mod:`pulpo_file.recovery`).
A process that merely died (no reboot) loses nothing: the system still writes its files out.
The queue remembers the boot it last replayed in (``base_path/boot_id``) so it replays once.
"""

from __future__ import annotations

import os
import time

from pulpo_core.errors import AdapterError
from pulpo_file.files import open_private

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


def this_boot() -> str:
    """What the marker holds once the queue is recovered in this boot."""
    return current_boot_id() or f"booted-at-minute-{int(boot_instant() // 60)}"


def is_this_boot(marker: bytes) -> bool:
    """Whether the marker's content (the boot the queue was last recovered in) is now's."""
    return marker.decode("ascii", errors="replace").strip() == this_boot()


def recovered_this_boot(base_path: str) -> bool:
    """Whether a worker has replayed the queue's records since the last reboot."""
    try:
        with open(os.path.join(base_path, MARKER), "rb") as marker:
            return is_this_boot(marker.read())
    except OSError:
        return False


def mark_new_queue(base_path: str, fix_mode: bool) -> None:
    """A new queue has nothing to replay: note the boot it was created in."""
    try:
        fd = open_private(os.path.join(base_path, MARKER), os.O_WRONLY | os.O_EXCL, fix_mode)
    except FileExistsError:
        return
    except OSError as error:
        raise AdapterError(
            f"the file queue cannot write in {base_path!r}: {error.strerror or error}"
        ) from error
    try:
        os.write(fd, this_boot().encode("ascii") + b"\n")
    finally:
        os.close(fd)
