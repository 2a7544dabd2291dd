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

PERIOD = "2026-09"


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
    return {"shown": shown, "canvases": canvases, "title": driver.title,
            "width": driver.execute_script("return document.documentElement.scrollWidth")}


async def test_the_page_shows_the_json_numbers(run_env, review, browser):  # noqa: F811
    events = [e for t in month_of_tickets(2026, 9, key_prefix="browser") for e in t.events]
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
    assert shot.stat().st_size > 10_000
