"""Building the plugin manager: hook specs, the core's default plugins, installed plugins."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from pulpo_core import hookspecs
from pulpo_core.errors import PluginError
from pulpo_core.markers import PROJECT_NAME

#: Entry-point group of plugins (adapters, middleware, policies).
PLUGINS_GROUP = "pulpo.plugins"
#: Entry-point group of handlers: ``request_type = "package.module:object"``.
HANDLERS_GROUP = "pulpo.handlers"
#: Entry-point group of schedules: ``name = "package.module:TABLE"``, a ``[schedules.NAME]`` table.
SCHEDULES_GROUP = "pulpo.schedules"
#: Comma-separated plugin or distribution names to skip; ``*`` skips every installed plugin.
DISABLE_ENV = "PULPO_DISABLE_PLUGINS"

#: The core's own behaviour, written as plugins through the same hooks a third party uses.
DEFAULT_PLUGINS = (
    "pulpo_core.defaults.memory",
    "pulpo_core.defaults.policy",
    "pulpo_core.defaults.entry_point_handlers",
    "pulpo_core.defaults.worker_section",
    "pulpo_core.defaults.schedules",
)


#: A hook's implementations in call order, each as (function, names of its arguments).
DirectCalls = tuple[tuple[Callable[..., Any], tuple[str, ...]], ...]


@attrs.frozen
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    distribution: str
    version: str


class PulpoPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which distribution each plugin came from."""

    def __init__(self) -> None:
        self._direct: dict[str, DirectCalls | None] = {}
        self._monitors = 0
        super().__init__(PROJECT_NAME)
        self.origins: dict[str, PluginInfo] = {}

    # -- direct hook calls (the worker's and publisher's hot path) -------------------------

    def direct_calls(self, name: str) -> DirectCalls | None:
        """The implementations of hook ``name`` in pluggy's call order, each with the names of
        its arguments, for the core to call without pluggy's dispatch (a few microseconds a
        call); None when pluggy must call them (a wrapper among them, or call monitoring on).
        Kept until a plugin is registered or unregistered."""
        if self._monitors:
            return None
        try:
            return self._direct[name]
        except KeyError:
            pass
        impls = getattr(self.hook, name).get_hookimpls()
        calls = (
            None
            if any(impl.wrapper or impl.hookwrapper for impl in impls)
            else tuple((impl.function, tuple(impl.argnames)) for impl in reversed(impls))
        )
        self._direct[name] = calls
        return calls

    def _calls(self, name: str) -> DirectCalls:
        """The direct calls of hook ``name``, or (with wrappers or monitoring on) its plain
        implementations in call order, wrappers left out."""
        calls = self.direct_calls(name)
        if calls is not None:
            return calls
        impls = getattr(self.hook, name).get_hookimpls()
        return tuple(
            (impl.function, tuple(impl.argnames))
            for impl in reversed(impls)
            if not (impl.wrapper or impl.hookwrapper)
        )

    def call_first(self, name: str, arguments: dict[str, Any]) -> Any:
        """A ``firstresult`` hook's answer, as pluggy gives it, without its dispatch."""
        calls = self.direct_calls(name)
        if calls is None:
            return getattr(self.hook, name)(**arguments)
        for function, argnames in calls:
            answer = function(*[arguments[argname] for argname in argnames])
            if answer is not None:
                return answer
        return None

    def call_first_surviving(
        self, name: str, arguments: dict[str, Any], failed: Callable[[BaseException], None]
    ) -> Any:
        """Like :meth:`call_first`, but an implementation that raises is reported to ``failed``
        and passed over, so the next one (in the end the core's default) answers."""
        for function, argnames in self._calls(name):
            try:
                answer = function(*[arguments[argname] for argname in argnames])
            except Exception as error:
                failed(error)
                continue
            if answer is not None:
                return answer
        return None

    def call_each(self, name: str, arguments: dict[str, Any]) -> None:
        """Call every implementation of a hook whose answers are not used."""
        calls = self.direct_calls(name)
        if calls is None:
            getattr(self.hook, name)(**arguments)
            return
        for function, argnames in calls:
            function(*[arguments[argname] for argname in argnames])

    def call_chain(self, name: str, key: str, arguments: dict[str, Any], kind: type) -> Any:
        """A chain, not a fan-out: each implementation sees ``arguments[key]`` as the ones
        before it left it (an answer of type ``kind`` replaces it), in pluggy's call order
        (tryfirst first, then last registered first). Returns the final value."""
        arguments = dict(arguments)
        for function, argnames in self._calls(name):
            changed = function(*[arguments[argname] for argname in argnames])
            if isinstance(changed, kind):
                arguments[key] = changed
        return arguments[key]

    def has_implementations(self, name: str) -> bool:
        """Whether any plugin implements hook ``name``."""
        calls = self.direct_calls(name)
        if calls is None:
            return bool(getattr(self.hook, name).get_hookimpls())
        return bool(calls)

    def register(self, plugin: object, name: str | None = None) -> str | None:
        self._direct.clear()
        try:
            return super().register(plugin, name)
        finally:
            self._direct.clear()

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self._direct.clear()
        try:
            return super().unregister(plugin, name)
        finally:
            self._direct.clear()

    def add_hookspecs(self, module_or_class: Any) -> None:
        self._direct.clear()
        super().add_hookspecs(module_or_class)

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        undo = super().add_hookcall_monitoring(before, after)
        self._monitors += 1
        done = False

        def undo_and_count() -> None:
            nonlocal done
            undo()
            if not done:
                done = True
                self._monitors -= 1

        return undo_and_count

    def plugin_infos(self) -> list[tuple[PluginInfo, list[str]]]:
        """Each plugin with the hooks it implements, in registration order."""
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            hooks = _hook_names(self, plugin)
            info = self.origins.get(name, PluginInfo(name, "pulpo-core", _version("pulpo-core")))
            infos.append((info, hooks))
        return infos


