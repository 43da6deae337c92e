"""Private folders and files, and the all-or-nothing write every job file goes through."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def current_umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # no way to read it but to set it; restore at once
    os.umask(mask)
    return mask


def make_private_folder(path: Path) -> None:
    """Create ``path`` and any missing parent as 0700 whatever the umask (existing ones stay)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:
            continue  # another process made it first
        os.chmod(folder, FOLDER_MODE)


def open_private(path: str, flags: int, fix_mode: bool) -> int:
    """Open (creating) ``path`` as 0600; ``fix_mode`` when the umask would take owner bits."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    if fix_mode:
        try:
            os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (a short write is followed by another, which reports a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(
    temporary: str,
    destination: str,
    data: bytes,
    *,
    mtime_ns: int,
    fsync: bool,
    folder_fd: int | None,
    fix_mode: bool,
) -> None:
    """Write ``data`` to ``temporary`` and rename it to ``destination``: all of it or nothing.

    The file's modification time is set to ``mtime_ns`` before the rename. With ``fsync`` the
    data is flushed before the rename and, given ``folder_fd``, the folder after it. On any
    failure the temporary file is removed and the error re-raised; ``destination`` is untouched.
    """
    fd = open_private(temporary, os.O_WRONLY | os.O_EXCL, fix_mode)
    try:
        try:
            write_all(fd, data)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if folder_fd is not None:
        os.fsync(folder_fd)
