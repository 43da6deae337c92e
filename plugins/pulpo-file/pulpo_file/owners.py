"""Who holds a claim: a claimed file's token names the process that claimed it.

A claim's token (``<random>p<pid>n<pid namespace>``, in hex) lets any process on the same host
tell that the claimant is gone — killed, crashed, out of memory — and take the job back at its
next lease check (``lease_check_interval``), instead of waiting out the job's ``ttr``. This is
how a pool's supervisor gets a dead child's jobs back at once.

Only a sure answer counts: a process of another PID namespace (a container sharing the folder),
a token of an earlier layout, or a process id taken again by a new process all read as alive,
and those claims wait for their ``ttr`` as before. A process id that no process has (the kernel
says so) is gone; a claim made before a reboot is gone by then as well.
"""

from __future__ import annotations

import os

_namespace: tuple[int, int] | None = None  # (pid, namespace) of the process that looked


def pid_namespace() -> int:
    """This process's PID namespace (the inode of ``/proc/self/ns/pid``); 0 when unknown."""
    global _namespace
    pid = os.getpid()
    if _namespace is None or _namespace[0] != pid:
        try:
            _namespace = (pid, os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            _namespace = (pid, 0)
    return _namespace[1]


def owner_token(random_part: str) -> str:
    """A claim token naming this process: ``random_part`` followed by its pid and namespace."""
    return f"{random_part}p{os.getpid():x}n{pid_namespace():x}"


def claimant(token: str) -> int | None:
    """The process id a token names, when it is of this process's namespace; else ``None``."""
    _, p, rest = token.partition("p")
    pid, n, namespace = rest.partition("n")
    if not p or not n:
        return None
    try:
        named, ns = int(pid, 16), int(namespace, 16)
    except ValueError:
        return None
    here = pid_namespace()
    return named if named > 0 and here and ns == here else None


def is_gone(pid: int) -> bool:
    """Whether no process has this id (a process of another user is alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