def _hook_names(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return sorted(caller.name for caller in callers)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def disabled_plugins(environ: dict[str, str] | None = None) -> set[str]:
    """The names listed in ``PULPO_DISABLE_PLUGINS``."""
    value = (environ if environ is not None else os.environ).get(DISABLE_ENV, "")
    return {part.strip() for part in value.split(",") if part.strip()}


def distribution_entry_points(group: str) -> list[tuple[EntryPoint, str, str]]:
    """Each entry point of ``group`` whose distribution is not disabled, by name, with the
    distribution's name and version."""
    skip = disabled_plugins()
    found = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        if "*" in skip or dist in skip:
            continue
        found.append((ep, dist, ep.dist.version if ep.dist is not None else "unknown"))
    return found


def build_plugin_manager(
    *,
    load_entry_points: bool = True,
    plugins: Iterable[object] = (),
    disabled: Iterable[str] | None = None,
    failures: list[PluginError] | None = None,
) -> PulpoPluginManager:
    """A fresh plugin manager with the hook specs, the default plugins and installed plugins.

    :param load_entry_points: load the ``pulpo.plugins`` entry-point group.
    :param plugins: extra plugin objects or modules to register (tests, embedding apps).
    :param disabled: names of plugins or distributions to skip; default: ``PULPO_DISABLE_PLUGINS``.
    :param failures: when given, an installed plugin that fails to load is left out and its
        error appended here instead of raised (``pulpo plugins`` lists the others).
    :raises PluginError: when an installed plugin fails to import, naming it and the error.
    """
    import importlib

    pm = PulpoPluginManager()
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    skip = set(disabled) if disabled is not None else disabled_plugins()
    if load_entry_points and "*" not in skip:
        for ep in sorted(entry_points(group=PLUGINS_GROUP), key=lambda e: e.name):
            try:
                _load_entry_point(pm, ep, skip)
            except PluginError as error:
                if failures is None:
                    raise
                failures.append(error)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def _load_entry_point(pm: PulpoPluginManager, ep: EntryPoint, skip: set[str]) -> None:
    dist = ep.dist.name if ep.dist is not None else "unknown"
    version = ep.dist.version if ep.dist is not None else "unknown"
    if ep.name in skip or dist in skip or pm.has_plugin(ep.name):
        return
    try:
        plugin = ep.load()
    except Exception as error:
        raise PluginError(
            f"plugin {ep.name!r} from {dist} {version} failed to import ({ep.value}): "
            f"{type(error).__name__}: {error}"
        ) from error
    label = f"plugin {ep.name!r} from {dist} {version} ({ep.value})"
    try:
        pm.register(plugin, name=ep.name)
    except pluggy.PluginValidationError as error:
        raise PluginError(f"{label} is not valid: {_one_line(error)}") from error
    unknown = [
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if caller.spec is None
        and not any(impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin)
    ]
    if unknown:
        pm.unregister(plugin)
        raise PluginError(f"{label} implements hooks that do not exist: {', '.join(unknown)}")
    pm.origins[ep.name] = PluginInfo(ep.name, dist, version)


def _one_line(error: BaseException) -> str:
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
