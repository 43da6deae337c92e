"""One connection to beanstalkd that outlives server restarts.

greenstalk speaks the protocol; this module adds what a long-running worker needs around it: a
socket timeout (a half-open connection fails instead of hanging), reconnection with back-off that
issues ``use`` and ``watch`` again, a lock (greenstalk's client is not thread-safe and the lease
heartbeat touches from another thread), and pipelined deletes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import greenstalk

from pulpo_beanstalkd.settings import BeanstalkdSettings
from pulpo_core.errors import AdapterError

log = logging.getLogger("pulpo.beanstalkd")

T = TypeVar("T")


class SocketReader:
    """beanstalkd's answers, read straight off the socket into a buffer of our own.

    It stands in for the file object greenstalk reads through (the same ``readline`` and
    ``read``) at less cost per answer, which shows on a worker's or publisher's hot path.
    The socket is in blocking mode with kernel timeouts (see :func:`set_timeouts`): a read
    that waits longer fails with ``TimeoutError``, as with Python's socket timeouts, but
    without the ``poll`` those cost before every read and write.

    A server on the same host or network answers within tens of microseconds, less than it
    takes the kernel to put the waiting process to sleep and wake it up again. So a read first
    polls the socket for up to ``spin_wait`` seconds, then sleeps until the answer comes. When
    an answer takes longer than that (an empty tube's reserve, a distant server), the next
    :data:`COOLDOWN` reads sleep at once: spinning costs CPU only where it pays.
    """

    __slots__ = ("_buffer", "_cooldown", "_sock", "_spin_wait")

    def __init__(self, sock: socket.socket, spin_wait: float = 0.0) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._spin_wait = spin_wait
        self._cooldown = 0

    def _recv(self) -> bytes:
        sock = self._sock
        if self._spin_wait:
            if self._cooldown:
                self._cooldown -= 1
            else:
                deadline = time.perf_counter() + self._spin_wait
                while True:
                    try:
                        data = sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                        break
                    except BlockingIOError:
                        if time.perf_counter() > deadline:
                            self._cooldown = COOLDOWN
                            data = b""
                            break
                if data:
                    return data
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:  # SO_RCVTIMEO ran out
            raise TimeoutError("beanstalkd did not answer within the socket timeout") from None
        if not data:
            raise ConnectionError("beanstalkd closed the connection")
        return data

    def readline(self) -> bytes:
        """The next line, with its line ending."""
        buffer = self._buffer
        if not buffer:  # the common case: the whole answer comes in one read
            data = self._recv()
            if data.endswith(b"\n") and data.find(b"\n") == len(data) - 1:
                return data
            buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) < 0:
            start = len(buffer)
            buffer += self._recv()
        line = bytes(buffer[: end + 1])
        del buffer[: end + 1]
        return line

    def read(self, size: int) -> bytes:
        """The next ``size`` bytes."""
        buffer = self._buffer
        while len(buffer) < size:
            buffer += self._recv()
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def close(self) -> None:
        """Drop what is buffered (the socket is closed by its owner)."""
        self._buffer.clear()


#: The most a single read takes off the socket.
RECV_SIZE = 65536
#: How many reads sleep at once after an answer took longer than the spin wait.
COOLDOWN = 64


def set_timeouts(sock: socket.socket, seconds: float) -> None:
    """Make reads and writes on ``sock`` fail after ``seconds`` without progress.

    The kernel's own timeouts (``SO_RCVTIMEO``, ``SO_SNDTIMEO``) on a blocking socket: the same
    protection as ``settimeout`` against a half-open connection, at no cost per call.
    """
    whole = int(seconds)
    value = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    except OSError:  # a platform whose struct timeval is laid out otherwise
        sock.settimeout(seconds)  # Python's own timeouts: the same protection, a poll a call
        return
    sock.settimeout(None)


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


def describe(error: BaseException) -> str:
    """A short text for a greenstalk or socket error (greenstalk's own carry no message)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Connection:
    """A lazily opened, self-healing connection using one tube and watching others.

    Every use goes through :meth:`call` (or holds :attr:`lock`), which opens the connection when
    needed, and on a broken one drops it and tries once more on a fresh connection.
    """

    def __init__(
        self, settings: BeanstalkdSettings, *, use: str, watch: str | Sequence[str], role: str
    ) -> None:
        self.settings = settings
        self.use = use
        self.watch = watch
        self.role = role
        #: Held around every exchange with the server.
        self.lock = threading.RLock()
        #: Counts the connections opened; a job reserved under an older one is no longer ours.
        self.generation = 0
        self._client: PipelinedClient | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error = ""
        #: Deletes whose answer was lost with a connection: job id, body, the server's id.
        self._unconfirmed: list[tuple[int, bytes, str]] = []
        #: The ``id`` beanstalkd gives itself at each start, and whether it keeps a binlog.
        self.server_id = ""
        self.server_binlog = False

    @property
    def client(self) -> PipelinedClient | None:
        """The open client, or None while disconnected."""
        return self._client

    def call(self, op: Callable[[PipelinedClient], T], *, wait: float, retry: bool = True) -> T:
        """Run ``op`` on the connection; reconnect for up to ``wait`` seconds if needed.

        :param retry: run ``op`` again on a fresh connection when the current one turns out to
            be broken (never for commands tied to the broken connection's reservations).
        :raises AdapterError: when the server cannot be reached, or the connection breaks.
        :raises greenstalk.BeanstalkdError: the server's answer when it is an error.
        """
        deadline = time.monotonic() + wait
        with self.lock:
            client = self._client or self.connect(deadline)
            try:
                return self._exchange(op, client)
            except OSError as error:
                self.drop(error)
                if not retry:
                    raise AdapterError(self._lost(error)) from None
            client = self.connect(deadline)
            try:
                return self._exchange(op, client)
            except OSError as error:
                self.drop(error)
                raise AdapterError(self._lost(error)) from None

    def _exchange(self, op: Callable[[PipelinedClient], T], client: PipelinedClient) -> T:
        """``op`` on ``client``; a connection left out of step is dropped (an ``OSError`` is
        the caller's to handle)."""
        try:
            return op(client)
        except OSError:
            raise
        except greenstalk.UnknownResponseError as error:
            self.drop(error)
            raise AdapterError(
                f"beanstalkd at {self.settings.address} answered {error.status!r}, which "
                f"this client does not understand") from None
        except greenstalk.Error:
            raise  # the server's answer to a command (NOT_FOUND, ...): still in step
        except BaseException:
            # Interrupted mid-exchange (Ctrl-C, a bug): answers may be left unread, so the
            # next command could read this one's. A new connection starts clean.
            self.drop()
            raise

    def connect(self, deadline: float) -> PipelinedClient:
        """Open the connection, retrying with back-off until ``deadline`` (monotonic)."""
        with self.lock:
            while self._client is None:
                now = time.monotonic()
                if self._next_attempt > now:
                    if self._next_attempt > deadline:
                        time.sleep(max(0.0, deadline - now))
                        # What comes next is the caller's to say (a worker waits and tries
                        # again, a command gives up), so the message ends with the cause.
                        raise AdapterError(
                            f"beanstalkd at {self.settings.address} is unreachable "
                            f"({self._last_error})")
                    time.sleep(self._next_attempt - now)
                try:
                    client = self._open()
                    self._identify(client)
                    self._confirm_deletes(client)
                except (OSError, greenstalk.Error) as error:
                    self._failures += 1
                    self._last_error = describe(error)
                    pause = self.settings.reconnect_delay * 2.0 ** min(self._failures - 1, 30)
                    pause = min(pause, self.settings.max_reconnect_delay)
                    self._next_attempt = time.monotonic() + pause
                    if self._failures == 1:
                        log.warning("cannot reach beanstalkd at %s (%s); retrying with back-off",
                                    self.settings.address, self._last_error)
                    continue
                if self.generation:
                    log.info("%s connection to beanstalkd at %s is back", self.role,
                             self.settings.address)
                self._failures = 0
                self._next_attempt = 0.0
                self.generation += 1
                self._client = client
            return self._client

    def _open(self) -> PipelinedClient:
        settings = self.settings
        sock = socket.create_connection(
            (settings.host, settings.port), timeout=settings.socket_timeout)
        try:
            set_timeouts(sock, settings.socket_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            # greenstalk issues `use` and `watch` (and ignores "default" when not watched).
            return PipelinedClient(sock, use=self.use, watch=self.watch,
                                   spin_wait=settings.spin_wait)
        except BaseException:
            sock.close()
            raise

    def _identify(self, client: PipelinedClient) -> None:
        """Note which server answers: beanstalkd draws a new ``id`` each time it starts."""
        try:
            stats = client.stats()
        except BaseException:
            client.close()
            raise
        self.server_id = str(stats.get("id", ""))
        self.server_binlog = int(stats.get("binlog-current-index", 0)) > 0

    def other_job(self, client: PipelinedClient, job_id: int, body: bytes,
                  server_id: str) -> str:
        """Why ``job_id`` on the server now answering is not the job with ``body`` that the
        server ``server_id`` handed out; empty when it is (or when it is gone).

        A server started without a binlog numbers new jobs from 1 again; one with a binlog
        restores its jobs under their ids. The body is compared too.
        """
        if server_id != self.server_id and not self.server_binlog:
            return "beanstalkd restarted without a binlog since, so it went with the server"
        if client.peek(job_id).body != body:
            return f"the server's job {job_id} now is another job: left alone"
        return ""

    def _confirm_deletes(self, client: PipelinedClient) -> None:
        """Send again the deletes whose answer was lost with the previous connection.

        The jobs went back to ready when that connection closed; deleting a ready job works, so
        a job that was done does not run again unless another worker took it meanwhile. A job
        is deleted only if its id still names it: not after a restart without a binlog, and
        only if its body is the one that was done.
        """
        while self._unconfirmed:
            job_id, body, server_id = self._unconfirmed[0]
            try:
                why_not = self.other_job(client, job_id, body, server_id)
                if why_not:
                    log.info("job %d was done; %s", job_id, why_not)
                else:
                    client.delete(job_id)
                    log.info("job %d deleted again after reconnecting", job_id)
            except greenstalk.NotFoundError:
                log.info("job %d was already deleted, or another worker has it", job_id)
            except BaseException:
                client.close()
                raise
            del self._unconfirmed[0]

    def drop(self, error: BaseException | None = None) -> None:
        """Close the connection (the next call reconnects at once)."""
        with self.lock:
            client, self._client = self._client, None
            if client is None:
                return
            self._unconfirmed.extend((job_id, body, self.server_id)
                                     for job_id, body in client.pending)
            client.pending.clear()
            with contextlib.suppress(OSError):
                client.close()
            if error is not None:
                log.warning("%s connection to beanstalkd at %s lost (%s); reconnecting",
                            self.role, self.settings.address, describe(error))
            self._next_attempt = 0.0

    def flush(self, reconnect: bool = True, wait: float | None = None) -> None:
        """Read the answers owed for pipelined deletes, so other connections see them done.

        If the connection turns out to be broken, a new one sends those deletes again (unless
        ``reconnect`` is false), trying for ``wait`` seconds (``reconnect_timeout`` if None).
        """
        with self.lock:
            client = self._client
            if client is not None and client.pending:
                try:
                    client.read_pending()
                except OSError as error:
                    self.drop(error)
            if self._client is None and self._unconfirmed and reconnect:
                try:
                    if wait is None:
                        wait = self.settings.reconnect_timeout
                    self.connect(time.monotonic() + wait)
                except AdapterError as error:
                    log.warning("%d finished job(s) may not be deleted: %s",
                                len(self._unconfirmed), error)

    def close(self) -> None:
        """Read what is owed and close; a later call opens a new connection."""
        with self.lock:
            self.flush(reconnect=False)
            self.drop()
            if self._unconfirmed:
                log.warning("closing with %d finished job(s) whose delete beanstalkd did not "
                            "confirm; they may run again", len(self._unconfirmed))
                self._unconfirmed.clear()

    def _lost(self, error: BaseException) -> str:
        return (f"lost the connection to beanstalkd at {self.settings.address} "
                f"({describe(error)})")
