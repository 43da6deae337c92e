"""``publish_many`` all or nothing: a batch is written aside, committed by one rename, then moved.

1. Every job of the batch is written as ``tmp/batch-<token>/<id>.json`` (no worker looks there).
2. The folder is renamed ``tmp/batch-<token>.ready``: the commit, one atomic rename.
3. With the write-ahead journal, the batch's records are flushed, in one write: from then on a
   power cut cannot lose the batch either.
4. Its files are renamed into ``ready/`` and announced, then the folder is removed.

A publisher killed before the commit leaves nothing any worker sees, and no record a replay
could bring back; the folder goes with the stale temporaries (an hour later). Killed after the
commit, it leaves a batch that any process finishes (step 4): its publisher at once, a worker
(once the batch is ``ORPHAN_S`` old, so that a publisher can still take back a batch whose
records it could not write) when it starts (before any replay, so that a record restores a
file a power cut damaged) or when it rescans. So a batch is queued whole or not at all,
whatever instant the publisher is killed at. A power cut before ``publish_many`` returned may
leave part of a committed batch, its damaged files buried as unreadable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence

from pulpo_file.durability import Unflushed
from pulpo_file.ids import is_id
from pulpo_file.index import ReadyIndex
from pulpo_file.layout import JSON, Folder

#: Seconds a committed batch is left to its publisher before other processes finish it.
ORPHAN_S = 10.0
#: The prefix of a batch's folder in ``tmp/``; a committed batch's folder ends in ``COMMITTED``.
PREFIX = "batch-"
COMMITTED = ".ready"


class Batches:
    """Writes, commits and finishes batches for one adapter."""

    def __init__(self, folder: Folder, durability: Unflushed, index: ReadyIndex) -> None:
        self.folder = folder
        self.durability = durability
        self.index = index

    def publish(self, batch: Sequence[tuple[str, int, bytes]]) -> None:
        """Queue every job ``(id, ready time, data)`` of ``batch``, or none of them.

        :raises OSError: when the batch could not be written or committed (none is queued).
        """
        folder = self.folder
        aside = os.path.join(folder.tmp, PREFIX + folder.token())
        committed = aside + COMMITTED
        os.mkdir(aside, 0o700)
        try:
            for job_id, ready_ns, data in batch:
                self.durability.write_over(os.path.join(aside, job_id + JSON), job_id, data,
                                           ready_ns)
            os.rename(aside, committed)
        except BaseException:
            shutil.rmtree(aside, ignore_errors=True)
            raise
        try:
            segment = self.durability.intents(batch)
        except BaseException:
            # Not recorded: taken back whole (other processes leave a young batch alone).
            shutil.rmtree(committed, ignore_errors=True)
            raise
        self.finish(committed)
        with contextlib.suppress(OSError):
            self.durability.flush_if_outlived(segment, folder.ready, [j for j, _, _ in batch])

    def finish(self, committed: str) -> int:
        """Move a committed batch's jobs into ``ready/`` and announce them; how many."""
        folder = self.folder
        moved: list[tuple[str, int]] = []
        try:
            names = os.listdir(committed)
        except FileNotFoundError:
            return 0  # finished by another process
        for name in names:
            job_id = name[: -len(JSON)]
            if not name.endswith(JSON) or not is_id(job_id):
                continue
            source = os.path.join(committed, name)
            try:
                ready_ns = os.stat(source).st_mtime_ns
                os.rename(source, folder.job(folder.ready, job_id))
            except FileNotFoundError:
                continue  # moved by another process finishing the same batch
            moved.append((job_id, ready_ns))
        self.durability.flush_folder(folder.ready)
        self.index.announce(moved)
        with contextlib.suppress(OSError):
            os.rmdir(committed)
        return len(moved)

    def tidy(self, abandoned_before_ns: int | None) -> None:
        """Finish every committed batch left in ``tmp/``; with ``abandoned_before_ns``, also
        remove the uncommitted ones older than that (their publishers died before the
        commit)."""
        with os.scandir(self.folder.tmp) as entries:
            found = [(entry.path, entry.name) for entry in entries
                     if entry.name.startswith(PREFIX) and entry.is_dir(follow_symlinks=False)]
        orphaned_ns = time.time_ns() - int(ORPHAN_S * 1e9)
        for path, name in found:
            if name.endswith(COMMITTED):
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_ctime_ns < orphaned_ns:
                        self.finish(path)
            elif abandoned_before_ns is not None:
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(path).st_ctime_ns < abandoned_before_ns:
                        shutil.rmtree(path, ignore_errors=True)
