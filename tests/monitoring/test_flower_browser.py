"""Flower in a real headless Chromium (the Debian package, driven by Playwright; no browser download).

After the watched run, the workers page shows both workers online with every task
counted; a screenshot is kept as the test's artefact (and refreshed in docs/img/ on request).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, HttpCredentials, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.monitoring.artefacts import publish_to_docs
from tests.monitoring.conftest import WatchedRun

pytestmark = pytest.mark.monitoring

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
UI_TIMEOUT_MS = 30_000
COLUMNS = {"status": 1, "processed": 3, "succeeded": 5}


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or CHROMIUM
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def status_of(page: Page, url: str) -> int | None:
    """The HTTP status a page load ends with; Chromium reports a refused login as an error."""
    try:
        response = page.goto(url)
    except PlaywrightError as exc:
        if "ERR_INVALID_AUTH_CREDENTIALS" in str(exc):
            return 401
        raise
    return response.status if response else None


@pytest.mark.parametrize("credentials", [None, {"username": "lab", "password": "not-the-password"}],
                         ids=["none", "wrong"])
def test_flower_refuses_a_browser_without_the_right_credentials(
    watched_run: WatchedRun, browser: Browser, credentials: HttpCredentials | None
) -> None:
    context = browser.new_context(http_credentials=credentials)
    page = context.new_page()
    assert status_of(page, f"{watched_run.stack.settings.flower_url}/workers") == 401
    assert page.locator("#workers-table").count() == 0
    context.close()


def test_flower_shows_both_workers_online_with_their_tasks(
    watched_run: WatchedRun, browser: Browser, tmp_path: Path
) -> None:
    settings = watched_run.stack.settings
    context = browser.new_context(
        http_credentials={"username": settings.flower_user, "password": settings.flower_password},
        viewport={"width": 1280, "height": 720},
    )
    page = context.new_page()
    response = page.goto(f"{settings.flower_url}/workers")
    assert response is not None and response.status == 200
    sent = str(watched_run.sent_per_pool)
    for name in watched_run.worker_names.values():
        cells = page.locator("#workers-table tbody tr", has_text=name).locator("td")
        expect(cells.nth(COLUMNS["status"])).to_have_text("Online", timeout=UI_TIMEOUT_MS)
        expect(cells.nth(COLUMNS["succeeded"])).to_have_text(sent, timeout=UI_TIMEOUT_MS)
        assert int(cells.nth(COLUMNS["processed"]).inner_text().replace(",", "")) > 0
    expect(page.locator("#workers-online")).to_have_text(str(len(watched_run.worker_names)))
    screenshot = page.screenshot(path=tmp_path / "flower.png", full_page=True)
    assert len(screenshot) > 10_000
    publish_to_docs(tmp_path / "flower.png")
    context.close()
