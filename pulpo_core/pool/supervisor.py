"""The supervisor: the ``pulpo worker`` process that owns P child worker processes.

It restarts a child that died (with back-off), recycles ones that asked to be, forwards
SIGTERM/SIGINT for a graceful stop (a second SIGINT stops at once), and on SIGHUP replaces every
child by a fresh one that imports the handler code again. Plugins see it start, each child end
and it stop through the hooks ``pulpo_supervisor_start``, ``pulpo_supervisor_child_exit`` and
``pulpo_supervisor_stop``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulpo_core.host import App

log = logging.getLogger("pulpo.pool")

#: The exit code a child uses to say "recycle me" (its limits were reached).
EXIT_RECYCLE = 3
#: A child that dies within this many seconds of starting failed fast (e.g. at import).
FAST_FAILURE = 5.0
#: After this many fast failures in a row the supervisor gives up (exit 1).
MAX_FAST_FAILURES = 3
_BACKOFF_START, _BACKOFF_MAX = 0.5, 30.0
_TICK = 0.1


class _Child:
    def __init__(self, command: Sequence[str]) -> None:
        self.process = subprocess.Popen(command)
        self.started = time.monotonic()
        self.retiring = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            self.process.send_signal(signum)


class Supervisor:
    """Runs ``processes`` copies of ``command`` (a child worker) until told to stop."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        shutdown_timeout: float,
        app: App | None = None,
    ) -> None:
        self.command = list(command)
        #: The app whose plugins see the supervisor's hooks (none: no hooks are called).
        self.app = app
        self.processes = processes
        self.shutdown_timeout = shutdown_timeout
        self.children: list[_Child] = []
        self._stop_signals = 0
        self._reload = False
        self._fast_failures = 0
        self._backoff = _BACKOFF_START
        self._restart_at = 0.0

    def run(self) -> int:
        """Supervise until every child ended on its own or a stop signal; the exit code."""
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            if self.app is not None:
                # Before any child exists: what a plugin sets in os.environ, children inherit.
                self.app.hook.pulpo_supervisor_start(app=self.app)
            try:
                log.info(
                    "supervisor pid %d starting %d worker process(es)", os.getpid(), self.processes
                )
                for _ in range(self.processes):
                    self._start()
                return self._watch()
            finally:
                self._hook("pulpo_supervisor_stop")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _hook(self, name: str, **arguments: object) -> None:
        """Call a supervisor hook; a plugin's failure is logged, the supervision goes on."""
        if self.app is None:
            return
        try:
            getattr(self.app.hook, name)(app=self.app, **arguments)
        except Exception:
            log.exception("a %s hook failed", name)

    def _exited(self, child: _Child) -> None:
        code = child.process.returncode
        self._hook("pulpo_supervisor_child_exit", pid=child.pid, exit_code=code)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
            return
        self._stop_signals += 1
        immediate = signum == signal.SIGINT and self._stop_signals > 1
        for child in self.children:
            child.signal(signal.SIGKILL if immediate else signal.SIGTERM)

    def _start(self) -> _Child:
        child = _Child(self.command)
        self.children.append(child)
        log.info("started worker process %d", child.pid)
        return child

    def _watch(self) -> int:
        deadline: float | None = None
        while self.children or (self.processes and not self._stop_signals):
            if self._stop_signals and deadline is None:
                deadline = time.monotonic() + self.shutdown_timeout + 5.0
                self.processes = 0
            if deadline is not None and time.monotonic() > deadline:
                for child in self.children:
                    log.warning("worker process %d did not stop in time: killing it", child.pid)
                    child.signal(signal.SIGKILL)
                deadline = time.monotonic() + 3600.0
            if self._reload and not self._stop_signals:
                self._reload = False
                self._warm_restart()
            ended = [child for child in self.children if child.process.poll() is not None]
            for child in ended:
                self.children.remove(child)
                self._exited(child)
                if self._ended(child) == "give up":
                    self._stop_all()
                    return 1
            active = sum(not child.retiring for child in self.children)
            if self.processes and active < self.processes and time.monotonic() >= self._restart_at:
                self._start()
            elif not ended:
                time.sleep(_TICK)  # (also while a restart waits out its back-off)
        log.info("supervisor stopped")
        return 0

    def _ended(self, child: _Child) -> str:
        code = child.process.returncode
        lived = time.monotonic() - child.started
        if child.retiring or not self.processes:
            log.info("worker process %d stopped (exit %s)", child.pid, code)
            return "ok"
        if code == EXIT_RECYCLE:
            log.info("worker process %d recycled: starting a new one", child.pid)
            return "ok"
        if code == 0:
            # The child ran out of work (shutdown_after_number_of_empty_iterations): the
            # supervisor ends once every child has.
            log.info("worker process %d finished (queue empty)", child.pid)
            self.processes -= 1
            return "ok"
        why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        fast = lived < FAST_FAILURE
        if not fast:
            self._fast_failures = 0
            self._backoff = _BACKOFF_START
        elif code > 0:
            # A child that exits on its own soon after starting could not start (a handler
            # that does not import): a few in a row and the supervisor gives up. One killed by
            # a signal (SIGKILL, OOM) may have run jobs and is always replaced, with back-off.
            self._fast_failures += 1
        if self._fast_failures >= MAX_FAST_FAILURES:
            log.error(
                "worker processes failed %d times within %gs of starting (last: %s): giving up; "
                "check that the handler code imports",
                self._fast_failures,
                FAST_FAILURE,
                why,
            )
            return "give up"
        delay = self._backoff if fast else 0.0
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        self._restart_at = time.monotonic() + delay
        log.warning(
            "worker process %d died (%s) after %.1fs: restarting it in %.1fs",
            child.pid,
            why,
            lived,
            delay,
        )
        return "restart"

    def _warm_restart(self) -> None:
        log.info("received SIGHUP: replacing the worker processes with fresh ones")
        old = [child for child in self.children if not child.retiring]
        for child in old:
            child.retiring = True
            child.signal(signal.SIGTERM)

    def _stop_all(self) -> None:
        for child in self.children:
            child.signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.process.wait(self.shutdown_timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            self._exited(child)
        self.children.clear()
