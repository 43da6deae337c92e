"""One connection to beanstalkd that outlives server restarts.

greenstalk speaks the protocol; this module adds what a long-running worker needs around it: a
socket timeout (a half-open connection fails instead of hanging), reconnection with back-off that
issues ``use`` and ``watch`` again, a lock (greenstalk's client is not thread-safe and the lease
heartbeat touches from another thread), and pipelined deletes (the client itself is in
:mod:`pulpo_beanstalkd.client`, its socket reader in :mod:`pulpo_beanstalkd.socket_reader`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import greenstalk

from pulpo_beanstalkd.client import PipelinedClient, describe
from pulpo_beanstalkd.guard import Lease, guard
from pulpo_beanstalkd.settings import BeanstalkdSettings
from pulpo_beanstalkd.socket_reader import set_timeouts
from pulpo_core.errors import AdapterError

log = logging.getLogger("pulpo.beanstalkd")

T = TypeVar("T")


class Connection:
    """A lazily opened, self-healing connection using one tube and watching others.

    Every use goes through :meth:`call` (or holds :attr:`lock`), which opens the connection when
    needed, and on a broken one drops it and tries once more on a fresh connection.
    """

    def __init__(
        self, settings: BeanstalkdSettings, *, use: str, watch: str | Sequence[str], role: str,
        lease_of: Callable[[int], Lease | None] | None = None,
    ) -> None:
        """:param lease_of: the earliest lease the connection holds in a generation; when
            given, each socket opened is handed to this process's watchdog (see
            :mod:`pulpo_beanstalkd.guard`)."""
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
        self._lease_of = lease_of
        #: The connection's slot in the watchdog's page, while it watches the connection.
        self._slot: int | None = None

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
                if self._lease_of is not None:
                    self._guard(client)
            return self._client

    def _guard(self, client: PipelinedClient) -> None:
        sock: socket.socket = client._sock
        try:
            local = sock.getsockname()[1]
        except OSError:
            local = "?"
        label = (f"{self.role} connection to beanstalkd at {self.settings.address} "
                 f"(local port {local})")
        lease_of = self._lease_of
        assert lease_of is not None
        self._slot = guard().watch(None, sock, label, lambda: lease_of(self.generation))

    def note_lease(self, deadline: float, job_id: int) -> None:
        """A job just reserved is held until ``deadline`` (``time.monotonic()``): tell the
        watchdog, if it watches this connection (a write to shared memory)."""
        if self._slot is not None:
            guard().note(self._slot, deadline, job_id)

    def refresh_lease(self) -> None:
        """A lease was renewed: tell the watchdog the earliest one now held."""
        if self._slot is not None:
            guard().refresh(self._slot)

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
            slot, self._slot = self._slot, None
            if slot is not None and guard().forget(slot):
                # The watchdog's duplicate would keep the connection open past close().
                with contextlib.suppress(OSError):
                    client._sock.shutdown(socket.SHUT_RDWR)
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
