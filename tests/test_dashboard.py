"""``pulpo dashboard`` over HTTP: a real command in a subprocess, a file queue in a temporary
folder, requests through urllib (see ``dashboard_server.py``)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import config_for, free_port
from dashboard_server import TOKEN, DashboardProcess, counts_on, job_ids_on, wait_for

from pulpo_core import Message, Pulpo
from pulpo_core.adapter import JOB_STATES
from pulpo_core.message import BURIED_REASON

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    return config_for("file", tmp_path, request)


@pytest.fixture
def queue(settings: dict[str, Any]) -> Iterator[Pulpo]:
    """An app on the dashboard's queue, to publish and settle jobs from the test."""
    with Pulpo(settings) as app:
        yield app


@pytest.fixture
def dashboard(settings: dict[str, Any], tmp_path: Path) -> Iterator[DashboardProcess]:
    server = DashboardProcess(settings, tmp_path, "--interval", "0.2", "--refresh", "0")
    yield server
    server.stop()


def bury(app: Pulpo, body: dict[str, Any], reason: str, request_type: str = "x") -> str:
    """Publish a job and bury it with ``reason``; its id."""
    sent = app.publish(Message(request_type, body, priority=0))
    taken = app.queue_adapter.dequeue()
    assert taken is not None and taken.id == sent.id
    app.queue_adapter.bury(taken, reason)
    return sent.id or ""


