"""The message model: every field and normalisation rule of the contract."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from pulpo_core import Message, Pulpo
from pulpo_core.message import DEFAULT_PRIORITY, PRIORITY_LOWEST
from pulpo_core.testing import make_app

HEADER_KEYS = {"request_type", "priority", "delay", "expiration", "ttr", "attempts"}


@pytest.fixture
def local_zone_plus_nine() -> Iterator[None]:
    """Run the test with the process's local time zone at UTC+9 (a POSIX TZ string)."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "XYZ-09"
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = previous
        time.tzset()


def memory_app() -> Pulpo:
    return make_app()


def drain_order(app: Pulpo) -> list[str]:
    order = []
    while (message := app.queue_adapter.dequeue()) is not None:
        order.append(message.body["name"])
        app.queue_adapter.commit(message)
    return order


class TestConstruction:
    def test_positional_request_type_and_body(self) -> None:
        message = Message("send_email", {"to": "ada@example.org"})
        assert message.request_type == "send_email"
        assert message.body == {"to": "ada@example.org"}

    def test_defaults(self) -> None:
        message = Message("t")
        assert message.id is None
        assert message.body == {}
        assert message.priority is None
        assert message.delay is None
        assert message.expiration is None
        assert message.ttr is None
        assert message.attempts == 0
        assert message.payload is None
        assert message.extra_header == {}

    def test_id_is_a_string(self) -> None:
        assert Message("t", id=42).id == "42"

    def test_is_frozen(self) -> None:
        message = Message("t")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            message.priority = 3  # type: ignore[misc]

    def test_evolve_changes_one_field_and_keeps_the_rest(self) -> None:
        message = Message("t", {"a": 1}, priority=5, ttr=30, header={"tenant": "x"})
        changed = attrs.evolve(message, id="7")
        assert changed.id == "7"
        assert (changed.request_type, changed.body, changed.priority, changed.ttr) == (
            "t", {"a": 1}, 5, 30
        )
        assert changed.extra_header == {"tenant": "x"}

    def test_header_fields_are_read_from_the_header_mapping(self) -> None:
        message = Message(header={"request_type": "t", "priority": 9, "ttr": 5, "attempts": 2})
        assert (message.request_type, message.priority, message.ttr, message.attempts) == (
            "t", 9, 5, 2
        )

    def test_an_argument_wins_over_the_header(self) -> None:
        assert Message("t", priority=1, header={"priority": 9}).priority == 1


class TestWithId:
    def test_the_copy_keeps_every_field_and_sets_the_id(self) -> None:
        message = Message("t", {"n": 1}, priority=3, delay=60, expiration=3600, ttr=9,
                          attempts=2, extra_header={"trace": "x"})
        copy = message.with_id("42")
        assert copy.id == "42" and message.id is None
        for field in attrs.fields(Message):
            if field.name != "id":
                assert getattr(copy, field.name) == getattr(message, field.name), field.name


class TestExtraHeader:
    def test_a_field_of_its_own_is_refused_in_the_extra_header(self) -> None:
        with pytest.raises(ValueError, match="extra_header cannot hold priority"):
            Message("t", extra_header={"priority": 9, "trace": "x"})

    def test_other_keys_travel_in_the_header(self) -> None:
        message = Message("t", extra_header={"trace": "x"})
        assert message.header["trace"] == "x"
        assert Message.from_dict(message.to_dict()).extra_header == {"trace": "x"}


class TestPriority:
    @pytest.mark.parametrize("given", [-1, -(2**40)])
    def test_negative_becomes_the_highest(self, given: int) -> None:
        assert Message("t", priority=given).priority == 0

    @pytest.mark.parametrize("given", [2**32, 2**64, 10**30])
    def test_huge_becomes_the_lowest(self, given: int) -> None:
        assert Message("t", priority=given).priority == PRIORITY_LOWEST == 2**32 - 1

    @pytest.mark.parametrize("given", [0, 1, 2**31, 2**32 - 1])
    def test_in_range_is_kept(self, given: int) -> None:
        assert Message("t", priority=given).priority == given

    def test_a_whole_float_is_accepted(self) -> None:
        assert Message("t", priority=3.0).priority == 3  # type: ignore[arg-type]

    @pytest.mark.parametrize("given", [2.5, "3", True, [1]])
    def test_not_a_whole_number_is_refused_naming_the_field(self, given: Any) -> None:
        with pytest.raises(ValueError, match="priority"):
            Message("t", priority=given)

    def test_unset_is_queued_at_two_to_the_31(self) -> None:
        app = memory_app()
        app.publish(Message("t", {"name": "lower"}, priority=DEFAULT_PRIORITY + 1))
        app.publish(Message("t", {"name": "unset"}))
        app.publish(Message("t", {"name": "higher"}, priority=DEFAULT_PRIORITY - 1))
        app.publish(Message("t", {"name": "unset later"}))
        app.publish(Message("t", {"name": "equal, later"}, priority=DEFAULT_PRIORITY))
        assert DEFAULT_PRIORITY == 2**31
        assert drain_order(app) == ["higher", "unset", "unset later", "equal, later", "lower"]

    def test_zero_is_the_most_urgent(self) -> None:
        app = memory_app()
        app.publish(Message("t", {"name": "lowest"}, priority=PRIORITY_LOWEST))
        app.publish(Message("t", {"name": "zero"}, priority=0))
        app.publish(Message("t", {"name": "clamped to zero"}, priority=-3))
        assert drain_order(app) == ["zero", "clamped to zero", "lowest"]


