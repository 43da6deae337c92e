"""Real installed distributions for tests: a folder with a package and its ``.dist-info``.

``importlib.metadata`` discovers them on ``sys.path`` (or ``PYTHONPATH`` in a subprocess) exactly
as it discovers a pip-installed plugin, entry points included.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path


def write_distribution(
    site: Path,
    name: str,
    version: str = "1.0.0",
    *,
    entry_points: Mapping[str, Mapping[str, str]] = {},
    files: Mapping[str, str] = {},
) -> Path:
    """Write distribution ``name`` into the folder ``site`` and return ``site``.

    :param entry_points: ``{group: {entry point name: "module[:object]"}}``.
    :param files: ``{relative path: source}``; the sources are dedented.
    """
    site.mkdir(parents=True, exist_ok=True)
    for relative, source in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in points.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return site
