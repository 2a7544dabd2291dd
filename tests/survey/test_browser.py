"""The survey page in a real headless browser (Debian's chromium + chromium-driver, via selenium),
served by uvicorn on a loopback port: open the link from ``survey.sent``, fill the form, submit,
see the thank-you page, and ``survey.completed`` appears; used, expired and bad answers too.

Needs ``apt-get install -y chromium chromium-driver``. Without them these tests FAIL, unless
``HELPDESK_SKIP_BROWSER=1`` is set (then they are skipped)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.survey.conftest import resolved_ticket, sent_survey, time_travel

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=412,915", "--lang=zh-CN")
APT = "apt-get install -y chromium chromium-driver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if os.environ.get("HELPDESK_SKIP_BROWSER") == "1":
        pytest.skip("HELPDESK_SKIP_BROWSER=1")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail(f"the browser test needs Debian's chromium and chromium-driver: {APT} "
                    "(or set HELPDESK_SKIP_BROWSER=1 to skip it)")
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


def _choose(driver: Any, *ids: str) -> None:
    """Tap the big buttons (the visible span of each radio's label)."""
    for radio in ids:
        driver.find_element(_by().CSS_SELECTOR, f"#{radio} + span").click()
        assert driver.find_element(_by().ID, radio).is_selected(), radio


def fill_and_submit(driver: Any, url: str) -> dict[str, str]:
    driver.get(url)
    By = _by()
    seen = {"title": driver.title, "h1": driver.find_element(By.TAG_NAME, "h1").text}
    button = driver.find_element(By.ID, "submit")
    seen["button_height"] = str(button.size["height"])
    seen["choice_height"] = str(driver.find_element(By.CSS_SELECTOR, "#speed-5 + span").size["height"])
    _choose(driver, "resolved-yes", "speed-5", "attitude-4", "overall-5")
    driver.find_element(By.ID, "comment").send_keys("师傅上门很及时，谢谢！")
    button.click()
    seen["thanks"] = _wait_for(driver, "thanks").text
    seen["url"] = driver.current_url
    return seen


def open_page(driver: Any, url: str) -> dict[str, str]:
    driver.get(url)
    closed = _wait_for(driver, "closed")
    return {"state": closed.get_attribute("data-state"), "text": closed.text}


def submit_incomplete_then_fix(driver: Any, url: str) -> dict[str, Any]:
    driver.get(url)
    By = _by()
    # Bypass the browser's own `required` check so the server's validation is what the customer sees.
    driver.execute_script("document.getElementById('survey').noValidate = true")
    _choose(driver, "resolved-no", "speed-2")
    driver.find_element(By.ID, "submit").click()
    summary = _wait_for(driver, "error-summary").text
    errors = {f: driver.find_element(By.ID, f"{f}-error").text for f in ("attitude", "overall")}
    kept = [driver.find_element(By.ID, r).is_selected() for r in ("resolved-no", "speed-2")]
    _choose(driver, "attitude-3", "overall-1")
    driver.find_element(By.ID, "submit").click()
    thanks = _wait_for(driver, "thanks").text
    return {"summary": summary, "errors": errors, "kept": kept, "thanks": thanks}


async def test_customer_answers_in_the_browser(intake, survey, tap, browser):
    no = await resolved_ticket(intake, tap)
    sent = await sent_survey(tap, no)
    seen = await asyncio.to_thread(fill_and_submit, browser, sent.data["url"])
    assert seen["h1"] == "服务满意度回访" and seen["title"] == "服务满意度回访"
    assert int(seen["button_height"]) >= 48 and int(seen["choice_height"]) >= 48  # big tap targets
    assert "感谢您的反馈" in seen["thanks"] and seen["url"].endswith("/thanks")
    [done] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.completed")
    assert (done.data["resolved"], done.data["speed"], done.data["attitude"], done.data["overall"]) == (True, 5, 4, 5)
    assert done.data["comment"] == "师傅上门很及时，谢谢！"
    # the same link again: a clear "already answered" page
    again = await asyncio.to_thread(open_page, browser, sent.data["url"])
    assert again["state"] == "answered" and "此问卷已提交" in again["text"]


async def test_expired_link_in_the_browser(intake, survey, tap, browser):
    no = await resolved_ticket(intake, tap)
    sent = await sent_survey(tap, no)
    await time_travel(survey, sent.data["survey_id"], "expires_at")
    await tap.wait_events(lambda e: e.subject == no and e.type == "survey.expired")
    page = await asyncio.to_thread(open_page, browser, sent.data["url"])
    assert page["state"] == "expired" and "此链接已过期" in page["text"]


async def test_bad_answer_in_the_browser_shows_the_fields_then_accepts_the_fix(intake, survey, tap, browser):
    no = await resolved_ticket(intake, tap, customer={"name": "Ann", "language": "en"})
    sent = await sent_survey(tap, no)
    seen = await asyncio.to_thread(submit_incomplete_then_fix, browser, sent.data["url"])
    assert "check the marked questions" in seen["summary"]
    assert seen["errors"] == {"attitude": "Please choose one", "overall": "Please choose one"}
    assert seen["kept"] == [True, True]
    assert "Thank you" in seen["thanks"] and "call you within one hour" in seen["thanks"]
    [neg] = await tap.wait_events(lambda e: e.subject == no and e.type == "survey.negative")
    assert neg.data["reasons"] == ["unresolved", "dissatisfied"]
