"""greenstalk's client with pipelined puts, reserves and deletes (see :class:`PipelinedClient`)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence

import greenstalk

from pulpo_beanstalkd.socket_reader import SocketReader

log = logging.getLogger("pulpo.beanstalkd")


def describe(error: BaseException) -> str:
    """A short text for a greenstalk or socket error (greenstalk's own carry no message)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class PipelinedClient(greenstalk.Client[bytes]):
    """greenstalk's client, plus deletes whose answer is read with the next command's.

    beanstalkd answers each connection's commands in order, so a worker sends the delete of the
    job it finished and, right after, the reserve of the next one: one wait for the server per
    job instead of two. The answers to the deletes are read before the next command's answer.
    """

    def __init__(self, sock: socket.socket, use: str, watch: str | Sequence[str],
                 spin_wait: float = 0.0) -> None:
        #: The jobs whose delete is sent and not answered yet, oldest first,
        #: each with its body (to tell it from another job with its id after a restart).
        self.pending: list[tuple[int, bytes]] = []
        # greenstalk sends no command for the default tube and watch list; ours follow once
        # its file object has been replaced by the leaner reader.
        super().__init__(sock, encoding=None)
        self._reader.close()
        self._reader = SocketReader(sock, spin_wait)  # type: ignore[assignment]
        if use != greenstalk.DEFAULT_TUBE:
            self.use(use)
        watched = [watch] if isinstance(watch, str) else list(watch)
        for tube in watched:
            if tube != greenstalk.DEFAULT_TUBE:
                self.watch(tube)
        if greenstalk.DEFAULT_TUBE not in watched:
            self.ignore(greenstalk.DEFAULT_TUBE)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except BlockingIOError:  # SO_SNDTIMEO ran out
            raise TimeoutError("beanstalkd took no data within the socket timeout") from None

    def _send_cmd(self, cmd: bytes, expected: bytes) -> list[bytes]:
        # Overrides greenstalk's: the command goes out first, then the answers still owed for
        # earlier deletes are read, then this command's answer.
        self._send(cmd + b"\r\n")
        if self.pending:
            self.read_pending()
        return greenstalk._parse_response(self._reader.readline(), expected)

    def put_raw(self, body: bytes, priority: int, delay: int, ttr: int) -> int:
        """``put``: the new job's id (greenstalk's ``put``, leaner)."""
        self._send(b"put %d %d %d %d\r\n%b\r\n" % (priority, delay, ttr, len(body), body))
        if self.pending:
            self.read_pending()
        line = self._reader.readline()
        if line.startswith(b"INSERTED "):
            return int(line[9:])
        (job_id,) = greenstalk._parse_response(line, b"INSERTED")  # raises the server's error
        return int(job_id)

    def put_stream(
        self,
        count: int,
        command_of: Callable[[int], bytes],
        outcomes: list[int | greenstalk.BeanstalkdError],
        per_write: int,
    ) -> None:
        """Put jobs ``len(outcomes)`` to ``count - 1``, appending each one's id or error.

        ``command_of(i)`` gives job ``i``'s ``put`` command. Each write carries ``per_write``
        puts and goes out before the answers to the previous write are read, so the server
        stores one batch while the next is being prepared. Called again after a broken
        connection, it goes on from the first job whose answer was not read.
        """
        unanswered = 0
        for first in range(len(outcomes), count, per_write):
            last = min(first + per_write, count)
            try:
                data = b"".join(command_of(number) for number in range(first, last))
            except BaseException:
                self._read_puts(unanswered, outcomes)  # keep the connection in step
                raise
            self._send(data)
            if self.pending:
                self.read_pending()
            self._read_puts(unanswered, outcomes)
            unanswered = last - first
        self._read_puts(unanswered, outcomes)

    def _read_puts(self, count: int, outcomes: list[int | greenstalk.BeanstalkdError]) -> None:
        for _ in range(count):
            try:
                (job_id,) = greenstalk._parse_response(self._reader.readline(), b"INSERTED")
                outcomes.append(int(job_id))
            except greenstalk.BeanstalkdError as error:
                outcomes.append(error)

    def reserve_raw(self, timeout: int) -> tuple[int, bytes]:
        """``reserve-with-timeout``: the job's id and body (greenstalk's ``reserve``, leaner)."""
        self._send(b"reserve-with-timeout %d\r\n" % timeout)
        if self.pending:
            self.read_pending()
        line = self._reader.readline()
        if line.startswith(b"RESERVED "):
            _, job_id, size = line.split()
            return int(job_id), self._read_chunk(int(size))
        greenstalk._parse_response(line, b"RESERVED")  # raises the server's error
        raise greenstalk.UnknownResponseError(line.strip(), [])

    def send_delete(self, job_id: int, body: bytes) -> None:
        """Send ``delete`` without waiting for its answer, which is read after the next
        command's: a worker waits for the server once per job (its reserve), not twice."""
        self.pending.append((job_id, body))  # listed first: if the send fails, it is resent
        self._send(b"delete %d\r\n" % job_id)

    def read_pending(self) -> None:
        """Read the answers owed for the deletes sent so far; log the jobs not deleted."""
        while self.pending:
            job_id, _ = self.pending[0]  # listed until read, in case the line drops
            try:
                greenstalk._parse_response(self._reader.readline(), b"DELETED")
            except greenstalk.NotFoundError:
                log.warning(
                    "job %d was done but not deleted: its ttr ran out before it was, so "
                    "beanstalkd released it and it may run again", job_id)
            except greenstalk.Error as error:
                log.warning("job %d was done but not deleted: beanstalkd answered %s",
                            job_id, describe(error))
            del self.pending[0]
