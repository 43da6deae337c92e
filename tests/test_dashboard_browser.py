"""``pulpo dashboard`` in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against the real command on a file queue."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import config_for
from dashboard_server import TOKEN, DashboardProcess

from pulpo_core import Message, Pulpo
from pulpo_core.message import BURIED_REASON

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCRIPT = "<script>alert(1)</script>"
REASON = "the <b>mail</b> server said no"
WAIT = 20


def _require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: the browser test needs Debian's chromium "
                    "and chromium-driver; run .ci/bootstrap, which installs them", pytrace=False)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    _require_browser()
    # Selenium Manager must never fetch a driver or a browser: both are given.
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    return config_for("file", tmp_path, request)


@pytest.fixture
def queue(settings: dict[str, Any]) -> Iterator[Pulpo]:
    with Pulpo(settings) as app:
        yield app


@pytest.fixture
def dashboard(settings: dict[str, Any], tmp_path: Path) -> Iterator[DashboardProcess]:
    server = DashboardProcess(settings, tmp_path, "--refresh", "0")
    yield server
    server.stop()


def _bury(app: Pulpo, body: dict[str, Any], reason: str) -> str:
    sent = app.publish(Message("mail", body, priority=0))
    taken = app.queue_adapter.dequeue()
    assert taken is not None and taken.id == sent.id
    app.queue_adapter.bury(taken, reason)
    return sent.id or ""


def _no_alert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 (the property raises when no alert is open)


def test_an_operator_reads_the_queue_and_kicks_a_buried_job_with_the_token(
    browser: Any, queue: Pulpo, dashboard: DashboardProcess
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT)
    buried = _bury(queue, {"to": "ada"}, REASON)
    hostile = queue.publish(Message("mail", {"payload": SCRIPT})).id or ""
    queue.publish(Message("mail", {"n": 2}))
    queue.publish(Message("mail", {}, delay=3600))

    browser.get(dashboard.base + "/")
    wait.until(seen.presence_of_element_located((By.ID, "counts")))
    shown = {cell.get_attribute("data-state"): cell.text
             for cell in browser.find_elements(By.CSS_SELECTOR, "td[data-state]")}
    assert shown == {"ready": "2", "delayed": "1", "reserved": "0", "buried": "1"}

    # The buried list, reached by its link, shows the reason as text, markup and all.
    browser.find_element(By.ID, "nav-buried").click()
    wait.until(seen.url_contains("/jobs/buried"))
    assert [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.reason")] == [REASON]
    browser.find_element(By.LINK_TEXT, buried).click()
    wait.until(seen.presence_of_element_located((By.ID, "job-reason")))
    assert browser.find_element(By.ID, "job-reason").text == REASON
    assert browser.find_elements(By.TAG_NAME, "b") == []  # the reason's <b> is text

    # Refused: a wrong token, then an empty one (its `required` removed through the DOM).
    browser.find_element(By.ID, "kick-token").send_keys("not-the-token")
    browser.find_element(By.ID, "kick-button").click()
    wait.until(seen.presence_of_element_located((By.ID, "message")))
    assert "needs the dashboard's token" in browser.find_element(By.ID, "message").text
    assert queue.queue_adapter.stats()["buried"] == 1
    browser.get(f"{dashboard.base}/jobs/buried")
    token = wait.until(seen.presence_of_element_located((By.ID, "kick-token")))
    browser.execute_script("arguments[0].removeAttribute('required'); arguments[0].value = '';",
                           token)
    browser.find_element(By.ID, "kick-button").click()
    wait.until(seen.presence_of_element_located((By.ID, "message")))
    assert "needs the dashboard's token" in browser.find_element(By.ID, "message").text
    assert queue.queue_adapter.stats()["buried"] == 1

    # With the token the job goes back to ready.
    browser.get(f"{dashboard.base}/jobs/buried")
    wait.until(seen.presence_of_element_located((By.ID, "kick-token"))).send_keys(TOKEN)
    browser.find_element(By.ID, "kick-button").click()
    wait.until(seen.presence_of_element_located((By.ID, "notice")))
    assert browser.find_element(By.ID, "notice").text == "Kicked 1 buried job back to ready."
    assert browser.current_url.endswith("/jobs/buried?kicked=1")  # reloading it does nothing
    stats = queue.queue_adapter.stats()
    assert stats["buried"] == 0 and stats["ready"] == 3
    kicked = queue.queue_adapter.peek(buried)
    assert kicked is not None and BURIED_REASON not in kicked.extra_header

    # A body with a script is shown as text; no script runs or is added to the page.
    browser.get(f"{dashboard.base}/jobs/ready")
    wait.until(seen.presence_of_element_located((By.ID, "jobs")))
    previews = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "code.preview")]
    assert f'{{"payload": "{SCRIPT}"}}' in previews
    _no_alert(browser)
    assert browser.find_elements(By.TAG_NAME, "script") == []
    browser.find_element(By.LINK_TEXT, hostile).click()
    wait.until(seen.presence_of_element_located((By.ID, "job-json")))
    assert f'"payload": "{SCRIPT}"' in browser.find_element(By.ID, "job-json").text
    _no_alert(browser)
    assert browser.find_elements(By.TAG_NAME, "script") == []
