"""The ``pulpo`` command: run a worker, publish jobs, inspect and operate a queue.

stdout carries only each command's result; log lines go to stderr. Usage errors exit 2, runtime
errors 1, each with one sentence naming the bad value (a traceback only with ``--verbose``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pulpo_core import cli_types as arg
from pulpo_core.pool.flags import add_pool_flags

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo

#: Read when neither --config nor PULPO_CONFIG names a file.
DEFAULT_CONFIG_FILE = "pulpo.toml"

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad flags or arguments (exit 2)."""


class _ShowVersions(Exception):
    """``--version`` was given: print the versions instead of running a command."""


class _VersionAction(argparse.Action):
    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _ShowVersions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pulpo", description="Distributed delayed job processing.")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML or JSON settings (default: $PULPO_CONFIG, else ./pulpo.toml)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="debug logging and tracebacks on errors"
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        nargs=0,
        help="print the versions of pulpo-core, every installed plugin and Python, and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    worker = commands.add_parser("worker", help="process jobs until shut down")
    add_pool_flags(worker, arg.seconds)
    worker.add_argument(
        "--with-scheduler", action="store_true", help="publish the schedules' ticks too"
    )
    worker.set_defaults(run=cmd_worker)

    publish = commands.add_parser("publish", help="queue a job; prints each new id")
    publish.add_argument("--request-type", required=True, metavar="T", help="the job type")
    publish.add_argument("--payload", metavar="P", help="body['payload'], a string")
    publish.add_argument(
        "--body", type=arg.json_object, metavar="JSON", help="the body, a JSON object"
    )
    publish.add_argument(
        "--priority", type=arg.whole, metavar="N",
        help="0 most urgent .. 4294967295 least (clamped)",
    )
    publish.add_argument("--delay", type=arg.seconds, metavar="SECONDS", help="run no sooner")
    publish.add_argument(
        "--expiration",
        type=arg.expiration,
        metavar="SECONDS|ISO-8601",
        help="never run after this (seconds from now, or a date and time)",
    )
    publish.add_argument(
        "--ttr", type=arg.ttr, metavar="SECONDS", help="lease of a reserved job"
    )
    publish.add_argument("--count", type=arg.count, default=1, metavar="N",
                         help="publish N such jobs")
    publish.add_argument(
        "--unique-key", metavar="K", help="publish only if no live job holds this key"
    )
    publish.add_argument(
        "--unique-for", type=arg.positive_seconds, metavar="SECONDS", help="hold the key this long"
    )
    publish.set_defaults(run=cmd_publish)

    peek = commands.add_parser("peek", help="show a job as JSON (exit 1 when not found)")
    peek.add_argument("id")
    peek.set_defaults(run=cmd_peek)

    delete = commands.add_parser("delete", help="delete a job (exit 1 when not found)")
    delete.add_argument("id")
    delete.set_defaults(run=cmd_delete)

    kick = commands.add_parser("kick", help="move buried jobs back to ready; prints how many")
    kick.add_argument("bound", nargs="?", type=arg.count, metavar="N",
                      help="at most N (default: all)")
    kick.set_defaults(run=cmd_kick)

    stats = commands.add_parser("stats", help="job counts by state")
    stats.add_argument("--json", action="store_true", help="as a JSON object")
    stats.set_defaults(run=cmd_stats)

    from pulpo_core.schedules.commands import add_commands

    add_commands(commands, make_app, EXIT_OK)
    commands.add_parser("plugins", help="installed plugins, versions and hooks").set_defaults(
        run=cmd_plugins
    )
    commands.add_parser("handlers", help="request type → handler and its origin").set_defaults(
        run=cmd_handlers
    )
    return parser


# -- commands -----------------------------------------------------------------------------


def load_settings(config_file: str | None) -> dict[str, Any] | None:
    """The settings the command runs with: --config, else $PULPO_CONFIG, else ./pulpo.toml."""
    from pulpo_core.config import ENV_VAR, read_config_file

    path = config_file or os.environ.get(ENV_VAR)
    if path:
        return read_config_file(path)
    if Path(DEFAULT_CONFIG_FILE).is_file():
        return read_config_file(DEFAULT_CONFIG_FILE)
    return {}


