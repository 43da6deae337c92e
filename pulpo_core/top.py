"""`pulpo top`: the queue's counts, rates and jobs by type, refreshed every second (what it shows
is drawn by :mod:`pulpo_core.topview`); a plain ANSI redraw, no terminal library needed."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from pulpo_core.adapter import QueueAdapter
from pulpo_core.topview import Snapshot, once_lines, take_snapshot, view_lines

#: Seconds between two refreshes of the live view.
REFRESH_INTERVAL = 1.0
_CLEAR = "\x1b[H\x1b[2J"
_QUIT_KEYS = ("q", "Q")


def run_top(adapter: QueueAdapter, *, once: bool, out: TextIO | None = None,
            interval: float = REFRESH_INTERVAL, rounds: int | None = None) -> None:
    """Print the counts once (``once``), or refresh them until ``q``, Ctrl-C or ``rounds``.

    On a terminal the screen is redrawn in place; otherwise each refresh is a block of plain
    lines followed by an empty line.
    """
    stream = out if out is not None else sys.stdout
    if once:
        print("\n".join(once_lines(adapter.stats())), file=stream, flush=True)
        return
    live = stream.isatty()
    previous: Snapshot | None = None
    shown = 0
    with _keys() as pressed:
        while rounds is None or shown < rounds:
            snapshot = take_snapshot(adapter)
            text = "\n".join(view_lines(snapshot, previous)) + "\n"
            stream.write(_CLEAR + text if live else text + "\n")
            stream.flush()
            previous, shown = snapshot, shown + 1
            if rounds is not None and shown >= rounds:
                break
            if pressed(interval):
                break


def _sleep(timeout: float) -> bool:
    time.sleep(timeout)
    return False


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], bool]]:
    """A function ``pressed(timeout)``: waits up to ``timeout``; whether ``q`` was pressed.

    Reads single keys when stdin is a terminal (its mode is restored on exit); otherwise it
    only sleeps.
    """
    stdin = sys.stdin
    if not (stdin is not None and stdin.isatty()):
        yield _sleep
        return
    import termios
    import tty

    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def pressed(timeout: float) -> bool:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready) and os.read(fd, 1).decode(errors="replace") in _QUIT_KEYS

    try:
        yield pressed
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
