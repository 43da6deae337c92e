"""What `pulpo top` shows: one snapshot of a queue, and the lines drawn from two snapshots.

A snapshot takes the counts by state (``stats()``, every adapter) and, where the adapter has the
capability, the publishes counted so far (:class:`~pulpo_core.adapter.PublishCounting`), the
oldest ready job's wait (:class:`~pulpo_core.adapter.ReadyAging`) and the jobs by request type
(:class:`~pulpo_core.adapter.JobListing`, up to :data:`TYPE_SAMPLE` jobs of each state). Rates
come from two snapshots: the publish rate from the publishes, the drain rate (jobs that left the
queue: done, deleted, expired) from the publishes less the growth of the live jobs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import attrs

from pulpo_core.adapter import (
    JOB_STATES,
    JobListing,
    PartialListing,
    PublishCounting,
    QueueAdapter,
    ReadyAging,
)

#: The most jobs of one state read per refresh to count the jobs by request type.
TYPE_SAMPLE = 2000
#: Jobs asked for per ``list_jobs`` call while counting them by request type.
PAGE = 500
#: What a figure the adapter cannot give shows as.
UNKNOWN = "-"


@attrs.frozen
class Snapshot:
    """The queue at one moment (``time.monotonic()`` seconds)."""

    at: float
    counts: Mapping[str, int]
    published: int | None = None
    oldest_ready: float | None = None
    ages_known: bool = False
    #: request type -> state -> jobs; ``None`` when the adapter cannot list its jobs.
    types: Mapping[str, Mapping[str, int]] | None = None
    #: state -> jobs listed for :attr:`types` (fewer than counted: the per-type counts are
    #: partial, a sample or all the adapter can show).
    listed: Mapping[str, int] = attrs.field(factory=dict)
    #: What the adapter's listing leaves out (:class:`~pulpo_core.adapter.PartialListing`).
    listing_note: str | None = None

    @property
    def live(self) -> int:
        """Jobs in the queue, whatever their state."""
        return sum(self.counts.get(state, 0) for state in JOB_STATES)


def take_snapshot(adapter: QueueAdapter, *, by_type: bool = True) -> Snapshot:
    """Read the queue once: counts first (which also brings in what publishers left pending)."""
    counts = dict(adapter.stats())
    published = adapter.published_total() if isinstance(adapter, PublishCounting) else None
    ages_known = isinstance(adapter, ReadyAging)
    oldest = adapter.oldest_ready_age() if isinstance(adapter, ReadyAging) else None
    types: dict[str, dict[str, int]] | None = None
    listed: dict[str, int] = {}
    if by_type and isinstance(adapter, JobListing):
        types = {}
        for state in JOB_STATES:
            listed[state] = _count_types(adapter, state, types)
    note = adapter.listing_note() if isinstance(adapter, PartialListing) else None
    return Snapshot(time.monotonic(), counts, published, oldest, ages_known, types, listed,
                    note)


def _count_types(adapter: JobListing, state: str, types: dict[str, dict[str, int]]) -> int:
    """Add up to :data:`TYPE_SAMPLE` jobs of ``state`` to ``types``; how many were listed."""
    after: str | None = None
    seen = 0
    while seen < TYPE_SAMPLE:
        want = min(PAGE, TYPE_SAMPLE - seen)
        page = adapter.list_jobs(state, want, after)
        for message in page:
            per_state = types.setdefault(message.request_type or "(none)", {})
            per_state[state] = per_state.get(state, 0) + 1
        seen += len(page)
        if len(page) < want or page[-1].id is None:
            break
        after = page[-1].id
    return seen


def once_lines(counts: Mapping[str, int]) -> list[str]:
    """One ``state count`` line per state, for scripts."""
    return [f"{state} {count}" for state, count in counts.items()]


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


def _rate(now: float, before: float | None, elapsed: float) -> str:
    if before is None or elapsed <= 0:
        return UNKNOWN
    return f"{(now - before) / elapsed:+.1f}"


def rates(now: Snapshot, before: Snapshot | None) -> tuple[float | None, float | None]:
    """``(publish rate, drain rate)`` in jobs a second between two snapshots; ``None`` where
    the adapter does not count its publishes (or its count started over)."""
    if before is None or now.published is None or before.published is None:
        return None, None
    elapsed = now.at - before.at
    published = now.published - before.published
    if elapsed <= 0 or published < 0:
        return None, None
    drained = published - (now.live - before.live)
    return published / elapsed, max(0, drained) / elapsed


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def view_lines(now: Snapshot, before: Snapshot | None) -> list[str]:
    """The live view: counts and their change per second, rates, the oldest ready job's wait,
    and the jobs by request type."""
    elapsed = 0.0 if before is None else now.at - before.at
    rows: list[tuple[str, ...]] = [("state", "jobs", "change/s")]
    for state, count in now.counts.items():
        if state != "total":  # the adapter's own total: the row below sums the states
            previous = None if before is None else before.counts.get(state)
            rows.append((state, str(count), _rate(count, previous, elapsed)))
    rows.append(("total", str(now.live),
                 _rate(now.live, None if before is None else before.live, elapsed)))
    lines = _table(rows)
    lines.append("")
    publish, drain = rates(now, before)
    if now.published is None:
        lines.append("publish/s -  drain/s -  (this adapter does not count its publishes)")
    else:
        lines.append(f"publish/s {UNKNOWN if publish is None else f'{publish:.1f}'}  "
                     f"drain/s {UNKNOWN if drain is None else f'{drain:.1f}'}")
    if not now.ages_known:
        lines.append("oldest ready job: - (this adapter cannot tell)")
    else:
        waited = "none ready" if now.oldest_ready is None else f"waited {_age(now.oldest_ready)}"
        lines.append(f"oldest ready job: {waited}")
    lines.append("")
    lines.extend(type_lines(now))
    lines.append("")
    lines.append("q quits")
    return lines


def type_lines(now: Snapshot) -> list[str]:
    """The jobs by request type and state, most jobs first."""
    if now.types is None:
        return ["by request type: - (this adapter cannot list its jobs)"]
    if not now.types:
        return ["by request type: no jobs"]
    rows: list[tuple[str, ...]] = [("request type", *JOB_STATES)]
    ordered = sorted(now.types.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    for request_type, per_state in ordered:
        rows.append((request_type, *(str(per_state.get(state, 0)) for state in JOB_STATES)))
    lines = _table(rows)
    partial = [f"{listed} of {now.counts.get(state, 0)} {state}"
               for state, listed in now.listed.items() if listed < now.counts.get(state, 0)]
    if partial:
        lines.append(f"(by type, listed: {', '.join(partial)})")
        if now.listing_note:
            lines.append(f"({now.listing_note})")
    return lines
