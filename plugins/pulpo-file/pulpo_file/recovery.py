"""Putting the folder right: after a reboot, after a power cut's lost renames, after dead writers.

- After a reboot the first worker replays the journal's write-ahead records and the publish logs
  from their last flushed position (:meth:`Recovery.after_reboot`): jobs flushed there whose
  files a power cut lost or damaged are written again, jobs recorded as gone are removed.
- A file that holds another job than its name says (a spare reused for a newer job whose data
  reached the disk while the renames that moved it did not) is moved to where its content
  belongs (:meth:`Recovery.misplaced`).
- What writers that died long ago left in ``tmp/`` goes, except a job taken from a publish log
  whose rename into ``ready/`` was lost: that goes to ``ready/`` (:meth:`Recovery.pending`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time

from pulpo_core.message import BURIED_REASON, Message
from pulpo_file import boot
from pulpo_file.durability import Unflushed
from pulpo_file.files import open_private
from pulpo_file.ids import check_id, is_id
from pulpo_file.index import ReadyIndex
from pulpo_file.journal import BURIED, GONE, Journal, Record
from pulpo_file.layout import PENDING, REASON, Folder, Unreadable, parse_reserved, publish_ready_ns
from pulpo_file.materialize import PublishLogSet

log = logging.getLogger("pulpo.file")

#: Leftovers in ``tmp/`` older than this are files whose writer died; they were never jobs.
STALE_TEMPORARY_S = 3600.0


def stale_before_ns() -> int:
    """What was changed in ``tmp/`` before this instant was left by a writer that died."""
    return int((time.time() - STALE_TEMPORARY_S) * 1e9)


class Recovery:
    """The repairs of one adapter."""

    def __init__(
        self, folder: Folder, durability: Unflushed, journal: Journal, index: ReadyIndex,
        logs: PublishLogSet,
    ) -> None:
        self.folder = folder
        self.durability = durability
        self.journal = journal
        self.index = index
        self.logs = logs

    def after_reboot(self, until: tuple[int, int]) -> None:
        """After a reboot, replay the write-ahead records of the journal (up to ``until``) and
        the publish logs. Only the first worker after a reboot replays (the others wait on the
        marker's lock, then find it up to date)."""
        folder = self.folder
        fd = open_private(os.path.join(folder.base, boot.MARKER), os.O_RDWR, folder.fix_mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if boot.is_this_boot(os.read(fd, 4096)):
                return
            # A record written since the boot is a live process's: its publish may be writing
            # the job's file right now, and must not meet a copy written by the replay.
            booted_ns = int(boot.boot_instant() * 1e9)
            last: dict[str, Record] = {}
            for record in self.journal.records(until):
                if record.time_ns >= booted_ns and record.kind != GONE:
                    continue  # (that a job is gone holds whenever it was recorded)
                known = last.get(record.job_id)
                if known is None or record.time_ns >= known.time_ns:
                    last[record.job_id] = record
            replayed = sum(self._replay(record) for record in last.values())
            if replayed:
                log.warning("restored %d job(s) from the journal after a reboot", replayed)
            # Jobs published into publish logs since their last flushed position: made files
            # again where a power cut took their files (not those the journal says are gone).
            skipping = {job_id for job_id, record in last.items() if record.kind == GONE}
            skipping.update(parsed[0] for name in os.listdir(folder.reserved)
                            if (parsed := parse_reserved(name)) is not None)
            for log_file in list(self.logs.known().values()):
                self.logs.materialize(log_file, wait=True, replay_skipping=skipping)
            self.pending(before_ns=booted_ns)
            os.ftruncate(fd, 0)
            os.pwrite(fd, boot.this_boot().encode("ascii") + b"\n", 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _replay(self, record: Record) -> bool:
        """Make the files agree with a job's last record; whether anything was changed."""
        folder, job_id = self.folder, record.job_id
        if os.path.exists(folder.job(folder.buried, job_id) + REASON):
            return False  # set aside as unreadable before the reboot: left for the operator
        copies: list[tuple[str, bool]] = []  # (path, holds this job readably)
        for path in folder.candidates(job_id):
            try:
                message, _ = folder.read(path)
            except FileNotFoundError:
                continue
            except Unreadable:
                copies.append((path, False))
                continue
            if message.id in (None, job_id):
                copies.append((path, True))
        if record.kind == GONE:
            for path, _ in copies:
                folder.discard(path, job_id)
            return bool(copies)
        assert record.job is not None
        try:
            if Message.from_json(record.job).id != job_id:
                return False
        except ValueError:
            return False  # cut short by the power cut: that publish never returned
        buried = record.kind == BURIED
        expected = (folder.buried,) if buried else (folder.ready, folder.reserved)
        if any(ok and os.path.dirname(path) in expected for path, ok in copies):
            return False
        target = folder.buried if buried else folder.ready
        self.durability.write(target, job_id, record.job, record.ready_ns)
        destination = folder.job(target, job_id)
        for path, _ in copies:
            if path != destination:
                folder.discard(path, job_id)
        if not buried:
            self.index.announce([(job_id, record.ready_ns)])
        return True

    def misplaced(self, path: str, job_id: str, message: Message) -> bool:
        """Put right a file holding another job than its name says (only after a power cut);
        whether it did."""
        if message.id is None or message.id == job_id or not is_id(message.id):
            return False
        self._restore(path, message)
        return True

    def _restore(self, path: str, message: Message) -> None:
        """Move the file at ``path`` to where its content (job ``message.id``) belongs."""
        folder, job_id = self.folder, check_id(message.id)
        log.warning("job file %s holds job %s (renames lost in a power cut): moving it",
                    path, job_id)
        if folder.exists(job_id) or folder.reserved_anywhere(job_id):
            folder.discard(path, job_id)  # the job lives on under its own name; this is older
            return
        buried = BURIED_REASON in message.extra_header
        target = folder.buried if buried else folder.ready
        ready_ns = publish_ready_ns(job_id, message)
        os.utime(path, ns=(ready_ns, ready_ns))
        os.rename(path, folder.job(target, job_id))
        if not buried:
            self.index.announce([(job_id, ready_ns)])

    def stale_temporaries(self) -> None:
        """Remove what writers that died long ago left in ``tmp/`` (but see :meth:`pending`)."""
        self.pending(stale_before_ns(), remove_others=True)

    def pending(self, before_ns: int, remove_others: bool = False) -> None:
        """A job taken from a publish log whose rename into ``ready/`` was lost (a power cut,
        or a process that died long ago) is a whole job: it goes to ``ready/``, unless it
        lives on elsewhere. Only files changed before ``before_ns``: none is still being
        written. With ``remove_others``, the other files changed before then go."""
        folder = self.folder
        with os.scandir(folder.tmp) as entries:
            for entry in entries:
                job_id = entry.name[: -len(PENDING)]
                is_pending = entry.name.endswith(PENDING)
                if is_pending and not is_id(job_id):
                    continue  # not a name this adapter writes: left alone
                try:
                    status = entry.stat()
                    if status.st_ctime_ns >= before_ns or not (is_pending or remove_others):
                        continue
                    if not is_pending or folder.exists(job_id) or folder.reserved_anywhere(job_id):
                        os.unlink(entry.path)
                    else:
                        self.logs.finish_pending(job_id, status.st_mtime_ns)
                except OSError:
                    continue
