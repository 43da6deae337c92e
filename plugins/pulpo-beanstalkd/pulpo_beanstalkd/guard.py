"""The worker's side of the watchdog (see :mod:`pulpo_beanstalkd.watchdog`).

A process's first guarded connection starts its watchdog and a heartbeat thread. Each guarded
connection hands the watchdog a duplicate of its socket when it opens (again after each
reconnection) and tells it to let go when it closes. The lease deadlines go through a page of
shared memory: a reserve or a touch writes its job's deadline into the connection's slot (a
write to memory, nothing more), and every :data:`BEAT_EVERY` seconds the heartbeat thread
writes the time and each connection's earliest deadline, read from the adapter's reservations.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pulpo_beanstalkd.watchdog import PAGE, SLOT, SLOTS

log = logging.getLogger("pulpo.beanstalkd")

#: Seconds between two heartbeats (the watchdog takes 1.5 s of silence for a frozen worker).
BEAT_EVERY = 0.5
#: Seconds a message to the watchdog may wait for room in the pair's buffer.
SEND_TIMEOUT = 1.0

#: The earliest lease a connection holds: its deadline (``time.monotonic()``) and job id.
Lease = tuple[float, int]
LeaseOf = Callable[[], Lease | None]

WATCHDOG = Path(__file__).with_name("watchdog.py")


class Guard:
    """One process's watchdog, its channel, shared page and heartbeat thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Held around each write of a slot (a reserve's, the heartbeat's).
        self._page_lock = threading.Lock()
        self._channel: socket.socket | None = None
        self._page: mmap.mmap | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        #: How to read the earliest lease of each watched connection, by slot.
        self._leases: dict[int, LeaseOf] = {}

    def _start(self) -> socket.socket:
        """The channel to the watchdog, starting it if needed (under the lock)."""
        if self._channel is not None and self._process is not None \
                and self._process.poll() is None:
            return self._channel
        if self._channel is not None:
            log.warning("the beanstalkd watchdog of this worker exited; starting another")
            self._channel.close()
            self._channel = None
            self._leases.clear()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        memory = os.memfd_create("pulpo-beanstalkd-watchdog", os.MFD_CLOEXEC)
        try:
            os.ftruncate(memory, PAGE)
            self._share(memory)
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(WATCHDOG), str(theirs.fileno()), str(memory),
                 str(os.getpid())],
                pass_fds=(theirs.fileno(), memory), stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            os.close(memory)
        ours.settimeout(SEND_TIMEOUT)
        self._channel = ours
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="pulpo-beanstalkd-beat",
                                            daemon=True)
            self._thread.start()
        return ours

    def _share(self, memory: int) -> None:
        """Map the page from ``memory``, the ``memfd`` the watchdog maps too."""
        page = mmap.mmap(memory, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        with self._page_lock:
            SLOT.pack_into(page, 0, time.monotonic(), 0)
            old, self._page = self._page, page
        if old is not None:
            old.close()

    def watch(self, slot: int | None, sock: socket.socket, label: str,
              lease_of: LeaseOf) -> int | None:
        """Hand ``sock`` to the watchdog, in ``slot`` (a new one if None); the slot used, or
        None when the watchdog could not take it."""
        with self._lock:
            try:
                channel = self._start()
                if slot is None or slot not in self._leases:
                    slot = next((number for number in range(1, SLOTS)
                                 if number not in self._leases), None)
                    if slot is None:
                        log.warning("the beanstalkd watchdog watches %d connections already; "
                                    "not the %s", SLOTS - 1, label)
                        return None
                socket.send_fds(channel, [f"open {slot} {label}".encode()], [sock.fileno()])
            except OSError as error:
                log.warning("could not hand the %s to the watchdog (%s): a frozen worker may "
                            "keep its job past its ttr", label, error)
                return None
            self._leases[slot] = lease_of
        self.refresh(slot)
        return slot

    def forget(self, slot: int) -> bool:
        """The connection in ``slot`` closed: the watchdog lets go of its socket. False when
        this process's watchdog did not watch it (it was handed over before a fork)."""
        with self._lock:
            if self._leases.pop(slot, None) is None or self._channel is None:
                return False
            self.note(slot, 0.0, 0, force=True)
            with contextlib.suppress(OSError):
                self._channel.send(f"forget {slot}".encode())
            return True

    def note(self, slot: int, deadline: float, job_id: int, force: bool = False) -> None:
        """A job with this lease deadline is held on the connection in ``slot`` (the
        earliest one is kept, unless ``force``)."""
        with self._page_lock:
            page = self._page
            if page is None:
                return
            offset = slot * SLOT.size
            current, _ = SLOT.unpack_from(page, offset)
            if force or current <= 0 or deadline < current:
                SLOT.pack_into(page, offset, deadline, job_id)

    def refresh(self, slot: int) -> None:
        """Write the earliest lease of the connection in ``slot``, read from its reservations."""
        lease_of = self._leases.get(slot)
        if lease_of is None:
            return
        with self._page_lock:
            try:
                lease = lease_of()
            except Exception as error:  # never stop beating for one connection
                log.debug("no lease for the watchdog: %s", error)
                return
            if self._page is not None and slot in self._leases:
                SLOT.pack_into(self._page, slot * SLOT.size, *(lease or (0.0, 0)))

    def _beat(self) -> None:
        stop = threading.Event()
        while True:
            with self._page_lock:
                if self._page is not None:
                    SLOT.pack_into(self._page, 0, time.monotonic(), 0)
            for slot in list(self._leases):
                self.refresh(slot)
            stop.wait(BEAT_EVERY)

    def after_fork(self) -> None:
        """In a forked child: the parent's watchdog and page are not the child's."""
        if self._channel is not None:
            with contextlib.suppress(OSError):
                self._channel.close()
        self.__init__()  # type: ignore[misc]


_guard = Guard()
os.register_at_fork(after_in_child=_guard.after_fork)


def guard() -> Guard:
    """This process's guard."""
    return _guard
