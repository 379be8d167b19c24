"""The dashboard's pictures and pages in headless Chromium: the DAG, the timeline, a WP's and a
job's page, the farm page; readable at 1280×800 and at a phone's 390×844, reachable by keyboard,
agent and spec strings shown as text, actions following the API's roles, a dropped stream resumed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from agileplus.api.models import ApiRole
from agileplus.dispatch.models import DispatchJob, JobLogLine
from agileplus.features.models import Dependency
from agileplus.features.services import transition_wp
from agileplus.review.models import ReviewRequest
from tests.e2e.conftest import DESKTOP, PHONE, log_in, overflow, screenshot, viewport, wait_for
from tests.factories import make_feature_with_wps, make_layered_feature
from tests.support.processes import stop_group
from tests.support.server import ROOT, free_port, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)
HOSTILE = "<img src=x onerror=alert(1)>\x1b[31mred"
PASSWORD = "s3cret-pass"


def person(name: str = "viewer", role: str | None = None, **extra) -> str:
    user = User.objects.create_user(name, password=PASSWORD)
    if role:
        ApiRole.objects.create(user=user, role=role, **extra)
    return name


def no_alert(browser) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        browser.switch_to.alert  # noqa: B018 - raises when no alert is open
    except NoAlertPresentException:
        return True
    return False


def js(browser, script: str):
    return browser.execute_script(script)


class Web:
    """`agileplus web` on a port of its own that can be stopped and started again on that port."""

    def __init__(self) -> None:
        self.port, self.proc = free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Web:
        import urllib.request

        self.proc = subprocess.Popen([sys.executable, "-m", "agileplus", "web", "--port", str(self.port)], cwd=ROOT,
                                     env=subprocess_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up() -> bool:
            try:
                return urllib.request.urlopen(f"{self.url}/api/health", timeout=1).status == 200
            except OSError:
                return False

        wait_for(up, timeout=30)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


@pytest.fixture
def web():
    server = Web().start()
    yield server
    server.stop()


def test_a_200_wp_dag_is_drawn_whole_readable_and_reachable_by_keyboard(browser, web):
    from selenium.webdriver.common.keys import Keys

    feature = make_layered_feature(200, done_layers=3)
    log_in(browser, web.url, person(), PASSWORD, f"/features/{feature.slug}/dag")
    viewport(browser, DESKTOP)

    counts = js(browser, "const s = document.getElementById('dag-svg'); return [s.querySelectorAll('a.node').length,"
                         " s.querySelectorAll('path.edge').length, s.querySelectorAll('a.node.critical').length]")
    assert counts == [200, Dependency.objects.filter(wp__feature=feature).count(), 17]
    assert js(browser, "return document.querySelector(\"[data-wp='WP031']\").dataset.lane") == "doing"
    assert js(browser, "return document.querySelector(\"[data-wp='WP032']\").dataset.lane") == "ready"
    assert js(browser, "return document.getElementById('dag-eta').textContent") == "17 days"
    assert overflow(browser) == 0
    screenshot(browser, "dag-200-desktop")
    body = browser.find_element("tag name", "body")
    for _ in range(40):  # header links, the table link, then the graph's nodes in layer order
        body = browser.switch_to.active_element
        if body.get_attribute("data-wp"):
            break
        body.send_keys(Keys.TAB)
    assert body.get_attribute("data-wp") == "WP001"
    assert js(browser, "return getComputedStyle(document.activeElement.querySelector('rect.box')).strokeWidth") == "4px"
    viewport(browser, PHONE)
    assert overflow(browser) == 0
    screenshot(browser, "dag-200-phone")


def test_a_feature_too_large_to_draw_offers_its_table(browser, web):
    from tests.factories import make_large_feature

    feature = make_large_feature(501)
    log_in(browser, web.url, person(), PASSWORD, f"/features/{feature.slug}/dag")

    notice = browser.find_element("id", "dag-too-large")
    assert "501 work packages" in notice.text
    notice.find_element("tag name", "a").click()
    wait_for(lambda: browser.current_url.endswith(f"/features/{feature.slug}/"), browser=browser)


def test_agent_and_spec_strings_are_shown_as_text_never_as_html(browser, web):
    feature, (wp,) = make_feature_with_wps(1)
    wp.title = HOSTILE
    wp.save()
    job = DispatchJob.objects.create(id="job_x", feature=feature, wp=wp, harness="codex", requested_by="human:x")
    JobLogLine.objects.create(job=job, seq=1, timestamp=timezone.now(), stream="agent", line=HOSTILE)
    log_in(browser, web.url, person(), PASSWORD, f"/features/{feature.slug}/dag")

    for path in (f"/features/{feature.slug}/dag", f"/features/{feature.slug}/wps/WP01", "/jobs/job_x"):
        browser.get(web.url + path)
        wait_for(lambda: js(browser, "return document.readyState") == "complete")
        assert js(browser, "return document.querySelectorAll('img').length") == 0
        assert no_alert(browser)
        assert "<img src=x onerror=alert(1)>␛[31mred" in js(browser, "return document.body.textContent")


def test_an_agent_sees_no_action_and_is_refused_403_when_it_posts_anyway(browser, web):
    feature, (wp,) = make_feature_with_wps(1)
    log_in(browser, web.url, person("bot", "agent", agent="codex"), PASSWORD, f"/features/{feature.slug}/wps/WP01")

    assert js(browser, "return document.querySelectorAll('button.action').length") == 0
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0], {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/json', 'X-CSRFToken':"
        " document.querySelector('meta[name=csrf-token]').content}, body: JSON.stringify({wps: ['WP01']})})"
        ".then(r => done(r.status))", f"/api/features/{feature.slug}/implement")
    assert status == 403 and not DispatchJob.objects.exists()


def test_a_person_dispatches_a_wp_from_its_page(browser, web):
    feature, (wp,) = make_feature_with_wps(1)
    log_in(browser, web.url, person(), PASSWORD, f"/features/{feature.slug}/wps/WP01")

    browser.find_element("css selector", "button.action[data-name=dispatch]").click()

    wait_for(lambda: js(browser, "return document.getElementById('action-result').dataset.status") == "202")
    assert DispatchJob.objects.filter(wp=wp, requested_by="human:viewer").count() == 1


def test_a_dropped_stream_resumes_from_the_last_event_id(browser, web):
    feature, (a, b) = make_feature_with_wps(2, chain=False)
    log_in(browser, web.url, person(), PASSWORD, f"/features/{feature.slug}/dag")
    wait_for(lambda: "● live" in js(browser, "return document.getElementById('live').textContent"))
    state = "return document.querySelector(\"[data-wp='%s']\").dataset.state"
    transition_wp(a, "doing", actor="human:x")
    wait_for(lambda: js(browser, state % "WP01") == "doing")

    web.stop()
    wait_for(lambda: "reconnecting" in js(browser, "return document.getElementById('live').textContent"))
    transition_wp(b, "doing", actor="human:x")  # while nobody serves the stream
    web.start()

    # Without Last-Event-ID a new stream starts at the newest event: WP02's move would be missed.
    wait_for(lambda: js(browser, state % "WP02") == "doing", timeout=20, browser=browser)
    assert js(browser, "return window.__lastEventId") == str(feature.events.order_by("-id").first().id)


LIVE_DAG = {"WP01": [], "WP02": [], "WP03": ["WP01"], "WP04": ["WP01", "WP02"], "WP05": ["WP03", "WP04"]}


def look(browser, name: str) -> None:
    """A screenshot at a desktop's and a phone's size; the page never scrolls sideways."""
    for size, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        viewport(browser, size)
        assert overflow(browser) == 0, f"{name} is wider than a {suffix} screen"
        screenshot(browser, f"{name}-{suffix}")
    viewport(browser, DESKTOP)


@pytest.mark.slow
def test_every_page_follows_a_live_run_of_real_workers(browser, web, tmp_path):
    from tests.support.farm import import_target, job_env, make_target_repo, running_workers

    repo = make_target_repo(tmp_path, wps=LIVE_DAG, behaviour="sleep:1,commit:1")
    feature = import_target(repo)
    log_in(browser, web.url, person(), PASSWORD, f"/features/{feature.slug}/dag")
    js(browser, "window.__samePage = 'yes'")
    lanes = "return Array.from(document.querySelectorAll('#dag-svg a.node')).map(n => n.dataset.lane).join(' ')"
    assert js(browser, lanes) == "ready ready planned planned planned"
    seen = set()
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))
    with running_workers(tmp_path, 2, broker_url=None):
        run = subprocess.Popen([sys.executable, "-m", "agileplus", "implement", "003", "--all", "--wait", "--actor",
                                "human:alice"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: seen.add(js(browser, lanes)) or js(browser, lanes) == " ".join(["done"] * 5),
                     timeout=240, browser=browser)
        finally:
            output = run.communicate(timeout=60)[0].decode(errors="replace")
    assert run.returncode == 0, output
    assert js(browser, "return window.__samePage") == "yes" and js(browser, "return window.__redraws") >= 5
    assert any("doing" in lanes_now for lanes_now in seen), seen  # the graph moved while agents worked
    look(browser, "live-dag")
    check_timeline(browser, web)
    check_job_and_wp_pages(browser, web, feature)
    browser.get(f"{web.url}/farm/")
    assert js(browser, "return document.querySelectorAll('#workers tr[data-alive]').length") == 2
    look(browser, "live-farm")


def check_timeline(browser, web) -> None:
    jobs = DispatchJob.objects.exclude(worker="")
    browser.get(f"{web.url}/farm/timeline")
    svg = "document.getElementById('timeline-svg')"
    assert js(browser, f"return {svg}.querySelectorAll('a[data-kind=job]').length") == jobs.count() >= 5
    labels = js(browser, "return Array.from(document.querySelectorAll('#timeline-rows .row-label'))"
                         ".map(t => t.textContent)")
    assert set(jobs.values_list("worker", flat=True)) <= set(labels)
    outcomes = js(browser, f"return Array.from({svg}.querySelectorAll('a[data-kind=job]')).map(a => a.dataset.outcome)")
    assert set(outcomes) == {"succeeded"}
    reviews = ReviewRequest.objects.filter(actor="ci:automation")  # the automatic review after each agent
    assert js(browser, f"return {svg}.querySelectorAll('a[data-kind=review]').length") == reviews.count() >= 5
    assert set(reviews.values_list("worker", flat=True)) <= set(labels)
    before = float(js(browser, f"return {svg}.querySelector('.now-line').getAttribute('x1')"))
    wait_for(lambda: float(js(browser, f"return {svg}.querySelector('.now-line').getAttribute('x1')")) > before)
    look(browser, "live-timeline")
    browser.find_element("css selector", "#timeline-svg a[data-kind=job]").click()
    wait_for(lambda: "/jobs/" in browser.current_url, browser=browser)


def check_job_and_wp_pages(browser, web, feature) -> None:
    job_id = browser.current_url.rsplit("/", 1)[1]
    assert js(browser, "return document.getElementById('job-heading').dataset.state") == "succeeded"
    assert js(browser, "return document.querySelectorAll('#log-lines li').length") > 0
    assert js(browser, "return document.querySelectorAll('pre.diff span.add').length") > 0
    look(browser, "live-job")
    wp = DispatchJob.objects.get(pk=job_id).wp.code
    browser.get(f"{web.url}/features/{feature.slug}/wps/{wp}")
    assert js(browser, "return document.getElementById('wp-heading').dataset.state") == "done"
    assert js(browser, f"return document.querySelector(\"#attempts tr[data-job='{job_id}']\").dataset.state") \
        == "succeeded"
    assert js(browser, "return document.querySelectorAll('.review[data-approved=yes]').length") >= 1
    assert js(browser, "return document.querySelectorAll('button.action').length") == 0  # done: nothing to do
    look(browser, "live-wp")


def test_a_running_jobs_page_follows_its_log_and_shows_control_characters(browser, web):
    feature, (wp,) = make_feature_with_wps(1)
    job = DispatchJob.objects.create(id="job_r", feature=feature, wp=wp, harness="codex", requested_by="human:x",
                                     state="running", worker="w1")
    JobLogLine.objects.create(job=job, seq=1, timestamp=timezone.now(), stream="agent", line="Reading src/app.py")
    log_in(browser, web.url, person(), PASSWORD, "/jobs/job_r")
    lines = "return Array.from(document.querySelectorAll('#log-lines li span')).map(s => s.textContent.trim())"
    assert js(browser, lines) == ["Reading src/app.py"]

    JobLogLine.objects.create(job=job, seq=2, timestamp=timezone.now(), stream="stderr", line="hidden here")
    JobLogLine.objects.create(job=job, seq=3, timestamp=timezone.now(), stream="agent", line=HOSTILE)

    wait_for(lambda: len(js(browser, lines)) == 2, browser=browser)
    assert js(browser, lines)[1] == "<img src=x onerror=alert(1)>␛[31mred"
    assert js(browser, "return document.querySelectorAll('img').length") == 0
