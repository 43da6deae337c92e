"""pulpo-expiration: a job dequeued after its expiration never reaches its handler."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pulpo_expiration import expiration

from pulpo_core import ConfigError, Message, Pulpo
from pulpo_core.plugins import build_plugin_manager
from pulpo_core.testing import run_until_empty

MakeApp = Callable[..., Pulpo]


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


class Recorder:
    """A handler that remembers the payloads it ran."""

    def __init__(self) -> None:
        self.ran: list[Any] = []

    def __call__(self, message: Message) -> None:
        self.ran.append(message.payload)


class TestExpiredJob:
    def test_never_reaches_its_handler(self, make_app: MakeApp) -> None:
        handler = Recorder()
        app = make_app({"job": handler})
        app.publish(Message("job", payload="stale", expiration=an_hour_ago()))
        run_until_empty(app, include_delayed=False)
        assert handler.ran == []

    def test_is_buried_with_a_reason_starting_with_expired(self, make_app: MakeApp) -> None:
        app = make_app({"job": Recorder()})
        sent = app.publish(Message("job", payload="stale", expiration=an_hour_ago()))
        run_until_empty(app, include_delayed=False)
        buried = app.queue_adapter.peek(sent.id or "")
        assert buried is not None
        assert sent.expiration is not None
        assert buried.header["buried_reason"] == f"expired at {sent.expiration.isoformat()}"
        assert app.queue_adapter.stats()["buried"] == 1

    def test_is_deleted_when_configured(self, make_app: MakeApp) -> None:
        handler = Recorder()
        app = make_app({"job": handler}, expiration={"on_expired": "delete"})
        sent = app.publish(Message("job", payload="stale", expiration=an_hour_ago()))
        run_until_empty(app, include_delayed=False)
        assert handler.ran == []
        assert app.queue_adapter.peek(sent.id or "") is None
        stats = app.queue_adapter.stats()
        assert [stats[k] for k in ("ready", "delayed", "reserved", "buried")] == [0, 0, 0, 0]

    def test_that_expires_while_delayed_is_buried_when_its_delay_ends(
        self, make_app: MakeApp
    ) -> None:
        handler = Recorder()
        app = make_app({"job": handler})
        soon = datetime.now(UTC) + timedelta(seconds=0.5)
        sent = app.publish(Message("job", payload="late", delay=soon, expiration=soon))
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while app.queue_adapter.stats()["buried"] == 0 and datetime.now(UTC) < deadline:
            run_until_empty(app, include_delayed=False)
            time.sleep(0.05)
        assert handler.ran == []
        buried = app.queue_adapter.peek(sent.id or "")
        assert buried is not None
        assert buried.header["buried_reason"].startswith("expired")


class TestFreshJob:
    def test_runs(self, make_app: MakeApp) -> None:
        handler = Recorder()
        app = make_app({"job": handler})
        sent = app.publish(Message("job", payload="fresh", expiration=timedelta(minutes=5)))
        run_until_empty(app, include_delayed=False)
        assert handler.ran == ["fresh"]
        assert app.queue_adapter.peek(sent.id or "") is None

    def test_that_fails_fatally_is_buried_even_when_expired_jobs_are_deleted(
        self, make_app: MakeApp
    ) -> None:
        def fail(message: Message) -> None:
            raise ValueError("not expired, just broken")

        app = make_app(expiration={"on_expired": "delete"}, max_number_of_attempts=1)
        app.register_handler("job", fail)
        sent = app.publish(Message("job", expiration=timedelta(minutes=5)))
        run_until_empty(app, include_delayed=False)
        buried = app.queue_adapter.peek(sent.id or "")
        assert buried is not None
        assert "not expired, just broken" in buried.header["buried_reason"]


def memory_app(**settings: Any) -> Pulpo:
    return Pulpo({"queue_adapter_type": "memory", **settings},
                 plugin_manager=build_plugin_manager())


class TestPublishing:
    def test_a_delay_after_the_expiration_is_refused_by_the_plugin(self) -> None:
        app = memory_app()
        late = Message("job", delay=timedelta(minutes=2), expiration=timedelta(minutes=1))
        with pytest.raises(ValueError, match="is later than expiration"):
            expiration.pulpo_before_publish(message=late, app=app)

    def test_the_plugin_and_the_core_refuse_in_the_same_words(self) -> None:
        app = memory_app()
        late = Message("job", delay=timedelta(minutes=2), expiration=timedelta(minutes=1))
        with pytest.raises(ValueError) as by_plugin:
            expiration.pulpo_before_publish(message=late, app=app)
        with pytest.raises(ValueError) as by_core:
            late.validate_for_publish()
        assert str(by_plugin.value) == str(by_core.value)


class TestConfiguration:
    def test_a_bad_on_expired_names_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r"'expiration\.on_expired'.*'keep'"):
            memory_app(expiration={"on_expired": "keep"})

    def test_an_unknown_key_names_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r"'expiration\.on_expire'"):
            memory_app(expiration={"on_expire": "delete"})

    def test_the_command_reports_a_bad_value_in_one_line_and_exits_2(self, tmp_path: Path) -> None:
        config = tmp_path / "pulpo.json"
        config.write_text(json.dumps({"queue_adapter_type": "memory",
                                      "expiration": {"on_expired": "keep"}}))
        done = subprocess.run(
            [sys.executable, "-m", "pulpo_core", "--config", str(config),
             "publish", "--request-type", "job"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 2
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "'expiration.on_expired'" in lines[0]
        assert "'keep'" in lines[0]


class TestListing:
    def test_the_plugins_command_shows_it_with_its_version_and_hooks(self) -> None:
        done = subprocess.run([sys.executable, "-m", "pulpo_core", "plugins"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows = [line.split(None, 3) for line in done.stdout.splitlines()]
        hooks = ("pulpo_before_process, pulpo_before_publish, pulpo_register_config_sections, "
                 "pulpo_result_policy")
        assert ["expiration", "pulpo-expiration", "0.1.0", hooks] in rows
