"""Every distribution is releasable the same way: the metadata agrees across all of them.

Read from each ``pyproject.toml`` (the core's at the top, every ``plugins/*/``, found, never
listed), so a new plugin is held to the same rules. `nox -s release` checks the built artefacts.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
DISTRIBUTIONS = [ROOT, *PLUGINS]
#: The fields every distribution shares with the core, value for value.
SHARED = ("requires-python", "license", "license-files", "authors", "classifiers", "urls")
RELATIVE_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)


def pyproject(folder: Path) -> dict[str, Any]:
    with (folder / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def package_of(folder: Path) -> str:
    return str(pyproject(folder)["project"]["name"]).replace("-", "_")


def version_of(folder: Path) -> str:
    init = folder / package_of(folder) / "__init__.py"
    found = VERSION_LINE.findall(init.read_text(encoding="utf-8"))
    assert len(found) == 1, f"{init.relative_to(ROOT)} must set __version__ = \"X.Y.Z\" once"
    return str(found[0])


def ids(folders: list[Path]) -> list[str]:
    return [folder.name if folder != ROOT else "pulpo-core" for folder in folders]


@pytest.mark.parametrize("folder", DISTRIBUTIONS, ids=ids(DISTRIBUTIONS))
class TestEveryDistribution:
    def test_ships_the_repositorys_license(self, folder: Path) -> None:
        license_file = folder / "LICENSE"
        assert license_file.is_file(), f"copy the top-level LICENSE into {folder.name}/"
        assert license_file.read_bytes() == (ROOT / "LICENSE").read_bytes()
        assert pyproject(folder)["project"]["license-files"] == ["LICENSE"]

    def test_shares_the_cores_metadata(self, folder: Path) -> None:
        core, this = pyproject(ROOT)["project"], pyproject(folder)["project"]
        for field in SHARED:
            assert this.get(field) == core[field], f"{folder.name}: {field} differs from the core"
        assert this.get("keywords"), f"{folder.name} has no keywords"
        assert this.get("description"), f"{folder.name} has no description"

    def test_the_version_has_one_source_the_packages_dunder_version(self, folder: Path) -> None:
        data = pyproject(folder)
        assert "version" not in data["project"], "the version lives in __init__.py alone"
        assert "version" in data["project"]["dynamic"]
        assert data["tool"]["hatch"]["version"]["path"] == f"{package_of(folder)}/__init__.py"
        version_of(folder)

    def test_builds_with_a_hatchling_that_writes_license_files(self, folder: Path) -> None:
        requires = pyproject(folder)["build-system"]["requires"]
        assert any(re.fullmatch(r"hatchling>=1\.(2[7-9]|[3-9]\d)(\.\d+)?", r) for r in requires)

    def test_typed_package(self, folder: Path) -> None:
        assert (folder / package_of(folder) / "py.typed").is_file()

    def test_python_classifiers_match_requires_python(self, folder: Path) -> None:
        project = pyproject(folder)["project"]
        lowest = project["requires-python"].removeprefix(">=")
        versions = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
        assert versions and versions[0] == lowest, (versions, lowest)
        assert "Typing :: Typed" in project["classifiers"]

    def test_its_version_is_in_the_changelog(self, folder: Path) -> None:
        changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
        assert re.search(rf"^## \[{re.escape(version_of(folder))}\]", changelog, re.MULTILINE)
        name = pyproject(folder)["project"]["name"]
        assert f"**{name}**" in changelog, f"CHANGELOG.md says nothing of {name}"


@pytest.mark.parametrize("folder", PLUGINS, ids=ids(PLUGINS))
class TestEveryPlugin:
    def test_has_an_extra_on_the_core(self, folder: Path) -> None:
        name = pyproject(folder)["project"]["name"]
        extra = name.removeprefix("pulpo-")
        extras = pyproject(ROOT)["project"]["optional-dependencies"]
        wanted = ".".join(version_of(folder).split(".")[:2])
        assert extras.get(extra) == [f"{name}>={wanted}"], (
            f'add {extra} = ["{name}>={wanted}"] to the core\'s optional-dependencies'
        )

    def test_the_extra_is_in_the_readmes_install_section(self, folder: Path) -> None:
        extra = pyproject(folder)["project"]["name"].removeprefix("pulpo-")
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        shown = {e for group in re.findall(r"pulpo-core\[([\w,-]+)\]", readme)
                 for e in group.split(",")}
        assert extra in shown, f"show pip install \"pulpo-core[{extra}]\" in the README"

    def test_depends_on_a_core_that_exists(self, folder: Path) -> None:
        [core] = [d for d in pyproject(folder)["project"]["dependencies"]
                  if d.startswith("pulpo-core")]
        lowest = core.removeprefix("pulpo-core>=")
        assert version_of(ROOT).startswith(lowest), (core, version_of(ROOT))

    def test_its_readme_renders_on_an_index_page(self, folder: Path) -> None:
        project = pyproject(folder)["project"]
        readme = folder / project["readme"]
        text = readme.read_text(encoding="utf-8")
        assert text.startswith(f"# {project['name']}\n")
        assert not RELATIVE_LINK.findall(text), "a relative link is broken on an index page"


def test_every_extra_names_a_plugin_that_exists() -> None:
    names = {pyproject(folder)["project"]["name"] for folder in PLUGINS}
    extras = pyproject(ROOT)["project"]["optional-dependencies"]
    for extra, requirements in extras.items():
        if extra != "test":
            assert requirements[0].split(">=")[0] in names, extra