@pytest.mark.parametrize("field", ["delay", "expiration"])
class TestWhen:
    def get(self, field: str, value: Any) -> datetime:
        moment = getattr(Message("t", **{field: value}), field)
        assert isinstance(moment, datetime)
        return moment

    def test_seconds_count_from_now(self, field: str) -> None:
        before = datetime.now(UTC)
        moment = self.get(field, 90)
        after = datetime.now(UTC)
        assert moment.tzinfo is UTC
        assert before + timedelta(seconds=90) <= moment <= after + timedelta(seconds=90)

    def test_float_seconds(self, field: str) -> None:
        before = datetime.now(UTC)
        moment = self.get(field, 1.5)
        after = datetime.now(UTC)
        assert before + timedelta(seconds=1.5) <= moment <= after + timedelta(seconds=1.5)

    def test_timedelta_counts_from_now(self, field: str) -> None:
        before = datetime.now(UTC)
        moment = self.get(field, timedelta(hours=2))
        assert moment.tzinfo is UTC
        assert before + timedelta(hours=2) <= moment <= datetime.now(UTC) + timedelta(hours=2)

    def test_aware_datetime_keeps_its_instant_in_utc(self, field: str) -> None:
        given = datetime(2031, 3, 4, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        moment = self.get(field, given)
        assert moment == given
        assert moment.tzinfo is UTC
        assert (moment.hour, moment.minute) == (10, 0)

    @pytest.mark.usefixtures("local_zone_plus_nine")
    def test_naive_datetime_is_local_time(self, field: str) -> None:
        moment = self.get(field, datetime(2031, 3, 4, 12, 0))
        assert moment == datetime(2031, 3, 4, 3, 0, tzinfo=UTC)
        assert moment.tzinfo is UTC

    def test_iso_string_with_offset(self, field: str) -> None:
        moment = self.get(field, "2031-03-04T12:00:00+02:00")
        assert moment == datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
        assert moment.tzinfo is UTC

    @pytest.mark.parametrize("bad", ["tomorrow", True, [1], float("inf"), float("nan")])
    def test_anything_else_is_refused_naming_the_field(self, field: str, bad: Any) -> None:
        with pytest.raises(ValueError, match=field):
            Message("t", **{field: bad})

    @pytest.mark.parametrize("far", [
        1e300,
        -1e12,
        10**30,
        timedelta(days=999_999_999),
        "0001-01-01T00:00:00+01:00",  # year 0 once shifted to UTC
        "9999-12-31T23:30:00-05:00",  # year 10000 once shifted to UTC
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=3))),
    ], ids=repr)
    def test_a_moment_out_of_range_is_refused_naming_the_field(
        self, field: str, far: Any
    ) -> None:
        with pytest.raises(ValueError, match=f"^{field} .* is out of range"):
            Message("t", **{field: far})

    @pytest.mark.usefixtures("local_zone_plus_nine")
    def test_a_naive_datetime_out_of_range_in_utc_is_refused_naming_the_field(
        self, field: str
    ) -> None:
        naive: Any = datetime(1, 1, 1)  # 15:00 on 31 December of year 0 in UTC
        with pytest.raises(ValueError, match=f"^{field} 0001-01-01T00:00:00 is out of range"):
            Message("t", **{field: naive})


