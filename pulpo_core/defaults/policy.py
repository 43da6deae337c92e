"""The default result policy: commit, retry with exponential back-off, or bury."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from pulpo_core.markers import hookimpl
from pulpo_core.result import Action, Bury, Commit, Retry

if TYPE_CHECKING:
    from pulpo_core.config import Config
    from pulpo_core.host import App
    from pulpo_core.message import Message
    from pulpo_core.result import Result


def backoff_delay(config: Config, attempts: int, rng: random.Random | None = None) -> float:
    """``retry_delay * 2**attempts`` capped at ``max_retry_delay``, with equal jitter.

    Half the delay is kept and the other half drawn at random, so workers that failed together
    do not retry together, and a retry never comes sooner than half the back-off.
    """
    if config.retry_delay <= 0:
        return 0.0
    exponent = min(attempts, 62)  # beyond this the cap has long been reached
    delay = min(config.retry_delay * 2.0**exponent, config.max_retry_delay)
    return delay / 2.0 + (rng or random).uniform(0.0, delay / 2.0)


#: Actions are immutable: the common one is made once.
_COMMIT = Commit()


@hookimpl(trylast=True)
def pulpo_result_policy(message: Message, result: Result, app: App) -> Action:
    if result.is_success:
        return _COMMIT
    if result.is_fatal:
        return Bury(result.error or "fatal failure")
    runs = message.attempts + 1
    if runs >= app.config.max_number_of_attempts:
        return Bury(f"failed {runs} time(s), the most allowed; last error: {result.error}")
    return Retry(backoff_delay(app.config, message.attempts), result.error)
