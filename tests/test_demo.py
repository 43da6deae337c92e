"""The README's main command runs `examples/demo.py`: it must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_the_demo_runs_a_worker_on_the_file_queue_to_the_end() -> None:
    # The demo checks its own outcome (the expired job buried, 3 to 6 buried jobs left) and
    # exits 1 otherwise.
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "$ pulpo --config demo.toml worker" in out
    worker = out.split("$ pulpo --config demo.toml worker")[1].split("# The expired job")[0]
    assert "DISK ALMOST FULL (PRIORITY 0)" in worker  # a sample handler ran
    assert worker.index("DISK ALMOST FULL") < worker.index("routine report")  # priority order
    assert "I waited three seconds" in worker  # the delayed job, once due
    assert "too late for me" not in worker  # the expired job never ran
    assert "worker stopped after" in done.stderr
    assert out.rstrip().endswith("# Done.")
