"""Unit tests of :mod:`pulpo_file.ids`: the shape of a file queue job id (``make_id``,
``is_id``, ``check_id``, ``priority_of``) and :class:`IdMaker`, whose ids keep the order in which
one process made them and never repeat, even within one microsecond."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from pulpo_file.ids import EXAMPLE_ID, IdMaker, check_id, is_id, make_id, priority_of


class TestTheShapeOfAnId:
    def test_an_id_is_creation_time_priority_and_random_bits_in_fixed_width_hex(self) -> None:
        assert make_id(0x62F3A9B1C2D3E, 0x80000000, 0x9F3AC1B2) == EXAMPLE_ID
        assert make_id(1, 2, 3) == "0000000000000001-00000002-00000003"

    def test_ids_sort_as_text_by_creation_time_for_one_priority(self) -> None:
        created = [1, 15, 16, 255, 4096, 10**15]
        ids = [make_id(us, 7, random.getrandbits(32)) for us in created]
        assert sorted(reversed(ids)) == ids

    def test_the_priority_is_read_back_from_the_id(self) -> None:
        for priority in (0, 1, 1024, 0x80000000, 0xFFFFFFFF):
            assert priority_of(make_id(123456789, priority, 0xDEADBEEF)) == priority

    def test_every_made_id_is_an_id(self) -> None:
        assert is_id(EXAMPLE_ID)
        assert is_id(make_id(0, 0, 0))
        assert is_id(make_id(2**64 - 1, 2**32 - 1, 2**32 - 1))

    @pytest.mark.parametrize(
        "value",
        [
            "",
            EXAMPLE_ID.upper(),  # upper case hex: not a name this queue writes
            EXAMPLE_ID + "\n",  # a trailing newline (a regex ``$`` would take it)
            EXAMPLE_ID + "0",
            EXAMPLE_ID[1:],
            EXAMPLE_ID.replace("-", "_"),
            "00062f3a9b1c2d3g-80000000-9f3ac1b2",  # not hex
            "../../etc/passwd",
            "00062f3a9b1c2d3e-80000000-9f3ac1b2/../x",
            "00062f3a9b1c2d3e-80000000-9f3ac1b2.json",
            " " + EXAMPLE_ID,
        ],
    )
    def test_nothing_else_is_an_id(self, value: str) -> None:
        assert not is_id(value)
        with pytest.raises(ValueError, match="is not a file queue job id"):
            check_id(value)

    def test_check_id_returns_an_id_and_names_what_is_not_one(self) -> None:
        assert check_id(EXAMPLE_ID) == EXAMPLE_ID
        with pytest.raises(ValueError, match=r"'\.\./x' is not a file queue job id") as raised:
            check_id("../x")
        assert EXAMPLE_ID in str(raised.value)  # the message shows what an id looks like

    @pytest.mark.parametrize("value", [None, 12, b"00062f3a9b1c2d3e-80000000-9f3ac1b2"])
    def test_check_id_refuses_what_is_not_a_string(self, value: object) -> None:
        with pytest.raises(ValueError, match="is not a file queue job id"):
            check_id(value)


class TestIdMaker:
    def test_an_id_carries_the_priority_the_creation_time_and_the_random_bits(self) -> None:
        asked: list[int] = []

        def bits(count: int) -> int:
            asked.append(count)
            return 0xABCDEF01

        before = time.time_ns() // 1000
        job_id = IdMaker(bits).next(42)
        after = time.time_ns() // 1000
        assert is_id(job_id)
        assert priority_of(job_id) == 42
        assert before <= int(job_id[:16], 16) <= after
        assert job_id.endswith("-abcdef01")
        assert asked == [32]

    def test_ids_made_in_a_burst_are_unique_and_in_the_order_they_were_made(self) -> None:
        # The same random bits every time: only the creation time can tell the ids apart.
        maker = IdMaker(lambda _count: 0)
        ids = [maker.next(5) for _ in range(5000)]
        assert len(set(ids)) == len(ids)
        assert sorted(ids) == ids
        created = [int(job_id[:16], 16) for job_id in ids]
        assert all(b > a for a, b in itertools.pairwise(created))

    def test_creation_times_increase_while_the_clock_stands_still_or_goes_back(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The system clock cannot be stopped or turned back for a test: this one is.
        readings = iter([5_000_000, 5_000_000, 5_000_000, 4_000_000, 6_000_000_000])
        monkeypatch.setattr(time, "time_ns", lambda: next(readings))
        maker = IdMaker(lambda _count: 0)
        created = [int(maker.next(0)[:16], 16) for _ in range(5)]
        assert created == [5000, 5001, 5002, 5003, 6_000_000]

    def test_two_makers_keep_their_own_last_time(self) -> None:
        first, second = IdMaker(lambda _count: 1), IdMaker(lambda _count: 2)
        ids = [maker.next(0) for _ in range(200) for maker in (first, second)]
        assert len(set(ids)) == len(ids)  # (the random bits differ even when the times meet)
        assert sorted(ids[0::2]) == ids[0::2]
        assert sorted(ids[1::2]) == ids[1::2]
