"""Unit tests of :mod:`pulpo_file.spares`: a :class:`SparePool` keeps finished jobs' files under
``spare/`` and hands each to one taker at a time, locked, to be rewritten in place; it keeps at
most ``max_spare_files`` and removes those unused for ``spare_ttl`` seconds, never one a taker
holds. Two pools on one folder stand for two processes (``flock`` locks are per open file, so
they exclude each other within one process too)."""

from __future__ import annotations

import fcntl
import os
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulpo_file import spares
from pulpo_file.spares import SparePool

#: A ``spare_ttl`` no test waits out.
LONG = 600.0
#: More than the coarsest file time stamp step (a kernel tick), so two changes get two ctimes.
TICK = 0.03


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    spare = tmp_path / "spare"
    spare.mkdir()
    return spare


@pytest.fixture
def descriptors() -> Iterator[list[int]]:
    """Descriptors a test took from a pool (a spare stays locked until its one is closed)."""
    opened: list[int] = []
    yield opened
    for fd in opened:
        os.close(fd)


def pool(folder: Path, max_files: int = 100, ttl: float = LONG) -> SparePool:
    return SparePool(str(folder), max_files, ttl, random.Random(7))


def finished_job(tmp_path: Path, name: str, size: int = 4096) -> str:
    """A finished job's file (outside ``spare/``), ``size`` bytes."""
    path = tmp_path / f"{name}.json"
    path.write_bytes(b"j" * size)
    return str(path)