class TestTtr:
    def test_seconds_are_rounded_up(self) -> None:
        assert Message("t", ttr=1.2).ttr == 2
        assert Message("t", ttr=30).ttr == 30

    @pytest.mark.parametrize("bad", [0, -1, "30", float("inf"), True])
    def test_bad_is_refused_naming_the_field(self, bad: Any) -> None:
        with pytest.raises(ValueError, match="ttr"):
            Message("t", ttr=bad)


class TestPayload:
    def test_payload_is_body_payload(self) -> None:
        message = Message("t", payload="hello")
        assert message.payload == "hello"
        assert message.body == {"payload": "hello"}

    def test_payload_joins_the_body(self) -> None:
        message = Message("t", {"a": 1}, payload=[1, 2])
        assert message.body == {"a": 1, "payload": [1, 2]}
        assert message.payload == [1, 2]

    def test_payload_read_from_a_given_body(self) -> None:
        assert Message("t", {"payload": {"k": "v"}}).payload == {"k": "v"}

    def test_the_callers_body_is_not_changed(self) -> None:
        body = {"a": 1}
        Message("t", body, payload=2)
        assert body == {"a": 1}


class TestAttempts:
    def test_default_is_zero(self) -> None:
        assert Message("t").attempts == 0

    def test_a_callable_is_resolved_lazily_and_once(self) -> None:
        calls: list[int] = []

        def count() -> int:
            calls.append(1)
            return 3

        message = Message("t", attempts=count)
        assert message.request_type == "t"
        assert calls == []
        assert message.attempts == 3
        assert message.attempts == 3
        assert calls == [1]

    def test_known_attempts_does_not_ask(self) -> None:
        calls: list[int] = []

        def count() -> int:
            calls.append(1)
            return 5

        message = Message("t", attempts=count)
        assert message.known_attempts is None
        assert calls == []
        assert message.attempts == 5
        assert message.known_attempts == 5
        assert Message("t", attempts=2).known_attempts == 2

    def test_a_callable_survives_evolve_unresolved(self) -> None:
        calls: list[int] = []

        def count() -> int:
            calls.append(1)
            return 2

        changed = attrs.evolve(Message("t", attempts=count), id="1")
        assert calls == []
        assert changed.attempts == 2

    def test_to_dict_resolves_it(self) -> None:
        assert Message("t", attempts=lambda: 4).to_dict()["header"]["attempts"] == 4

    @pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
    def test_bad_is_refused_naming_the_field(self, bad: Any) -> None:
        with pytest.raises(ValueError, match="attempts"):
            Message("t", attempts=bad)


