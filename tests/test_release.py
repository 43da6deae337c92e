"""The release checks of `.ci/release.py` (`nox -s release`) catch what an upload must not carry.

Each check is run on a real sdist and wheel of a plugin, built here by hatchling from the tree,
and then on copies with one defect each: every defect must be refused, naming what is wrong.
The whole session (every distribution built with build isolation, installed into fresh
environments) runs in CI as part of `nox -s wheels`.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugins" / "pulpo-expiration"


def load_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_checks", ROOT / ".ci" / "release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


release = load_release()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-d", str(out)], cwd=PLUGIN,
                   check=True, capture_output=True, timeout=120)
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel


def rewrite_wheel(wheel: Path, out: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """A copy of the wheel where ``change(name, data)`` gives each member's new data (None:
    left out)."""
    copy = out / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(copy, "w") as target:
        for name in source.namelist():
            data = change(name, source.read(name))
            if data is not None:
                target.writestr(name, data)
    return copy


def rewrite_sdist(sdist: Path, out: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    copy = out / sdist.name
    with tarfile.open(sdist) as source, tarfile.open(copy, "w:gz") as target:
        for member in source.getmembers():
            extracted = source.extractfile(member)
            if extracted is None:
                target.addfile(member)
                continue
            data = change(member.name.split("/", 1)[-1], extracted.read())
            if data is not None:
                member.size = len(data)
                target.addfile(member, io.BytesIO(data))
    return copy


def project() -> dict[str, object]:
    result: dict[str, object] = release.project_of(PLUGIN)
    return result


def test_every_plugin_folder_is_a_distribution_to_release() -> None:
    found = {p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml")}
    assert set(release.DISTRIBUTIONS) == {ROOT, *found}
    assert release.DISTRIBUTIONS[0] == ROOT


def test_the_real_artefacts_pass(built: tuple[Path, Path]) -> None:
    sdist, wheel = built
    release.check_artefacts(PLUGIN, sdist, wheel)


def test_a_wheel_without_the_license(built: tuple[Path, Path], tmp_path: Path) -> None:
    copy = rewrite_wheel(built[1], tmp_path,
                         lambda name, data: None if name.endswith("licenses/LICENSE") else data)
    with pytest.raises(release.Failed, match="licenses/LICENSE"):
        release.check_wheel(copy, project())


def test_a_wheel_with_another_license(built: tuple[Path, Path], tmp_path: Path) -> None:
    copy = rewrite_wheel(built[1], tmp_path, lambda name, data: b"All rights reserved.\n"
                         if name.endswith("licenses/LICENSE") else data)
    with pytest.raises(release.Failed, match="not the repository's LICENSE"):
        release.check_wheel(copy, project())


def test_a_wheel_without_py_typed(built: tuple[Path, Path], tmp_path: Path) -> None:
    copy = rewrite_wheel(built[1], tmp_path,
                         lambda name, data: None if name.endswith("py.typed") else data)
    with pytest.raises(release.Failed, match=r"py\.typed"):
        release.check_wheel(copy, project())


def test_a_wheel_that_lost_its_entry_point(built: tuple[Path, Path], tmp_path: Path) -> None:
    copy = rewrite_wheel(built[1], tmp_path, lambda name, data: b""
                         if name.endswith("entry_points.txt") else data)
    with pytest.raises(release.Failed, match="entry point 'expiration'"):
        release.check_wheel(copy, project())


@pytest.mark.parametrize(("old", "new", "complaint"), [
    (b"\n\n# pulpo-expiration", b"\n\nSee [the docs](docs/expiration.md).\n\n# pulpo-expiration",
     "docs/expiration.md, broken on an index page"),
    (b"License-Expression: MIT", b"License-Expression: GPL-3.0-only", "not 'MIT'"),
    (b"Project-URL: Changelog", b"Project-URL: Elsewhere", "project URLs lack Changelog"),
    (b"Classifier: Typing :: Typed\n", b"", "'Typing :: Typed' is missing"),
    (b"Version: 0.1.0", b"Version: not a version", "invalid metadata"),
])
def test_wheel_metadata_defects(built: tuple[Path, Path], tmp_path: Path, old: bytes, new: bytes,
                                complaint: str) -> None:
    def change(name: str, data: bytes) -> bytes:
        if name.endswith(".dist-info/METADATA"):
            assert old in data, old
            return data.replace(old, new, 1)
        return data

    copy = rewrite_wheel(built[1], tmp_path, change)
    with pytest.raises(release.Failed, match=re.escape(complaint)):
        release.check_wheel(copy, project())


def test_an_sdist_without_the_license(built: tuple[Path, Path], tmp_path: Path) -> None:
    copy = rewrite_sdist(built[0], tmp_path, lambda name, data: None if name == "LICENSE" else data)
    with pytest.raises(release.Failed, match="has no LICENSE"):
        release.check_sdist(copy, project())


def test_an_sdist_and_wheel_of_different_versions(built: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    copy = rewrite_sdist(built[0], tmp_path, lambda name, data: data.replace(
        b"Version: 0.1.0", b"Version: 0.1.1") if name == "PKG-INFO" else data)
    with pytest.raises(release.Failed, match=r"the sdist is 0\.1\.1, the wheel 0\.1\.0"):
        release.check_artefacts(PLUGIN, copy, built[1])


def test_a_warning_from_the_build_fails_but_pips_own_configuration_does_not() -> None:
    output = ("WARNING: Location 'file:///opt/x/simple/y/' is ignored: it is neither a file nor "
              "a directory.\n* Building wheel...\n")
    assert release.warnings_in(output) == []
    output += "SetuptoolsDeprecationWarning: License classifiers are deprecated.\n"
    assert release.warnings_in(output) == [
        "SetuptoolsDeprecationWarning: License classifiers are deprecated."
    ]


def test_the_extras_environment_takes_every_plugin() -> None:
    plugins = {str(release.project_of(folder)["name"]) for folder in release.DISTRIBUTIONS[1:]}
    assert {f"pulpo-{extra}" for extra in release.extras_of_core()} == plugins
