"""Headless Debian Chromium for the dashboard's browser tests, and the helpers they share."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.support.services import in_ci

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DESKTOP, PHONE = (1280, 800), (390, 844)


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        message = "Debian chromium + chromium-driver are not installed (run scripts/install-browser)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,900"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 15.0, browser=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time" + (f": {browser.current_url}\n{browser.page_source[:3000]}"
                                                         if browser else ""))


def log_in(browser, url: str, username: str, password: str, next_path: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/login/?next={next_path}")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "/login/" not in browser.current_url, browser=browser)


def viewport(browser, size: tuple[int, int]) -> None:
    """The page's inner size (the window's outer size is set so the viewport is exactly this)."""
    browser.set_window_size(*size)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    browser.set_window_size(2 * size[0] - inner[0], 2 * size[1] - inner[1])


def overflow(browser) -> int:
    """How far the page is wider than the viewport (0: no horizontal scrolling of the body)."""
    return browser.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")


def screenshot(browser, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path
