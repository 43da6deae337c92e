"""Reading beanstalkd's answers off a blocking socket, with a short spin before sleeping."""

from __future__ import annotations

import socket
import struct
import time


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
