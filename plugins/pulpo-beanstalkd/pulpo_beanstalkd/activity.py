"""What ``pulpo top`` asks of beanstalkd besides its counts: publishes, the next ready job's wait.

Both come from the server's own figures, read on the producer connection:

- publishes: ``total-jobs`` of ``stats-tube``, summed over the configured tubes: the jobs put
  into each tube since the server started. beanstalkd forgets a tube that has no job and no
  client, and its count with it; the connection this adapter keeps watching and using its tubes
  holds them while it is open.
- the oldest ready job: beanstalkd shows only the next ready job of a tube (``peek-ready``: the
  most urgent, oldest first among equals), so this is how long that job has waited, the longest
  over the tubes: its ``age`` less its ``delay`` (``stats-job``), the time since it became ready
  for a job put with a delay. With jobs of several priorities an older, less urgent job may
  have waited longer.
"""

from __future__ import annotations

import contextlib

import greenstalk

from pulpo_beanstalkd.client import PipelinedClient
from pulpo_beanstalkd.connection import Connection
from pulpo_beanstalkd.settings import BeanstalkdSettings


def published_total(settings: BeanstalkdSettings, producer: Connection) -> int:
    """Jobs put into the configured tubes since the server started (``total-jobs``)."""

    def read(client: PipelinedClient) -> int:
        total = 0
        for tube in settings.tubes:
            with contextlib.suppress(greenstalk.NotFoundError):  # no job and no client yet
                total += int(client.stats_tube(tube)["total-jobs"])
        return total

    return producer.call(read, wait=settings.reconnect_timeout)


def next_ready_wait(settings: BeanstalkdSettings, producer: Connection) -> float | None:
    """Seconds the next ready job of the longest-waiting tube has waited; ``None``: none ready."""
    tubes = settings.tubes
    default = settings.default_tube

    def read(client: PipelinedClient) -> float | None:
        longest: float | None = None
        try:
            for tube in tubes:
                if tube != default:
                    client.use(tube)
                try:
                    job = client.peek_ready()
                    stats = client.stats_job(job)
                except greenstalk.NotFoundError:  # none ready, or taken meanwhile
                    continue
                waited = float(max(0, int(stats["age"]) - int(stats["delay"])))
                longest = waited if longest is None else max(longest, waited)
        finally:
            if len(tubes) > 1:
                client.use(default)
        return longest

    return producer.call(read, wait=settings.reconnect_timeout)
