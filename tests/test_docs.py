"""The documentation cannot drift from the code.

A hook without its page, a configuration key, CLI command or flag missing from its reference, a
page the site's nav omits (or a nav entry without its page), and a documentation example that
no longer runs each fail here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from pulpo_core import hookspecs
from pulpo_core.app import Pulpo
from pulpo_core.cli import DEFAULT_CONFIG_FILE, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, build_parser
from pulpo_core.config import CORE_KEYS, ENV_VAR, Config
from pulpo_core.plugins import DISABLE_ENV

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MKDOCS = ROOT / ".ci" / "mkdocs.yml"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
NAV_ENTRY = re.compile(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.md)\s*$", re.MULTILINE)
#: A block starting with this line is a module of that name that later blocks import.
MODULE_BLOCK = re.compile(r"^# (\w+)\.py\n")
#: A block starting with this is a hook's specification: compiled, not run.
SPEC_BLOCK = "@hookspec"
#: Pages whose Python examples run on the memory adapter, block after block.
EXECUTED_PAGES = ("messages.md", "handlers.md", "hooks/*.md")


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def hook_names() -> list[str]:
    return sorted(
        name for name, value in vars(hookspecs).items()
        if name.startswith("pulpo_") and inspect.isfunction(value)
        and hasattr(value, "pulpo_spec")
    )


def section_of(text: str, heading: str) -> str:
    """The text from ``heading`` to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    following = re.search(rf"^{level} ", text[start + len(heading):], re.MULTILINE)
    end = start + len(heading) + following.start() if following else len(text)
    return text[start:end]


class TestHookPages:
    @pytest.mark.parametrize("hook", hook_names())
    def test_every_hook_has_a_page_with_its_signature_and_an_example(self, hook: str) -> None:
        path = DOCS / "hooks" / f"{hook}.md"
        assert path.is_file(), f"hook {hook} has no page docs/hooks/{hook}.md"
        text = path.read_text(encoding="utf-8")
        spec = getattr(hookspecs, hook)
        parameters = ", ".join(inspect.signature(spec).parameters)
        signature = re.search(rf"def {hook}\(([^)]*)\)", text)
        assert signature, f"docs/hooks/{hook}.md does not show the signature of {hook}"
        shown = ", ".join(p.split(":")[0].strip() for p in signature.group(1).split(","))
        assert shown == parameters, (
            f"docs/hooks/{hook}.md shows ({shown}), the spec has ({parameters})"
        )
        assert any("@hookimpl" in b and f"def {hook}(" in b for b in blocks(text, "python")), (
            f"docs/hooks/{hook}.md has no example implementation"
        )

    def test_the_hooks_overview_links_every_hook_page(self) -> None:
        text = page("hooks/index.md")
        missing = [h for h in hook_names() if f"({h}.md)" not in text]
        assert not missing, f"docs/hooks/index.md does not link {missing}"

    def test_every_hook_page_is_a_hook(self) -> None:
        pages = {p.stem for p in (DOCS / "hooks").glob("pulpo_*.md")}
        strays = pages - set(hook_names())
        assert not strays, f"pages for hooks that do not exist: {sorted(strays)}"


