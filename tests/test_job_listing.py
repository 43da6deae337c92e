"""The optional capability ``list_jobs(state, limit, after)``: jobs by state, page by page."""

from __future__ import annotations

import pytest

from pulpo_core import Message, Pulpo
from pulpo_core.adapter import JobListing
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
