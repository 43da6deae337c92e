"""Configuration: a mapping, a TOML or JSON file, or PULPO_CONFIG; refused early, naming the key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from pulpo_core import Config, ConfigError, Message, Pulpo, hookimpl
from pulpo_core.config import ENV_VAR, load_config, load_section, read_config_file
from pulpo_core.defaults.memory import MemoryQueueAdapter
from pulpo_core.hookspecs import RegisterAdapter, RegisterConfigSection
from pulpo_core.plugins import build_plugin_manager

MEMORY = {"queue_adapter_type": "memory"}


def app_with(config: Mapping[str, Any] | Config | None, *plugins: object) -> Pulpo:
    """An app with only the core's default plugins (and ``plugins``), not the installed ones."""
    return Pulpo(config, plugin_manager=build_plugin_manager(load_entry_points=False,
                                                             plugins=plugins))


TOML = """
queue_adapter_type = "memory"
shutdown_after_number_of_empty_iterations = 3
sleep_duration = 0.25
enable_output_buffering = true
max_number_of_attempts = 7
retry_delay = 2
ttr = 120

[handlers]
send_email = "shop.mail:send"

[memory_queue_adapter]
ttr = 9
"""


class TestDefaults:
    def test_an_empty_mapping_gives_the_defaults(self) -> None:
        assert load_config({}) == Config()

    def test_the_default_adapter_is_file(self) -> None:
        assert Config().queue_adapter_type == "file"

    def test_the_documented_defaults(self) -> None:
        config = Config()
        assert config.shutdown_after_number_of_empty_iterations == 0  # never
        assert config.enable_output_buffering is False
        assert config.max_number_of_attempts >= 1
        assert config.retry_delay >= 0
        assert config.ttr >= 1
        assert config.sleep_duration > 0
        assert config.handlers == {}

    def test_no_config_and_no_variable_gives_the_defaults(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(ENV_VAR, raising=False)
        assert load_config(None) == Config()


class TestSources:
    def test_a_mapping(self) -> None:
        config = load_config({"queue_adapter_type": "memory", "sleep_duration": 0.5})
        assert config.queue_adapter_type == "memory"
        assert config.sleep_duration == 0.5

    def test_a_toml_file(self, tmp_path: Path) -> None:
        path = tmp_path / "pulpo.toml"
        path.write_text(TOML)
        config = load_config(read_config_file(path))
        assert config.queue_adapter_type == "memory"
        assert config.shutdown_after_number_of_empty_iterations == 3
        assert config.sleep_duration == 0.25
        assert config.enable_output_buffering is True
        assert config.max_number_of_attempts == 7
        assert config.retry_delay == 2.0
        assert config.ttr == 120
        assert config.handlers == {"send_email": "shop.mail:send"}
        assert config.section("memory_queue_adapter") == {"ttr": 9}

    def test_a_json_file(self, tmp_path: Path) -> None:
        path = tmp_path / "pulpo.json"
        path.write_text(json.dumps({"queue_adapter_type": "memory", "ttr": 30,
                                    "handlers": {"t": "m:f"}}))
        config = load_config(read_config_file(path))
        assert config.queue_adapter_type == "memory"
        assert (config.ttr, config.handlers) == (30, {"t": "m:f"})

    def test_pulpo_config_names_the_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "settings.toml"
        path.write_text(TOML)
        monkeypatch.setenv(ENV_VAR, str(path))
        app = app_with(None)
        assert app.config.max_number_of_attempts == 7
        assert app.queue_adapter.stats()["ready"] == 0  # the memory adapter from the file

    def test_pulpo_config_naming_a_missing_file_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        missing = tmp_path / "nowhere.toml"
        monkeypatch.setenv(ENV_VAR, str(missing))
        with pytest.raises(ConfigError, match=r"nowhere\.toml"):
            app_with(None)

    def test_a_loaded_config_is_used_as_it_is(self) -> None:
        config = load_config(MEMORY)
        assert app_with(config).config is config

    def test_a_float_key_takes_a_whole_number(self) -> None:
        config = load_config({"sleep_duration": 2, "retry_delay": 0})
        assert config.sleep_duration == 2.0
        assert isinstance(config.sleep_duration, float)


class TestFileErrors:
    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"missing\.toml.* does not exist"):
            read_config_file(tmp_path / "missing.toml")

    def test_a_folder(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="is a folder"):
            read_config_file(tmp_path)

    def test_a_path_through_a_file(self, tmp_path: Path) -> None:
        # Unreadable even for root (tests may run as root, where chmod 000 changes nothing).
        (tmp_path / "plain").write_text("")
        with pytest.raises(ConfigError, match=r"inner\.toml.* cannot be read"):
            read_config_file(tmp_path / "plain" / "inner.toml")

    def test_bytes_that_are_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.toml"
        path.write_bytes('banner_name = "caf\xe9"\n'.encode("latin-1"))
        with pytest.raises(ConfigError, match=r"latin1\.toml.* cannot be read"):
            read_config_file(path)

    def test_invalid_toml(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text("ttr = = 3\n")
        with pytest.raises(ConfigError, match=r"bad\.toml.* is not valid"):
            read_config_file(path)

    def test_invalid_json(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.json"
        path.write_text("{ttr: 3}")
        with pytest.raises(ConfigError, match=r"bad\.json.* is not valid"):
            read_config_file(path)

    def test_json_that_is_not_a_table(self, tmp_path: Path) -> None:
        path = tmp_path / "list.json"
        path.write_text("[1, 2]")
        with pytest.raises(ConfigError, match=r"list\.json.* table"):
            read_config_file(path)


class TestUnknownKeys:
    def test_an_unknown_top_level_key(self) -> None:
        with pytest.raises(ConfigError, match="'sleep_durration'"):
            load_config({"sleep_durration": 1})

    def test_an_unknown_key_stops_the_app_before_any_work(self) -> None:
        with pytest.raises(ValueError, match="'max_attempts'"):
            app_with({**MEMORY, "max_attempts": 3})

    def test_an_unknown_section(self) -> None:
        with pytest.raises(ConfigError, match="'mystery'"):
            app_with({**MEMORY, "mystery": {"a": 1}})

    def test_an_unknown_key_in_a_declared_section(self) -> None:
        with pytest.raises(ConfigError, match=r"'memory_queue_adapter\.tttr'"):
            app_with({**MEMORY, "memory_queue_adapter": {"tttr": 3}})

    def test_a_section_that_is_not_a_table_is_an_unknown_key(self) -> None:
        with pytest.raises(ConfigError, match="'memory_queue_adapter'"):
            load_config({"memory_queue_adapter": 3})


BAD_VALUES = [
    ("queue_adapter_type", 5),
    ("queue_adapter_type", ""),
    ("shutdown_after_number_of_empty_iterations", -1),
    ("shutdown_after_number_of_empty_iterations", 1.5),
    ("shutdown_after_number_of_empty_iterations", "3"),
    ("shutdown_after_number_of_empty_iterations", True),
    ("sleep_duration", -0.5),
    ("sleep_duration", "1"),
    ("sleep_duration", float("nan")),
    ("sleep_duration", False),
    ("enable_output_buffering", "false"),
    ("enable_output_buffering", 0),
    ("max_number_of_attempts", 0),
    ("max_number_of_attempts", -2),
    ("max_number_of_attempts", 2.0),
    ("retry_delay", -1),
    ("retry_delay", "soon"),
    ("ttr", 0),
    ("ttr", 1.5),
    ("ttr", "60"),
    ("handlers", ["a:b"]),
    ("handlers", "a:b"),
]


class TestBadValues:
    @pytest.mark.parametrize(("key", "value"), BAD_VALUES)
    def test_refused_naming_the_key(self, key: str, value: Any) -> None:
        with pytest.raises(ConfigError, match=f"'{key}'") as caught:
            load_config({key: value})
        assert "\n" not in str(caught.value)

    @pytest.mark.parametrize(("key", "value"), BAD_VALUES[:4])
    def test_the_app_refuses_it_as_a_value_error(self, key: str, value: Any) -> None:
        with pytest.raises(ValueError, match=key):
            app_with({**MEMORY, key: value})

    @pytest.mark.parametrize("value", ["x", 0])
    def test_a_bad_value_in_a_declared_section(self, value: Any) -> None:
        with pytest.raises(ConfigError, match=r"memory_queue_adapter.*ttr"):
            app_with({**MEMORY, "memory_queue_adapter": {"ttr": value}})

    @pytest.mark.parametrize(("key", "value"), [("ttr", False), ("ttr", 0.0),
                                                ("max_number_of_attempts", False)])
    def test_false_or_a_float_is_named_as_given(self, key: str, value: Any) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config({key: value})
        assert str(caught.value) == (
            f"configuration key {key!r} must be a whole number of at least 0, not {value!r}"
        )

    def test_a_key_without_default_must_be_set(self) -> None:
        @attrs.frozen
        class Needs:
            token: str

        with pytest.raises(ConfigError) as caught:
            load_section("vault", {}, Needs)
        assert str(caught.value) == "configuration key 'vault.token' must be set"

    def test_a_value_of_a_nested_type_is_named_by_its_key(self) -> None:
        @attrs.frozen
        class Ports:
            ports: list[int] = attrs.field(factory=list)

        with pytest.raises(ConfigError) as caught:
            load_section("net", {"ports": [80, "x"]}, Ports)
        assert str(caught.value).startswith("configuration key 'net.ports' is not valid: ")
        assert "\n" not in str(caught.value)


class TestHandlersTable:
    def test_the_form_is_checked_at_load(self) -> None:
        config = load_config({"handlers": {"a": "pkg.mod:func", "b": "pkg:Class.method"}})
        assert config.handlers == {"a": "pkg.mod:func", "b": "pkg:Class.method"}

    def test_an_empty_request_type_is_refused(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config({"handlers": {"": "pkg:func"}})
        assert str(caught.value) == (
            "configuration key 'handlers' must name each request type, not ''"
        )

    @pytest.mark.parametrize("path", ["no_colon", "mod:", ":obj", "a b:c", "mod:obj:x", 5, ""])
    def test_a_bad_form_names_the_request_type(self, path: Any) -> None:
        with pytest.raises(ConfigError, match=r"'handlers\.send'"):
            load_config({"handlers": {"send": path}})

    def test_the_modules_are_not_imported_by_the_app(self) -> None:
        app = app_with({**MEMORY, "handlers": {"t": "module_that_does_not_exist_anywhere:f"}})
        published = app.publish(Message("t"))
        assert published.id is not None
        assert app.handlers.specs["t"].origin == "config"


@attrs.frozen
class GreetingSettings:
    greeting: str = "hello"
    times: int = 1


class SectionPlugin:
    """Declares a section and an adapter, and records what it was handed."""

    def __init__(self) -> None:
        self.adapter_sections: list[dict[str, Any]] = []
        self.seen_greeting: str | None = None

    @hookimpl
    def pulpo_register_config_sections(self, register: RegisterConfigSection) -> None:
        register("greeting", GreetingSettings)
        register("plain", ["colour"])

    @hookimpl
    def pulpo_register_adapters(self, register: RegisterAdapter) -> None:
        def factory(section: Mapping[str, Any]) -> MemoryQueueAdapter:
            self.adapter_sections.append(dict(section))
            return MemoryQueueAdapter()

        register("recording", factory, aliases=("RecordingAdapter",))

    @hookimpl
    def pulpo_before_process(self, message: Message, app: Pulpo) -> None:
        self.seen_greeting = app.config.section("greeting").get("greeting")


class TestPluginSections:
    def test_the_adapter_factory_gets_its_section(self) -> None:
        plugin = SectionPlugin()
        app = app_with({"queue_adapter_type": "recording",
                        "recording_queue_adapter": {"url": "x://y", "n": 2}}, plugin)
        app.queue_adapter  # noqa: B018 - created on first use
        assert plugin.adapter_sections == [{"url": "x://y", "n": 2}]

    def test_an_alias_gets_the_main_names_section(self) -> None:
        plugin = SectionPlugin()
        app = app_with({"queue_adapter_type": "RecordingAdapter",
                        "recording_queue_adapter": {"n": 3}}, plugin)
        app.queue_adapter  # noqa: B018
        assert plugin.adapter_sections == [{"n": 3}]

    def test_an_absent_section_is_an_empty_mapping(self) -> None:
        plugin = SectionPlugin()
        app_with({"queue_adapter_type": "recording"}, plugin).queue_adapter  # noqa: B018
        assert plugin.adapter_sections == [{}]

    def test_a_plugin_reads_its_section(self) -> None:
        plugin = SectionPlugin()
        app = app_with({**MEMORY, "greeting": {"greeting": "hola", "times": 2}}, plugin)
        app.handle_message(_publish_and_take(app))
        assert plugin.seen_greeting == "hola"

    def test_a_declared_section_with_a_bad_value(self) -> None:
        with pytest.raises(ConfigError, match=r"'greeting\.times'"):
            app_with({**MEMORY, "greeting": {"times": "twice"}}, SectionPlugin())

    def test_a_declared_section_with_an_unknown_key(self) -> None:
        with pytest.raises(ConfigError, match=r"'greeting\.colour'"):
            app_with({**MEMORY, "greeting": {"colour": "red"}}, SectionPlugin())

    def test_a_section_declared_by_key_names(self) -> None:
        app_with({**MEMORY, "plain": {"colour": "red"}}, SectionPlugin())
        with pytest.raises(ConfigError, match=r"'plain\.size'"):
            app_with({**MEMORY, "plain": {"size": 3}}, SectionPlugin())

    def test_the_section_is_unknown_without_its_plugin(self) -> None:
        with pytest.raises(ConfigError, match="'greeting'"):
            app_with({**MEMORY, "greeting": {"greeting": "hola"}})


def _publish_and_take(app: Pulpo) -> Message:
    app.publish(Message("anything"))
    message = app.queue_adapter.dequeue()
    assert message is not None
    return message


class TestAdapterSelection:
    def test_an_unknown_adapter_lists_the_available_ones(self) -> None:
        with pytest.raises(ConfigError, match=r"'rabbit'.*available: .*memory") as caught:
            app_with({"queue_adapter_type": "rabbit"})
        assert "\n" not in str(caught.value)

    def test_an_adapter_not_installed_names_its_distribution(self) -> None:
        # Only the core's plugins: the default adapter "file" lives in pulpo-file.
        with pytest.raises(ConfigError, match=r"'file'.*pulpo-file"):
            app_with({})

    def test_a_file_alias_not_installed_names_its_distribution(self) -> None:
        with pytest.raises(ConfigError, match=r"'FileQueueAdapter'.*pulpo-file"):
            app_with({"queue_adapter_type": "FileQueueAdapter"})

    def test_the_core_names_no_other_distribution(self) -> None:
        with pytest.raises(ConfigError, match="unknown queue_adapter_type 'beanstalkd'"):
            app_with({"queue_adapter_type": "beanstalkd"})

    def test_a_plugin_names_the_distribution_of_a_missing_adapter(self) -> None:
        with pytest.raises(ConfigError, match=r"'rabbit'.*pulpo-rabbit.*pip install pulpo-rabbit"):
            app_with({"queue_adapter_type": "rabbit"}, HintPlugin())

    @pytest.mark.parametrize("name", ["memory", "memory_queue_adapter", "MemoryQueueAdapter"])
    def test_the_memory_adapter_by_any_name(self, name: str) -> None:
        app = app_with({"queue_adapter_type": name})
        assert isinstance(app.queue_adapter, MemoryQueueAdapter)


@attrs.frozen
class LoudSettings:
    loudness: int = 3
    shout: bool = False


class TopLevelKeysPlugin:
    @hookimpl
    def pulpo_register_config_sections(self, register_keys: Any) -> None:
        register_keys(LoudSettings)


class HintPlugin:
    @hookimpl
    def pulpo_register_hints(self, register: Any) -> None:
        register("rabbit", "pulpo-rabbit")
        register("loudness", "pulpo-loud")


class TestPluginTopLevelKeys:
    def test_a_declared_key_is_read_as_a_config_attribute(self) -> None:
        app = app_with({**MEMORY, "loudness": 7}, TopLevelKeysPlugin())
        assert app.config.loudness == 7
        assert app.config.shout is False  # its default

    def test_a_declared_key_with_a_bad_value_is_named(self) -> None:
        with pytest.raises(ConfigError, match=r"'loudness' must be a whole number.*'loud'"):
            app_with({**MEMORY, "loudness": "loud"}, TopLevelKeysPlugin())

    def test_without_the_plugin_the_key_is_of_a_plugin_not_installed(self) -> None:
        with pytest.raises(ConfigError, match=r"'loudness': no installed plugin declares it"):
            app_with({**MEMORY, "loudness": 7})

    def test_a_hint_names_the_distribution_to_install(self) -> None:
        with pytest.raises(ConfigError, match=r"'loudness': it belongs to pulpo-loud"):
            app_with({**MEMORY, "loudness": 7}, HintPlugin())

    def test_an_undeclared_attribute_is_an_attribute_error(self) -> None:
        with pytest.raises(AttributeError, match="'loudness'"):
            Config().loudness  # noqa: B018
