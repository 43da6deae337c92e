"""Spare files: finished jobs' files, kept to be rewritten by later jobs.

Creating a file (a new inode, new blocks) is the most expensive thing a job costs on most file
systems, and flushing a new file costs a journal commit. So a committed job's file is not
deleted: it is renamed to ``spare/<id>.<token>`` (``id``: the job it last held), and the next
job written by any process takes a spare by locking it (``flock``: one taker wins; cheaper than
a rename), overwrites it in place, same size, same blocks, and renames it into place.

Spares unused for ``spare_ttl`` seconds are removed, and at most ``max_spare_files`` are kept, so
a queue that was once deep gives its disk space back. A spare still holds the finished job's
content until it is rewritten or removed (the folder is private to the owner).
"""

from __future__ import annotations

import fcntl
import os
import random
import time

from pulpo_file.files import remove_if_unlocked

#: Seconds between two listings of ``spare/`` when the last one found nothing.
EMPTY_RELIST = 1.0


class SparePool:
    """Take and give back spare files in ``folder`` (not thread-safe: the adapter locks)."""

    def __init__(self, folder: str, max_files: int, ttl: float, rng: random.Random) -> None:
        self.folder = folder
        self.max_files = max_files
        self.ttl = ttl
        self._rng = rng
        self._known: list[str] = []
        self._next_listing = 0.0
        self._count = 0  # an estimate, corrected by every trim

    def take(self) -> tuple[int, str, int] | None:
        """A spare open for writing and locked: ``(descriptor, path, size)``; ``None`` if none.

        The caller renames the path away before closing the descriptor (which unlocks it).
        """
        if self.max_files <= 0:
            return None
        listed = False  # one listing per call: spares that other takers hold locked are skipped
        while True:
            if not self._known:
                if listed or not self._list():
                    return None
                listed = True
            path = os.path.join(self.folder, self._known.pop())
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # another process took it first
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Still under its spare name? (another taker may have used it and let go)
                opened, named = os.fstat(fd), os.stat(path)
                if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
                    raise FileNotFoundError(path)
            except OSError:  # locked by another taker, or gone
                os.close(fd)
                continue
            self._count = max(0, self._count - 1)
            return fd, path, opened.st_size

    def _list(self) -> bool:
        now = time.monotonic()
        if now < self._next_listing:
            return False
        names = os.listdir(self.folder)
        self._rng.shuffle(names)  # processes listing together then rarely race for one name
        self._known = names
        self._count = len(names)
        self._next_listing = now + EMPTY_RELIST if not names else 0.0
        return bool(names)

    def give(self, path: str, job_id: str, token: str) -> None:
        """Keep the file at ``path`` (holding job ``job_id``) as a spare, or delete it.

        The spare's name is new (``<id>.<token>``), so it never replaces a spare being taken.

        :raises FileNotFoundError: when there is no file at ``path`` (kept or not), so a
            caller can tell that the job's file was gone.
        """
        if self._count >= self.max_files:
            os.unlink(path)
            return
        name = f"{job_id}.{token}"
        os.rename(path, os.path.join(self.folder, name))
        self._known.append(name)
        self._count += 1

    def trim(self) -> None:
        """Remove spares unused for ``ttl`` seconds, and the oldest beyond ``max_files``."""
        limit = time.time() - self.ttl
        kept: list[tuple[float, str]] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                try:
                    changed = entry.stat().st_ctime  # a rename sets ctime: when it became spare
                except FileNotFoundError:
                    continue
                if changed < limit:
                    remove_if_unlocked(entry.path)  # not a spare a taker holds
                else:
                    kept.append((changed, entry.name))
        if len(kept) > self.max_files:
            kept.sort()
            for _, name in kept[: len(kept) - self.max_files]:
                remove_if_unlocked(os.path.join(self.folder, name))
            kept = kept[len(kept) - self.max_files :]
        names = {name for _, name in kept}
        self._known = [name for name in self._known if name in names]
        self._count = len(kept)

