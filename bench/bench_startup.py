"""Start-up cost of the ``pulpo`` command against importing its three dependencies.

``pulpo --help`` should cost no more than 1.5 times ``python -c "import pluggy, attrs, cattrs"``
(median of 10 wall times each). Run alone with ``python bench/bench_startup.py``.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 10
GOAL = 1.5
BASELINE = [sys.executable, "-c", "import pluggy, attrs, cattrs"]
#: Modules ``pulpo --help`` must not import (adapter and banner libraries).
HEAVY = ("greenstalk", "pyfiglet")


def pulpo_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m pulpo_core``."""
    script = Path(sys.executable).with_name("pulpo")
    if script.is_file():
        return [str(script)]
    found = shutil.which("pulpo")
    return [found] if found else [sys.executable, "-m", "pulpo_core"]


def wall_time(command: list[str]) -> float:
    """Seconds one run of ``command`` takes, start to exit."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def medians(pulpo: list[str], runs: int = RUNS) -> tuple[float, float]:
    """Median wall times of ``pulpo --help`` and of the baseline, runs interleaved."""
    help_command = [*pulpo, "--help"]
    wall_time(help_command)  # warm the file-system cache for both before measuring
    wall_time(BASELINE)
    pulpo_times, baseline_times = [], []
    for _ in range(runs):
        pulpo_times.append(wall_time(help_command))
        baseline_times.append(wall_time(BASELINE))
    return statistics.median(pulpo_times), statistics.median(baseline_times)


def heavy_imports() -> list[str]:
    """The modules of ``HEAVY`` that ``pulpo --help`` imports (should be none)."""
    probe = (
        "import sys\n"
        "from pulpo_core.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('IMPORTED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("IMPORTED:"))
    return [name for name in line.removeprefix("IMPORTED:").split(",") if name]


def run(report: list[str]) -> None:
    """Measure and append Markdown lines to ``report``."""
    command = pulpo_command()
    pulpo, baseline = medians(command)
    ratio = pulpo / baseline
    heavy = heavy_imports()
    shown = "pulpo --help" if len(command) == 1 else "python -m pulpo_core --help"
    verdict = "within" if ratio <= GOAL else "OVER"
    report += [
        "## Start-up",
        "",
        f"Median of {RUNS} wall times (interleaved runs).",
        "",
        "| command | median |",
        "|---|---|",
        f"| `{shown}` | {pulpo * 1000:.0f} ms |",
        f"| `python -c \"import pluggy, attrs, cattrs\"` | {baseline * 1000:.0f} ms |",
        "",
        f"Ratio {ratio:.2f}x: {verdict} the goal of {GOAL}x.",
        f"Heavy modules imported by `pulpo --help`: {', '.join(heavy) or 'none'}.",
        "",
    ]


def main() -> int:
    report: list[str] = []
    run(report)
    print("\n".join(report))
    return 0 if not any(line.startswith("Ratio") and "OVER" in line for line in report) else 1


if __name__ == "__main__":
    sys.exit(main())
