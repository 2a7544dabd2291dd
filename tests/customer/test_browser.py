"""The progress page in a real headless browser (Debian's chromium + chromium-driver, via selenium):
the customer opens the link exactly as the log channel sent it in the acknowledgement, sees the status
and the promised time, adds information, answers "not solved" after the resolution and sees the ticket
reopened; an expired link and a bad token get clear pages. Each page is checked with axe-core (npm
registry, ``npm ci --prefix tests/customer``; .ci/run installs it) for serious or critical violations,
and screenshots are saved under ``$HELPDESK_ARTIFACTS`` (default ``.artifacts/``)/customer.

Without chromium and chromedriver these tests FAIL, unless ``HELPDESK_SKIP_BROWSER=1`` (then skipped)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.customer.conftest import command, link_of, new_ticket, until

HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path(os.environ.get("HELPDESK_ARTIFACTS") or HERE.parents[1] / ".artifacts") / "customer"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=390,844", "--lang=zh-CN")
APT = "apt-get install -y chromium chromium-driver"
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]})
  .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.map(n => n.target.join(" "))}))))
  .catch(e => done([{id: "axe-error", impact: "critical", help: String(e), nodes: []}]));
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if os.environ.get("HELPDESK_SKIP_BROWSER") == "1":
        pytest.skip("HELPDESK_SKIP_BROWSER=1")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail(f"the browser test needs Debian's chromium and chromium-driver: {APT} "
                    "(or set HELPDESK_SKIP_BROWSER=1 to skip it)")
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed: npm ci --prefix {HERE} (.ci/run does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _by():  # noqa: ANN202
    from selenium.webdriver.common.by import By

    return By


def _wait_for(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 15).until(ec.presence_of_element_located((_by().ID, element_id)))


def _text(driver: Any, element_id: str) -> str:
    return driver.find_element(_by().ID, element_id).text


def shot(driver: Any, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 1000, path
    return path


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page (injected by the driver: the
    page's own CSP allows no script, and needs none)."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    found = driver.execute_async_script(RUN_AXE)
    return [v for v in found if v["impact"] in ("serious", "critical")]


def seen(driver: Any) -> dict[str, Any]:
    By = _by()
    return {"status": _text(driver, "status"), "data_status": driver.find_element(By.ID, "status").get_attribute(
        "data-status"), "step": _text(driver, "step"), "step_due": _text(driver, "step-due"),
        "resolution_due": _text(driver, "resolution-due"),
        "kinds": [li.get_attribute("data-kind") for li in driver.find_elements(By.CSS_SELECTOR, "#timeline li")],
        "width": driver.execute_script("return document.documentElement.scrollWidth"),
        "viewport": driver.execute_script("return window.innerWidth")}


def open_link(driver: Any, url: str, name: str) -> dict[str, Any]:
    driver.get(url)
    _wait_for(driver, "status")
    shot(driver, name)
    return {**seen(driver), "axe": axe_violations(driver), "title": driver.title}


def add_information(driver: Any, url: str, words: str) -> dict[str, Any]:
    driver.get(url)
    By = _by()
    driver.find_element(By.ID, "reply-submit").click()  # empty: the server names the field
    error = _wait_for(driver, "text-error").text
    driver.find_element(By.ID, "text").send_keys(words)
    driver.find_element(By.ID, "reply-submit").click()
    notice = _wait_for(driver, "notice").text
    shot(driver, "02-information-added")
    return {**seen(driver), "error": error, "notice": notice, "url": driver.current_url}


def answer_not_solved(driver: Any, url: str, words: str) -> dict[str, Any]:
    driver.get(url)
    By = _by()
    _wait_for(driver, "confirm-form")
    violations = axe_violations(driver)
    shot(driver, "03-confirm-outcome")
    driver.find_element(By.CSS_SELECTOR, "#solved-no + span").click()
    assert driver.find_element(By.ID, "solved-no").is_selected()
    driver.find_element(By.ID, "confirm-text").send_keys(words)
    driver.find_element(By.ID, "confirm-submit").click()
    notice = _wait_for(driver, "notice").text
    shot(driver, "04-reopened")
    forms = driver.find_elements(By.ID, "confirm-form")
    return {**seen(driver), "notice": notice, "axe": violations, "confirm_form_left": bool(forms)}


def closed_page(driver: Any, url: str, name: str) -> dict[str, Any]:
    driver.get(url)
    closed = _wait_for(driver, "closed")
    shot(driver, name)
    return {"state": closed.get_attribute("data-state"), "text": closed.text, "axe": axe_violations(driver)}


async def test_customer_follows_the_ticket_in_the_browser(public, notification, sla, routing, tap, browser):
    intake = public.intake
    no = await new_ticket(intake)
    ack = await notification.sent.wait(no, "ticket_received")
    url = link_of(ack["text"])  # the log line as the log channel wrote it (JSON, masked)
    assert url.startswith(public.base_url) and ack["channel"] == "sms" and ack["recipient"] == "139****5678"
    await until(lambda: _sla_known(intake, no, "first_response"), "first-response clock in the timeline")

    first = await asyncio.to_thread(open_link, browser, url, "01-received")
    assert no in first["title"] and first["data_status"] in ("new", "assigned")
    assert first["status"] in ("已受理", "已分派专人") and first["step_due"] not in ("", "—")
    assert first["kinds"] == ["received"] and first["axe"] == []
    assert first["width"] <= first["viewport"]  # no sideways scrolling on a phone

    await command(intake, no, "wait", reason="请拍一张设备背面铭牌的照片")
    added = await asyncio.to_thread(add_information, browser, url, "铭牌型号 HP-M1136，已重启两次仍然闪烁")
    assert "请填写内容" in added["error"]
    assert "已收到您补充的信息" in added["notice"] and added["url"].split("?")[0] == url
    assert added["data_status"] == "in_progress" and added["kinds"][:2] == ["you", "waiting"]
    [replied] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.customer_replied")
    assert replied.data["text"] == "铭牌型号 HP-M1136，已重启两次仍然闪烁"
    told = await notification.sent.wait(no, "customer_replied")  # the assignee hears of it
    assert "HP-M1136" in told["text"] and told["recipient"] != "139****5678"
    await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.resumed")

    eta = datetime.now(UTC) + timedelta(hours=24)
    await command(intake, no, "progress", note="已安排工程师检测电源模块", eta=eta.isoformat())
    promised = await asyncio.to_thread(open_link, browser, url, "02b-promised")
    local = eta.astimezone(intake.settings.tz).strftime("%Y-%m-%d %H:%M")
    assert promised["step_due"] == local and promised["resolution_due"] == local

    await command(intake, no, "resolve", outcome="resolved", solution="更换电源模块 PWR-01")
    answered = await asyncio.to_thread(answer_not_solved, browser, url, "换了电源还是无法开机")
    assert answered["axe"] == [] and "已重新为您处理" in answered["notice"]
    assert answered["data_status"] == "in_progress" and not answered["confirm_form_left"]
    assert answered["kinds"][:2] == ["reopened", "resolved"]
    [reopened] = await tap.wait_events(lambda e: e.subject == no and e.type == "ticket.reopened")
    assert (reopened.data["actor"], reopened.data["reason"]) == ("customer", "换了电源还是无法开机")

    english = await asyncio.to_thread(open_link, browser, f"{url}?lang=en", "05-english")
    assert english["status"] == "In progress" and english["axe"] == []


async def _sla_known(intake, no: str, metric: str) -> bool:  # noqa: ANN001
    r = await intake.client.get(f"/v1/tickets/{no}")
    return metric in r.json()["sla"]


async def test_expired_link_and_bad_token_in_the_browser(public, notification, tap, browser):
    intake = public.intake
    no = await new_ticket(intake, customer={"name": "Ann", "phone": "13612345678", "language": "en"})
    url = link_of((await notification.sent.wait(no, "ticket_received"))["text"])
    await command(intake, no, "close", reason="duplicate of an earlier ticket")
    async with intake.rt.pool.acquire() as conn:
        await conn.execute("UPDATE intake.tickets SET closed_at = now() - interval '31 days' WHERE ticket_no = $1", no)
    expired = await asyncio.to_thread(closed_page, browser, url, "06-expired")
    assert expired["state"] == "expired" and "This link has expired" in expired["text"] and expired["axe"] == []
    bad = await asyncio.to_thread(closed_page, browser, url[:-6] + "AAAAAA", "07-bad-token")
    assert bad["state"] == "unknown" and "Link not valid" not in bad["text"]  # unknown: Chinese by default
    assert "链接无效" in bad["text"] and bad["axe"] == []
