"""Private folders and files, and the all-or-nothing write every job file goes through."""

from __future__ import annotations

import contextlib
import fcntl
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


def sync_file_system(fd: int) -> None:
    """Flush every file of the file system holding ``fd`` (``syncfs``; ``sync`` elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) == 0:
            return
    except (OSError, AttributeError):
        pass
    os.sync()


def flush(path: str) -> None:
    """Flush the file or folder at ``path`` to the disk (``fsync``)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_if_unlocked(path: str) -> None:
    """Remove the file at ``path`` unless a process holds its ``flock`` (it is in use), and
    only if the name still names the file locked (not one renamed there meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        opened, named = os.fstat(fd), os.stat(path)
        if (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino):
            os.unlink(path)
    except OSError:  # held (locked), or gone
        pass
    finally:
        os.close(fd)


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


BLOCK = 4096


def padded(data: bytes, size: int = 0) -> bytes:
    """``data`` followed by spaces and a newline, to ``size`` or the next whole 4 KiB block.

    JSON allows trailing whitespace, so a padded job file still parses; a fixed size lets a
    spare file be rewritten in place without changing its length or its blocks on the disk.
    """
    target = max(size, -(-(len(data) + 1) // BLOCK) * BLOCK)
    return data + b" " * (target - len(data) - 1) + b"\n"


def write_job_file(
    destination: str,
    data: bytes,
    *,
    temporary: str,
    spare: tuple[int, str, int] | None,
    mtime_ns: int,
    fsync: bool,
    folder_fd: int | None,
    fix_mode: bool,
) -> None:
    """Write ``data`` as ``destination``: all of it or nothing.

    With ``spare`` (a finished job's file, open, locked, with its path and size) the spare is
    overwritten in place, same size, same blocks; otherwise ``temporary`` is created. Either is
    renamed to ``destination`` once written. The content is padded (see :func:`padded`) and the
    modification time set to ``mtime_ns`` (the ready time). With ``fsync`` the file is flushed
    before the rename and ``folder_fd`` (the destination folder, if given) after it. On any
    failure the file written is removed and the error re-raised; ``destination`` is untouched.
    """
    if spare is not None:
        fd, path, size = spare
    else:
        path, size = temporary, 0
        fd = open_private(temporary, os.O_WRONLY | os.O_EXCL, fix_mode)
    try:
        try:
            content = padded(data, size)
            view = memoryview(content)
            offset = 0
            while offset < len(content):
                offset += os.pwrite(fd, view[offset:], offset)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
            if fsync:
                os.fsync(fd)
            os.rename(path, destination)
        finally:
            os.close(fd)  # after the rename: closing unlocks a spare
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    if fsync and folder_fd is not None:
        os.fsync(folder_fd)


def same_file(fd: int, path: str) -> bool:
    """Whether ``path`` names the file open as ``fd``."""
    try:
        opened, named = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)
