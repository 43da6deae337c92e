"""Commands and worker options that plugins add to ``pulpo`` (hook ``pulpo_register_cli``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from pulpo_core.errors import PluginError

if TYPE_CHECKING:
    from pulpo_core.hookspecs import CommandRun

#: The core's commands that take no plugin option: ``pulpo`` starts without loading plugins
#: for them (and for ``--help``).
CORE_COMMANDS = frozenset(
    {"publish", "peek", "delete", "kick", "stats", "top", "plugins", "handlers"}
)
#: Where the parsed worker options are kept on the command line's namespace.
WORKER_OPTIONS = "plugin_worker_options"


@attrs.frozen
class WorkerOption:
    dest: str
    section: str
    key: str


def needs_plugins(argv: list[str] | tuple[str, ...] | Any) -> bool:
    """Whether the command line names ``worker`` or a command no core command is."""
    words = [word for word in argv if not word.startswith("-")]
    if "--config" in argv:  # its value is no command
        position = list(argv).index("--config")
        if position + 1 < len(argv):
            words = [w for w in words if w != argv[position + 1]]
    return bool(words) and words[0] not in CORE_COMMANDS


def add_plugin_cli(
    commands: Any, worker: argparse.ArgumentParser, make_app: Callable[[argparse.Namespace], Any]
) -> None:
    """Let installed plugins add commands (to the ``commands`` sub-parsers) and worker options.

    A plugin that fails to load is left out here; ``pulpo plugins`` reports it.
    """
    from pulpo_core.plugins import build_plugin_manager

    manager = build_plugin_manager(failures=[])
    taken = set(commands.choices)
    options: list[WorkerOption] = []

    def register_command(
        name: str,
        help: str,
        run: CommandRun,
        arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        if name in taken:
            raise PluginError(f"a plugin registers the command {name!r}, which exists already")
        taken.add(name)
        parser = commands.add_parser(name, help=help)
        if arguments is not None:
            arguments(parser)
        parser.set_defaults(run=lambda args: _run(run, args, make_app))

    def register_worker_option(
        flag: str, section: str, key: str, help: str, type: Callable[[str], Any] = str
    ) -> None:
        dest = f"plugin_{section}_{key}"
        worker.add_argument(flag, dest=dest, type=type, help=help, metavar=key.upper())
        options.append(WorkerOption(dest, section, key))

    manager.hook.pulpo_register_cli(
        register_command=register_command, register_worker_option=register_worker_option
    )
    worker.set_defaults(**{WORKER_OPTIONS: tuple(options)})


def _run(run: CommandRun, args: argparse.Namespace, make_app: Callable[..., Any]) -> int:
    app = make_app(args)
    try:
        return run(args, app)
    finally:
        app.close()


def with_worker_options(
    args: argparse.Namespace, settings: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """``settings`` with the worker options given on the command line set in their sections
    (``None``, the defaults or ``PULPO_CONFIG``, stays ``None`` when no option is given)."""
    options = getattr(args, WORKER_OPTIONS, ())
    given = [o for o in options if getattr(args, o.dest, None) is not None]
    if settings is None and not given:
        return None
    merged = dict(settings or {})
    for option in given:
        section = dict(merged.get(option.section) or {})
        section[option.key] = getattr(args, option.dest)
        merged[option.section] = section
    return merged
