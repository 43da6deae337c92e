"""The beanstalkd adapter when the server misbehaves: restarts, drain mode, a small max job size,
a server that accepts connections and never answers.

Each test runs a beanstalkd of its own, so restarting or draining it disturbs no other test.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BeanstalkdServer, find_beanstalkd, free_port

from pulpo_core import AdapterError, Message, Pulpo, Result

MAX_JOB_SIZE = 1024


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[BeanstalkdServer]:
    server = BeanstalkdServer(find_beanstalkd(), tmp_path / "binlog")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def small_jobs_server(tmp_path: Path) -> Iterator[BeanstalkdServer]:
    server = BeanstalkdServer(find_beanstalkd(), tmp_path / "binlog",
                              ("-z", str(MAX_JOB_SIZE)))
    server.start()
    yield server
    server.stop()


def settings_for(port: int, **section: Any) -> dict[str, Any]:
    return {
        "queue_adapter_type": "beanstalkd",
        "retry_delay": 0,
        "beanstalkd_queue_adapter": {"port": port, "default_tube": "jobs",
                                     "socket_timeout": 3, **section},
    }


def crash_and_restart(server: BeanstalkdServer) -> None:
    """Kill the server outright and start it again on the same port and binlog."""
    server.stop(signal.SIGKILL)
    server.start()


class TestRestart:
    def test_the_binlog_keeps_every_job_and_the_same_app_carries_on(
        self, own_server: BeanstalkdServer
    ) -> None:
        handled: list[Any] = []
        app = Pulpo(settings_for(own_server.port))
        app.register_handler("t", lambda m: handled.append(m.body["n"]))
        app.register_handler("bad", lambda m: Result.fatal("never works"))
        try:
            app.publish(Message("bad", priority=0))
            first = app.queue_adapter.dequeue()
            assert first is not None
            app.handle_message(first)  # buried
            before = [app.publish(Message("t", {"n": n}, priority=1)) for n in range(3)]
            app.publish(Message("t", {"n": "delayed"}, delay=2))
            held = app.queue_adapter.dequeue()  # reserved when the server dies
            assert held is not None and held.id == before[0].id

            crash_and_restart(own_server)

            after = app.publish(Message("t", {"n": "after"}, priority=1))  # same app, publishes
            counts = app.queue_adapter.stats()
            assert {key: counts[key] for key in ("ready", "delayed", "reserved", "buried")} == {
                "ready": 4, "delayed": 1, "reserved": 0, "buried": 1}
            app.queue_adapter.commit(held)  # its reservation died with the server: no crash
            assert app.queue_adapter.peek(str(held.id)) is None  # done, so deleted anyway
            deadline = time.monotonic() + 6
            while len(handled) < 4 and time.monotonic() < deadline:
                message = app.queue_adapter.dequeue()  # and the same app consumes
                if message is not None:
                    app.handle_message(message)
            assert sorted(map(str, handled)) == ["1", "2", "after", "delayed"]
            assert after.id not in {m.id for m in before}
            counts = app.queue_adapter.stats()
            assert (counts["total"], counts["buried"]) == (1, 1)
        finally:
            app.close()

    def test_a_running_worker_reconnects_and_goes_on(self, own_server: BeanstalkdServer) -> None:
        handled: list[int] = []
        settings = settings_for(own_server.port, reconnect_delay=0.05, max_reconnect_delay=0.2)
        worker = Pulpo({**settings, "sleep_duration": 0.05})
        worker.register_handler("t", lambda m: handled.append(m.body["n"]))
        publisher = Pulpo(settings)
        runner = threading.Thread(target=worker.start)
        runner.start()
        try:
            publisher.publish_many(Message("t", {"n": n}) for n in range(5))
            _wait_for(lambda: len(handled) == 5)
            own_server.stop()
            time.sleep(0.5)  # the worker finds the server gone and retries
            own_server.start()
            publisher.publish_many(Message("t", {"n": n}) for n in range(5, 10))
            _wait_for(lambda: len(handled) == 10)
            assert sorted(handled) == list(range(10))
        finally:
            worker.stop()
            runner.join(10)
            worker.close()
            publisher.close()
        assert not runner.is_alive()


    @pytest.mark.parametrize("binlog", [True, False], ids=["with-binlog", "without-binlog"])
    def test_a_delete_lost_with_the_server_is_resent_only_to_the_same_job(
        self, tmp_path: Path, binlog: bool
    ) -> None:
        server = BeanstalkdServer(find_beanstalkd(), tmp_path / "binlog" if binlog else None)
        server.start()
        app = Pulpo(settings_for(server.port))
        other = Pulpo(settings_for(server.port))
        try:
            done = app.publish(Message("t", {"n": 1}))
            held = app.queue_adapter.dequeue()
            assert held is not None and held.id == done.id
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)  # the delete goes out, unanswered
            app.queue_adapter.commit(held)
            server.stop(signal.SIGKILL)
            server.start()
            # The same body again: only the server's identity tells the two jobs apart.
            fresh = other.publish(Message("t", {"n": 1}))
            app.queue_adapter.flush()  # the lost delete, sent again on a new connection or not
            if binlog:  # the done job came back from the binlog: deleted, it does not run again
                assert other.queue_adapter.peek(str(done.id)) is None
                assert fresh.id != done.id
            else:  # a new server's job 1 is another job
                assert fresh.id == done.id
                assert other.queue_adapter.peek(str(fresh.id)) is not None
        finally:
            app.close()
            other.close()
            server.stop()


def _wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class TestServerAnswers:
    def test_an_oversized_job_names_its_size_and_the_servers_limit(
        self, small_jobs_server: BeanstalkdServer
    ) -> None:
        app = Pulpo(settings_for(small_jobs_server.port))
        try:
            with pytest.raises(AdapterError) as caught:
                app.publish(Message("t", payload="x" * 2000))
            text = str(caught.value)
            assert f"max-job-size of {MAX_JOB_SIZE} bytes" in text
            size = int(text.split("the job is ")[1].split()[0])
            assert 2000 < size < 2200
            assert app.publish(Message("t", payload="small")).id is not None  # still usable
            assert app.queue_adapter.stats()["total"] == 1
        finally:
            app.close()

    def test_a_batch_reports_which_jobs_were_refused(
        self, small_jobs_server: BeanstalkdServer
    ) -> None:
        from pulpo_core import PartialEnqueue

        app = Pulpo(settings_for(small_jobs_server.port))
        try:
            with pytest.raises(PartialEnqueue, match="1 of 3 jobs were not queued") as caught:
                app.publish_many([Message("t", payload="a"), Message("t", payload="x" * 2000),
                                  Message("t", payload="c")])
            queued = caught.value.queued
            assert queued[1] is None
            assert [m.payload for m in queued if m is not None] == ["a", "c"]
            assert app.queue_adapter.stats()["ready"] == 2
        finally:
            app.close()

    def test_a_draining_server_refuses_with_a_clear_error(
        self, own_server: BeanstalkdServer
    ) -> None:
        app = Pulpo(settings_for(own_server.port))
        try:
            app.publish(Message("t"))
            assert own_server.process is not None
            own_server.process.send_signal(signal.SIGUSR1)  # beanstalkd's drain mode
            deadline = time.monotonic() + 5
            while not app.queue_adapter.stats()["server_draining"]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            with pytest.raises(AdapterError, match="is draining"):
                app.publish(Message("t"))
            assert app.queue_adapter.stats()["total"] == 1
        finally:
            app.close()


class TestDeadServers:
    def test_a_server_that_never_answers_fails_within_the_socket_timeout(self) -> None:
        with socket.socket() as silent:  # accepts connections (backlog), never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            port = silent.getsockname()[1]
            app = Pulpo(settings_for(port, socket_timeout=1.5, reconnect_timeout=0.5))
            try:
                started = time.monotonic()
                with pytest.raises(AdapterError, match=f"127.0.0.1:{port}"):
                    app.queue_adapter.dequeue()
                with pytest.raises(AdapterError, match=f"127.0.0.1:{port}"):
                    app.publish(Message("t"))
                assert time.monotonic() - started < 12
            finally:
                app.close()

    def test_no_server_at_all(self) -> None:
        port = free_port()
        app = Pulpo(settings_for(port, reconnect_timeout=0.3))
        try:
            with pytest.raises(AdapterError, match=f"127.0.0.1:{port} is unreachable") as caught:
                app.publish(Message("t"))
            assert "trying again" not in str(caught.value)  # a command gives up: no promise
        finally:
            app.close()

    def test_the_stats_command_ends_with_the_server_being_unreachable(
        self, tmp_path: Path
    ) -> None:
        port = free_port()
        config = tmp_path / "pulpo.json"
        config.write_text(json.dumps(settings_for(port, reconnect_timeout=0.3)))
        done = subprocess.run(
            [sys.executable, "-m", "pulpo_core", "--config", str(config), "stats"],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("pulpo: error: ") and f"127.0.0.1:{port} is unreachable" in last
        assert "Traceback" not in done.stderr and "trying again" not in last



class ScriptedServer:
    """A stand-in for beanstalkd that answers ``put`` with a given line, for the answers a real
    server gives only when its memory runs out (which a test cannot bring about safely).

    It speaks just enough of the protocol for a producer: ``use``, ``watch``, ``ignore``,
    ``stats``, and ``put`` (whose body it reads and drops).
    """

    def __init__(self, put_answer: bytes) -> None:
        self.put_answer = put_answer
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.puts = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        stream = connection.makefile("rb")
        with connection, stream:
            while line := stream.readline():
                words = line.split()
                if not words:
                    continue
                if words[0] == b"use":
                    connection.sendall(b"USING " + words[1] + b"\r\n")
                elif words[0] in (b"watch", b"ignore"):
                    connection.sendall(b"WATCHING 1\r\n")
                elif words[0] == b"stats":
                    stats = b"---\nid: scripted\nbinlog-current-index: 0\nmax-job-size: 65535\n"
                    connection.sendall(b"OK %d\r\n%s\r\n" % (len(stats), stats))
                elif words[0] == b"put":
                    stream.read(int(words[4]) + 2)  # the body and its \r\n
                    self.puts += 1
                    connection.sendall(self.put_answer)
                else:
                    connection.sendall(b"UNKNOWN_COMMAND\r\n")

    def close(self) -> None:
        self.listener.close()


class TestOutOfMemory:
    def test_a_server_out_of_memory_refuses_with_a_clear_error(self) -> None:
        server = ScriptedServer(b"OUT_OF_MEMORY\r\n")
        app = Pulpo(settings_for(server.port))
        try:
            with pytest.raises(AdapterError) as caught:
                app.publish(Message("t"))
            assert str(caught.value) == (
                f"beanstalkd at 127.0.0.1:{server.port} is out of memory; the job was not queued"
            )
            assert server.puts == 1
        finally:
            app.close()
            server.close()

    def test_a_job_buried_at_once_is_reported_with_its_id(self) -> None:
        server = ScriptedServer(b"BURIED 42\r\n")
        app = Pulpo(settings_for(server.port))
        try:
            with pytest.raises(AdapterError, match="buried the new job 42 at once") as caught:
                app.publish(Message("t"))
            assert "pulpo kick" in str(caught.value)
        finally:
            app.close()
            server.close()
