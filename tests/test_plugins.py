"""The plugin manager: built by a function, entry points, PULPO_DISABLE_PLUGINS, import failures."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest
from distributions import write_distribution

from pulpo_core import Message, PluginError, Pulpo, hookimpl, hookspecs
from pulpo_core import plugins as plugins_module
from pulpo_core.defaults.memory import MemoryQueueAdapter
from pulpo_core.hookspecs import RegisterAdapter
from pulpo_core.plugins import (
    DEFAULT_PLUGINS,
    DISABLE_ENV,
    HANDLERS_GROUP,
    PLUGINS_GROUP,
    build_plugin_manager,
)

_names = itertools.count()

ADAPTER_PLUGIN = """
    from pulpo_core import hookimpl
    from pulpo_core.defaults.memory import MemoryQueueAdapter

    @hookimpl
    def pulpo_register_adapters(register):
        register("{adapter}", MemoryQueueAdapter)
"""


class Site:
    """A folder on ``sys.path`` to install throwaway distributions into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.modules: list[str] = []

    def unique(self, stem: str) -> str:
        name = f"{stem}_{next(_names)}"
        self.modules.append(name)
        return name

    def plugin(self, *, source: str | None = None, dist: str | None = None,
               version: str = "1.2.3") -> tuple[str, str, str]:
        """Install a plugin distribution; return (entry point name, module, adapter name)."""
        module = self.unique("demo_plugin")
        adapter = f"adapter_{module}"
        code = ADAPTER_PLUGIN.format(adapter=adapter) if source is None else source
        write_distribution(
            self.path, dist or module.replace("_", "-"), version,
            entry_points={PLUGINS_GROUP: {module: module}},
            files={f"{module}.py": code},
        )
        return module, module, adapter


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    created = Site(folder)
    yield created
    for name in created.modules:
        sys.modules.pop(name, None)


@pytest.fixture(autouse=True)
def _no_disabled_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)


class RecordingPlugin:
    def __init__(self) -> None:
        self.published: list[Message] = []

    @hookimpl
    def pulpo_before_publish(self, message: Message, app: Pulpo) -> None:
        self.published.append(message)


class TestBuiltByAFunction:
    def test_importing_the_module_builds_no_manager(self) -> None:
        managers = [v for v in vars(plugins_module).values()
                    if isinstance(v, pluggy.PluginManager)]
        assert managers == []

    def test_each_build_is_a_new_manager(self) -> None:
        assert build_plugin_manager() is not build_plugin_manager()

    def test_a_plugin_registered_in_one_build_is_absent_from_another(self) -> None:
        plugin = RecordingPlugin()
        first = build_plugin_manager(load_entry_points=False, plugins=[plugin])
        second = build_plugin_manager(load_entry_points=False)
        assert first.is_registered(plugin)
        assert not second.is_registered(plugin)
        Pulpo({"queue_adapter_type": "memory"}, plugin_manager=second).publish(Message("t"))
        assert plugin.published == []
        Pulpo({"queue_adapter_type": "memory"}, plugin_manager=first).publish(Message("t"))
        assert len(plugin.published) == 1

    def test_apps_get_managers_of_their_own(self) -> None:
        one = Pulpo({"queue_adapter_type": "memory"})
        two = Pulpo({"queue_adapter_type": "memory"})
        assert one.plugin_manager is not two.plugin_manager


class TestDefaultPlugins:
    def test_present_without_installed_plugins(self) -> None:
        manager = build_plugin_manager(load_entry_points=False)
        for name in DEFAULT_PLUGINS:
            assert manager.has_plugin(name)

    def test_present_when_every_installed_plugin_is_disabled(self) -> None:
        manager = build_plugin_manager(disabled=["*"])
        assert [name for name, _ in manager.list_name_plugin()] == list(DEFAULT_PLUGINS)

    def test_each_does_its_part_through_the_hooks(self) -> None:
        manager = build_plugin_manager(load_entry_points=False)
        hooks = {info.name: names for info, names in manager.plugin_infos()}
        assert "pulpo_register_adapters" in hooks["pulpo_core.defaults.memory"]
        assert hooks["pulpo_core.defaults.policy"] == ["pulpo_result_policy"]
        assert hooks["pulpo_core.defaults.entry_point_handlers"] == ["pulpo_register_handlers"]

    def test_they_are_reported_as_part_of_the_core(self) -> None:
        manager = build_plugin_manager(load_entry_points=False)
        for info, _hooks in manager.plugin_infos():
            assert info.distribution == "pulpo-core"


