"""The operator's commands on a file queue: peek, delete, kick and stats.

Each first makes files of the jobs still in publish logs, so none is missed, and reads the
folders as any process may while workers run: a job moving between folders is looked for twice.
"""

from __future__ import annotations

import contextlib
import os
import time

from pulpo_core.message import BURIED_REASON, Message
from pulpo_file.durability import Unflushed
from pulpo_file.ids import is_id
from pulpo_file.layout import JSON, REASON, Folder, Unreadable, without_reason
from pulpo_file.leases import Leases
from pulpo_file.materialize import PublishLogSet
from pulpo_file.recovery import Recovery


class Operations:
    """peek, delete, kick and stats over one adapter's parts."""

    def __init__(
        self, folder: Folder, durability: Unflushed, logs: PublishLogSet, leases: Leases,
        recovery: Recovery,
    ) -> None:
        self.folder = folder
        self.durability = durability
        self.logs = logs
        self.leases = leases
        self.recovery = recovery

    def peek(self, job_id: str) -> Message | None:
        """The job in any live state (ready, delayed, reserved, buried); ``None`` if unknown."""
        self.logs.materialize_waiting()
        for _ in range(2):  # a job moving between folders is found on the second round
            for path in self.folder.candidates(job_id):
                found = self.peek_file(job_id, path)
                if found is not None:
                    return found
        return None

    def peek_file(self, job_id: str, path: str) -> Message | None:
        """The job in the file ``path`` (an unreadable one with its bytes), ``None`` when the
        file is gone or holds another job."""
        folder = self.folder
        try:
            message, _ = folder.read(path)
        except FileNotFoundError:
            return None
        except Unreadable as error:
            reason = folder.reason_of(path) or str(error)
            raw = folder.raw(path)
            if raw is None:
                return None
            return Message(id=job_id, body={"raw": raw}, extra_header={BURIED_REASON: reason})
        if message.id != job_id:
            return None  # the file holds another job (see Recovery.misplaced)
        return message

    def delete(self, job_id: str) -> bool:
        """Delete the job in any state; ``False`` when there is no such job."""
        folder = self.folder
        self.logs.materialize_waiting()
        for _ in range(2):
            for path in folder.candidates(job_id):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                self.durability.flush_folder(os.path.dirname(path))
                if path.startswith(folder.buried):
                    folder.remove_reason(path)
                self.leases.held.pop(job_id, None)
                self.durability.gone(job_id, True)
                return True
        return False

    def kick(self, bound: int | None) -> int:
        """Move up to ``bound`` buried jobs (all when ``None``), oldest first, back to ready.

        A buried file that still cannot be read stays buried (fix it by hand, then kick).
        """
        kicked = 0
        names = sorted(name for name in os.listdir(self.folder.buried)
                       if name.endswith(JSON) and is_id(name[: -len(JSON)]))
        for name in names:
            if bound is not None and kicked >= bound:
                break
            if self._kick_one(name):
                kicked += 1
        return kicked

    def _kick_one(self, name: str) -> bool:
        job_id = name[: -len(JSON)]
        buried = os.path.join(self.folder.buried, name)
        claimed = self.leases.move_lease(job_id)
        try:
            os.rename(buried, claimed)
        except FileNotFoundError:
            return False  # kicked or deleted by another process
        try:
            message, _ = self.folder.read(claimed)
        except (Unreadable, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.rename(claimed, buried)
            return False
        if self.recovery.misplaced(claimed, job_id, message):
            return False
        self.leases.move_to_ready(job_id, without_reason(message), time.time_ns(), claimed)
        self.folder.remove_reason(buried)
        return True

    def stats(self) -> dict[str, int]:
        """Counts by state, from file names and modification times alone (no file is read)."""
        folder = self.folder
        self.logs.materialize_waiting()
        now_ns = time.time_ns()
        ready = delayed = 0
        with os.scandir(folder.ready) as entries:
            for entry in entries:
                try:
                    if entry.stat().st_mtime_ns > now_ns:
                        delayed += 1
                    else:
                        ready += 1
                except FileNotFoundError:
                    continue
        reserved = len(os.listdir(folder.reserved))
        buried = sum(not name.endswith(REASON) for name in os.listdir(folder.buried))
        counts = {
            "ready": ready,
            "delayed": delayed,
            "reserved": reserved,
            "buried": buried,
            "total": ready + delayed + reserved + buried,
            "spare": len(os.listdir(folder.spare)),
        }
        if folder.settings.enable_archive:
            counts["archived"] = len(os.listdir(folder.archive))
        return counts
