"""The hooks plugins implement (pluggy project name ``pulpo``).

Each hook is documented in ``docs/hooks/``; a test fails when one is missing there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from pulpo_core.adapter import AdapterFactory

if TYPE_CHECKING:
    from pulpo_core.host import App
    from pulpo_core.message import Message
    from pulpo_core.result import Action, Result

__all__ = [
    "AdapterFactory",
    "CommandRun",
    "RegisterAdapter",
    "RegisterCommand",
    "RegisterConfigSection",
    "RegisterHandler",
    "RegisterHint",
    "RegisterKeys",
    "RegisterWorkerOption",
    "hookspec",
    "pulpo_after_process",
    "pulpo_before_process",
    "pulpo_before_publish",
    "pulpo_register_adapters",
    "pulpo_register_cli",
    "pulpo_register_config_sections",
    "pulpo_register_handlers",
    "pulpo_register_hints",
    "pulpo_result_policy",
    "pulpo_supervisor_child_exit",
    "pulpo_supervisor_start",
    "pulpo_supervisor_stop",
    "pulpo_worker_start",
    "pulpo_worker_stop",
]

hookspec = pluggy.HookspecMarker("pulpo")


class RegisterAdapter(Protocol):
    def __call__(self, name: str, factory: AdapterFactory, aliases: Iterable[str] = ()) -> None: ...


class RegisterHandler(Protocol):
    def __call__(self, request_type: str, handler: object) -> None: ...


class RegisterConfigSection(Protocol):
    def __call__(
        self, section: str, keys: type | Iterable[str] | Callable[[str, Mapping[str, Any]], None]
    ) -> None: ...


class RegisterKeys(Protocol):
    def __call__(self, keys: type) -> None: ...


class RegisterHint(Protocol):
    def __call__(self, name: str, distribution: str) -> None: ...


#: ``run(args, app) -> exit code``: a plugin command's body; the core builds ``app`` from the
#: command line's ``--config`` and closes it afterwards.
CommandRun = Callable[[argparse.Namespace, "App"], int]


class RegisterCommand(Protocol):
    def __call__(
        self,
        name: str,
        help: str,
        run: CommandRun,
        arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None: ...


class RegisterWorkerOption(Protocol):
    def __call__(
        self, flag: str, section: str, key: str, help: str, type: Callable[[str], Any] = str
    ) -> None: ...


@hookspec
def pulpo_register_adapters(register: RegisterAdapter) -> None:
    """Register queue adapters: ``register(name, factory, aliases=())``.

    :param register: call it once per adapter. ``factory(section)`` receives the adapter's
        config section ``<name>_queue_adapter`` (an empty mapping when absent) and returns an
        object that implements :class:`pulpo_core.adapter.QueueAdapter`. Import heavy client
        libraries inside the factory, not at module level.
    """


@hookspec
def pulpo_register_cli(
    register_command: RegisterCommand, register_worker_option: RegisterWorkerOption
) -> None:
    """Add commands to ``pulpo`` and options to ``pulpo worker``.

    ``register_command(name, help, run, arguments)``: ``pulpo NAME``; ``arguments(parser)`` adds
    its flags; ``run(args, app)`` returns the exit code. ``register_worker_option(flag, section,
    key, help, type)``: ``pulpo worker FLAG VALUE`` sets ``[section] key`` over the config file
    (checked by the section's own validators).
    """


@hookspec
def pulpo_register_handlers(register: RegisterHandler) -> None:
    """Register handlers: ``register(request_type, handler)``.

    :param register: ``handler`` is a callable, an object with ``handle(message)``, or a
        ``"module:object"`` string imported when a worker starts.
    """


@hookspec
def pulpo_register_config_sections(
    register: RegisterConfigSection, register_keys: RegisterKeys
) -> None:
    """Declare the config sections and top-level keys a plugin reads.

    :param register: ``register(section, keys)``: ``keys`` is an attrs class (its fields are the
        keys, checked and typed), an iterable of key names, or a checker function
        ``check(section, mapping)`` that raises ``ConfigError`` (for a table of tables, such as
        ``schedules``, whose keys are the user's names). A section nobody declares, or a
        key a section does not declare, is refused before any work starts.
    :param register_keys: ``register_keys(cls)``: top-level keys, the fields of the attrs class
        ``cls`` (with their defaults and validators). Their values are read as
        ``app.config.<key>``. A top-level key neither the core nor an installed plugin declares
        is refused. (Take only the arguments you use: pluggy passes those an implementation
        names.)
    """


@hookspec
def pulpo_register_hints(register: RegisterHint) -> None:
    """Name the distribution that provides an adapter type, section or key: ``register(name,
    distribution)``, for the error a user gets when it is not installed (a plugin whose sibling
    adapters live in other distributions, a meta distribution, ...)."""


@hookspec(firstresult=True)
def pulpo_before_process(message: Message, app: App) -> Result | None:
    """Filter a dequeued message before its handler runs.

    :param message: the message just dequeued.
    :param app: the running :class:`pulpo_core.Pulpo`.
    :return: ``None`` to go on to the handler, or a :class:`pulpo_core.Result` that is applied as
        if the handler had returned it (the handler is skipped). The first result wins.
    """


@hookspec(firstresult=True)
def pulpo_result_policy(message: Message, result: Result, app: App) -> Action | None:
    """Decide what a result does to the job: ``Commit``, ``Retry``, ``Bury`` or ``Drop``.

    :param message: the message that ran (``message.attempts`` counts earlier failures).
    :param result: what the handler (or a ``pulpo_before_process`` filter) returned.
    :param app: the running app; ``app.config`` has ``max_number_of_attempts`` and
        ``retry_delay``.
    :return: an action from :mod:`pulpo_core.result`, or ``None`` to leave the decision to the
        next policy. The core's default policy runs last.
    """


@hookspec
def pulpo_after_process(
    message: Message, result: Result, action: Action, app: App, duration: float
) -> None:
    """Observe a job after its action was applied (metrics, audit logs).

    :param duration: seconds from the start of the job's handling (its ``pulpo_before_process``
        filters) to the end of its settle. Older implementations that do not take it still work.
    """


@hookspec
def pulpo_before_publish(message: Message, app: App) -> Message | None:
    """Publish middleware: inspect or change a message before it is queued.

    :return: a changed message (``attrs.evolve``) or ``None`` to keep it. Raise ``ValueError`` to
        refuse the message; the error reaches the publisher.
    """


@hookspec
def pulpo_worker_start(app: App) -> None:
    """Called once when a worker starts, before the first dequeue. Raise to stop the start."""


@hookspec
def pulpo_worker_stop(app: App) -> None:
    """Called once when a worker stops, after the last job was settled."""


@hookspec
def pulpo_supervisor_start(app: App) -> None:
    """Called once in the ``pulpo worker`` process that supervises a pool, before it starts
    any child. What it puts in ``os.environ`` every child inherits. Raise to stop the start."""


@hookspec
def pulpo_supervisor_child_exit(pid: int, exit_code: int, app: App) -> None:
    """Called in the supervisor each time one of its children has ended, before any
    replacement starts.

    :param pid: the child's process id.
    :param exit_code: its exit status; negative: killed by that signal (``-9``: SIGKILL).
    """


@hookspec
def pulpo_supervisor_stop(app: App) -> None:
    """Called once as the supervisor ends, after its last child has ended (also after a
    failed start of its children)."""
