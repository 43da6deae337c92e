"""The optional capability ``list_jobs(state, limit, after)``: jobs by state, page by page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import config_for

from pulpo_core import Message, Pulpo
from pulpo_core.adapter import JobListing, PartialListing
from pulpo_core.message import BURIED_REASON


def _ids(messages: object) -> list[str]:
    return [m.id or "" for m in messages]  # type: ignore[attr-defined]


def test_memory_lists_each_state_in_publish_order_page_by_page() -> None:
    with Pulpo({"queue_adapter_type": "memory"}) as app:
        adapter = app.queue_adapter
        assert isinstance(adapter, JobListing)
        ready = [app.publish(Message(request_type="x", body={"n": n})).id for n in range(5)]
        delayed = app.publish(Message(request_type="x", body={}, delay=3600)).id
        taken = adapter.dequeue()
        assert taken is not None and taken.id == ready[0]
        adapter.bury(taken, "broken <b>")
        assert _ids(adapter.list_jobs("ready", limit=2)) == ready[1:3]
        assert _ids(adapter.list_jobs("ready", limit=2, after=ready[2])) == ready[3:5]
        assert _ids(adapter.list_jobs("ready", limit=2, after=ready[4])) == []
        assert _ids(adapter.list_jobs("delayed")) == [delayed]
        assert adapter.list_jobs("reserved") == []
        (buried,) = adapter.list_jobs("buried")
        assert buried.id == ready[0] and buried.extra_header[BURIED_REASON] == "broken <b>"
        adapter.delete(ready[2] or "")  # a page boundary deleted meanwhile: paging goes on
        assert _ids(adapter.list_jobs("ready", limit=2, after=ready[2])) == ready[3:5]
        with pytest.raises(ValueError, match="'gone'"):
            adapter.list_jobs("gone")


@pytest.fixture
def file_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pulpo]:
    with Pulpo(config_for("file", tmp_path, request)) as app:
        yield app


@pytest.fixture
def beanstalkd_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pulpo]:
    with Pulpo(config_for("beanstalkd", tmp_path, request)) as app:
        yield app


class TestFileQueueListing:
    def test_ready_jobs_come_by_priority_then_age_page_by_page(self, file_app: Pulpo) -> None:
        adapter = file_app.queue_adapter
        assert isinstance(adapter, JobListing)
        assert not isinstance(adapter, PartialListing)  # it lists every job
        low = [file_app.publish(Message("x", {"n": n}, priority=9)).id for n in range(3)]
        high = [file_app.publish(Message("x", {"n": n}, priority=1)).id for n in range(2)]
        order = high + low
        assert _ids(adapter.list_jobs("ready")) == order
        assert _ids(adapter.list_jobs("ready", limit=2)) == order[:2]
        assert _ids(adapter.list_jobs("ready", limit=2, after=order[1])) == order[2:4]
        assert _ids(adapter.list_jobs("ready", limit=2, after=order[3])) == order[4:]
        assert _ids(adapter.list_jobs("ready", limit=2, after=order[4])) == []
        assert [m.body["n"] for m in adapter.list_jobs("ready")] == [0, 1, 0, 1, 2]
        adapter.delete(order[2] or "")  # a page boundary deleted meanwhile: paging goes on
        assert _ids(adapter.list_jobs("ready", limit=2, after=order[2])) == order[3:5]

    def test_delayed_jobs_come_by_due_time_and_stay_out_of_ready(self, file_app: Pulpo) -> None:
        adapter = file_app.queue_adapter
        assert isinstance(adapter, JobListing)
        later = file_app.publish(Message("x", {}, delay=7200, priority=0)).id
        sooner = file_app.publish(Message("x", {}, delay=3600, priority=9)).id
        ready = file_app.publish(Message("x", {})).id
        assert _ids(adapter.list_jobs("delayed")) == [sooner, later]
        assert _ids(adapter.list_jobs("delayed", after=sooner)) == [later]
        assert _ids(adapter.list_jobs("ready")) == [ready]

    def test_reserved_and_buried_jobs_are_listed_with_the_reason(self, file_app: Pulpo) -> None:
        adapter = file_app.queue_adapter
        assert isinstance(adapter, JobListing)
        first, second, third = (file_app.publish(Message("x", {"n": n})).id for n in range(3))
        taken = [adapter.dequeue() for _ in range(3)]
        assert _ids(taken) == [first, second, third]
        assert _ids(adapter.list_jobs("reserved")) == [first, second, third]
        assert _ids(adapter.list_jobs("reserved", after=first)) == [second, third]
        adapter.bury(taken[2], "broken <b>")  # type: ignore[arg-type]
        adapter.bury(taken[0], "also broken")  # type: ignore[arg-type]
        buried = adapter.list_jobs("buried")
        assert _ids(buried) == [first, third]  # oldest first, as kick takes them
        assert [m.extra_header[BURIED_REASON] for m in buried] == ["also broken", "broken <b>"]
        assert _ids(adapter.list_jobs("buried", limit=1, after=first)) == [third]
        assert _ids(adapter.list_jobs("reserved")) == [second]
        assert adapter.list_jobs("ready") == [] and adapter.list_jobs("delayed") == []

    def test_jobs_still_in_a_publish_log_are_listed(self, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
        config = config_for("file", tmp_path, request)
        config["file_queue_adapter"]["fsync_method"] = "log"
        with Pulpo(config) as publisher, Pulpo(config) as viewer:
            sent = [publisher.publish(Message("x", {"n": n})).id for n in range(3)]
            adapter = viewer.queue_adapter
            assert isinstance(adapter, JobListing)
            assert _ids(adapter.list_jobs("ready")) == sent

    def test_a_bad_state_or_id_is_named(self, file_app: Pulpo) -> None:
        adapter = file_app.queue_adapter
        assert isinstance(adapter, JobListing)
        with pytest.raises(ValueError, match="'gone'"):
            adapter.list_jobs("gone")
        with pytest.raises(ValueError, match=r"'\.\./x'"):
            adapter.list_jobs("ready", after="../x")


class TestBeanstalkdListing:
    def test_only_the_next_job_of_each_state_is_shown_and_it_says_so(
        self, beanstalkd_app: Pulpo
    ) -> None:
        adapter = beanstalkd_app.queue_adapter
        assert isinstance(adapter, JobListing) and isinstance(adapter, PartialListing)
        assert "only the next job of each state" in adapter.listing_note()
        publish = beanstalkd_app.publish
        ready = [publish(Message("x", {"n": n}, priority=5)).id for n in range(3)]
        urgent = publish(Message("x", {"n": 9}, priority=1)).id
        later = publish(Message("x", {}, delay=7200)).id
        sooner = publish(Message("x", {}, delay=3600)).id
        assert _ids(adapter.list_jobs("ready")) == [urgent]  # the next one, by priority
        assert _ids(adapter.list_jobs("ready", after=urgent)) == []  # no further page
        assert _ids(adapter.list_jobs("delayed")) == [sooner]
        assert later not in _ids(adapter.list_jobs("delayed"))
        taken = adapter.dequeue()
        assert taken is not None and taken.id == urgent
        assert adapter.list_jobs("reserved") == []  # beanstalkd peeks at no reserved job
        assert _ids(adapter.list_jobs("ready")) == [ready[0]]
        adapter.bury(taken, "broken <b>")
        (buried,) = adapter.list_jobs("buried")
        assert buried.id == urgent and buried.extra_header[BURIED_REASON] == "broken <b>"
        assert adapter.list_jobs("ready", limit=0) == []
        with pytest.raises(ValueError, match="'gone'"):
            adapter.list_jobs("gone")
