"""The queue's folder: where each state lives, the names of job files, reading and moving them.

Layout (every folder 0700, every file 0600)::

    <base_path>/
        ready/     <id>.json                        ready and delayed jobs; mtime = ready time
        reserved/  <id>.<lease deadline ms>.<token>.json   claimed jobs
        buried/    <id>.json [+ <id>.json.reason]   buried jobs (the reason is in the header;
                                                    a file that could not be read has a .reason)
        archive/   <id>.json                        successful jobs, with ``enable_archive``
        spare/     <id>.<token>                     finished jobs' files, kept for reuse
        journal/   0000000000.log ...               "job X is ready at T", one line per event
        logs/      <n>.log, <n>.pos                 publish logs (``fsync_method = "log"``)
        tmp/                                        files being written
        unique/                                     unique keys' claims (see pulpo_file.unique)
        boot_id                                     the boot the queue was last recovered in

Every state change is a ``rename``, which is atomic, so a job is claimed by exactly one process
(the others' renames fail with "no such file") and no global lock is needed. New content is
written under ``tmp/`` and renamed into place, so a crash leaves the whole file or nothing; the
file written is preferably a spare (see :mod:`pulpo_file.spares`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs

from pulpo_core.errors import AdapterError
from pulpo_core.message import BURIED_REASON, Message
from pulpo_file.config import FileQueueConfig
from pulpo_file.files import current_umask, make_private_folder, open_private, write_job_file
from pulpo_file.ids import is_id
from pulpo_file.spares import SparePool

log = logging.getLogger("pulpo.file")

JSON = ".json"
REASON = ".reason"
#: A job taken from a publish log, in ``tmp/`` between its record and ``ready/``.
PENDING = ".pending"
#: The most bytes of an unreadable file that ``peek`` shows.
RAW_LIMIT = 64 * 1024


def reserved_name(job_id: str, deadline_ms: int, token: str) -> str:
    return f"{job_id}.{deadline_ms}.{token}{JSON}"


def parse_reserved(name: str) -> tuple[str, int, str] | None:
    """``(id, deadline ms, token)`` of a reserved file's name, or ``None``."""
    parts = name.split(".")
    if len(parts) != 4 or parts[3] != "json" or not is_id(parts[0]) or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def publish_ready_ns(job_id: str, message: Message) -> int:
    """When a job written by ``publish`` is due: its delay, else its creation time."""
    if message.delay is not None:
        return int(message.delay.timestamp() * 1e9)
    return int(job_id[:16], 16) * 1000