class TestEntryPoints:
    def test_a_plugin_is_loaded_from_its_entry_point(self, site: Site) -> None:
        name, _module, adapter = site.plugin()
        manager = build_plugin_manager()
        assert manager.has_plugin(name)
        app = Pulpo({"queue_adapter_type": adapter}, plugin_manager=manager)
        assert isinstance(app.queue_adapter, MemoryQueueAdapter)

    def test_its_distribution_version_and_hooks_are_known(self, site: Site) -> None:
        name, _module, _adapter = site.plugin(dist="acme-pulpo-thing", version="2.5.0")
        infos = {info.name: (info, hooks) for info, hooks in build_plugin_manager().plugin_infos()}
        info, hooks = infos[name]
        assert (info.distribution, info.version) == ("acme-pulpo-thing", "2.5.0")
        assert hooks == ["pulpo_register_adapters"]

    def test_not_loaded_when_entry_points_are_off(self, site: Site) -> None:
        name, _module, _adapter = site.plugin()
        assert not build_plugin_manager(load_entry_points=False).has_plugin(name)

    def test_a_default_app_loads_installed_plugins(self, site: Site) -> None:
        _name, _module, adapter = site.plugin()
        app = Pulpo({"queue_adapter_type": adapter})
        assert isinstance(app.queue_adapter, MemoryQueueAdapter)


