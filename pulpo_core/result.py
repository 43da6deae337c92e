"""What a handler says about a job: success, a transient failure, or a fatal one."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from pulpo_core.message import Message


class TransientError(Exception):
    """Raise from a handler when the job may succeed later: it is retried with back-off."""


class FatalError(Exception):
    """Raise from a handler when the job can never succeed: it is buried."""


class Outcome(enum.Enum):
    SUCCESS = "success"
    TRANSIENT = "transient"
    FATAL = "fatal"


@attrs.frozen
class Result:
    """The outcome of one run of a job.

    `Result.success(*messages)` may carry follow-up messages, published before the job is
    committed.
    """

    outcome: Outcome
    error: str | None = None
    messages: tuple[Message, ...] = ()

    @classmethod
    def success(cls, *messages: Message) -> Result:
        return cls(Outcome.SUCCESS, None, tuple(messages))

    @classmethod
    def transient(cls, error: str | BaseException | None = None) -> Result:
        return cls(Outcome.TRANSIENT, _text(error))

    @classmethod
    def fatal(cls, error: str | BaseException | None = None) -> Result:
        return cls(Outcome.FATAL, _text(error))

    @property
    def is_success(self) -> bool:
        return self.outcome is Outcome.SUCCESS

    @property
    def is_transient(self) -> bool:
        return self.outcome is Outcome.TRANSIENT

    @property
    def is_fatal(self) -> bool:
        return self.outcome is Outcome.FATAL


def _text(error: str | BaseException | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@attrs.frozen
class Commit:
    """Delete the job: it is done."""


@attrs.frozen
class Retry:
    """Release the job to run again after `delay` seconds."""

    delay: float = 0.0
    reason: str | None = None


@attrs.frozen
class Bury:
    """Keep the job aside, with the reason, until an operator kicks or deletes it.

    ``outcome`` names why, for observers (the ``outcome`` label of job metrics, JSON logs):
    ``"buried"`` (a fatal failure, or retries used up) unless the policy that buries says
    otherwise (``"expired"`` for a job whose expiration had passed).
    """

    reason: str
    outcome: str = "buried"


@attrs.frozen
class Drop:
    """Delete the job without running it (e.g. expired, when configured so)."""

    reason: str


#: What a result policy decides for a job.
Action = Commit | Retry | Bury | Drop

#: The name of what happened to a job, by the action applied: the label ``outcome`` of job
#: metrics and the field ``outcome`` of JSON logs. Drop is named ``expired``: the core's only
#: reason to delete a job unrun (a plugin's own drops are named so too). A ``Bury`` is named by
#: its own ``outcome`` (``buried`` unless its policy says otherwise).
OUTCOME_NAMES: dict[type, str] = {
    Commit: "success",
    Retry: "retried",
    Bury: "buried",
    Drop: "expired",
}
#: The outcome name when the adapter applied nothing (the job was no longer this worker's).
NOT_HELD = "not_held"


def outcome_name(action: Action | None) -> str:
    """``success``, ``retried``, ``buried`` or ``expired`` for an applied action;
    :data:`NOT_HELD` for ``None`` (nothing was applied)."""
    if action is None:
        return NOT_HELD
    if isinstance(action, Bury):
        return action.outcome
    return OUTCOME_NAMES[type(action)]