def without_reason(message: Message) -> Message:
    if BURIED_REASON not in message.extra_header:
        return message
    extras = {k: v for k, v in message.extra_header.items() if k != BURIED_REASON}
    return attrs.evolve(message, extra_header=extras)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn an ``OSError`` into an ``AdapterError``: ``"<what>: <the system's reason>"``."""
    try:
        yield
    except OSError as error:
        raise AdapterError(f"{what}: {error.strerror or error}") from error


class Unreadable(Exception):
    """A job file that cannot be read or parsed; the message says why."""


class Folder:
    """The queue's folders and the job files in them, shared by the adapter's parts."""

    def __init__(self, settings: FileQueueConfig) -> None:
        self.settings = settings
        self.path = Path(os.path.expanduser(settings.base_path)).absolute()
        self.base = str(self.path)
        self.fix_mode = bool(current_umask() & 0o600)
        self.rng = random.Random(os.urandom(16))
        self.lock = threading.RLock()
        self.ready = str(self.path / "ready")
        self.reserved = str(self.path / "reserved")
        self.buried = str(self.path / "buried")
        self.archive = str(self.path / "archive")
        self.spare = str(self.path / "spare")
        self.tmp = str(self.path / "tmp")
        self.journal = str(self.path / "journal")
        self.logs = str(self.path / "logs")
        folders = [self.ready, self.reserved, self.buried, self.spare, self.tmp, self.journal,
                   self.logs]
        if settings.enable_archive:
            folders.append(self.archive)
        try:
            for folder in folders:
                make_private_folder(Path(folder))
        except OSError as error:
            raise AdapterError(
                f"the file queue cannot create its folder {self.base!r}: "
                f"{error.strerror or error}"
            ) from error
        self.spares = SparePool(self.spare, settings.max_spare_files, settings.spare_ttl, self.rng)

    def token(self) -> str:
        return f"{self.rng.getrandbits(32):08x}"

    def job(self, folder: str, job_id: str) -> str:
        """The path of job ``job_id``'s file in ``folder`` (ready, buried, archive)."""
        return os.path.join(folder, job_id + JSON)

    def write_as(
        self, destination: str, job_id: str, data: bytes, ready_ns: int, *, fsync: bool,
        folder_fd: int | None,
    ) -> None:
        """Write a job (its JSON) as ``destination`` through ``tmp/``: all of it or nothing."""
        with self.lock:
            temporary = os.path.join(self.tmp, f"{job_id}.{self.token()}.tmp")
            spare = self.spares.take()
        write_job_file(destination, data, temporary=temporary, spare=spare, mtime_ns=ready_ns,
                       fsync=fsync, folder_fd=folder_fd, fix_mode=self.fix_mode)

    def read(self, path: str) -> tuple[Message, int]:
        """The message in a job file and the file's mtime; ``Unreadable`` when it is not one.

        :raises FileNotFoundError: when there is no such file.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise Unreadable(f"the file cannot be opened: {error.strerror or error}") from None
        try:
            status = os.fstat(fd)
            data = os.read(fd, status.st_size + 1)
            if len(data) > status.st_size:  # it grew since the fstat: read the rest
                while chunk := os.read(fd, 1 << 16):
                    data += chunk
        except OSError as error:
            raise Unreadable(f"the file cannot be read: {error.strerror or error}") from None
        finally:
            os.close(fd)
        try:
            return Message.from_json(data), status.st_mtime_ns
        except Exception as error:  # whatever the bytes are (even nested too deep to parse)
            raise Unreadable(f"the file is not a job: {error}") from None

    def exists(self, job_id: str) -> bool:
        """Whether the job is ready, delayed or buried."""
        return os.path.exists(self.job(self.ready, job_id)) or os.path.exists(
            self.job(self.buried, job_id)
        )

    def reserved_anywhere(self, job_id: str) -> bool:
        """Whether any process (this one or another) has a claim on the job."""
        return any(name.startswith(job_id + ".") for name in os.listdir(self.reserved))

    def candidates(self, job_id: str) -> list[str]:
        """Every path the job's file may have: ready, each claim of it, buried."""
        paths = [self.job(self.ready, job_id)]
        paths += [os.path.join(self.reserved, name) for name in os.listdir(self.reserved)
                  if name.startswith(job_id + ".")]
        paths.append(self.job(self.buried, job_id))
        return paths

    def discard(self, path: str, job_id: str) -> None:
        """A job's file is no longer needed: keep it as a spare (or delete it)."""
        with contextlib.suppress(FileNotFoundError):
            self.spares.give(path, job_id, self.token())

    def set_aside(self, path: str, name: str, reason: str) -> None:
        """Move an unreadable file to ``buried/`` with a ``.reason`` next to it; never delete,
        nor replace a file set aside before (the later one gets a suffix)."""
        log.warning("job file %s is set aside as buried: %s", path, reason)
        destination = os.path.join(self.buried, name)
        while True:
            try:
                os.link(path, destination)  # unlike a rename, never replaces what is there
                break
            except FileExistsError:
                destination = os.path.join(self.buried, f"{name}.{self.token()}")
            except FileNotFoundError:
                return  # moved or removed by another process meanwhile
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.write_reason(destination, reason)

    def write_reason(self, path: str, reason: str) -> None:
        """Write ``reason`` next to the buried file ``path``."""
        try:
            with open(
                open_private(path + REASON, os.O_WRONLY | os.O_TRUNC, self.fix_mode),
                "w",
                encoding="utf-8",
            ) as note:
                note.write(reason + "\n")
        except OSError as error:
            log.warning("could not write the reason next to %s: %s", path, error)

    @staticmethod
    def reason_of(path: str) -> str | None:
        try:
            with open(path + REASON, encoding="utf-8", errors="replace") as note:
                return note.read().strip()
        except OSError:
            return None

    @staticmethod
    def raw(path: str) -> str | None:
        """The start of an unreadable file, as text, for ``peek``."""
        try:
            with open(path, "rb") as file:
                return file.read(RAW_LIMIT).decode("utf-8", errors="replace").rstrip()
        except OSError:
            return None

    @staticmethod
    def remove_reason(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + REASON)
