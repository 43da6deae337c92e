"""Noticing a reboot, after which jobs flushed with ``fdatasync`` may sit under an older name.

A job rewritten into a spare file is flushed with ``fdatasync``: its content is on the disk when
``publish`` returns, but the renames that moved the file (``spare/`` to ``tmp/`` to ``ready/``)
may still be only in memory. After a power cut the file can therefore be found under any earlier
name in its chain, holding a job other than the one that name says. The first worker to start
after a reboot looks through ``spare/`` and ``tmp/`` for such files and puts each job back where
its content says it belongs; a file found in ``ready/`` or ``reserved/`` holding another job than
its name is put right when a worker reads it. Files changed after the boot are left alone: they
belong to processes running now.
"""

from __future__ import annotations

import contextlib
import os
import time

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
#: The file in ``base_path`` holding the boot the queue was last recovered in.
MARKER = "boot_id"
#: Without a boot id, files unchanged for this long are taken to predate any crash.
FALLBACK_AGE = 3600.0


def current_boot_id() -> str | None:
    """This boot's id (Linux), or ``None`` where the system does not tell."""
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as file:
            return file.read().strip() or None
    except OSError:
        return None


def boot_instant() -> float:
    """The wall-clock time the machine booted (an hour ago where that is unknown)."""
    try:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.time() - FALLBACK_AGE


def recovered_boot(base_path: str) -> str | None:
    """The boot id the queue was last recovered in, if any."""
    path = os.path.join(base_path, MARKER)
    with contextlib.suppress(OSError, UnicodeDecodeError), open(path, encoding="ascii") as file:
        return file.read().strip() or None
    return None
