"""`pulpo top`: ``--once`` prints one ``state count`` line per state; the live view refreshes."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import config_for
from test_cli import run_pulpo

from pulpo_core import Message, Pulpo
from pulpo_core.adapter import JOB_STATES, PublishCounting, ReadyAging
from pulpo_core.top import run_top
from pulpo_core.topview import Snapshot, rates, take_snapshot, type_lines, view_lines


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
    assert "publish/s 0.0  drain/s 0.0" in second
    assert "oldest ready job: waited" in second
    assert [line.split() for line in second.splitlines() if line.startswith("x ")] == [
        ["x", "6", "0", "0", "0"]]


def _snapshot(at: float, published: int | None, **counts: int) -> Snapshot:
    return Snapshot(at, {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0, **counts},
                    published)


def test_the_change_per_second_is_the_difference_over_the_time_between_refreshes() -> None:
    before = _snapshot(10.0, 100, ready=1, buried=1)
    now = _snapshot(10.5, 120, ready=6, buried=1)
    lines = view_lines(now, before)
    assert lines[1].split() == ["ready", "6", "+10.0"]
    assert lines[4].split() == ["buried", "1", "+0.0"]
    assert lines[5].split() == ["total", "7", "+10.0"]
    # 20 published in half a second, the queue grew by 5: 15 drained.
    assert rates(now, before) == (40.0, 30.0)
    assert "publish/s 40.0  drain/s 30.0" in lines


def test_an_adapter_without_the_capabilities_shows_dashes_and_says_why() -> None:
    lines = view_lines(_snapshot(1.0, None, ready=2), _snapshot(0.0, None, ready=1))
    assert "publish/s -  drain/s -  (this adapter does not count its publishes)" in lines
    assert "oldest ready job: - (this adapter cannot tell)" in lines
    assert "by request type: - (this adapter cannot list its jobs)" in lines
    assert rates(_snapshot(1.0, 5), _snapshot(0.0, 9)) == (None, None)  # the count started over


@pytest.mark.parametrize("adapter", ["memory", "file", "beanstalkd", "redis"])
def test_publish_and_drain_rates_oldest_age_and_types_come_from_the_queue(
    adapter: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = config_for(adapter, tmp_path, request)
    with Pulpo(settings) as app:
        queue = app.queue_adapter
        app.publish(Message(request_type="old", body={}))
        assert isinstance(queue, PublishCounting) and isinstance(queue, ReadyAging)
        before = take_snapshot(queue)
        time.sleep(1.1)  # beanstalkd's ages are whole seconds
        mail = [app.publish(Message(request_type="mail", body={})) for _ in range(7)]
        app.publish(Message(request_type="mail", body={}, delay=3600))
        for job in mail[:3]:  # three leave the queue (deleted: the job waiting longest stays)
            assert job.id is not None and queue.delete(job.id)
        now = take_snapshot(queue)
    assert now.published is not None and before.published is not None
    assert now.published - before.published == 8
    assert now.live - before.live == 5
    elapsed = now.at - before.at
    publish, drain = rates(now, before)
    assert publish == pytest.approx(8 / elapsed) and drain == pytest.approx(3 / elapsed)
    # The job published first waited longest, and is the next ready (all of one priority).
    assert now.oldest_ready is not None and now.oldest_ready >= 1.0
    assert now.types is not None
    lines = type_lines(now)
    if adapter == "beanstalkd":  # only the next job of each state can be seen
        assert lines[-2].startswith("(by type, listed: ")
        assert lines[-1].startswith("(beanstalkd shows only the next job of each state")
    else:
        assert now.types == {"mail": {"ready": 4, "delayed": 1}, "old": {"ready": 1}}
        assert [line.split() for line in lines] == [
            ["request", "type", *JOB_STATES], ["mail", "4", "1", "0", "0"],
            ["old", "1", "0", "0", "0"]]


def test_with_no_ready_job_the_oldest_age_says_so(tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    with Pulpo(config_for("file", tmp_path, request)) as app:
        app.publish(Message(request_type="x", body={}, delay=3600))
        snapshot = take_snapshot(app.queue_adapter)
    assert snapshot.ages_known and snapshot.oldest_ready is None
    assert "oldest ready job: none ready" in view_lines(snapshot, None)