class TestToDict:
    def sample(self) -> Message:
        return Message(
            "resize",
            {"image": "a.png", "sizes": [1, 2.5, None], "nested": {"ü": True}},
            priority=10,
            delay=datetime(2031, 1, 1, 12, tzinfo=UTC),
            expiration=datetime(2031, 1, 2, 12, tzinfo=UTC),
            ttr=45,
            header={"reply_to": "results", "trace": {"span": 7}},
            id="17",
            attempts=2,
        )

    def test_shape(self) -> None:
        data = self.sample().to_dict()
        assert set(data) == {"id", "header", "body"}
        assert set(data["header"]) >= HEADER_KEYS
        assert data["id"] == "17"
        assert data["header"]["request_type"] == "resize"
        assert data["header"]["priority"] == 10
        assert data["header"]["ttr"] == 45
        assert data["header"]["attempts"] == 2
        assert data["header"]["reply_to"] == "results"

    def test_datetimes_are_iso_strings_with_an_offset(self) -> None:
        header = self.sample().to_dict()["header"]
        for key in ("delay", "expiration"):
            assert isinstance(header[key], str)
            parsed = datetime.fromisoformat(header[key])
            assert parsed.utcoffset() is not None
        assert datetime.fromisoformat(header["delay"]) == datetime(2031, 1, 1, 12, tzinfo=UTC)

    def test_is_json(self) -> None:
        data = self.sample().to_dict()
        assert json.loads(json.dumps(data)) == data

    def test_round_trip(self) -> None:
        message = self.sample()
        back = Message.from_dict(message.to_dict())
        assert back == message
        assert back.attempts == 2
        assert back.extra_header == {"reply_to": "results", "trace": {"span": 7}}

    def test_round_trip_through_json_text(self) -> None:
        message = self.sample()
        assert Message.from_json(message.to_json()) == message

    @pytest.mark.parametrize(
        "body",
        [{}, {"payload": None}, {"a": [1, {"b": [True, False]}], "c": 1.25}, {"text": "日本語 ✓"}],
    )
    def test_any_json_body_survives(self, body: dict[str, Any]) -> None:
        message = Message("t", body)
        assert Message.from_json(message.to_json()).body == body

    def test_unknown_header_keys_of_a_third_party_are_kept(self) -> None:
        foreign = {
            "id": 99,
            "header": {"request_type": "t", "routing_key": "eu", "x-retry-policy": {"max": 3}},
            "body": {"k": "v"},
        }
        message = Message.from_dict(foreign)
        assert message.id == "99"
        assert message.extra_header == {"routing_key": "eu", "x-retry-policy": {"max": 3}}
        out = message.to_dict()
        assert out["header"]["routing_key"] == "eu"
        assert out["header"]["x-retry-policy"] == {"max": 3}

    def test_from_dict_reads_an_iso_string_with_any_offset(self) -> None:
        message = Message.from_dict(
            {"id": "1", "header": {"request_type": "t", "delay": "2031-01-01T09:00:00-05:00"},
             "body": {}}
        )
        assert message.delay == datetime(2031, 1, 1, 14, tzinfo=UTC)
        assert message.delay is not None and message.delay.tzinfo is UTC

    @pytest.mark.parametrize(
        ("data", "named"),
        [
            ([1, 2], "JSON object"),
            ({"id": "1", "header": {}, "body": {}, "extra": 1}, "extra"),
            ({"header": [1]}, "header"),
            ({"header": {"request_type": "t"}, "body": [1]}, "body"),
            ({"header": {"request_type": "t", "priority": "high"}}, "priority"),
            ({"header": {"request_type": "t", "delay": "soon"}}, "delay"),
            ({"header": {"request_type": "t", "delay": "0001-01-01T00:00:00+01:00"}},
             "delay .* out of range"),
            ({"header": {"request_type": "t", "expiration": 1e300}},
             "expiration .* out of range"),
        ],
    )
    def test_from_dict_refuses_what_does_not_fit(self, data: Any, named: str) -> None:
        with pytest.raises(ValueError, match=named):
            Message.from_dict(data)

    def test_from_json_refuses_text_that_is_not_json(self) -> None:
        with pytest.raises(ValueError, match="not JSON"):
            Message.from_json("{not json")


class TestRefusals:
    @pytest.mark.parametrize("body", [[1, 2], "text", 3])
    def test_a_body_that_is_not_a_mapping(self, body: Any) -> None:
        with pytest.raises(ValueError, match="body"):
            Message("t", body)

    @pytest.mark.parametrize("header", [[("a", 1)], 5, "text"])
    def test_a_header_that_is_not_a_mapping(self, header: Any) -> None:
        with pytest.raises(ValueError, match="header"):
            Message("t", header=header)

    def test_a_request_type_that_is_not_a_string(self) -> None:
        with pytest.raises(ValueError, match="request_type"):
            Message(5)  # type: ignore[arg-type]

    @pytest.mark.parametrize("request_type", ["", None])
    def test_an_empty_request_type_at_publish(self, request_type: str | None) -> None:
        app = memory_app()
        with pytest.raises(ValueError, match="request_type"):
            app.publish(Message(request_type, {"a": 1}))
        assert app.queue_adapter.stats()["ready"] == 0

    @pytest.mark.parametrize(
        "body", [{"when": object()}, {"tags": {1, 2}}, {"x": float("nan")}, {"b": b"bytes"}]
    )
    def test_a_body_that_is_not_json_at_publish(self, body: dict[str, Any]) -> None:
        app = memory_app()
        with pytest.raises(ValueError, match="body"):
            app.publish(Message("t", body))
        assert app.queue_adapter.stats()["ready"] == 0

    def test_a_header_extra_that_is_not_json_at_publish(self) -> None:
        with pytest.raises(ValueError, match="header"):
            memory_app().publish(Message("t", header={"obj": object()}))

    def test_a_delay_after_the_expiration_at_publish(self) -> None:
        app = memory_app()
        with pytest.raises(ValueError, match=r"delay .* expiration"):
            app.publish(Message("t", delay=120, expiration=60))
        assert app.queue_adapter.stats()["delayed"] == 0

    def test_a_delay_before_the_expiration_is_fine(self) -> None:
        app = memory_app()
        published = app.publish(Message("t", delay=60, expiration=120))
        assert published.id is not None

    def test_publish_takes_only_a_message(self) -> None:
        with pytest.raises(ValueError, match="Message"):
            memory_app().publish({"request_type": "t"})  # type: ignore[arg-type]
