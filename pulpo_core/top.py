"""`pulpo top`: the queue's counts per state, refreshed every second, and how fast they change."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO

from pulpo_core.adapter import JOB_STATES, QueueAdapter

#: Seconds between two refreshes of the live view.
REFRESH_INTERVAL = 1.0
_CLEAR = "\x1b[H\x1b[2J"
_QUIT_KEYS = ("q", "Q")


def once_lines(counts: Mapping[str, int]) -> list[str]:
    """One ``state count`` line per state, for scripts."""
    return [f"{state} {count}" for state, count in counts.items()]


def view_lines(
    counts: Mapping[str, int], previous: Mapping[str, int] | None, elapsed: float
) -> list[str]:
    """The live view: each state's count and its change per second since the last refresh."""
    rows = [("state", "jobs", "change/s")]
    for state, count in counts.items():
        if state != "total":  # the adapter's own total: the row below sums the states
            rows.append((state, str(count), _rate(count, previous, state, elapsed)))
    total = sum(counts.get(state, 0) for state in JOB_STATES)
    before = None if previous is None else sum(previous.get(s, 0) for s in JOB_STATES)
    rows.append(("total", str(total), _rate(total, None if before is None else
                                            {"total": before}, "total", elapsed)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.append("")
    lines.append("total change/s = publish rate - drain rate; q quits")
    return lines


def _rate(count: int, previous: Mapping[str, int] | None, key: str, elapsed: float) -> str:
    if previous is None or key not in previous or elapsed <= 0:
        return "-"
    return f"{(count - previous[key]) / elapsed:+.1f}"


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
    previous: dict[str, int] | None = None
    last = time.monotonic()
    shown = 0
    with _keys() as pressed:
        while rounds is None or shown < rounds:
            counts = dict(adapter.stats())
            now = time.monotonic()
            lines = view_lines(counts, previous, now - last)
            text = "\n".join(lines) + "\n"
            stream.write(_CLEAR + text if live else text + "\n")
            stream.flush()
            previous, last, shown = counts, now, shown + 1
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
