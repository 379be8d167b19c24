"""The worker's model key never enters the agent's sandbox: the agent holds a per-job placeholder
and the address of the worker's model gateway, which swaps in the key for each call. A hostile
agent looks for the key everywhere it can (its environment, every process's environ and
command line, its files) while its model call still succeeds through the gateway."""

from __future__ import annotations

import pytest

from agileplus.dispatch.models import ModelCall
from harnesses.endpoints.anthropic import AnthropicEndpoint
from tests.security.support import COMMIT, WP, hostile, job_log
from tests.support.real_clis import over_tls
from tests.support.tls import shared_test_ca

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REAL_KEY = "sk-ant-worker-only-7f3c9e1d2b4a"

# Everything the agent can read that might hold the key, dumped to the test's outbox (the job's
# log is redacted, so the log could not show a leak); then one model call with what it holds.
LOOK = r"""
out="$OUTBOX"
env > "$out/env.txt"
cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' > "$out/proc-environ.txt"
cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' > "$out/proc-cmdline.txt"
grep -rsa "sk-ant" "$HOME" /tmp /etc "$PWD" > "$out/files.txt"
python3 - > "$out/call.txt" <<'PY'
import json, os, urllib.request
request = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
    data=json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8,
                     "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"], "content-type": "application/json",
             "anthropic-version": "2023-06-01"})
print(json.load(urllib.request.urlopen(request, timeout=20))["content"][0]["text"])
PY
"""


def test_a_hostile_agent_finds_no_model_key_while_its_model_call_succeeds(tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    attack = hostile(tmp_path, WP + LOOK + COMMIT, environment={"OUTBOX": str(outbox)})
    with over_tls(AnthropicEndpoint([])) as endpoint:
        job = attack.run(AGILEPLUS_HARNESS_CREDENTIALS_COMMAND="ANTHROPIC_API_KEY,ANTHROPIC_BASE_URL",
                         ANTHROPIC_API_KEY=REAL_KEY, ANTHROPIC_BASE_URL=endpoint.base_url,
                         AGILEPLUS_MODEL_GATEWAY_CA_FILE=str(shared_test_ca().ca_file),
                         AGILEPLUS_SANDBOX_WRITABLE=str(outbox))

    assert job.state == "succeeded", job_log(job)
    seen = {path.name: path.read_text(errors="replace") for path in outbox.iterdir()}
    assert set(seen) == {"env.txt", "proc-environ.txt", "proc-cmdline.txt", "files.txt", "call.txt"}
    assert not [name for name, text in seen.items() if REAL_KEY in text]
    assert "ANTHROPIC_API_KEY=agileplus-gateway-" in seen["env.txt"]  # what it holds: the placeholder
    assert seen["call.txt"].strip() == "ok"  # the scripted model's answer, through the gateway
    assert [r.header("x-api-key") for r in endpoint.requests] == [REAL_KEY]
    call = ModelCall.objects.get(job=job)
    assert (call.outcome, call.input_tokens, call.output_tokens) == ("ok", 10, 1)


# Model calls in a loop: each one the endpoint answers bills 10 input + 1 output tokens.
CALLS = r"""
python3 - > "$OUTBOX/calls.txt" <<'PY'
import json, os, urllib.error, urllib.request
for _ in range(5):
    request = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
        data=json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8,
                         "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"], "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            answer.read()  # one call after the other, as a CLI makes them: each answer read to its end
            print(answer.status)
    except urllib.error.HTTPError as exc:
        print(exc.code, json.load(exc)["error"]["message"])
PY
"""


def test_a_call_past_the_budget_is_refused_by_the_gateway_and_the_job_ends_budget_exceeded(tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    # $1,000 per million tokens: each call costs $0.011; the job may spend $0.02
    attack = hostile(tmp_path, WP + COMMIT + CALLS, environment={"OUTBOX": str(outbox)},
                     agent={"prices": {"*": {"input": "1000", "output": "1000"}}, "budget": {"job_usd": 0.02}})
    with over_tls(AnthropicEndpoint([])) as endpoint:
        job = attack.run(AGILEPLUS_HARNESS_CREDENTIALS_COMMAND="ANTHROPIC_API_KEY,ANTHROPIC_BASE_URL",
                         ANTHROPIC_API_KEY=REAL_KEY, ANTHROPIC_BASE_URL=endpoint.base_url,
                         AGILEPLUS_MODEL_GATEWAY_CA_FILE=str(shared_test_ca().ca_file),
                         AGILEPLUS_SANDBOX_WRITABLE=str(outbox))

    answers = (outbox / "calls.txt").read_text().splitlines()
    assert answers[:2] == ["200", "200"]  # $0.011 spent before the second: still under $0.02
    assert answers[2].startswith("403 AgilePlus: the job_usd budget is spent ($0.022 of $0.02")
    assert endpoint.billed["calls"] == 2  # the refused calls never reached the provider
    assert job.state == "failed" and job.error.startswith("AgilePlus: the job_usd budget is spent"), job_log(job)
    assert job.usage["cost_usd"] == "0.022" and job.commits.count() == 1  # its commit is kept
    assert ModelCall.objects.filter(job=job, outcome="refused").count() == 3
