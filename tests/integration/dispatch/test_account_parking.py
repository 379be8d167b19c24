"""Provider accounts parked for the whole farm: a 429 with a reset parks the account its key
belongs to for every worker (in the database, with an ``agileplus.account.parked`` event); the
other workers' gateways then refuse calls on it without reaching the provider, their runners park
the jobs until the reset, and the account resumes (``agileplus.account.resumed``) when it passes.
Two workers are two gateways with parks of their own, sharing one key, in front of one scripted
TLS endpoint."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time

import pytest

from agileplus.dispatch import accounts
from agileplus.dispatch.gateway import GatewayPlan, account_of, gateway_stop
from agileplus.dispatch.models import ProviderAccount
from agileplus.dispatch.stream_policy import rate_limit_wait
from agileplus.events.models import Event
from harnesses.account_parks import AccountParks
from harnesses.endpoints import Fail, Say, Turn
from harnesses.endpoints.anthropic import AnthropicEndpoint
from harnesses.gateway import Gateway, GatewayJob, Route
from tests.support.cli import run_cli
from tests.support.tls import shared_test_ca

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]

KEY = "sk-ant-shared-by-two-workers"
ACCOUNT = account_of("anthropic", KEY)
CALL = ("/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "stream": True, "tools": [{"name": "Bash"}],
                                   "messages": [{"role": "user", "content": "go"}]})


class Worker:
    """One worker's gateway for one job on the shared account, with the worker's own parks."""

    def __init__(self, name: str, endpoint: AnthropicEndpoint):
        self.parks = AccountParks(every=3600)  # refreshed when the test says (the background's pace)
        self.parks.load = accounts.parked_accounts
        route = Route("anthropic", endpoint.base_url, {"x-api-key": KEY}, ACCOUNT)
        self.job = GatewayJob({"anthropic": route}, parks=self.parks, on_limit=self.park_for_the_farm)
        self.name = name
        self.gateway = Gateway(self.job, ca_file=str(shared_test_ca().ca_file))
        self.port = self.gateway.listen_locally()
        self.plan = GatewayPlan(routes=self.job.routes, agent_env={}, placeholder=self.job.placeholder, job=self.job)

    def park_for_the_farm(self, call, until: float) -> None:
        accounts.park_account(call.account, call.provider, _utc(until), worker=self.name,
                              reason="429 from the scripted endpoint")

    def call(self) -> tuple[int, str, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        conn.request("POST", CALL[0], json.dumps(CALL[1]), {"x-api-key": self.job.placeholder})
        answer = conn.getresponse()
        return answer.status, answer.read().decode(), dict(answer.getheaders())


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


def wait_for(check, what: str, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def endpoint():
    script = [Fail("429", retry_after=2), Turn([Say("after the reset")], input_tokens=100, output_tokens=5)]
    with AnthropicEndpoint(script).serve_tls(shared_test_ca().server_context()) as served:
        yield served


def test_a_429_with_a_reset_parks_the_account_for_the_farm_with_an_event(endpoint):
    a = Worker("worker-a", endpoint)

    status, _text, _ = a.call()

    assert status == 429  # the provider's answer, forwarded as it sent it
    parked = wait_for(lambda: ProviderAccount.objects.filter(name=ACCOUNT, parked_until__isnull=False).first(),
                      "the account parked in the database")
    assert 1 <= parked.parked_until.timestamp() - time.time() <= 2.5 and parked.parked_by == "worker-a"
    event = Event.objects.get(subject="agileplus.account.parked")
    assert event.payload["account"] == ACCOUNT and KEY not in json.dumps(event.payload)


def test_another_worker_on_the_account_is_refused_without_reaching_the_provider_and_its_job_waits(endpoint):
    a, b = Worker("worker-a", endpoint), Worker("worker-b", endpoint)
    a.call()
    wait_for(lambda: ProviderAccount.objects.filter(name=ACCOUNT, parked_until__isnull=False).exists(), "the park")
    b.parks.refresh()  # worker B reads the farm's parks (in the background, every few seconds)

    status, text, headers = b.call()
    stop = gateway_stop(b.plan)

    assert status == 429 and "is parked for the farm until" in json.loads(text)["error"]["message"]
    assert int(headers["retry-after"]) in (1, 2)
    assert len(endpoint.requests) == 1  # only worker A's call reached the provider
    assert stop.kind == "rate_limited" and 0 < rate_limit_wait(stop.detail, time.time()) <= 2


def test_the_account_resumes_after_its_reset_and_the_calls_go_through_again(endpoint):
    a, b = Worker("worker-a", endpoint), Worker("worker-b", endpoint)
    a.call()
    wait_for(lambda: ProviderAccount.objects.filter(name=ACCOUNT, parked_until__isnull=False).exists(), "the park")

    wait_for(lambda: ACCOUNT not in accounts.parked_accounts(), "the reset to pass", timeout=10)
    b.parks.refresh()
    status, _text, _ = b.call()

    assert status == 200
    assert Event.objects.filter(subject="agileplus.account.resumed", payload__account=ACCOUNT).count() == 1
    assert ProviderAccount.objects.get(name=ACCOUNT).parked_until is None


def test_agents_list_shows_each_account_and_until_when_it_is_parked():
    accounts.known_accounts({"openai:0123456789": "openai"})
    # a reset two minutes away: still parked when the screen is read, however slow the machine
    with AnthropicEndpoint([Fail("429", retry_after=120)]).serve_tls(shared_test_ca().server_context()) as slow:
        Worker("worker-a", slow).call()
        wait_for(lambda: ProviderAccount.objects.filter(name=ACCOUNT, parked_until__isnull=False).exists(),
                 "the park")

        shown = run_cli(["agents", "list"]).output

    assert f"  {ACCOUNT}: parked until " in shown and "(429 from the scripted endpoint)" in shown
    assert "  openai:0123456789: ok" in shown
