"""`pulpo top`: ``--once`` prints one ``state count`` line per state; the live view refreshes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import config_for
from test_cli import run_pulpo

from pulpo_core import Message, Pulpo
from pulpo_core.top import run_top, view_lines


def _queue(adapter: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Two ready, one delayed, one buried job on a fresh queue of ``adapter``."""
    settings = config_for(adapter, tmp_path, request)
    with Pulpo(settings) as app:
        app.publish(Message(request_type="x", body={}))
        taken = app.queue_adapter.dequeue()
        assert taken is not None
        app.queue_adapter.bury(taken, "no")
        app.publish(Message(request_type="x", body={}))
        app.publish(Message(request_type="x", body={}))
        app.publish(Message(request_type="x", body={}, delay=3600))
    return settings


@pytest.mark.parametrize("adapter", ["file", "beanstalkd"])
def test_once_prints_one_state_count_line_per_state(
    adapter: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = _queue(adapter, tmp_path, request)
    config = tmp_path / "pulpo.json"
    config.write_text(json.dumps(settings))
    done = run_pulpo("--config", config, "top", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    counts = dict(line.split(" ") for line in lines)
    assert len(counts) == len(lines)
    assert {k: counts[k] for k in ("ready", "delayed", "reserved", "buried")} == {
        "ready": "2", "delayed": "1", "reserved": "0", "buried": "1"
    }


def test_the_live_view_shows_counts_and_their_change_per_second() -> None:
    with Pulpo({"queue_adapter_type": "memory"}) as app:
        out = io.StringIO()
        app.publish(Message(request_type="x", body={}))
        run_top(app.queue_adapter, once=False, out=out, interval=0.01, rounds=1)
        first = out.getvalue()
        for _ in range(5):
            app.publish(Message(request_type="x", body={}))
        out = io.StringIO()
        run_top(app.queue_adapter, once=False, out=out, interval=0.2, rounds=2)
    assert first.split("\n")[1].split() == ["ready", "1", "-"]
    blocks = out.getvalue().split("q quits\n\n")
    assert len(blocks) == 3 and blocks[2] == ""  # two refreshes, each a block of plain lines
    second = blocks[1]
    ready = next(line for line in second.splitlines() if line.startswith("ready"))
    assert ready.split()[:2] == ["ready", "6"]
    assert ready.split()[2] == "+0.0"  # nothing changed between the two refreshes


def test_the_change_per_second_is_the_difference_over_the_time_between_refreshes() -> None:
    lines = view_lines({"ready": 6, "buried": 1}, {"ready": 1, "buried": 1}, 0.5)
    assert lines[1].split() == ["ready", "6", "+10.0"]
    assert lines[2].split() == ["buried", "1", "+0.0"]
    assert lines[3].split() == ["total", "7", "+10.0"]
