"""The dashboard in headless Chromium follows a WP through its lifecycle without a reload."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from agileplus.features.services import transition_wp
from tests.e2e.conftest import ARTIFACTS, wait_for
from tests.factories import make_feature_with_wps
from tests.support.server import running_web


@pytest.mark.django_db(transaction=True)
def test_board_updates_live_as_a_wp_moves_through_its_lifecycle(browser):
    User.objects.create_user("viewer", password="s3cret-pass")
    feature, (wp,) = make_feature_with_wps(1)
    from selenium.webdriver.common.by import By

    with running_web() as url:
        browser.get(f"{url}/login/?next=/features/{feature.slug}/")
        browser.find_element(By.NAME, "username").send_keys("viewer")
        browser.find_element(By.NAME, "password").send_keys("s3cret-pass")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(lambda: "● live" in (browser.execute_script(
            "const e = document.getElementById('live'); return e ? e.textContent : ''") or ""), browser=browser)
        browser.execute_script("window.__samePage = 'yes'")
        # Read through JS: the board fragment is swapped on every event.
        state = lambda: browser.execute_script(  # noqa: E731
            "const row = document.querySelector(\"tr[data-wp='WP01']\"); return row && row.dataset.state")
        assert state() == "planned"
        for target, actor in (("doing", "agent:command"), ("for_review", "agent:command"), ("done", "ci:automation")):
            transition_wp(wp, target, actor=actor)
            wait_for(lambda t=target: state() == t)
        assert browser.execute_script("return window.__samePage") == "yes", "the page reloaded"
        events = browser.find_element(By.ID, "events").text
        assert "WP01: planned → doing (agent:command)" in events and "WP01: for_review → done" in events
        assert "{" not in events  # readable lines, not the payload's JSON
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
