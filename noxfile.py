"""Development sessions: ``nox -s tests lint typecheck docs demo bench wheels release``."""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
#: Every distribution under plugins/ is picked up without editing this file.
PLUGINS = sorted(str(p.parent) for p in (ROOT / "plugins").glob("*/pyproject.toml"))
# hatchling: tests/test_third_party_plugin.py builds a plugin offline (pip --no-build-isolation),
# tests/test_release.py builds pulpo-expiration (1.27 writes the license files).
# mkdocs: tests/test_docs_site.py builds the documentation site (strict) in every test run.
# packaging: tests/test_release.py checks the release checks of .ci/release.py.
# selenium: tests/test_dashboard_browser.py drives Debian's chromium through its chromedriver.
TEST_DEPS = ["pytest>=8", "hypothesis>=6.100", "hatchling>=1.27", "mkdocs>=1.6", "packaging>=26",
             "selenium>=4.20"]
#: What the release checks run with: the build frontend, twine and packaging (26 reads
#: metadata 2.4 and 2.5, which hatchling writes: the license expression and files).
RELEASE_DEPS = ["build>=1.2", "twine>=6.1", "packaging>=26"]

nox.options.sessions = ["lint", "typecheck", "tests", "wheels"]
nox.options.reuse_existing_virtualenvs = True


def install_project(session: nox.Session, *extra: str) -> None:
    """The core and every plugin, editable, plus ``extra`` requirements."""
    editable = [arg for path in [str(ROOT), *PLUGINS] for arg in ("-e", path)]
    session.install(*editable, *extra)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (starts its own beanstalkd)."""
    install_project(session, *TEST_DEPS)
    session.run("pytest", *(session.posargs or []))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the core, the plugins, the tests, the benchmarks and the examples."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core and every plugin package."""
    install_project(session, "mypy", "types-waitress", *TEST_DEPS)
    packages = ["pulpo_core"] + [
        str(p) for path in PLUGINS for p in Path(path).glob("pulpo_*") if p.is_dir()
    ]
    session.run("mypy", *packages)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs, strict: broken links fail)."""
    install_project(session, "mkdocs>=1.6")
    site = Path(session.create_tmp()).resolve() / "site"  # build output stays out of the tree
    config = str(ROOT / ".ci" / "mkdocs.yml")  # mkdocs refuses a config inside its docs_dir
    session.run("mkdocs", "build", "--strict", "-f", config, "--site-dir", str(site))


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: sample jobs through a worker on the embedded file queue."""
    install_project(session)
    session.run("python", str(ROOT / "examples" / "demo.py"), *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers; writes the figures quoted in docs/performance.md."""
    install_project(session, "huey", "persist-queue", "rq", "dramatiq[redis]", "celery[redis]")
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs)


@nox.session
def release(session: nox.Session) -> None:
    """Build the sdist and wheel of every distribution into dist/, check them as an upload
    would, and install each wheel into a fresh environment (``-- --dist-dir DIR`` elsewhere)."""
    session.install(*RELEASE_DEPS)
    session.run("python", str(ROOT / ".ci" / "release.py"), *session.posargs)


@nox.session
def wheels(session: nox.Session) -> None:
    """The release checks, then a job run through a real beanstalkd from those same wheels."""
    session.install(*RELEASE_DEPS)
    built = str(Path(session.create_tmp()).resolve() / "dist")
    session.run("python", str(ROOT / ".ci" / "release.py"), "--dist-dir", built)
    session.run("python", str(ROOT / ".ci" / "wheels.py"), "--wheel-dir", built, *session.posargs)