class TestPages:
    def test_the_overview_shows_the_counts_of_each_state(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        for n in range(3):
            queue.publish(Message("x", {"n": n}))
        queue.publish(Message("x", {}, delay=3600))
        bury(queue, {}, "broken")
        answer = dashboard.get("/")
        assert answer.status == 200
        assert counts_on(answer.text) == {"ready": 3, "delayed": 1, "reserved": 0, "buried": 1}
        for state in JOB_STATES:  # every page is a plain link away
            assert f'href="/jobs/{state}"' in answer.text

    def test_the_chart_is_drawn_from_samples_taken_in_the_background(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        queue.publish(Message("x", {}))
        rate = re.compile(r'data-state="ready">(\d+)</td>\s*<td class="number">([+-][\d.]+)<')
        page = wait_for(lambda: rate.search(text := dashboard.get("/").text) and text,
                        "two samples of the counts (then the rates are shown)")
        lines = re.findall(r'<polyline [^>]*points="([^"]+)"', page)
        assert len(lines) == len(JOB_STATES)
        assert all(len(points.split()) >= 2 for points in lines)  # a line through the samples
        for _ in range(30):
            queue.publish(Message("x", {}))
        growing = wait_for(lambda: (found := rate.search(dashboard.get("/").text))
                           and float(found.group(2)) > 0 and found, "a rising ready count")
        assert growing.group(1) == "31"

    def test_publish_and_drain_rates_come_from_the_adapters_publish_count(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        wait_for(lambda: 'id="publish-rate"' in dashboard.get("/").text,
                 "two samples of the publish count")
        for _ in range(30):
            queue.publish(Message("x", {}))
        adapter = queue.queue_adapter
        for _ in range(10):
            taken = adapter.dequeue()
            assert taken is not None
            adapter.commit(taken)
        figures = re.compile(r'id="publish-rate">([\d.]+)</span> / min, drained '
                             r'<span id="drain-rate">([\d.]+)<')

        def settled() -> tuple[float, float] | None:
            found = figures.search(dashboard.get("/").text)
            if found is None:
                return None
            publish, drain = float(found.group(1)), float(found.group(2))
            # 30 published and 10 drained within the same span: drain is a third of publish.
            return (publish, drain) if publish > 0 and abs(drain / publish - 1 / 3) < 0.02 else None

        publish, drain = wait_for(settled, "the rates of 30 publishes and 10 jobs drained")
        assert publish > drain > 0

    def test_job_lists_come_page_by_page_through_plain_links(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        sent = [queue.publish(Message("x", {"n": n})).id for n in range(5)]
        first = dashboard.get("/jobs/ready?limit=2")
        assert job_ids_on(first.text) == sent[:2]
        seen = job_ids_on(first.text)
        page = first.text
        while (link := re.search(r'href="(/jobs/ready\?after=[^"]+)" id="next-page"', page)):
            page = dashboard.get(html.unescape(link.group(1))).text
            seen += job_ids_on(page)
        assert seen == sent
        assert 'id="next-page"' not in page

    def test_a_jobs_page_shows_its_json_and_a_buried_jobs_reason(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        job_id = bury(queue, {"to": "ada"}, "the mail server said no")
        listed = dashboard.get("/jobs/buried")
        assert job_ids_on(listed.text) == [job_id]
        assert "the mail server said no" in listed.text
        page = dashboard.get(f"/job?id={job_id}")
        assert page.status == 200
        assert 'id="job-reason">the mail server said no<' in page.text
        shown = html.unescape(re.search(r'<pre id="job-json">(.*?)</pre>', page.text,
                                        re.DOTALL).group(1))  # type: ignore[union-attr]
        assert f'"id": "{job_id}"' in shown and '"to": "ada"' in shown
        assert dashboard.get("/job?id=nope").status == 404
        assert dashboard.get("/jobs/lost").status == 404
        assert dashboard.get("/jobs/ready?limit=0").status == 400

    def test_every_field_of_a_job_is_escaped(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        job_id = bury(queue, {"payload": SCRIPT, '"><img src=x>': 1}, f"broke on {SCRIPT}",
                      request_type="<b>bold</b>")
        for path in ("/jobs/buried", f"/job?id={job_id}"):
            page = dashboard.get(path).text
            assert SCRIPT not in page and "<img" not in page and "<b>bold" not in page
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
            assert "&lt;b&gt;bold&lt;/b&gt;" in page

    def test_every_answer_forbids_framing_and_foreign_content(
        self, dashboard: DashboardProcess
    ) -> None:
        for answer in (dashboard.get("/"), dashboard.get("/jobs/ready"),
                       dashboard.get("/nowhere"), dashboard.post("/kick", {})):
            assert answer.headers["X-Frame-Options"] == "DENY"
            policy = answer.headers["Content-Security-Policy"]
            assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy

    def test_a_host_name_not_its_own_is_refused(self, dashboard: DashboardProcess) -> None:
        answer = dashboard.get("/", Host=f"rebound.example:{dashboard.port}")
        assert answer.status == 403 and "answers only to" in answer.text
        assert dashboard.get("/", Host=f"localhost:{dashboard.port}").status == 200

    def test_the_overview_refreshes_itself_only_when_asked(
        self, settings: dict[str, Any], tmp_path: Path, dashboard: DashboardProcess
    ) -> None:
        assert 'http-equiv="refresh"' not in dashboard.get("/").text
        other = DashboardProcess(settings, tmp_path, "--refresh", "7")
        try:
            assert '<meta http-equiv="refresh" content="7">' in other.get("/").text
            assert 'http-equiv="refresh"' not in other.get("/jobs/ready").text
        finally:
            other.stop()


class TestActions:
    def test_kick_with_the_token_moves_buried_jobs_to_ready(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        job_id = bury(queue, {}, "broken")
        answer = dashboard.post("/kick", {"token": TOKEN, "bound": ""})
        assert answer.status == 303 and answer.headers["Location"] == "/jobs/buried?kicked=1"
        shown = dashboard.get(answer.headers["Location"]).text
        assert "Kicked 1 buried job back to ready." in shown
        assert queue.queue_adapter.stats()["buried"] == 0
        message = queue.queue_adapter.peek(job_id)
        assert message is not None and BURIED_REASON not in message.extra_header

    def test_without_the_token_nothing_changes(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        job_id = bury(queue, {}, "broken")
        for form in ({}, {"token": ""}, {"token": TOKEN + "x"}, {"token": TOKEN[:-1]}):
            answer = dashboard.post("/kick", form)
            assert answer.status == 403 and "needs the dashboard's token" in html.unescape(
                answer.text)
            assert dashboard.post("/delete", {**form, "id": job_id}).status == 403
        assert queue.queue_adapter.stats()["buried"] == 1

    def test_a_post_from_another_origin_is_refused_even_with_the_token(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        job_id = bury(queue, {}, "broken")
        refused = [
            dashboard.post("/kick", {"token": TOKEN}, origin="http://evil.example"),
            dashboard.post("/kick", {"token": TOKEN}, origin="null"),
            dashboard.post("/kick", {"token": TOKEN}, origin=f"https://127.0.0.1:{dashboard.port}"),
            dashboard.post("/kick", {"token": TOKEN}, origin=None),  # neither Origin nor Referer
            dashboard.post("/kick", {"token": TOKEN}, origin=None,
                           Referer="http://evil.example/page"),
            dashboard.post("/delete", {"token": TOKEN, "id": job_id},
                           origin=f"http://127.0.0.1:{dashboard.port + 1}"),
            dashboard.post("/kick", {"token": TOKEN}, **{"Sec-Fetch-Site": "cross-site"}),
        ]
        for answer in refused:
            assert answer.status == 403
            assert "did not come from the dashboard's own pages" in html.unescape(answer.text)
        assert queue.queue_adapter.stats()["buried"] == 1
        # Without an Origin, the dashboard's own Referer will do.
        answer = dashboard.post("/kick", {"token": TOKEN}, origin=None,
                                Referer=f"{dashboard.base}/jobs/buried")
        assert answer.status == 303 and queue.queue_adapter.stats()["buried"] == 0

    def test_delete_removes_a_buried_job_and_no_other(
        self, queue: Pulpo, dashboard: DashboardProcess
    ) -> None:
        buried = bury(queue, {}, "broken")
        ready = queue.publish(Message("x", {})).id or ""
        answer = dashboard.post("/delete", {"token": TOKEN, "id": ready})
        assert answer.status == 409 and queue.queue_adapter.peek(ready) is not None
        answer = dashboard.post("/delete", {"token": TOKEN, "id": buried})
        assert answer.status == 303
        assert queue.queue_adapter.peek(buried) is None
        assert f"Deleted job {buried}." in dashboard.get(answer.headers["Location"]).text
        assert dashboard.post("/delete", {"token": TOKEN, "id": buried}).status == 404

    def test_no_get_changes_anything(self, queue: Pulpo, dashboard: DashboardProcess) -> None:
        job_id = bury(queue, {}, "broken")
        queue.publish(Message("x", {}))
        before = dict(queue.queue_adapter.stats())
        seen, todo = set(), ["/", f"/job?id={job_id}"]
        while todo:  # every page reachable from / by its links
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            page = dashboard.get(path)
            assert page.status == 200, path
            todo += [html.unescape(p) for p in re.findall(r'href="(/[^"]*)"', page.text)]
        assert len(seen) >= 8
        for path in ("/kick", f"/delete?id={job_id}&token={TOKEN}",
                     f"/kick?token={TOKEN}"):
            answer = dashboard.get(path)
            assert answer.status == 405 and answer.headers["Allow"] == "POST"
        assert dict(queue.queue_adapter.stats()) == before
        message = queue.queue_adapter.peek(job_id)
        assert message is not None and message.extra_header[BURIED_REASON] == "broken"


class TestStart:
    def test_a_generated_token_is_printed_and_works(
        self, queue: Pulpo, settings: dict[str, Any], tmp_path: Path
    ) -> None:
        bury(queue, {}, "broken")
        server = DashboardProcess(settings, tmp_path, token=None)
        try:
            line = server.first_lines[1]
            assert re.fullmatch(r"token: [0-9a-f]{32}", line), line
            token = line.removeprefix("token: ")
            assert server.post("/kick", {"token": TOKEN}).status == 403
            assert server.post("/kick", {"token": token}).status == 303
        finally:
            server.stop()
        assert queue.queue_adapter.stats()["buried"] == 0

    def test_it_listens_on_loopback_unless_told_otherwise(
        self, dashboard: DashboardProcess
    ) -> None:
        # The kernel's table of listening TCP sockets: local address 127.0.0.1, nothing else.
        port = f"{dashboard.port:04X}"
        listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"]
        v6 = Path("/proc/net/tcp6")
        if v6.exists():
            listening += [line.split()[1] for line in v6.read_text().splitlines()[1:]
                          if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"]
        assert listening == [f"0100007F:{port}"]

    def test_sigterm_stops_it_with_exit_0(
        self, settings: dict[str, Any], tmp_path: Path
    ) -> None:
        server = DashboardProcess(settings, tmp_path)
        server.stop()
        assert server.process.returncode == 0

    @pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
    def test_a_bad_port_is_one_sentence_and_exit_2(self, port: str, tmp_path: Path) -> None:
        done = run_dashboard(tmp_path, "--port", port)
        assert done.returncode == 2
        assert "the port must be a number from 1 to 65535" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""

    def test_a_port_in_use_is_one_sentence_and_exit_1(self, tmp_path: Path) -> None:
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = run_dashboard(tmp_path, "--port", str(port))
        assert done.returncode == 1
        assert f"the dashboard cannot listen on 127.0.0.1:{port}" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""

    def test_an_empty_token_is_refused(self, tmp_path: Path) -> None:
        done = run_dashboard(tmp_path, "--port", str(free_port()), "--token", "")
        assert done.returncode == 2 and "token must not be empty" in done.stderr


def run_dashboard(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = folder / "pulpo.toml"
    config.write_text(f'[file_queue_adapter]\nbase_path = "{folder / "queue"}"\n')
    return subprocess.run(
        [sys.executable, "-m", "pulpo_core", "--config", str(config), "dashboard", *args],
        capture_output=True, text=True, timeout=60, cwd=folder,
    )


class TestOtherAdapters:
    def test_beanstalkd_shows_its_next_jobs_and_says_it_shows_no_more(
        self, tmp_path: Path, request: pytest.FixtureRequest
    ) -> None:
        settings = config_for("beanstalkd", tmp_path, request)
        with Pulpo(settings) as app:
            sent = [app.publish(Message("x", {"n": n})).id for n in range(3)]
            buried = bury(app, {}, "broken on beanstalkd")
            server = DashboardProcess(settings, tmp_path)
            try:
                overview = server.get("/").text
                assert counts_on(overview)["ready"] == 3 and counts_on(overview)["buried"] == 1
                note = "beanstalkd shows only the next job of each state"
                assert note in overview
                ready = server.get("/jobs/ready?limit=1").text
                assert job_ids_on(ready) == [sent[0]] and note in ready
                assert 'id="next-page"' not in ready  # there is none to show
                assert job_ids_on(server.get(f"/jobs/ready?after={sent[0]}").text) == []
                assert job_ids_on(server.get("/jobs/buried").text) == [buried]
                # beanstalkd keeps no reasons: the page says where to find it.
                assert "unknown here: beanstalkd does not store bury reasons" in server.get(
                    "/jobs/buried").text
                assert server.post("/kick", {"token": TOKEN}).status == 303
                assert app.queue_adapter.stats()["buried"] == 0
            finally:
                server.stop()

    def test_an_adapter_that_cannot_list_shows_the_counts_and_says_so(self) -> None:
        from pulpo_dashboard.sampler import Sampler
        from pulpo_dashboard.views import Queue, Views

        class CountsOnly:  # an adapter without list_jobs
            def stats(self) -> dict[str, int]:
                return {"ready": 4, "delayed": 0, "reserved": 1, "buried": 2}

        queue = Queue(CountsOnly(), "countsonly")  # type: ignore[arg-type]
        views = Views(queue, Sampler(queue.stats, 1.0), refresh=0)
        for page in (views.overview({}), views.jobs("buried", {})):
            assert page.status == 200
            assert "Listing jobs is not available for this adapter (countsonly)" in page.body
        assert counts_on(views.overview({}).body) == {"ready": 4, "delayed": 0, "reserved": 1,
                                                      "buried": 2}


class TestDocs:
    def test_every_flag_of_pulpo_dashboard_is_documented(self) -> None:
        import argparse

        from pulpo_dashboard.cli import add_arguments

        root = Path(__file__).resolve().parent.parent
        cli = (root / "docs" / "cli.md").read_text(encoding="utf-8")
        section = cli[cli.index("## `dashboard`\n"):]
        section = section[: section.index("\n## ", 1)]
        page = (root / "docs" / "plugins" / "dashboard.md").read_text(encoding="utf-8")
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        flags = [f for a in parser._actions for f in a.option_strings if f not in ("-h", "--help")]
        assert flags == ["--host", "--port", "--token", "--interval", "--refresh"]
        for flag in flags:
            assert f"`{flag}" in section, f"pulpo dashboard {flag} is missing from docs/cli.md"
            assert f"`{flag}" in page, f"{flag} is missing from docs/plugins/dashboard.md"


class TestPackaging:
    def test_the_wheel_carries_the_templates_and_the_style_sheet(self, tmp_path: Path) -> None:
        import zipfile

        root = Path(__file__).resolve().parent.parent
        package = root / "plugins" / "pulpo-dashboard" / "pulpo_dashboard"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "--wheel-dir", str(tmp_path), str(package.parent)],
            check=True, capture_output=True, timeout=300,
        )
        (wheel,) = tmp_path.glob("pulpo_dashboard-*.whl")
        names = set(zipfile.ZipFile(wheel).namelist())
        data = [p.relative_to(package.parent).as_posix()
                for p in [*package.glob("templates/*.html"), *package.glob("static/*")]]
        assert len(data) >= 6
        assert set(data) <= names, set(data) - names
