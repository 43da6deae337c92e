"""JSON too deep or too long to read: every decoder refuses it with one sentence, never a
RecursionError, and a job of such bytes on beanstalkd is buried with the reason.

20,000 nested arrays are far past Python's recursion limit; 5,000 digits are past its limit on
converting text to an integer. Both come from outside (a foreign client, a command line).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from conftest import BeanstalkdServer, config_for

from pulpo_core import Message, Pulpo
from pulpo_core.message import load_json

DEPTH = 20_000
DEEP = "[" * DEPTH + "]" * DEPTH
LONG_NUMBER = "7" * 5_000


def deep_list(depth: int = DEPTH) -> list[Any]:
    """A Python list nested ``depth`` deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def pulpo(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pulpo_core", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)


class TestCoreDecoder:
    @pytest.mark.parametrize("text", [DEEP, '{"header": {}, "body": {"x": ' + DEEP + "}}"])
    def test_nesting_too_deep_is_a_value_error(self, text: str) -> None:
        with pytest.raises(ValueError, match="nested too deeply"):
            load_json(text)
        with pytest.raises(ValueError, match="nested too deeply"):
            Message.from_json(text)

    def test_a_number_too_long_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="digits"):
            Message.from_json('{"header": {}, "body": {"n": ' + LONG_NUMBER + "}}")


class TestMemoryAdapter:
    def test_a_body_too_deep_to_write_is_refused_at_publish(self) -> None:
        app = Pulpo({"queue_adapter_type": "memory"})
        try:
            with pytest.raises(ValueError, match="serialisable: it is nested too deeply"):
                app.publish(Message("t", {"x": deep_list()}))
            assert app.queue_adapter.stats()["ready"] == 0
        finally:
            app.close()

    def test_the_publish_command_exits_2_with_one_sentence(self, tmp_path: Path) -> None:
        config = tmp_path / "pulpo.json"
        config.write_text(json.dumps({"queue_adapter_type": "memory"}))
        for body in (DEEP, '{"x": ' + DEEP + "}", '{"n": ' + LONG_NUMBER + "}"):
            done = pulpo("publish", "--request-type", "t", "--body", body, config=config)
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
            assert "--body" in done.stderr

    def test_a_config_file_too_deep_is_one_sentence(self, tmp_path: Path) -> None:
        for name, text in (("pulpo.json", '{"x": ' + DEEP + "}"),
                           ("pulpo.toml", "x = " + DEEP + "\n")):
            config = tmp_path / name
            config.write_text(text)
            done = pulpo("stats", config=config)
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr and "nested too deeply" in done.stderr


class TestBeanstalkd:
    def test_a_job_too_deep_or_too_long_is_buried_with_a_reason_and_no_traceback(
        self, request: pytest.FixtureRequest, tmp_path: Path, beanstalkd: BeanstalkdServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        settings = config_for("beanstalkd", tmp_path, request)
        tube = settings["beanstalkd_queue_adapter"]["default_tube"]
        bodies = {
            "nested": DEEP.encode(),
            "nested in a message": ('{"header": {"request_type": "t"}, "body": {"x": '
                                    + DEEP + "}}").encode(),
            "long number": ('{"header": {"request_type": "t"}, "body": {"n": '
                            + LONG_NUMBER + "}}").encode(),
        }
        with greenstalk.Client((beanstalkd.host, beanstalkd.port), encoding=None, use=tube,
                               watch=tube) as plain:
            foreign = {name: plain.put(body) for name, body in bodies.items()}
            handled: list[Message] = []
            app = Pulpo({**settings, "shutdown_after_number_of_empty_iterations": 1,
                         "sleep_duration": 0})
            app.register_handler("t", handled.append)
            try:
                mine = app.publish(Message("t", payload="mine"))
                with caplog.at_level(logging.DEBUG):
                    app.start()
                assert [message.id for message in handled] == [mine.id]
                for name, number in foreign.items():
                    assert plain.stats_job(number)["state"] == "buried", name
                    assert plain.stats_job(number)["reserves"] == 1, name  # not cycling
                    peeked = app.queue_adapter.peek(str(number))
                    assert peeked is not None
                    assert "not a pulpo message" in peeked.extra_header["buried_reason"]
            finally:
                app.close()
            assert not [record for record in caplog.records if record.exc_info], \
                "a traceback was logged"
            assert "RecursionError" not in caplog.text
            assert caplog.text.count("nested too deeply") >= 2
            assert "digits" in caplog.text

            config = tmp_path / "pulpo.json"
            config.write_text(json.dumps(settings))
            shown = pulpo("peek", str(foreign["nested"]), config=config)
            assert shown.returncode == 0, shown.stderr
            header = json.loads(shown.stdout)["header"]
            assert "nested too deeply" in header["unreadable"]
            assert "not a pulpo message" in header["buried_reason"]
            for number in foreign.values():
                plain.delete(number)
