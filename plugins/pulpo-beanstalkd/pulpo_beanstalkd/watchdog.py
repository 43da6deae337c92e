"""The watchdog process: it closes a frozen worker's beanstalkd connections.

beanstalkd 1.12 can miss the ttr of a job whose worker goes silent with its connection open (see
the adapter's documentation): the job stays reserved until the connection closes or sends a
command. A frozen process (SIGSTOP, a debugger) can do neither, but another process holding a
duplicate of the socket can: ``shutdown(SHUT_RDWR)`` ends the TCP connection for every holder,
and beanstalkd releases the connection's jobs at once.

One watchdog runs per worker process, started by :mod:`pulpo_beanstalkd.guard` on the first
worker connection. They share two things:

- a page of memory (a ``memfd``): at offset 0 the time of the worker's last heartbeat, written
  every 0.5 s by a thread of the worker; then one slot of :data:`SLOT` bytes per watched
  connection: the deadline of the earliest lease the worker holds on it (``time.monotonic()``,
  a clock the processes of a host share; 0 when it holds none) and that job's id. The worker
  writes a slot when it reserves or touches a job, and its heartbeat thread rewrites it;
- a ``SOCK_SEQPACKET`` socket pair, one datagram a message: ``open <slot> <label>`` with the
  connection's socket attached (``SCM_RIGHTS``): watch it, in place of the slot's previous
  socket; ``forget <slot>``: the connection is closed, let go of its socket.

When the heartbeat has stopped for :data:`SILENCE` seconds and a connection's lease deadline is
:data:`MARGIN` seconds past, the watchdog shuts the socket down and says so on stderr. It also
does when the heartbeat has stopped and the server's answer to a reserve waits unread in the
socket (the frozen worker was handed a job it will not run). It exits when the pair closes: the
worker has exited or was killed, so the watchdog never outlives it.

The standard library only: the worker starts it with ``python -I -S`` on this file.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time

#: Seconds without a heartbeat after which the worker is taken for frozen (it beats every 0.5 s).
SILENCE = 1.5
#: Seconds past a lease's deadline before its connection is shut down.
MARGIN = 1.0
#: Seconds between two checks of the watched connections.
CHECK_EVERY = 0.1
#: The shared page: the heartbeat, then the slots (slot 0 is the heartbeat's).
PAGE = 4096
#: One slot: the lease's deadline (a double) and its job's id (a signed 64-bit integer).
SLOT = struct.Struct("=dq")
SLOTS = PAGE // SLOT.size
#: The longest message (a label is a short text).
MESSAGE_SIZE = 1024


class Watched:
    """One worker connection: its socket and its label for the log."""

    __slots__ = ("label", "sock")

    def __init__(self, sock: socket.socket, label: str) -> None:
        self.sock = sock
        self.label = label

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _log(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"pulpo-beanstalkd watchdog: {text}\n")
        sys.stderr.flush()


def _reserve_unread(sock: socket.socket) -> bool:
    """Whether the server's answer to a reserve waits unread in ``sock``."""
    try:
        data = sock.recv(MESSAGE_SIZE, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    return b"\nRESERVED " in b"\n" + data


class Watchdog:
    """The watched connections of one worker process, by slot."""

    def __init__(self, channel: socket.socket, page: mmap.mmap, worker: int) -> None:
        self.channel = channel
        self.page = page
        self.worker = worker
        self.watched: dict[int, Watched] = {}

    def handle(self, message: bytes, fds: list[int]) -> None:
        words = message.decode("utf-8", "replace").split(" ", 2)
        kind, slot = words[0], int(words[1]) if len(words) > 1 else 0
        if kind == "open" and fds and 0 < slot < SLOTS:
            self.forget(slot)
            sock = socket.socket(fileno=fds.pop(0))
            self.watched[slot] = Watched(sock, words[2] if len(words) > 2 else str(slot))
        elif kind == "forget":
            self.forget(slot)
        for fd in fds:  # anything attached that was not expected
            os.close(fd)

    def forget(self, slot: int) -> None:
        watched = self.watched.pop(slot, None)
        if watched is not None:
            watched.close()

    def check(self, now: float) -> None:
        if not self.watched:
            return
        beat, _ = SLOT.unpack_from(self.page, 0)
        silent = now - beat
        if silent < SILENCE:
            return
        for slot, watched in list(self.watched.items()):
            deadline, job = SLOT.unpack_from(self.page, slot * SLOT.size)
            if deadline > 0 and now > deadline + MARGIN:
                why = f"holds job {job}, whose ttr ran out {now - deadline:.1f} s ago"
            elif deadline <= 0 and _reserve_unread(watched.sock):
                why = "was handed a job it has not read"
            else:
                continue
            with contextlib.suppress(OSError):  # already closed by the server: nothing held
                watched.sock.shutdown(socket.SHUT_RDWR)
            _log(f"worker {self.worker} is silent for {silent:.1f} s and {why}: closed its "
                 f"{watched.label}, so beanstalkd releases its jobs")
            self.forget(slot)

    def run(self) -> None:
        while True:
            ready, _, _ = select.select([self.channel], [], [], CHECK_EVERY)
            if ready:
                try:
                    message, fds, _flags, _address = socket.recv_fds(self.channel,
                                                                     MESSAGE_SIZE, 4)
                except OSError:
                    return
                if not message and not fds:
                    return  # the worker's end closed: it exited or was killed
                try:
                    self.handle(message, fds)
                except (ValueError, OSError) as error:
                    _log(f"ignored a message ({error})")
            self.check(time.monotonic())


def main(argv: list[str]) -> int:
    """``watchdog.py <fd of the pair's end> <fd of the shared page> <worker pid>``."""
    # Ctrl-C and a stop request are the worker's to handle; the watchdog leaves with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel = socket.socket(fileno=int(argv[1]))
    page = mmap.mmap(int(argv[2]), PAGE, mmap.MAP_SHARED, mmap.PROT_READ)
    os.close(int(argv[2]))
    watchdog = Watchdog(channel, page, int(argv[3]))
    try:
        watchdog.run()
    finally:
        for slot in list(watchdog.watched):
            watchdog.forget(slot)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
