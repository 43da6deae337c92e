"""The default result policy's back-off: ``retry_delay * 2**attempts``, capped, with jitter."""

from __future__ import annotations

import random
import time

import pytest

from pulpo_core import Message, TransientError
from pulpo_core.config import load_config
from pulpo_core.defaults.policy import backoff_delay
from pulpo_core.testing import make_app


class Edge(random.Random):
    """Draws the lowest (``0``) or the highest (``1``) value ``uniform`` may give."""

    def __init__(self, end: int) -> None:
        super().__init__()
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return (a, b)[self.end]


LOW, HIGH = Edge(0), Edge(1)


class TestBackoffDelay:
    def test_doubles_with_each_attempt(self) -> None:
        config = load_config({"retry_delay": 1.5, "max_retry_delay": 1000})
        assert [backoff_delay(config, n, HIGH) for n in range(5)] == [1.5, 3, 6, 12, 24]

    def test_jitter_keeps_at_least_half(self) -> None:
        config = load_config({"retry_delay": 2, "max_retry_delay": 1000})
        assert [backoff_delay(config, n, LOW) for n in range(4)] == [1, 2, 4, 8]

    def test_capped_at_max_retry_delay(self) -> None:
        config = load_config({"retry_delay": 1, "max_retry_delay": 40})
        assert backoff_delay(config, 5, HIGH) == 32
        assert backoff_delay(config, 6, HIGH) == 40
        assert backoff_delay(config, 6, LOW) == 20
        assert backoff_delay(config, 10_000, HIGH) == 40  # no overflow, however many attempts

    def test_draws_spread_between_half_and_whole(self) -> None:
        config = load_config({"retry_delay": 4, "max_retry_delay": 1000})
        draws = [backoff_delay(config, 1, random.Random(seed)) for seed in range(200)]
        assert all(4 <= draw <= 8 for draw in draws)
        assert max(draws) - min(draws) > 2  # spread, so workers that failed together scatter

    def test_no_delay_when_retry_delay_is_zero(self) -> None:
        assert backoff_delay(load_config({"retry_delay": 0}), 7, HIGH) == 0


class TestWorkerBacksOff:
    @pytest.mark.parametrize("attempts", [0, 2])
    def test_a_transient_failure_waits_its_back_off(self, attempts: int) -> None:
        def flaky(message: Message) -> None:
            raise TransientError("not yet")

        app = make_app({"flaky": flaky}, {"retry_delay": 10, "max_retry_delay": 1000})
        adapter = app.queue_adapter
        app.publish(Message("flaky", attempts=attempts))
        job = adapter.dequeue()
        assert job is not None
        before = time.time()
        app.handle_message(job)
        wait = adapter._jobs[job.id].ready_at - before  # type: ignore[attr-defined]
        full = 10 * 2**attempts
        assert full / 2 - 1 <= wait <= full
        assert adapter.stats()["delayed"] == 1
        assert adapter.dequeue() is None  # not before its back-off
