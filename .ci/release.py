"""Release checks of every distribution, as an upload would need them (`nox -s release`).

Run by `nox -s release` (and by `nox -s wheels`, which then runs a job from the same wheels):

1. builds the sdist of every distribution (the root and each `plugins/*/`) and its wheel from that
   sdist, into `--dist-dir` (default `dist/`); any warning from the build fails;
2. checks each artefact: the LICENSE (the repository's, byte for byte), `py.typed`, the entry
   points its `pyproject.toml` declares, the metadata (validated by `packaging`, then
   `twine check --strict`), a README that renders on an index page without relative links;
3. installs each wheel into a fresh virtual environment with the built wheels as the only source
   of pulpo distributions (`--no-index`; the third-party dependencies are downloaded once first),
   imports it, loads its entry points and checks `pulpo plugins` and `pulpo --version` list it;
   then does the same for `pulpo-core` with every extra.

Exits 0 when all went well, else 1 with what failed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path

from packaging.metadata import Metadata
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
#: Every distribution: the core at the top, each plugin under plugins/ (found, never listed).
DISTRIBUTIONS = [ROOT, *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]
LICENSE = ROOT / "LICENSE"
#: Project URLs a user looks for on the index page.
URL_LABELS = ("Documentation", "Changelog", "Issues")
#: A markdown link or image whose target is neither absolute nor an anchor: broken on an index.
RELATIVE_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")
#: Output of pip's own configuration (a find-links folder missing), not of the packaging.
NOT_PACKAGING = re.compile(r"^WARNING: Location '.*' is ignored", re.IGNORECASE)


class Failed(Exception):
    """The release is not ready; the message says what is wrong."""


def run(command: Sequence[str | Path], *, timeout: float = 600, cwd: Path | None = None) -> str:
    """Run a command; return its stdout and stderr, or fail with them."""
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        shown = " ".join(str(part) for part in command)
        raise Failed(f"`{shown}` exited {done.returncode}:\n{output}")
    return output


def step(text: str) -> None:
    print(f"release: {text}", flush=True)


def pyproject(folder: Path) -> dict[str, object]:
    with (folder / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def project_of(folder: Path) -> dict[str, object]:
    project: dict[str, object] = pyproject(folder)["project"]  # type: ignore[assignment]
    return project


def warnings_in(output: str) -> list[str]:
    return [
        line.strip() for line in output.splitlines()
        if "warn" in line.lower() and not NOT_PACKAGING.match(line.strip())
    ]


# -- 1. building -----------------------------------------------------------------------------


def build(folder: Path, out: Path) -> tuple[Path, Path]:
    """The sdist of ``folder`` and the wheel built from it: (sdist, wheel)."""
    name = str(project_of(folder)["name"])
    stem = name.replace("-", "_")
    step(f"building the sdist and wheel of {name}")
    output = run([sys.executable, "-m", "build", "--outdir", out, folder])
    warned = warnings_in(output)
    if warned:
        raise Failed(f"building {name} warned:\n" + "\n".join(warned))
    sdists = sorted(out.glob(f"{stem}-*.tar.gz"))
    wheels = sorted(out.glob(f"{stem}-*-py3-none-any.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise Failed(f"building {name} should leave one sdist and one wheel in {out}, "
                     f"found {[p.name for p in sdists + wheels]}")
    return sdists[0], wheels[0]


# -- 2. checking the artefacts ---------------------------------------------------------------


def check_metadata(text: str, artefact: str, project: dict[str, object]) -> Metadata:
    """The core metadata of an artefact: valid, complete, with a description fit for an index."""
    try:
        metadata = Metadata.from_email(text, validate=True)
    except Exception as error:  # packaging raises an ExceptionGroup of every invalid field
        details = "; ".join(str(e) for e in getattr(error, "exceptions", [error]))
        raise Failed(f"{artefact}: invalid metadata: {details}") from None
    problems = []
    if metadata.name != project["name"]:
        problems.append(f"its name is {metadata.name!r}, pyproject.toml says {project['name']!r}")
    if str(metadata.license_expression) != "MIT":
        problems.append(f"License-Expression is {metadata.license_expression!r}, not 'MIT'")
    if metadata.license_files != ["LICENSE"]:
        problems.append(f"License-File is {metadata.license_files!r}, not ['LICENSE']")
    classifiers = metadata.classifiers or []
    for wanted in ("Typing :: Typed", "Programming Language :: Python :: 3 :: Only"):
        if wanted not in classifiers:
            problems.append(f"the classifier {wanted!r} is missing")
    urls = metadata.project_urls or {}
    missing = [label for label in URL_LABELS if label.lower() not in {k.lower() for k in urls}]
    if missing:
        problems.append(f"project URLs lack {', '.join(missing)}")
    if not metadata.keywords:
        problems.append("it has no keywords")
    if metadata.description_content_type != "text/markdown":
        problems.append(f"its README is {metadata.description_content_type!r}, not text/markdown")
    relative = RELATIVE_LINK.findall(metadata.description or "")
    if relative:
        problems.append(f"its README links to {', '.join(relative)}, broken on an index page")
    if problems:
        raise Failed(f"{artefact}: " + "; ".join(problems))
    return metadata


def check_sdist(sdist: Path, project: dict[str, object]) -> str:
    """The sdist holds LICENSE, README, pyproject.toml and the package; returns its version."""
    package = str(project["name"]).replace("-", "_")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if "/" in m.name}
        for wanted in ("LICENSE", "PKG-INFO", "pyproject.toml", "README.md",
                       f"{package}/__init__.py", f"{package}/py.typed"):
            if wanted not in members:
                raise Failed(f"{sdist.name} has no {wanted}")
        extracted = archive.extractfile(members["LICENSE"])
        if extracted is None or extracted.read() != LICENSE.read_bytes():
            raise Failed(f"{sdist.name}: its LICENSE is not the repository's LICENSE")
        info = archive.extractfile(members["PKG-INFO"])
        assert info is not None
        metadata = check_metadata(info.read().decode(), sdist.name, project)
    return str(metadata.version)


def check_wheel(wheel: Path, project: dict[str, object]) -> str:
    """The wheel holds its package with py.typed, the LICENSE and the declared entry points;
    returns its version."""
    package = str(project["name"]).replace("-", "_")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next((n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA")), None)
        if info is None:
            raise Failed(f"{wheel.name} has no .dist-info/METADATA")
        for wanted in (f"{package}/__init__.py", f"{package}/py.typed",
                       f"{info}/licenses/LICENSE"):
            if wanted not in names:
                raise Failed(f"{wheel.name} has no {wanted}")
        if archive.read(f"{info}/licenses/LICENSE") != LICENSE.read_bytes():
            raise Failed(f"{wheel.name}: its LICENSE is not the repository's LICENSE")
        entry_points = archive.read(f"{info}/entry_points.txt").decode() \
            if f"{info}/entry_points.txt" in names else ""
        declared = project.get("entry-points", {})
        assert isinstance(declared, dict)
        for group, points in declared.items():
            for point in points:
                if not re.search(rf"^\[{re.escape(group)}\]", entry_points, re.MULTILINE) or \
                        not re.search(rf"^{re.escape(point)} = ", entry_points, re.MULTILINE):
                    raise Failed(f"{wheel.name} lacks the entry point {point!r} of {group!r}")
        metadata = check_metadata(archive.read(f"{info}/METADATA").decode(), wheel.name, project)
    return str(metadata.version)


def check_artefacts(folder: Path, sdist: Path, wheel: Path) -> None:
    project = project_of(folder)
    sdist_version, wheel_version = check_sdist(sdist, project), check_wheel(wheel, project)
    if sdist_version != wheel_version:
        raise Failed(f"{project['name']}: the sdist is {sdist_version}, the wheel {wheel_version}")


# -- 3. installing each wheel in a fresh environment -----------------------------------------


PROBE = '''\
import importlib, importlib.metadata as m, json, sys
name, package, prefix, version = sys.argv[1:5]
dist = m.distribution(name)
module = importlib.import_module(package)
problems = []
if not module.__file__.startswith(prefix):
    problems.append(f"{package} is imported from {module.__file__}, outside the environment")
direct = json.loads(dist.read_text("direct_url.json") or "{}")
if direct.get("dir_info", {}).get("editable") or dist.version != version:
    problems.append(f"{name} {dist.version} is not the built wheel of {version}: {direct}")
if getattr(module, "__version__", None) != dist.version:
    problems.append(f"{package}.__version__ is {getattr(module, '__version__', None)!r}, "
                    f"the distribution {dist.version}")
for ep in dist.entry_points:
    try:
        ep.load()
    except Exception as error:
        problems.append(f"entry point {ep.name} ({ep.value}) does not load: {error!r}")
print(json.dumps(problems))
'''


def dependency_wheels(wheels: list[Path], out: Path) -> Path:
    """Every third-party dependency of the wheels, downloaded once: the installs run offline."""
    step("downloading the third-party dependencies once")
    deps = out / "dependencies"
    run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", deps,
         "--find-links", wheels[0].parent, *wheels])
    for path in deps.iterdir():
        if canonicalize_name(path.name.split("-")[0]).startswith("pulpo-"):
            path.unlink()  # the pulpo distributions come from the built wheels alone
    return deps


def fresh_environment(folder: Path, requirement: str, wheel_dir: Path, deps: Path) -> Path:
    """A new virtual environment with ``requirement`` installed; returns its bin folder."""
    run([sys.executable, "-m", "venv", "--without-pip", folder])
    python = folder / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-index",
         "--find-links", wheel_dir, "--find-links", deps, requirement])
    return folder / "bin"


def check_installed(bin_folder: Path, built: dict[str, Path], names: Sequence[str],
                    work: Path) -> None:
    """Each distribution imports, loads its entry points, and the pulpo command lists it."""
    prefix = str(bin_folder.parent.resolve())
    for name in names:
        package = name.replace("-", "_")
        version = built[name].name.split("-")[1]
        problems = json.loads(run([bin_folder / "python", "-c", PROBE, name, package, prefix,
                                   version], cwd=work))
        if problems:
            raise Failed(f"{name} installed from its wheel: " + "; ".join(problems))
    listed = run([bin_folder / "pulpo", "plugins"], cwd=work)
    versions = run([bin_folder / "pulpo", "--version"], cwd=work)
    for name in names:
        if name not in listed:
            raise Failed(f"`pulpo plugins` does not list {name}:\n{listed}")
        if not re.search(rf"^{re.escape(name)} \S+", versions, re.MULTILINE):
            raise Failed(f"`pulpo --version` does not list {name}:\n{versions}")


def extras_of_core() -> list[str]:
    optional = project_of(ROOT).get("optional-dependencies", {})
    assert isinstance(optional, dict)
    return sorted(extra for extra in optional if extra != "test")


def install_each(built: dict[str, Path], out: Path) -> None:
    wheel_dir = next(iter(built.values())).parent
    deps = dependency_wheels(list(built.values()), out)
    work = out / "work"
    work.mkdir()
    for name in built:
        step(f"installing {name} alone into a fresh environment")
        bin_folder = fresh_environment(out / f"venv-{name}", name, wheel_dir, deps)
        check_installed(bin_folder, built, [name], work)
    extras = extras_of_core()
    requirement = f"pulpo-core[{','.join(extras)}]"
    step(f"installing {requirement} into a fresh environment")
    bin_folder = fresh_environment(out / "venv-extras", requirement, wheel_dir, deps)
    check_installed(bin_folder, built, [f"pulpo-{extra}" for extra in extras], work)


# -- main ------------------------------------------------------------------------------------


def release(dist_dir: Path) -> dict[str, Path]:
    """Build and check everything; returns distribution name -> its wheel."""
    dist_dir.mkdir(parents=True, exist_ok=True)
    for old in [*dist_dir.glob("pulpo_*.tar.gz"), *dist_dir.glob("pulpo_*.whl")]:
        old.unlink()
    built: dict[str, Path] = {}
    artefacts = []
    for folder in DISTRIBUTIONS:
        sdist, wheel = build(folder, dist_dir)
        check_artefacts(folder, sdist, wheel)
        built[str(project_of(folder)["name"])] = wheel
        artefacts += [sdist, wheel]
    step(f"twine check --strict of {len(artefacts)} artefacts")
    output = run([sys.executable, "-m", "twine", "check", "--strict", *artefacts])
    warned = warnings_in(output)
    if warned:
        raise Failed("twine check warned:\n" + "\n".join(warned))
    with tempfile.TemporaryDirectory(prefix="pulpo-release-") as temp:
        install_each(built, Path(temp))
    return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist-dir", type=Path, default=ROOT / "dist",
                        help="where the sdists and wheels go (default: dist/)")
    args = parser.parse_args(argv)
    try:
        built = release(args.dist_dir.resolve())
    except (Failed, subprocess.TimeoutExpired) as error:
        print(f"release: FAILED: {error}", file=sys.stderr)
        return 1
    step(f"OK: {len(built)} distributions built, checked and installed from "
         f"{args.dist_dir}: {', '.join(built)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
