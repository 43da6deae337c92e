"""The documentation site builds with mkdocs in strict mode: a broken link or anchor, or a page
missing from the navigation, fails the test run (CI runs it with the rest of the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".ci" / "mkdocs.yml"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(CONFIG),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}{done.stderr}"
    assert (tmp_path / "site" / "releasing" / "index.html").is_file()
    assert (tmp_path / "site" / "cli" / "index.html").is_file()


def test_every_page_is_in_the_navigation() -> None:
    config = CONFIG.read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").rglob("*.md")):
        relative = page.relative_to(ROOT / "docs").as_posix()
        assert f": {relative}\n" in config, f"{relative} is missing from the nav of {CONFIG.name}"
