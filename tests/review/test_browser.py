"""The review page in real headless Chromium (selenium + Debian's chromedriver, as the survey's browser
test): every number shown equals the JSON, the charts (Chart.js served by the service) render, the
figures link to their tickets; a screenshot is saved. ``HELPDESK_SKIP_BROWSER=1`` skips it."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from services.review import export
from tests.conftest import API_KEY
from tests.review.conftest import Direct
from tests.review.synthetic import month_of_tickets
from tests.review.test_figures import caught_up
from tests.survey.test_browser import browser  # noqa: F401 - the same headless Chromium fixture

PERIOD = "2026-06"  # a month no other review test uses


def read_page(driver: Any, url: str, shot: Path) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return window.chartsReady === true"))
    shown = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#figures tbody tr"):
        cell = row.find_element(By.CSS_SELECTOR, "td.value")
        shown[row.get_attribute("data-metric")] = (cell.get_attribute("data-value"), cell.text,
                                                   cell.find_element(By.TAG_NAME, "a").get_attribute("href"))
    canvases = [c.size["width"] for c in driver.find_elements(By.TAG_NAME, "canvas")]
    driver.save_screenshot(str(shot))
    overflow = driver.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right >"
        " window.innerWidth + 1).map(e => e.tagName + '#' + e.id)")
    return {"shown": shown, "canvases": canvases, "title": driver.title,
            "width": driver.execute_script("return document.documentElement.scrollWidth"),
            "viewport": driver.execute_script("return window.innerWidth"), "overflow": overflow}


async def test_the_page_shows_the_json_numbers(run_env, review, browser):  # noqa: F811
    events = [e for t in month_of_tickets(2026, 6, key_prefix="browser") for e in t.events]
    async with Direct(run_env["AMQP_URL"]) as direct:
        for e in events:
            await direct.send(e)
    await caught_up(review, events)
    body = (await review.client.get(f"/v1/reviews/{PERIOD}")).json()
    shot = Path(os.environ.get("HELPDESK_ARTIFACTS", tempfile.gettempdir())) / "review-page.png"
    seen = await asyncio.to_thread(read_page, browser, f"{review.base_url}/reviews/{PERIOD}?key={API_KEY}", shot)
    want = {m: v for m, v, _, _ in export.figure_rows(body["metrics"])}
    assert set(seen["shown"]) == set(want)
    for metric, value in want.items():
        data_value, text, href = seen["shown"][metric]
        assert data_value == ("" if value is None else str(value)), metric
        assert text == ("—" if value is None else str(value)), metric
        assert href.endswith(f"/v1/reviews/{PERIOD}/tickets?metric={metric}")
    assert want["tickets"] == 8 and seen["title"].startswith("服务复盘")
    assert len(seen["canvases"]) == 3 and all(w > 100 for w in seen["canvases"])
    # readable on a phone: nothing sticks out of the (phone-sized) viewport, no sideways scrolling
    assert seen["overflow"] == [] and seen["width"] <= seen["viewport"] <= 520
    assert shot.stat().st_size > 10_000


async def test_the_page_in_english_and_its_keys(review):
    r = await review.client.get(f"/reviews/{PERIOD}", params={"lang": "en"})
    assert r.status_code == 200 and "<title>Service review 2026-06</title>" in r.text and 'lang="en"' in r.text
    assert "cdn" not in r.text.lower() and '<script src="/static/chart.umd.min.js">' in r.text
    js = await review.client.get("/static/chart.umd.min.js")
    assert js.status_code == 200 and "Chart.js v4" in js.text[:200]
    assert (await review.client.get(f"/reviews/{PERIOD}", headers={"X-API-Key": ""})).status_code == 401
    r = await review.client.get(f"/reviews/{PERIOD}", headers={"X-API-Key": "agent-secret"})
    assert r.status_code == 403
    assert (await review.client.get(f"/reviews/{PERIOD}", headers={"X-API-Key": "analyst-secret"})).status_code == 200
    assert (await review.client.get("/reviews/2099-01")).status_code == 422
