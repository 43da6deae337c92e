"""How a change is made safe from a power cut: one strategy per ``fsync_method``.

- :class:`Unflushed` (``fsync = false``): nothing is flushed; a process that dies loses nothing,
  a power cut may lose recent changes.
- :class:`FlushedFiles` (``"files"``): each job file is flushed, and with ``fsync_folder`` the
  folder it was renamed into.
- :class:`WriteAhead` (``"journal"``): a record holding the job is flushed to the journal before
  the file is written unflushed; after a reboot the journal is replayed.
- :class:`PublishLogs` (``"log"``, the default): as ``"journal"``, but a single publish is one
  flushed block in a publish log of the process's own (see :mod:`pulpo_file.publog`).

The adapter asks the strategy, never the settings, what a change needs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from pulpo_file.config import FileQueueConfig
from pulpo_file.files import flush
from pulpo_file.journal import Journal, gone_line, intent_line
from pulpo_file.layout import Folder

log = logging.getLogger("pulpo.file")


class Unflushed:
    """``fsync = false``: nothing is flushed."""

    #: Whether a record holding the job is flushed to the journal before its file is written.
    write_ahead = False
    #: Whether a single publish goes to a publish log.
    publish_logs = False
    #: Whether each job file is flushed.
    flush_files = False

    def __init__(self, folder: Folder, journal: Journal) -> None:
        self.folder = folder
        self.journal = journal

    def folder_fd(self, _folder: str) -> int | None:
        """An open descriptor of a folder to flush after a rename into it, or ``None``."""
        return None

    def flush_folder(self, folder: str) -> None:
        """Flush ``folder`` after a rename into it or out of it, when the strategy wants it."""
        fd = self.folder_fd(folder)
        if fd is not None:
            os.fsync(fd)

    def write(self, folder: str, job_id: str, data: bytes, ready_ns: int) -> None:
        """Write the job as ``folder/<id>.json``: all of it or nothing."""
        self.folder.write_as(self.folder.job(folder, job_id), job_id, data, ready_ns,
                             fsync=self.flush_files, folder_fd=self.folder_fd(folder))

    def write_over(self, destination: str, job_id: str, data: bytes, ready_ns: int) -> None:
        """Write the job as ``destination`` (a claimed file, or a pending one in ``tmp/``)."""
        self.folder.write_as(destination, job_id, data, ready_ns, fsync=self.flush_files,
                             folder_fd=None)

    def intent(self, _job_id: str, _ready_ns: int, _data: bytes, _buried: bool = False) -> int:
        """Record the job's content before its file is written; the record's journal segment
        (-1: no record), for :meth:`flush_if_outlived`."""
        return -1

    def intents(self, _batch: Sequence[tuple[str, int, bytes]]) -> int:
        """:meth:`intent` for many jobs ``(id, ready time, data)``, flushed once."""
        return -1

    def gone(self, _job_id: str, _flush: bool = False) -> None:
        """Record that the job is done or deleted."""

    def flush_if_outlived(self, segment: int, folder: str, job_ids: Sequence[str]) -> None:
        """The jobs' files are written; if the journal moved on so far meanwhile (a long
        stall) that their records' segment may be gone, no replay can restore them: flush them
        instead. A checkpoint that removes the segment later than this look flushes the files
        itself."""
        if segment < 0 or not self.journal.may_be_gone(segment):
            return
        for path in [*(self.folder.job(folder, job_id) for job_id in job_ids), folder]:
            flush(path)

    def rewrite_and_move(
        self, source: str, folder: str, job_id: str, data: bytes, ready_ns: int
    ) -> None:
        """Record the job's new content, put it in place of the claimed file ``source`` (one
        atomic rename over it), then rename that file into ``folder``: a process killed at any
        point leaves one copy of the job, never two that two workers could run at once."""
        segment = self.intent(job_id, ready_ns, data, folder == self.folder.buried)
        self.write_over(source, job_id, data, ready_ns)
        os.rename(source, self.folder.job(folder, job_id))
        self.flush_folder(folder)
        self.flush_if_outlived(segment, folder, [job_id])

    def close(self) -> None:
        """Close what the strategy holds open."""


class FlushedFiles(Unflushed):
    """``fsync_method = "files"``: each job file is flushed, and its folder with
    ``fsync_folder``."""

    flush_files = True

    def __init__(self, folder: Folder, journal: Journal, flush_folders: bool) -> None:
        super().__init__(folder, journal)
        self._flush_folders = flush_folders
        self._fds: dict[str, int] = {}

    def folder_fd(self, folder: str) -> int | None:
        if not self._flush_folders:
            return None
        fd = self._fds.get(folder)
        if fd is None:
            fd = self._fds[folder] = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                continue
        self._fds.clear()


class WriteAhead(Unflushed):
    """``fsync_method = "journal"``: a flushed journal record per change."""

    write_ahead = True

    def intent(self, job_id: str, ready_ns: int, data: bytes, buried: bool = False) -> int:
        with self.folder.lock:
            return self.journal.append(intent_line(job_id, ready_ns, data, buried), flush=True)

    def intents(self, batch: Sequence[tuple[str, int, bytes]]) -> int:
        lines = b"".join(intent_line(job_id, ready_ns, data) for job_id, ready_ns, data in batch)
        with self.folder.lock:
            return self.journal.append(lines, flush=True)

    def gone(self, job_id: str, flush: bool = False) -> None:
        try:
            with self.folder.lock:
                self.journal.append(gone_line(job_id), flush=flush)
        except OSError as error:
            log.warning("could not record in the journal that job %s is gone: %s",
                        job_id, error.strerror or error)


class PublishLogs(WriteAhead):
    """``fsync_method = "log"``: as ``"journal"``, and a single publish goes to a publish log."""

    publish_logs = True


def durability_for(settings: FileQueueConfig, folder: Folder, journal: Journal) -> Unflushed:
    """The strategy the settings ask for."""
    if not settings.fsync:
        return Unflushed(folder, journal)
    if settings.fsync_method == "files":
        return FlushedFiles(folder, journal, settings.fsync_folder)
    if settings.fsync_method == "journal":
        return WriteAhead(folder, journal)
    return PublishLogs(folder, journal)
