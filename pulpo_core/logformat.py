"""Log output: the text lines people read, or one JSON object per record for log shippers."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from pulpo_core.result import outcome_name

if TYPE_CHECKING:
    from pulpo_core.message import Message
    from pulpo_core.result import Action, Result

#: The values of the top-level key ``log_format``.
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The attribute of a log record that carries a job outcome's fields (``extra={JOB_FIELDS: ...}``).
JOB_FIELDS = "pulpo_job"


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object on one line: ``time``, ``level``, ``logger``,
    ``message``, the fields of a job outcome when the record carries them, and ``traceback``
    when it carries an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, JOB_FIELDS, None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def use_log_format(log_format: str) -> None:
    """Give the root logger's handlers the formatter ``log_format`` names."""
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def job_fields(
    message: Message, result: Result, action: Action | None, duration: float
) -> dict[str, Any]:
    """The fields of one job outcome's JSON log line (``action`` ``None``: nothing applied).

    ``attempts`` is ``None`` when the adapter counts them lazily and nobody asked (a success
    on beanstalkd): asking here would cost a round trip per job.
    """
    return {
        "id": message.id,
        "request_type": message.request_type,
        "outcome": outcome_name(action),
        "attempts": message.known_attempts,
        "duration": round(duration, 6),
        "error": result.error,
    }