def make_app(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Pulpo:
    from pulpo_core.app import Pulpo

    settings = load_settings(args.config) or {}
    for section, values in (overrides or {}).items():
        given = settings.get(section)
        settings[section] = {**(given if isinstance(given, dict) else {}), **values}
    return Pulpo(settings)


def cmd_worker(args: argparse.Namespace) -> int:
    from pulpo_core.pool.command import run_worker_command

    # Handlers named in the config table ("tasks:send_email") are the project's own modules:
    # import them from the folder the worker runs in, as `python -m pulpo_core` would.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if not args.with_scheduler:
        return run_worker_command(args, make_app)
    from pulpo_core.schedules.commands import run_worker_with_scheduler

    app = make_app(args)
    try:
        run_worker_with_scheduler(app)
    finally:
        app.close()
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    from pulpo_core.message import Message, clamp_priority

    app = make_app(args)
    clamped = clamp_priority(args.priority)
    if clamped != args.priority:
        print(
            f"pulpo: priority {args.priority} is outside 0..4294967295; using {clamped}",
            file=sys.stderr,
        )
    try:
        for _ in range(args.count):
            message = Message(
                request_type=args.request_type,
                body=args.body,
                payload=args.payload,
                priority=args.priority,
                delay=args.delay,
                expiration=args.expiration,
                ttr=args.ttr,
                unique_key=args.unique_key,
                unique_for=args.unique_for,
            )
            print(app.publish(message).id, flush=True)
    finally:
        app.close()
    return EXIT_OK


def cmd_peek(args: argparse.Namespace) -> int:
    app = make_app(args)
    try:
        message = app.queue_adapter.peek(args.id)
        if message is None:
            return _not_found(args.id)
        print(json.dumps(message.to_dict(), indent=2, ensure_ascii=False))
    finally:
        app.close()
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    app = make_app(args)
    try:
        if not app.queue_adapter.delete(args.id):
            return _not_found(args.id)
        print(args.id)
    finally:
        app.close()
    return EXIT_OK


def cmd_kick(args: argparse.Namespace) -> int:
    app = make_app(args)
    try:
        print(app.queue_adapter.kick(args.bound))
    finally:
        app.close()
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    app = make_app(args)
    try:
        counts = dict(app.queue_adapter.stats())
    finally:
        app.close()
    if args.json:
        print(json.dumps(counts, sort_keys=False))
    else:
        _table([(key, str(value)) for key, value in counts.items()])
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from pulpo_core.errors import PluginError
    from pulpo_core.plugins import build_plugin_manager

    # A plugin that fails to load is reported, and the others are still listed.
    failures: list[PluginError] = []
    manager = build_plugin_manager(failures=failures)
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "HOOKS")]
    for info, hooks in manager.plugin_infos():
        rows.append((info.name, info.distribution, info.version, ", ".join(hooks)))
    # Handler packages plug in through entry points alone, without hooks: list them too.
    from pulpo_core.plugins import HANDLERS_GROUP, SCHEDULES_GROUP, distribution_entry_points

    for group, label in ((HANDLERS_GROUP, "(handlers)"), (SCHEDULES_GROUP, "(schedules)")):
        dists: dict[tuple[str, str], list[str]] = {}
        for ep, dist, version in distribution_entry_points(group):
            dists.setdefault((dist, version), []).append(ep.name)
        for (dist, version), names in sorted(dists.items()):
            rows.append((label, dist, version, f"{group}: " + ", ".join(names)))
    _table(rows)
    for failure in failures:
        print(f"pulpo: error: {failure}", file=sys.stderr)
    return EXIT_RUNTIME if failures else EXIT_OK


def show_versions() -> int:
    """``pulpo --version``: exit 0 even when a plugin fails to load (it is named on stderr)."""
    from pulpo_core.versions import version_report

    lines, errors = version_report()
    for line in lines:
        print(line)
    for error in errors:
        print(f"pulpo: error: {error}", file=sys.stderr)
    return EXIT_OK


def cmd_handlers(args: argparse.Namespace) -> int:
    app = make_app(args)
    rows = [("REQUEST TYPE", "HANDLER", "ORIGIN")]
    for request_type, spec in sorted(app.handlers.specs.items()):
        rows.append((request_type, spec.describe(), spec.origin))
    _table(rows)
    return EXIT_OK


def _not_found(job_id: str) -> int:
    print(f"pulpo: no job with id {job_id!r}", file=sys.stderr)
    return EXIT_RUNTIME


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


# -- entry point --------------------------------------------------------------------------


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code."""
    parser = build_parser()
    verbose = "--verbose" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
    except _ShowVersions:
        return show_versions()
    except UsageError as error:
        print(f"{error}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(args.verbose)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return EXIT_RUNTIME
    except Exception as error:
        return _report(error, verbose or args.verbose)


def _report(error: Exception, verbose: bool) -> int:
    from pulpo_core.errors import ConfigError, PulpoError

    if verbose:
        logging.getLogger("pulpo").exception("command failed")
    if isinstance(error, ConfigError | ValueError):  # bad settings or a bad job: usage
        print(f"pulpo: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, PulpoError | OSError):
        print(f"pulpo: error: {error}", file=sys.stderr)
        return EXIT_RUNTIME
    print(
        f"pulpo: unexpected error: {type(error).__name__}: {error} "
        "(run with --verbose for the traceback)",
        file=sys.stderr,
    )
    return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
