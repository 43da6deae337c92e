"""The expiration filter: a job dequeued after its ``expiration`` never reaches its handler.

Modelled on dramatiq's ``AgeLimit`` middleware, a filter that returns early: the expired job gets
a fatal result, and this plugin's policy buries it with a reason starting with ``expired`` (kept,
counted in ``stats``, back with ``pulpo kick``) and the outcome ``expired`` for observers. With
``on_expired = "delete"`` in the ``[expiration]`` section the job is deleted instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from pulpo_core.config import load_section
from pulpo_core.errors import ConfigError
from pulpo_core.markers import hookimpl
from pulpo_core.result import Bury, Drop, Result

if TYPE_CHECKING:
    from pulpo_core.app import Pulpo
    from pulpo_core.hookspecs import RegisterConfigSection
    from pulpo_core.message import Message
    from pulpo_core.result import Action

#: The configuration section this plugin reads.
SECTION = "expiration"
#: The values ``on_expired`` accepts.
ON_EXPIRED = ("bury", "delete")


def _check_on_expired(_instance: object, _attribute: object, value: str) -> None:
    if value not in ON_EXPIRED:
        raise ConfigError(
            f"configuration key '{SECTION}.on_expired' must be \"bury\" or \"delete\", "
            f"not {value!r}"
        )


@attrs.frozen
class ExpirationSettings:
    """The ``[expiration]`` section."""

    #: ``"bury"`` keeps an expired job aside (the default); ``"delete"`` drops it.
    on_expired: str = attrs.field(default="bury", validator=_check_on_expired)


def is_expired(message: Message, now: datetime | None = None) -> bool:
    """Whether the message's expiration has passed (a message without one never expires)."""
    return message.expiration is not None and message.expiration <= (now or datetime.now(UTC))


def expired_reason(message: Message) -> str:
    """The error of an expired job's result, and so its burial reason: ``expired at <ISO>``."""
    assert message.expiration is not None
    return f"expired at {message.expiration.isoformat()}"


@hookimpl
def pulpo_register_config_sections(register: RegisterConfigSection) -> None:
    register(SECTION, ExpirationSettings)


@hookimpl(tryfirst=True)  # before other filters, so they never see an expired job
def pulpo_before_process(message: Message, app: Pulpo) -> Result | None:
    if is_expired(message):
        return Result.fatal(expired_reason(message))
    return None


@hookimpl(tryfirst=True)  # before the default policy, which would bury the job
def pulpo_result_policy(message: Message, result: Result, app: Pulpo) -> Action | None:
    if not result.is_fatal or message.expiration is None or result.error != expired_reason(message):
        return None
    settings = load_section(SECTION, app.config.section(SECTION), ExpirationSettings)
    if settings.on_expired == "delete":
        return Drop(result.error)
    # Buried with the error as its reason, as the default policy would, but named "expired"
    # for observers (the outcome label of job metrics) rather than "buried".
    return Bury(result.error, outcome="expired")


@hookimpl(tryfirst=True)  # refuse before any other middleware spends work on the message
def pulpo_before_publish(message: Message, app: Pulpo) -> Message | None:
    # The core's own rule (Message.validate_for_publish applies it after every
    # pulpo_before_publish hook), checked here first so no other middleware spends work on a job
    # that could never run.
    message.check_schedule()
    return None
