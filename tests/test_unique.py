"""Unique jobs: one job per live key, however many publishers race, on memory, file and redis."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pulpo_core import Message, Pulpo
from pulpo_core.errors import AdapterError
from tests.conftest import config_for

UNIQUE_ADAPTERS = ["memory", "file", "redis"]


@pytest.fixture(params=UNIQUE_ADAPTERS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    app = Pulpo(config_for(request.param, tmp_path, request))
    yield app
    app.close()


class TestUniquePublish:
    def test_eight_threads_with_one_key_make_one_job_and_get_eight_equal_ids(
        self, app: Pulpo
    ) -> None:
        barrier = threading.Barrier(8)
        ids: list[str | None] = []

        def publish() -> None:
            barrier.wait()
            ids.append(app.publish(Message("echo", unique_key="report-42")).id)

        threads = [threading.Thread(target=publish) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(ids) == 8 and len(set(ids)) == 1
        assert app.queue_adapter.stats()["ready"] == 1

    def test_the_key_is_held_while_the_job_runs_and_free_once_it_is_done(self, app: Pulpo) -> None:
        first = app.publish(Message("echo", unique_key="k"))
        job = app.queue_adapter.dequeue()
        assert job is not None and job.id == first.id
        assert app.publish_unique(Message("echo", unique_key="k")) [1] is False
        app.queue_adapter.commit(job)
        again, created = app.publish_unique(Message("echo", unique_key="k"))
        assert created and again.id != first.id

    def test_unique_for_holds_the_key_after_the_job_is_done(self, app: Pulpo) -> None:
        first = app.publish(Message("echo", unique_key="k", unique_for=60))
        job = app.queue_adapter.dequeue()
        assert job is not None
        app.queue_adapter.commit(job)
        assert app.publish(Message("echo", unique_key="k")).id == first.id
        assert app.queue_adapter.stats()["ready"] == 0

    def test_a_buried_job_no_longer_holds_its_key(self, app: Pulpo) -> None:
        first = app.publish(Message("echo", unique_key="k"))
        job = app.queue_adapter.dequeue()
        assert job is not None
        app.queue_adapter.bury(job, "broken")
        assert app.publish(Message("echo", unique_key="k")).id != first.id

    def test_different_keys_make_different_jobs(self, app: Pulpo) -> None:
        a = app.publish(Message("echo", unique_key="a"))
        b = app.publish(Message("echo", unique_key="b"))
        assert a.id != b.id

    def test_the_key_travels_in_the_header(self, app: Pulpo) -> None:
        job = app.publish(Message("echo", unique_key="k", unique_for=5))
        peeked = app.queue_adapter.peek(job.id or "")
        assert peeked is not None and peeked.header["unique_key"] == "k"
        assert peeked.unique_key == "k" and peeked.unique_for == 5


class TestBadUniqueKeys:
    @pytest.mark.parametrize(
        ("fields", "words"),
        [
            ({"unique_key": ""}, "unique_key must be a non-empty string"),
            ({"unique_key": "x" * 251}, "251 characters long, more than the 250 allowed"),
            ({"unique_key": "k", "unique_for": 0}, "unique_for must be a number of seconds"),
            ({"unique_for": 5}, "unique_for needs a unique_key"),
        ],
    )
    def test_it_is_refused_naming_the_key(self, fields: dict[str, Any], words: str) -> None:
        with pytest.raises(ValueError, match=words):
            Message("echo", **fields)


class TestAdapterWithoutUniquePublish:
    def test_a_unique_publish_is_refused_never_a_silent_duplicate(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> None:
        app = Pulpo(config_for("beanstalkd", tmp_path, request))
        try:
            with pytest.raises(AdapterError, match="cannot publish unique jobs"):
                app.publish(Message("echo", unique_key="k"))
            assert app.queue_adapter.stats()["ready"] == 0
        finally:
            app.close()


def pulpo(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulpo_core", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60,
    )


class TestPublishCommand:
    def test_a_second_publish_with_the_key_exits_0_and_prints_only_the_first_id(
        self, tmp_path: Path
    ) -> None:
        config = tmp_path / "pulpo.toml"
        config.write_text(f'[file_queue_adapter]\nbase_path = "{tmp_path / "q"}"\n')
        first = pulpo("publish", "--request-type", "echo", "--unique-key", "K", config=config)
        second = pulpo("publish", "--request-type", "echo", "--unique-key", "K", config=config)
        assert first.returncode == 0 and second.returncode == 0, second.stderr
        assert second.stdout == first.stdout and len(first.stdout.split()) == 1
        stats = pulpo("stats", "--json", config=config)
        assert '"ready": 1' in stats.stdout

    def test_a_key_over_the_bound_exits_2_naming_it(self, tmp_path: Path) -> None:
        config = tmp_path / "pulpo.toml"
        config.write_text(f'[file_queue_adapter]\nbase_path = "{tmp_path / "q"}"\n')
        done = pulpo("publish", "--request-type", "echo", "--unique-key", "k" * 300,
                     config=config)
        assert done.returncode == 2
        assert "unique_key" in done.stderr and "Traceback" not in done.stderr