def is_locked(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class TestGivingAndTaking:
    def test_a_given_file_is_renamed_to_its_job_and_token(
        self, tmp_path: Path, folder: Path
    ) -> None:
        path = finished_job(tmp_path, "a")
        pool(folder).give(path, "a", "0badcafe")
        assert not os.path.exists(path)
        assert sorted(os.listdir(folder)) == ["a.0badcafe"]

    def test_a_taken_spare_is_open_for_writing_locked_and_its_size_known(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        spares_ = pool(folder)
        spares_.give(finished_job(tmp_path, "a", size=8192), "a", "t1")
        taken = spares_.take()
        assert taken is not None
        fd, path, size = taken
        descriptors.append(fd)
        assert (path, size) == (str(folder / "a.t1"), 8192)
        assert is_locked(path)
        os.pwrite(fd, b"new job", 0)  # rewritten in place, through the descriptor
        assert Path(path).read_bytes()[:8] == b"new jobj"
        os.close(descriptors.pop())
        assert not is_locked(path)  # closing lets it go

    def test_each_spare_is_taken_once_and_then_there_is_none(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        spares_ = pool(folder)
        for name in ("a", "b", "c"):
            spares_.give(finished_job(tmp_path, name), name, "t")
        paths = []
        for _ in range(3):
            taken = spares_.take()
            assert taken is not None
            descriptors.append(taken[0])
            paths.append(taken[1])
            os.rename(taken[1], tmp_path / f"reused-{len(paths)}")  # as a writer does
        assert sorted(paths) == [str(folder / f"{name}.t") for name in ("a", "b", "c")]
        assert spares_.take() is None

    def test_a_pool_takes_the_spares_another_process_gave(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        pool(folder).give(finished_job(tmp_path, "a"), "a", "t")
        taken = pool(folder).take()
        assert taken is not None
        descriptors.append(taken[0])
        assert taken[1] == str(folder / "a.t")

    def test_a_spare_another_process_removed_meanwhile_is_skipped(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        spares_ = pool(folder)
        spares_.give(finished_job(tmp_path, "a"), "a", "t")
        spares_.give(finished_job(tmp_path, "b"), "b", "t")
        os.unlink(folder / "b.t")  # the one this pool would hand out first
        taken = spares_.take()
        assert taken is not None
        descriptors.append(taken[0])
        assert taken[1] == str(folder / "a.t")

    def test_a_spare_held_by_another_taker_is_not_handed_out_twice(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        pool(folder).give(finished_job(tmp_path, "a"), "a", "t")
        pool(folder).give(finished_job(tmp_path, "b"), "b", "t")
        first, second = pool(folder).take(), pool(folder).take()
        assert first is not None and second is not None
        descriptors += [first[0], second[0]]
        assert {first[1], second[1]} == {str(folder / "a.t"), str(folder / "b.t")}

    def test_a_taker_finds_none_while_the_only_spare_is_held_elsewhere(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        holder = pool(folder)
        holder.give(finished_job(tmp_path, "a"), "a", "t")
        held = holder.take()
        assert held is not None
        descriptors.append(held[0])
        # Another process asks for a spare while this one holds the only one. (A process of
        # its own: a thread spinning without end could not be stopped.)
        script = textwrap.dedent(
            f"""
            import random
            from pulpo_file.spares import SparePool
            print(SparePool({str(folder)!r}, 100, 600.0, random.Random(1)).take())
            """
        )
        other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        try:
            out, _ = other.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            other.kill()
            other.communicate()
            pytest.fail("take() did not return while another taker held the only spare")
        assert out.strip() == b"None"

    def test_an_empty_folder_is_listed_again_only_after_a_while(
        self, tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch,
        descriptors: list[int],
    ) -> None:
        monkeypatch.setattr(spares, "EMPTY_RELIST", 0.2)
        spares_ = pool(folder)
        assert spares_.take() is None  # lists spare/: empty
        pool(folder).give(finished_job(tmp_path, "a"), "a", "t")  # another process
        assert spares_.take() is None  # not listed again so soon
        time.sleep(0.25)
        taken = spares_.take()
        assert taken is not None
        descriptors.append(taken[0])
        assert taken[1] == str(folder / "a.t")

    def test_a_giving_pool_knows_its_spares_without_listing(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        spares_ = pool(folder)
        assert spares_.take() is None  # the folder was empty: no listing for a second
        spares_.give(finished_job(tmp_path, "a"), "a", "t")
        taken = spares_.take()
        assert taken is not None
        descriptors.append(taken[0])

    def test_giving_a_file_that_is_gone_says_so(self, tmp_path: Path, folder: Path) -> None:
        with pytest.raises(FileNotFoundError):
            pool(folder).give(str(tmp_path / "gone.json"), "gone", "t")
        with pytest.raises(FileNotFoundError):  # also when it would not be kept
            pool(folder, max_files=0).give(str(tmp_path / "gone.json"), "gone", "t")
        assert os.listdir(folder) == []


class TestTheBound:
    def test_no_more_than_max_spare_files_are_kept(self, tmp_path: Path, folder: Path) -> None:
        spares_ = pool(folder, max_files=2)
        given = [finished_job(tmp_path, name) for name in ("a", "b", "c", "d")]
        for path, name in zip(given, "abcd", strict=True):
            spares_.give(path, name, "t")
        assert sorted(os.listdir(folder)) == ["a.t", "b.t"]
        assert not any(os.path.exists(path) for path in given)  # the others are deleted

    def test_with_max_spare_files_0_nothing_is_kept_nor_taken(
        self, tmp_path: Path, folder: Path
    ) -> None:
        path = finished_job(tmp_path, "a")
        pool(folder, max_files=0).give(path, "a", "t")
        assert not os.path.exists(path) and os.listdir(folder) == []
        pool(folder).give(finished_job(tmp_path, "b"), "b", "t")  # by a process that keeps them
        assert pool(folder, max_files=0).take() is None
        assert os.listdir(folder) == ["b.t"]

    def test_trim_keeps_the_newest_max_spare_files(self, tmp_path: Path, folder: Path) -> None:
        for name in "abcde":
            pool(folder).give(finished_job(tmp_path, name), name, "t")
            time.sleep(TICK)
        pool(folder, max_files=2).trim()
        assert sorted(os.listdir(folder)) == ["d.t", "e.t"]

    def test_trim_corrects_the_count_a_pool_keeps(self, tmp_path: Path, folder: Path) -> None:
        for name in "ab":  # spares of another process: this pool does not know of them
            pool(folder).give(finished_job(tmp_path, name), name, "t")
        spares_ = pool(folder, max_files=3)
        spares_.trim()  # counts 2
        spares_.give(finished_job(tmp_path, "c"), "c", "t")
        late = finished_job(tmp_path, "d")
        spares_.give(late, "d", "t")  # a fourth: deleted
        assert sorted(os.listdir(folder)) == ["a.t", "b.t", "c.t"]
        assert not os.path.exists(late)

    def test_trim_beyond_the_bound_spares_a_file_a_taker_holds(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        pool(folder).give(finished_job(tmp_path, "old"), "old", "t")
        time.sleep(TICK)
        pool(folder).give(finished_job(tmp_path, "new"), "new", "t")
        held = os.open(folder / "old.t", os.O_WRONLY)  # as a taker holds it
        descriptors.append(held)
        fcntl.flock(held, fcntl.LOCK_EX)
        pool(folder, max_files=1).trim()  # would remove "old", the oldest, but it is held
        assert sorted(os.listdir(folder)) == ["new.t", "old.t"]


class TestExpiry:
    def test_spares_unused_for_spare_ttl_are_removed(self, tmp_path: Path, folder: Path) -> None:
        spares_ = pool(folder, ttl=0.2)
        spares_.give(finished_job(tmp_path, "old"), "old", "t")
        time.sleep(0.3)
        spares_.give(finished_job(tmp_path, "new"), "new", "t")
        spares_.trim()
        assert os.listdir(folder) == ["new.t"]

    def test_an_expired_spare_a_taker_holds_is_kept(
        self, tmp_path: Path, folder: Path, descriptors: list[int]
    ) -> None:
        pool(folder).give(finished_job(tmp_path, "a"), "a", "t")
        taken = pool(folder).take()
        assert taken is not None
        descriptors.append(taken[0])
        time.sleep(0.3)
        pool(folder, ttl=0.2).trim()
        assert os.listdir(folder) == ["a.t"]

    def test_expired_spares_are_no_longer_handed_out(
        self, tmp_path: Path, folder: Path
    ) -> None:
        spares_ = pool(folder, ttl=0.2)
        spares_.give(finished_job(tmp_path, "a"), "a", "t")
        time.sleep(0.3)
        spares_.trim()
        assert os.listdir(folder) == []
        assert spares_.take() is None

    def test_a_spare_counts_from_when_it_became_one_not_from_its_job(
        self, tmp_path: Path, folder: Path
    ) -> None:
        path = finished_job(tmp_path, "a")
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # written an hour ago
        spares_ = pool(folder, ttl=60.0)
        spares_.give(path, "a", "t")  # the rename sets its ctime: a spare from now on
        spares_.trim()
        assert os.listdir(folder) == ["a.t"]