class TestDisablePlugins:
    def test_by_entry_point_name(self, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
        name, _module, _adapter = site.plugin()
        monkeypatch.setenv(DISABLE_ENV, f"something-else, {name}")
        assert not build_plugin_manager().has_plugin(name)

    def test_by_distribution_name(self, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
        name, _module, _adapter = site.plugin(dist="acme-disable-me")
        monkeypatch.setenv(DISABLE_ENV, "acme-disable-me")
        assert not build_plugin_manager().has_plugin(name)

    def test_star_disables_every_installed_plugin(
        self, site: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name, _module, _adapter = site.plugin()
        monkeypatch.setenv(DISABLE_ENV, "*")
        manager = build_plugin_manager()
        assert not manager.has_plugin(name)
        assert [n for n, _ in manager.list_name_plugin()] == list(DEFAULT_PLUGINS)

    def test_others_still_load(self, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
        kept, _m, _a = site.plugin()
        dropped, _m2, _a2 = site.plugin()
        monkeypatch.setenv(DISABLE_ENV, dropped)
        manager = build_plugin_manager()
        assert manager.has_plugin(kept)
        assert not manager.has_plugin(dropped)

    def test_the_disabled_argument_wins_over_the_variable(
        self, site: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name, _module, _adapter = site.plugin()
        monkeypatch.setenv(DISABLE_ENV, name)
        assert build_plugin_manager(disabled=[]).has_plugin(name)

    def test_the_disabled_adapter_is_then_unknown(
        self, site: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name, _module, adapter = site.plugin()
        monkeypatch.setenv(DISABLE_ENV, name)
        with pytest.raises(ValueError, match=adapter):
            Pulpo({"queue_adapter_type": adapter})


class TestImportFailure:
    def test_reported_by_name_and_error(self, site: Site) -> None:
        name, _module, _adapter = site.plugin(
            source="raise ImportError('needs the frobnicator library')\n",
            dist="acme-broken", version="0.3.0",
        )
        with pytest.raises(PluginError) as caught:
            build_plugin_manager()
        text = str(caught.value)
        assert f"'{name}'" in text
        assert "acme-broken 0.3.0" in text
        assert "ImportError: needs the frobnicator library" in text
        assert "\n" not in text

    def test_a_missing_module_is_reported(self, site: Site) -> None:
        module = site.unique("not_there")
        write_distribution(site.path, "acme-hollow",
                           entry_points={PLUGINS_GROUP: {"hollow": module}})
        with pytest.raises(PluginError, match=rf"'hollow'.*ModuleNotFoundError.*{module}"):
            build_plugin_manager()

    def test_a_plugin_with_a_hook_that_does_not_exist(self, site: Site) -> None:
        name, _module, _adapter = site.plugin(source="""
            from pulpo_core import hookimpl

            @hookimpl
            def pulpo_no_such_hook(app):
                pass
        """)
        with pytest.raises(PluginError, match=rf"'{name}'.*pulpo_no_such_hook"):
            build_plugin_manager()

    def test_a_hook_with_a_wrong_argument_is_reported_by_name(self, site: Site) -> None:
        name, _module, _adapter = site.plugin(source="""
            from pulpo_core import hookimpl

            @hookimpl
            def pulpo_before_process(msg, app):
                return None
        """)
        with pytest.raises(PluginError, match=rf"'{name}'.*msg"):
            build_plugin_manager()

    def test_collected_when_asked_and_the_others_still_load(self, site: Site) -> None:
        good, _m, _a = site.plugin()
        bad, _m2, _a2 = site.plugin(source="raise ImportError('nope')\n")
        failures: list[PluginError] = []
        manager = build_plugin_manager(failures=failures)
        assert manager.has_plugin(good)
        assert not manager.has_plugin(bad)
        assert [f"'{bad}'" in str(f) for f in failures] == [True]

    def test_disabling_the_broken_plugin_is_the_way_out(
        self, site: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        name, _module, _adapter = site.plugin(source="raise RuntimeError('broken')\n")
        monkeypatch.setenv(DISABLE_ENV, name)
        assert not build_plugin_manager().has_plugin(name)


HANDLER_MODULE = """
    def shout(message):
        print(message.payload.upper())
"""


class TestHandlerEntryPoints:
    def install(self, site: Site, dist: str = "acme-handlers") -> str:
        module = site.unique("demo_handlers")
        write_distribution(
            site.path, dist, "4.0.1",
            entry_points={HANDLERS_GROUP: {"shout": f"{module}:shout"}},
            files={f"{module}.py": HANDLER_MODULE},
        )
        return module

    def test_registered_by_request_type_with_its_origin(self, site: Site) -> None:
        module = self.install(site)
        app = Pulpo({"queue_adapter_type": "memory"})
        spec = app.handlers.specs["shout"]
        assert spec.describe() == f"{module}:shout"
        assert "acme-handlers 4.0.1" in spec.origin

    def test_imported_when_a_worker_starts_not_before(self, site: Site) -> None:
        module = self.install(site)
        app = Pulpo({"queue_adapter_type": "memory", "shutdown_after_number_of_empty_iterations": 1,
                     "sleep_duration": 0})
        app.publish(Message("shout", payload="hi"))
        assert module not in sys.modules
        app.start()
        assert module in sys.modules
        assert app.queue_adapter.stats()["total"] == 0

    def test_the_config_table_wins(self, site: Site) -> None:
        self.install(site)
        app = Pulpo({"queue_adapter_type": "memory", "handlers": {"shout": "json:dumps"}})
        assert app.handlers.specs["shout"].describe() == "json:dumps"
        assert app.handlers.specs["shout"].origin == "config"

    def test_register_handler_wins_over_the_config(self, site: Site) -> None:
        self.install(site)
        app = Pulpo({"queue_adapter_type": "memory", "handlers": {"shout": "json:dumps"}})
        app.register_handler("shout", print)
        assert app.handlers.specs["shout"].origin == "register_handler"

    def test_a_disabled_distribution_registers_none(
        self, site: Site, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.install(site, dist="acme-quiet")
        monkeypatch.setenv(DISABLE_ENV, "acme-quiet")
        assert "shout" not in Pulpo({"queue_adapter_type": "memory"}).handlers.specs


class TestHookSpecs:
    FIXED = ("pulpo_register_adapters", "pulpo_register_handlers", "pulpo_before_process")

    def test_the_fixed_hooks_exist_with_their_arguments(self) -> None:
        manager = build_plugin_manager(load_entry_points=False)
        assert manager.hook.pulpo_register_adapters.spec is not None
        assert manager.hook.pulpo_register_adapters.spec.argnames == ("register",)
        assert manager.hook.pulpo_register_handlers.spec is not None
        assert manager.hook.pulpo_register_handlers.spec.argnames == ("register",)
        assert manager.hook.pulpo_before_process.spec is not None
        assert manager.hook.pulpo_before_process.spec.argnames == ("message", "app")

    def test_before_process_takes_the_first_result(self) -> None:
        manager = build_plugin_manager(load_entry_points=False)
        spec = manager.hook.pulpo_before_process.spec
        assert spec is not None and spec.opts["firstresult"] is True

    def test_every_hook_is_exported_and_documented(self) -> None:
        names = [n for n in dir(hookspecs) if n.startswith("pulpo_")]
        assert set(self.FIXED) <= set(names)
        for name in names:
            assert name in hookspecs.__all__
            assert (getattr(hookspecs, name).__doc__ or "").strip(), name

    def test_the_marker_is_pulpos(self) -> None:
        @hookimpl
        def pulpo_register_adapters(register: RegisterAdapter) -> None:
            register("x", MemoryQueueAdapter)

        assert hasattr(pulpo_register_adapters, "pulpo_impl")
