"""``log_format = "json"``: one JSON object per log record, with a job outcome's fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_cli import run_pulpo

HANDLERS = '''
from pulpo_core import FatalError


def ok(message):
    pass


def broken(message):
    raise FatalError("the <body> was bad")


def flaky(message):
    if message.attempts == 0:
        raise RuntimeError("try again")
'''


def _settings(tmp_path: Path, log_format: str) -> Path:
    (tmp_path / "jsonlog_handlers.py").write_text(HANDLERS)
    settings = {
        "queue_adapter_type": "file",
        "file_queue_adapter": {"base_path": str(tmp_path / "queue")},
        "shutdown_after_number_of_empty_iterations": 3,
        "sleep_duration": 0.1,
        "retry_delay": 0,
        "log_format": log_format,
        "handlers": {
            "ok": "jsonlog_handlers:ok",
            "broken": "jsonlog_handlers:broken",
            "flaky": "jsonlog_handlers:flaky",
        },
    }
    path = tmp_path / "pulpo.json"
    path.write_text(json.dumps(settings))
    return path


def _publish(tmp_path: Path, config: Path, request_type: str) -> str:
    done = run_pulpo("--config", config, "publish", "--request-type", request_type,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_every_line_is_json_and_each_outcome_has_its_fields(tmp_path: Path) -> None:
    config = _settings(tmp_path, "json")
    ids = {kind: _publish(tmp_path, config, kind) for kind in ("ok", "broken", "flaky")}
    done = run_pulpo("--config", config, "worker", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    outcomes: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if "outcome" in record:
            outcomes.setdefault(record["id"], []).append(record)
    assert [r["outcome"] for r in outcomes[ids["ok"]]] == ["success"]
    assert [r["outcome"] for r in outcomes[ids["flaky"]]] == ["retried", "success"]
    (buried,) = outcomes[ids["broken"]]
    assert buried["outcome"] == "buried"
    assert buried["request_type"] == "broken"
    assert buried["error"] == "FatalError: the <body> was bad"
    assert buried["attempts"] == 0
    assert isinstance(buried["duration"], float) and buried["duration"] >= 0
    assert outcomes[ids["flaky"]][0]["error"] == "RuntimeError: try again"


def test_text_is_the_default(tmp_path: Path) -> None:
    config = _settings(tmp_path, "text")
    _publish(tmp_path, config, "ok")
    done = run_pulpo("--config", config, "worker", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert " INFO pulpo: job " in done.stderr
    assert not done.stderr.lstrip().startswith("{")


def test_an_unknown_log_format_is_refused_in_one_sentence(tmp_path: Path) -> None:
    config = _settings(tmp_path, "xml")
    done = run_pulpo("--config", config, "worker", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "'log_format'" in done.stderr and "'xml'" in done.stderr
