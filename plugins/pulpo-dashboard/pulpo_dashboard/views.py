"""The dashboard's pages, rendered on the server from Jinja2 templates (every value escaped).

A view takes the request and returns a :class:`Page`; :mod:`pulpo_dashboard.app` routes to it
and has already checked the Host, and for a POST the origin and the token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import jinja2

from pulpo_core.adapter import (
    JOB_STATES,
    JobListing,
    PartialListing,
    PublishCounting,
    QueueAdapter,
)
from pulpo_core.message import BURIED_REASON, Message
from pulpo_dashboard.chart import chart
from pulpo_dashboard.sampler import PUBLISHED, Sampler, rates

#: Jobs per page unless the page asks for another number (``?limit=``), and the most it may.
PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
#: Characters of a job's body shown in a list.
PREVIEW = 120


@attrs.frozen
class Page:
    """An answer: status, HTML (or other) text, extra headers."""

    status: int
    body: str
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/html; charset=utf-8"


class Queue:
    """The adapter, one call at a time (the web server's threads and the sampler share it)."""

    def __init__(self, adapter: QueueAdapter, name: str) -> None:
        self.adapter = adapter
        self.name = name
        self.lock = threading.Lock()
        self.listing = isinstance(adapter, JobListing)
        self.note = adapter.listing_note() if isinstance(adapter, PartialListing) else None
        self.counts_publishes = isinstance(adapter, PublishCounting)

    def stats(self) -> Mapping[str, int]:
        with self.lock:
            return dict(self.adapter.stats())

    def sample(self) -> Mapping[str, int]:
        """The counts, and the publish count under ``PUBLISHED`` where the adapter has one."""
        with self.lock:
            counts = dict(self.adapter.stats())
            if self.counts_publishes:
                assert isinstance(self.adapter, PublishCounting)
                counts[PUBLISHED] = self.adapter.published_total()
            return counts

    def list_jobs(self, state: str, limit: int, after: str | None) -> Sequence[Message]:
        assert isinstance(self.adapter, JobListing)
        with self.lock:
            return self.adapter.list_jobs(state, limit=limit, after=after)

    def peek(self, job_id: str) -> Message | None:
        with self.lock:
            return self.adapter.peek(job_id)

    def kick(self, bound: int | None) -> int:
        with self.lock:
            return self.adapter.kick(bound)

    def delete_buried(self, job_id: str) -> bool | None:
        """Delete the job if it is buried; ``None`` when it is there but not buried."""
        with self.lock:
            message = self.adapter.peek(job_id)
            if message is None:
                return False
            if BURIED_REASON not in message.extra_header:
                return None
            return self.adapter.delete(job_id)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds")


def job_fields(message: Message) -> dict[str, Any]:
    """What the templates show of a job (each escaped there)."""
    body = json.dumps(message.body, ensure_ascii=False, default=str)
    return {
        "id": message.id or "",
        "request_type": message.request_type or "",
        "priority": message.priority,
        "attempts": message.attempts,
        "due": _when(message.delay),
        "expiration": _when(message.expiration),
        "reason": message.extra_header.get(BURIED_REASON),
        "preview": body if len(body) <= PREVIEW else body[:PREVIEW] + "…",
        "json": json.dumps(message.to_dict(), indent=2, ensure_ascii=False, default=str),
    }


class Views:
    """Every page of one dashboard."""

    def __init__(self, queue: Queue, sampler: Sampler, refresh: float) -> None:
        self.queue = queue
        self.sampler = sampler
        self.refresh = refresh
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("pulpo_dashboard", "templates"),
            autoescape=True,  # every value, whatever the file's name
            undefined=jinja2.StrictUndefined,
        )

    def render(self, template: str, status: int = 200, **values: Any) -> Page:
        values.setdefault("notice", None)
        html = self.templates.get_template(template).render(
            states=JOB_STATES, adapter_name=self.queue.name, **values)
        return Page(status, html)

    def message(self, status: int, title: str, text: str) -> Page:
        """A page of one sentence (errors, refusals)."""
        return self.render("message.html", status, title=title, message=text)

    def overview(self, query: Mapping[str, str]) -> Page:
        error = None
        try:
            counts = self.queue.stats()
        except Exception as failure:  # shown on the page: the server may be back soon
            counts, error = {}, str(failure) or type(failure).__name__
        samples = self.sampler.samples()
        extra = [(key, value) for key, value in counts.items()
                 if key not in JOB_STATES and key != "total"]
        return self.render(
            "overview.html",
            counts=counts, total=sum(counts.get(s, 0) for s in JOB_STATES), extra=extra,
            rates=rates(samples), error=error or self.sampler.error,
            chart=chart(samples, self.sampler.window),
            window_minutes=int(self.sampler.window // 60), interval=f"{self.sampler.interval:g}",
            refresh=f"{self.refresh:g}" if self.refresh > 0 else None,
            listing=self.queue.listing, listing_note=self.queue.note,
            counts_publishes=self.queue.counts_publishes,
            notice=_kicked_notice(query),
        )

    def jobs(self, state: str, query: Mapping[str, str]) -> Page:
        if state not in JOB_STATES:
            return self.message(404, "Not found", f"There is no job state {state!r}.")
        limit = _page_size(query.get("limit"))
        if limit is None:
            return self.message(400, "Bad page size",
                                f"The page size must be a number from 1 to {MAX_PAGE_SIZE}.")
        after = query.get("after") or None
        count = self.queue.stats().get(state, 0)
        jobs: list[dict[str, Any]] = []
        if self.queue.listing:
            jobs = [job_fields(m) for m in self.queue.list_jobs(state, limit, after)]
        # A partial listing (beanstalkd) has no page past its first.
        next_after = jobs[-1]["id"] if len(jobs) >= limit and self.queue.note is None else None
        deleted = query.get("deleted")
        return self.render(
            "jobs.html", state=state, count=count, jobs=jobs, limit=limit, after=after,
            next_after=next_after, listing=self.queue.listing, listing_note=self.queue.note,
            notice=f"Deleted job {deleted}." if deleted else _kicked_notice(query),
        )

    def job(self, query: Mapping[str, str]) -> Page:
        job_id = query.get("id", "")
        try:
            message = self.queue.peek(job_id) if job_id else None
        except ValueError:  # not an id of this adapter's
            message = None
        if message is None:
            return self.message(404, "Not found", f"There is no job with the id {job_id!r}.")
        return self.render("job.html", job=job_fields(message))

    def kick(self, form: Mapping[str, str]) -> Page:
        given = form.get("bound", "").strip()
        bound: int | None = None
        if given:
            if not given.isdigit() or int(given) < 1:
                return self.message(400, "Bad number",
                                    f"The number of jobs to kick must be a whole number from 1 "
                                    f"up, not {given!r}.")
            bound = int(given)
        kicked = self.queue.kick(bound)
        return see_other(f"/jobs/buried?kicked={kicked}")

    def delete(self, form: Mapping[str, str]) -> Page:
        job_id = form.get("id", "")
        try:
            deleted = self.queue.delete_buried(job_id) if job_id else False
        except ValueError:
            deleted = False
        if deleted is None:
            return self.message(409, "Not buried",
                                f"Job {job_id} is not buried; the dashboard deletes only "
                                f"buried jobs.")
        if not deleted:
            return self.message(404, "Not found", f"There is no job with the id {job_id!r}.")
        return see_other(f"/jobs/buried?deleted={_quote(job_id)}")


def see_other(location: str) -> Page:
    """After a POST: the browser loads ``location`` with a GET (reloading it changes nothing)."""
    return Page(303, "", (("Location", location),), "text/plain; charset=utf-8")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _kicked_notice(query: Mapping[str, str]) -> str | None:
    kicked = query.get("kicked", "")
    if not kicked.isdigit():
        return None
    return f"Kicked {kicked} buried job{'' if kicked == '1' else 's'} back to ready."


def _page_size(given: str | None) -> int | None:
    if not given:
        return PAGE_SIZE
    if not given.isdigit() or not 1 <= int(given) <= MAX_PAGE_SIZE:
        return None
    return int(given)
