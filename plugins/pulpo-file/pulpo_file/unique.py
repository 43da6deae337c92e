"""Unique publish for the file queue: an atomic claim of a key by one job, across processes.

A claim is a small JSON file in ``<base_path>/unique/``, named by the SHA-256 of the key, that
records the key, the job id and until when ``unique_for`` holds it. Claims are made under an
exclusive ``flock`` of the claim's own lock file, so checking the holder and queueing the job are
one step for every publisher on the machine; the kernel drops the lock of a process that dies, so
a crash never leaves a key locked. A claim whose job is gone (committed, deleted, or buried) and
whose ``unique_for`` has passed is stale: the next publisher of that key takes it over.

A publisher killed after its job was queued and before the claim was written leaves that job
unclaimed: the next publisher of the key queues a second one (the only way to a duplicate).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from pulpo_core.message import BURIED_REASON, Message
from pulpo_file.files import make_private_folder

#: One claim in this many triggers a sweep of the claims that no longer hold anything.
SWEEP_EVERY = 200

Peek = Callable[[str], Message | None]
Enqueue = Callable[[Message], Message]


def _live(peek: Peek, job_id: str) -> Message | None:
    job = peek(job_id)
    if job is None or BURIED_REASON in job.extra_header:
        return None
    return job


def _lock(path: str) -> int:
    """An exclusive flock on the lock file at ``path``, on the inode that is there now."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass  # swept while we waited: lock the new one
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


class UniqueClaims:
    """Key → job claims in ``folder`` (0700, files 0600)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        make_private_folder(folder)

    def _paths(self, key: str) -> tuple[str, str]:
        name = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return str(self.folder / f"{name}.json"), str(self.folder / f"{name}.lock")

    def _read(self, path: str) -> tuple[str, float] | None:
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
            return str(data["job_id"]), float(data["until"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no claim, or one cut short by a crash: not a holder

    def holder(self, key: str, peek: Peek) -> Message | None:
        """The job that holds ``key`` (live, or within ``unique_for``), or ``None``."""
        claim = self._read(self._paths(key)[0])
        if claim is None:
            return None
        job_id, until = claim
        job = _live(peek, job_id)
        if job is None and until > time.time():
            return peek(job_id) or Message(id=job_id)
        return job

    def enqueue_unique(
        self, message: Message, peek: Peek, enqueue: Enqueue
    ) -> tuple[Message, bool]:
        """Queue ``message`` unless its key is held; ``(job, created)``."""
        key = message.unique_key
        if key is None:
            return enqueue(message), True
        path, lock_path = self._paths(key)
        fd = _lock(lock_path)
        try:
            held = self.holder(key, peek)
            if held is not None:
                return held, False
            job = enqueue(message)
            record = json.dumps(
                {"key": key, "job_id": job.id, "until": time.time() + (message.unique_for or 0)}
            )
            temporary = f"{path}.{os.getpid()}.tmp"
            with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(record)
            os.replace(temporary, path)
        finally:
            os.close(fd)
        if random.randrange(SWEEP_EVERY) == 0:
            self.sweep(peek)
        return job, True

    def sweep(self, peek: Peek) -> int:
        """Remove the claims that hold nothing any more (and their lock files); how many."""
        removed = 0
        now = time.time()
        for entry in os.scandir(self.folder):
            if not entry.name.endswith(".json"):
                continue
            claim = self._read(entry.path)
            if claim is None or claim[1] > now or _live(peek, claim[0]) is not None:
                continue
            lock_path = entry.path[: -len(".json")] + ".lock"
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if self._read(entry.path) == claim:  # nobody took it over meanwhile
                    os.unlink(entry.path)
                    os.unlink(lock_path)  # lockers of this inode see it gone and start again
                    removed += 1
            except OSError:
                pass  # another publisher holds it right now: it is in use
            finally:
                os.close(fd)
        return removed