def documented_default(value: Any) -> str:
    """A default as the configuration reference writes it (TOML spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


class TestConfigurationReference:
    @pytest.mark.parametrize(
        "field", [f for f in attrs.fields(Config) if f.name in CORE_KEYS], ids=lambda f: f.name
    )
    def test_every_key_is_in_the_table_with_its_default_and_has_a_section(
        self, field: attrs.Attribute[Any]
    ) -> None:
        text = page("configuration.md")
        row = next((line for line in text.splitlines() if line.startswith(f"| `{field.name}` |")),
                   None)
        assert row, f"configuration key {field.name!r} is missing from docs/configuration.md"
        default: Any = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        assert f"`{documented_default(default)}`" in row, (
            f"docs/configuration.md gives {field.name!r} another default than {default!r}"
        )
        assert f"### `{field.name}`\n" in text, f"{field.name!r} has no section of its own"

    def test_the_environment_variables_and_default_file_are_documented(self) -> None:
        text = page("configuration.md")
        for name in (ENV_VAR, DISABLE_ENV, DEFAULT_CONFIG_FILE):
            assert f"`{name}`" in text or f"`./{name}`" in text, f"{name} is not documented"

    @pytest.mark.parametrize("name", ["configuration.md", "getting-started.md"])
    def test_the_settings_examples_load(self, name: str) -> None:
        text = page(name)
        examples = [tomllib.loads(b) for b in blocks(text, "toml")]
        examples += [json.loads(b) for b in blocks(text, "json")]
        assert examples, f"docs/{name} has no settings example"
        for settings in examples:  # with every plugin installed: their keys are declared
            Pulpo(settings).close()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


class TestCliReference:
    def test_every_global_option_is_documented(self) -> None:
        text = section_of(page("cli.md"), "## Global options")
        for action in build_parser()._actions:
            for flag in action.option_strings:
                assert f"`{flag}" in text, f"global option {flag} is missing from docs/cli.md"

    @pytest.mark.parametrize("command", sorted(subcommands()))
    def test_every_command_and_its_flags_are_documented(self, command: str) -> None:
        text = page("cli.md")
        assert f"## `{command}`\n" in text, f"command {command!r} is missing from docs/cli.md"
        section = section_of(text, f"## `{command}`")
        assert f"pulpo {command}" in section, f"docs/cli.md shows no usage of {command!r}"
        for action in subcommands()[command]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                assert f"`{flag}" in section, f"{command} {flag} is missing from docs/cli.md"
            if not action.option_strings:
                name = str(action.metavar or action.dest).upper()
                assert name in section, f"{command}'s argument {name} is missing from docs/cli.md"

    def test_every_exit_status_is_documented(self) -> None:
        text = section_of(page("cli.md"), "## Output and exit status")
        for status in (EXIT_OK, EXIT_RUNTIME, EXIT_USAGE):
            assert f"| {status} |" in text, f"exit status {status} is missing from docs/cli.md"


def nav_pages() -> list[str]:
    return NAV_ENTRY.findall(MKDOCS.read_text(encoding="utf-8"))


def doc_pages() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


class TestNav:
    def test_the_site_is_built_from_docs(self) -> None:
        config = MKDOCS.read_text(encoding="utf-8")
        assert re.search(r"^docs_dir: \.\./docs$", config, re.MULTILINE)

    @pytest.mark.parametrize("name", doc_pages())
    def test_every_page_is_in_the_nav(self, name: str) -> None:
        assert name in nav_pages(), f"docs/{name} is not in the nav of .ci/mkdocs.yml"

    @pytest.mark.parametrize("name", nav_pages())
    def test_every_nav_entry_has_its_page(self, name: str) -> None:
        assert (DOCS / name).is_file(), f".ci/mkdocs.yml lists {name}, but docs/{name} is missing"


def executed_pages() -> list[str]:
    found: list[str] = []
    for pattern in EXECUTED_PAGES:
        found += sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob(pattern))
    return found


@pytest.fixture
def scratch_modules() -> Iterator[list[str]]:
    """Names of example modules a page defines; removed from sys.modules afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


class TestDocExamples:
    @pytest.mark.parametrize("name", doc_pages())
    def test_every_python_block_compiles(self, name: str) -> None:
        for number, block in enumerate(blocks(page(name), "python"), 1):
            compile(block, f"docs/{name} python block {number}", "exec", dont_inherit=True)

    @pytest.mark.parametrize("name", executed_pages())
    def test_the_examples_run(
        self, name: str, scratch_modules: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.chdir(tmp_path)  # examples that write files write them here
        namespace: dict[str, Any] = {"__name__": f"docs_{Path(name).stem}"}
        python = blocks(page(name), "python")
        assert python, f"docs/{name} has no Python example"
        for number, block in enumerate(python, 1):
            code = compile(block, f"docs/{name} python block {number}", "exec", dont_inherit=True)
            module_name = MODULE_BLOCK.match(block)
            if block.startswith(SPEC_BLOCK):
                continue
            if module_name:
                module = types.ModuleType(module_name.group(1))
                scratch_modules.append(module.__name__)
                sys.modules[module.__name__] = module
                exec(code, module.__dict__)
            else:
                exec(code, namespace)
