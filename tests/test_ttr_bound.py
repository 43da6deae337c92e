"""One bound for every ttr, on every adapter: above 0 and at most 2**32 - 1 seconds (what
beanstalkd can hold), refused with one sentence and exit 2 wherever it is given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from conftest import ADAPTERS, BeanstalkdServer, config_for

from pulpo_core import ConfigError, Message, Pulpo
from pulpo_core.message import MAX_TTR

BAD_TTRS = ["1e12", str(MAX_TTR + 1), "-3", "0", "0.0", "nan", "inf", "long"]
SENTENCE = f"is not a ttr: a ttr is a number of seconds above 0 and at most {MAX_TTR}"


def pulpo(settings: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "pulpo.json"
    config.write_text(json.dumps(settings))
    return subprocess.run([sys.executable, "-m", "pulpo_core", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(params=ADAPTERS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return config_for(request.param, tmp_path, request)


def test_every_adapter_refuses_a_bad_ttr_with_the_one_sentence(
    settings: dict[str, Any], tmp_path: Path
) -> None:
    for value in BAD_TTRS:
        done = pulpo(settings, tmp_path, "publish", "--request-type", "t", "--ttr", value)
        assert done.returncode == 2, (value, done.stderr)
        assert done.stderr == f"pulpo publish: argument --ttr: {value!r} {SENTENCE}\n"
        assert done.stdout == ""


def test_every_adapter_takes_the_largest_ttr(
    settings: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    done = pulpo(settings, tmp_path, "publish", "--request-type", "t", "--ttr", str(MAX_TTR))
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    if settings["queue_adapter_type"] == "memory":
        return  # the queue went with the process
    if settings["queue_adapter_type"] == "beanstalkd":
        server: BeanstalkdServer = request.getfixturevalue("beanstalkd")
        with greenstalk.Client((server.host, server.port), encoding=None) as plain:
            assert plain.stats_job(int(job))["ttr"] == MAX_TTR
            plain.delete(int(job))
        return
    shown = pulpo(settings, tmp_path, "peek", job)
    assert json.loads(shown.stdout)["header"]["ttr"] == MAX_TTR


@pytest.mark.parametrize("value", [0, -3, -3.0, 1e12, MAX_TTR + 1])
def test_the_configured_ttr_has_the_same_bound(settings: dict[str, Any], value: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        Pulpo({**settings, "ttr": value})
    assert str(refused.value) == (
        f"configuration key 'ttr' must be a number of seconds above 0 and at most "
        f"{MAX_TTR}, not {value!r}")


def test_a_message_ttr_out_of_the_bound_is_refused_before_any_adapter_sees_it(
    settings: dict[str, Any],
) -> None:
    app = Pulpo(settings)
    try:
        for value in (0, -3, MAX_TTR + 1, 1e12):
            with pytest.raises(ValueError, match=f"ttr must be a number of seconds above 0 and "
                                                 f"at most {MAX_TTR}, not"):
                app.publish(Message("t", ttr=value))
        assert app.queue_adapter.stats()["ready"] == 0
    finally:
        app.close()
