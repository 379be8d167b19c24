"""The real agent CLIs (pinned in tools/agent-clis) run WPs through the farm, driven by the
scripted model endpoints of harnesses.endpoints: no model, no tokens, the real binaries.

One WP per CLI goes from dispatch on a worker to merged main; the failure paths (turn cap,
budget, timeout, 429, 500, cut stream, Codex's own sandbox) run inline (the same runner, in
the CLI process) to keep them lean."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import AgentSession, DispatchJob, JobLogLine, ModelCall
from agileplus.events.models import Event
from agileplus.features.models import Feature
from harnesses.check import QUIET_ENVIRONMENT, SCRATCH_KEY
from harnesses.endpoints import Fail, Run, Say, Turn, Write
from harnesses.endpoints.anthropic import AnthropicEndpoint
from harnesses.endpoints.gemini import GeminiEndpoint
from harnesses.endpoints.openai_chat import ChatEndpoint
from harnesses.endpoints.openai_responses import ResponsesEndpoint
from tests.support.farm import ROOT, TargetRepo, import_target, job_env, make_target_repo, running_workers
from tests.support.real_clis import hold_delayed_replies, over_tls, released_once_the_agent_is_gone, worker_environment
from tests.support.streams import recorded

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MESSAGE = "feat(WP01): add file_1"
SCRIPT = [Turn([Say("Adding the deliverable."), Write("wp01/file_1.txt", "one\n")]),
          Turn([Run(f"git add wp01/file_1.txt && git commit -q -m '{MESSAGE}'")])]


def agileplus(tmp_path: Path, *args: str, extra_env: dict | None = None, timeout: float = 240):
    env = job_env(tmp_path / "cli", None, **{"AGILEPLUS_BROKER_DIR": str(tmp_path / "broker"),
                                             "AGILEPLUS_WORKER_DIR": str(tmp_path / "worker"), **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def target(tmp_path: Path, harness: str, **agent) -> TargetRepo:
    environment = {**QUIET_ENVIRONMENT, **agent.pop("environment", {})}
    return make_target_repo(tmp_path, wps={"WP01": []}, agent={"harness": harness, **agent}, environment=environment)


def log_text(job: DispatchJob) -> str:
    return "\n".join(JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True))


def job_subjects(job: DispatchJob) -> list[str]:
    """The job's lifecycle events; ``network_refused`` (a CLI's telemetry or update check the
    sandbox's egress policy refused) is not part of the lifecycle and is left out."""
    prefix = f"agileplus.agent.job.{job.id}."
    return [s[len(prefix):] for s in Event.objects.filter(subject__startswith=prefix).order_by("id")
            .values_list("subject", flat=True) if not s.endswith(".network_refused")]


def last_reason(feature) -> str:
    return AuditEntry.objects.filter(feature=feature).order_by("-seq").first().metadata.get("reason", "")


def through_the_farm(tmp_path: Path, harness: str, endpoint, **agent) -> tuple[DispatchJob, Feature, dict]:
    """Dispatch WP01 to ``harness`` on a worker (holding the endpoint's credentials), wait, then
    review with --apply (merge). Asserts what every CLI's run through the farm shows (its commit
    reported while it ran, the review approved and merged into main); returns the job (for the
    CLI's own figures), the feature and the worker's environment."""
    worker_env = worker_environment(harness, endpoint, tmp_path / "home")
    repo = target(tmp_path, harness, **agent)
    feature = import_target(repo)
    with running_workers(tmp_path, 1, broker_url=None, with_beat=False, harnesses=harness, **worker_env):
        done = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--agent", harness, "--wait")
    reviewed = agileplus(tmp_path, "review", "003", "WP01", "--inline", "--apply", "--actor", "human:alice")
    job = DispatchJob.objects.get(feature=feature)
    assert done.returncode == 0, done.stdout + done.stderr + log_text(job)
    assert job.state == "succeeded"
    # the real CLI ran inside the farm's sandbox, reaching only its (scripted) model endpoint
    assert job.result["sandbox"]["mode"] == "bwrap" and job.result["sandbox"]["network"] == "model"
    assert [c.message.splitlines()[0] for c in job.commits.all()] == [MESSAGE], log_text(job)
    assert job_subjects(job) == ["started", "commit", "completed"]  # the commit reported before the end
    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr
    assert feature.work_packages.get(code="WP01").state == "done"
    assert repo.git("show", "main:wp01/file_1.txt") == "one"
    return job, feature, worker_env


# --- one WP per CLI, dispatch → worker → governance → review → merged main ----------------


def billed_by_the_endpoint(job: DispatchJob, endpoint) -> bool:
    """The ledger (the gateway's meter) holds exactly the tokens the provider billed."""
    assert job.usage["source"] == "gateway", job.usage
    return (job.usage["input_tokens"], job.usage["cached_input_tokens"], job.usage["output_tokens"]) == (
        endpoint.billed["input_tokens"], endpoint.billed["cached_input_tokens"], endpoint.billed["output_tokens"])


def assert_billed(job: DispatchJob, endpoint, *, tokens: tuple[int, int], cost_usd: str) -> None:
    """The ledger holds what the provider billed: ``tokens`` (input, output) costing ``cost_usd``."""
    assert billed_by_the_endpoint(job, endpoint), (job.usage, endpoint.billed)
    assert (job.usage["input_tokens"], job.usage["output_tokens"]) == tokens
    assert Decimal(job.usage["cost_usd"]) == Decimal(cost_usd)


def test_claude_code_takes_a_wp_from_dispatch_to_merged_main(tmp_path):
    with over_tls(AnthropicEndpoint(SCRIPT)) as endpoint:
        job, feature, worker_env = through_the_farm(tmp_path, "claude-code", endpoint)

    assert f"Claude Code session {job.session_id} " in log_text(job)
    assert job.manifest["cli_version"] == "2.1.328 (Claude Code)"
    assert billed_by_the_endpoint(job, endpoint), (job.usage, endpoint.billed)
    # its default model (claude-opus-5-5) has no price in harnesses/prices.json: unknown, not $0
    assert job.usage["cost_usd"] is None
    # the CLI's own figures are kept beside it, a cross-check: the same script made the recorded stream's
    [result] = recorded("claude-code").of_type("result")
    assert Decimal(job.usage["cli_reported"]["cost_usd"]) == Decimal(str(json.loads(result)["total_cost_usd"]))
    # the provider got the worker's key (the agent only a placeholder), and it never reached the log
    assert {r.header("x-api-key") for r in endpoint.agent_requests} == {worker_env["ANTHROPIC_API_KEY"]}
    assert worker_env["ANTHROPIC_API_KEY"] not in log_text(job)


def test_codex_takes_a_wp_from_dispatch_to_merged_main(tmp_path):
    with over_tls(ResponsesEndpoint(SCRIPT)) as endpoint:
        job, feature, worker_env = through_the_farm(tmp_path, "codex", endpoint, model="gpt-5")

    assert f"Codex thread {job.session_id} (gpt-5)" in log_text(job)
    assert job.manifest["cli_version"] == "codex-cli 0.169.0"
    assert "danger-full-access" in job.manifest["argv"]  # the farm's sandbox confines it, not Codex's
    # 3 calls of 1000 input / 100 output tokens at gpt-5's $1.25 / $10 per million, as billed
    assert_billed(job, endpoint, tokens=(3000, 300), cost_usd="0.00675")


def test_gemini_cli_takes_a_wp_from_dispatch_to_merged_main(tmp_path):
    with over_tls(GeminiEndpoint(SCRIPT, model="gemini-2.5-flash")) as endpoint:  # its modelVersion
        job, feature, worker_env = through_the_farm(tmp_path, "gemini", endpoint, model="gemini-2.5-flash")

    assert f"Gemini CLI session {job.session_id} (gemini-2.5-flash)" in log_text(job)
    assert job.manifest["cli_version"] == "0.61.0"
    # 3 calls of 1000 input / 100 output tokens at gemini-2.5-flash's $0.30 / $2.50 per million
    assert_billed(job, endpoint, tokens=(3000, 300), cost_usd="0.00165")
    assert {r.header("x-goog-api-key") for r in endpoint.agent_requests} == {worker_env["GEMINI_API_KEY"]}


def test_opencode_takes_a_wp_from_dispatch_to_merged_main(tmp_path):
    with over_tls(AnthropicEndpoint(SCRIPT)) as endpoint:  # opencode's anthropic provider, pointed here
        job, feature, worker_env = through_the_farm(tmp_path, "opencode", endpoint, model="anthropic/claude-sonnet-4-5")

    assert f"opencode session {job.session_id}" in log_text(job)
    assert job.manifest["cli_version"] == "1.18.33"
    # 3 steps of 1000 / 100 tokens (claude-sonnet-4-5: $3 / $15 per million) and its title call of
    # 10 / 1 on its small model (claude-haiku-4-5: $1 / $5), each priced by the model it called, as
    # billed; opencode's own figures, beside them, leave the title call out
    assert_billed(job, endpoint, tokens=(3010, 301), cost_usd="0.013515")
    assert set(ModelCall.objects.filter(job=job, input_tokens__gt=0).values_list("model", flat=True)) == {
        "claude-sonnet-4-5", "claude-haiku-4-5-20251001"}
    assert Decimal(job.usage["cli_reported"]["cost_usd"]) == Decimal("0.0135")
    assert {r.header("x-api-key") for r in endpoint.agent_requests} == {worker_env["ANTHROPIC_API_KEY"]}


def test_aider_takes_a_wp_from_dispatch_to_merged_main(tmp_path):
    edit = [Turn([Say("Adding the deliverable."), Write("wp01/file_1.txt", "one\n")])]  # Aider commits itself
    with over_tls(ChatEndpoint(edit, commit_message=MESSAGE)) as endpoint:
        job, feature, worker_env = through_the_farm(tmp_path, "aider", endpoint, model="openai/gpt-4o",
                                                    edit_format="whole")

    assert job.manifest["cli_version"] == "aider 0.86.2"
    # Aider prints no session id: the adapter's own names its chat history, stored for a next attempt
    assert f"Aider session {job.session_id} (openai/gpt-4o)" in log_text(job)
    assert AgentSession.objects.get(wp__feature=feature).session_id == job.session_id
    # the edit (1000 / 100) and the commit message call (10 / 5) as billed (gpt-4o: $2.50 / $10 per
    # million); Aider's own figures, beside them, count the edit only
    assert_billed(job, endpoint, tokens=(1010, 105), cost_usd="0.003575")
    assert Decimal(job.usage["cli_reported"]["cost_usd"]) == Decimal("0.0035")
    assert {r.header("authorization") for r in endpoint.agent_requests} == {f"Bearer {worker_env['OPENAI_API_KEY']}"}


# --- failure paths, with the real Claude Code ----------------------------------------------


def run_inline(tmp_path: Path, script: list, *, harness: str = "claude-code", endpoint_class=AnthropicEndpoint,
               timeout: str | None = None, env: dict | None = None, late_reply_once_killed: bool = False, **agent):
    """``late_reply_once_killed``: the delayed replies come once the agent is gone (the gateway
    reads a killed agent's call to its end before the run ends), not at the end of their delay."""
    with endpoint_class(script) as endpoint:
        repo = target(tmp_path, harness, **agent)
        feature = import_target(repo)
        extra = worker_environment(harness, endpoint, tmp_path / "home")
        args = ["implement", "003", "--wp", "WP01", "--agent", harness, "--inline"]
        with (released_once_the_agent_is_gone(hold_delayed_replies(endpoint), feature) if late_reply_once_killed
              else contextlib.nullcontext()):
            result = agileplus(tmp_path, *args, *(["--timeout", timeout] if timeout else []),
                               extra_env={**extra, "grace": "1", **(env or {})})
    return result, DispatchJob.objects.get(feature=feature), endpoint, feature


def anthropic_over_tls(script: list):
    """The scripted Anthropic endpoint over HTTPS (as the gateway reaches a provider)."""
    return over_tls(AnthropicEndpoint(script))


def test_the_turn_cap_stops_claude_code_and_says_so(tmp_path):
    result, job, endpoint, feature = run_inline(tmp_path, SCRIPT, max_turns=1)

    assert job.state == "failed", result.stdout
    assert job.error == "2 turns exceed max_turns 1"  # the CLI's own cap ended its second turn
    assert len(endpoint.agent_requests) == 1
    assert last_reason(feature) == "agent_turns"


def test_a_budget_crossed_mid_run_stops_claude_code_at_that_stream_event(tmp_path):
    slow = [Turn([Run(f"echo step {i}")], delay=3 if i else 0) for i in range(6)]  # 1000 input tokens each

    result, job, endpoint, feature = run_inline(
        tmp_path, slow, prices={"*": {"input": "10", "output": "10"}}, budget={"job_usd": 0.015})

    assert job.state == "failed", result.stdout
    assert last_reason(feature) == "budget_exceeded"
    assert job.usage["input_tokens"] == 2000  # the second call's first event crossed $0.015
    assert len(endpoint.agent_requests) <= 3  # stopped before the (delayed) third reply arrived
    assert (job.finished_at - job.started_at).total_seconds() < 20


def test_a_model_that_never_answers_ends_in_the_timeout_path(tmp_path):
    result, job, endpoint, feature = run_inline(tmp_path, [Turn([Say("late")], delay=120)], timeout="4",
                                                late_reply_once_killed=True)

    assert job.state == "timed_out", result.stdout
    assert last_reason(feature) == "agent_timeout"
    assert len(endpoint.agent_requests) == 1


def test_a_call_in_flight_when_the_timeout_kills_claude_code_is_still_billed(tmp_path):
    script = [Turn([Run("echo first")]), Turn([Say("late")], delay=20)]  # the second answers after the kill

    result, job, endpoint, feature = run_inline(tmp_path, script, endpoint_class=anthropic_over_tls, timeout="12",
                                                late_reply_once_killed=True)  # not 20 s after its call

    assert job.state == "timed_out", result.stdout
    # the gateway read the late answer to its end after the agent was gone, and billed it
    assert billed_by_the_endpoint(job, endpoint), (job.usage, endpoint.billed)
    assert ModelCall.objects.filter(job=job, client_gone=True, input_tokens=1000).count() == 1


def test_claude_code_s_bash_tool_finds_no_model_key_in_the_sandbox(tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    look = Run('env > "$OUTBOX/env.txt"; cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n" > "$OUTBOX/proc.txt"')
    result, job, endpoint, feature = run_inline(
        tmp_path, [Turn([look]), *SCRIPT], endpoint_class=anthropic_over_tls,
        allowed_tools=["Bash"], environment={"OUTBOX": str(outbox)},
        env={"AGILEPLUS_SANDBOX_WRITABLE": str(outbox)})

    key = SCRATCH_KEY  # the worker's key (tests/support/real_clis.py)
    assert job.state == "succeeded", result.stdout + log_text(job)
    seen = (outbox / "env.txt").read_text() + (outbox / "proc.txt").read_text()
    assert "ANTHROPIC_API_KEY=agileplus-gateway-" in seen and key not in seen
    assert {r.header("x-api-key") for r in endpoint.agent_requests} == {key}  # the calls still went out with it


# No rate-limit waits left (AGILEPLUS_RATE_LIMIT_MAX_WAITS=0): the rate limit fails the run;
# waiting for the reset is tests/integration/dispatch/test_rate_limit_wait.py.
NO_WAITS = {"AGILEPLUS_RATE_LIMIT_MAX_WAITS": "0"}


def test_a_429_from_the_endpoint_is_the_rate_limit_path(tmp_path):
    result, job, endpoint, feature = run_inline(tmp_path, [Fail("429", retry_after=1)] * 4, env=NO_WAITS,
                                                environment={"CLAUDE_CODE_MAX_RETRIES": "1"})

    assert job.state == "failed", result.stdout
    assert last_reason(feature) == "rate_limited"
    assert "429" in job.error
    # the CLI's one retry honours retry-after, unless the worker stopped it first: the 429 parked
    # the account for the farm, and the job waits for the reset
    assert 1 <= len(endpoint.agent_requests) <= 2


@pytest.mark.parametrize(("failure", "error"), [
    ("500", "API Error: 500 Internal server error (scripted)"),
    ("cut", "API Error: Connection to the API was lost"),  # the stream cut mid-event
])
def test_a_500_or_a_cut_stream_fails_the_run_with_the_cli_s_error(tmp_path, failure, error):
    result, job, endpoint, feature = run_inline(tmp_path, [Fail(failure)] * 4,
                                                environment={"CLAUDE_CODE_MAX_RETRIES": "1"})

    assert job.state == "failed", result.stdout
    assert last_reason(feature) == "agent_failed"
    assert error in job.error


# --- Codex's own sandbox --------------------------------------------------------------------


def test_codex_s_workspace_write_sandbox_commits_in_the_agent_s_own_repository(tmp_path):
    """In a linked worktree Codex's workspace-write sandbox could not commit (the shared git dir
    was read-only to it: 'index.lock': Read-only file system). The farm gives each agent a
    repository of its own inside the farm's sandbox, so Codex's own sandbox commits there too."""
    result, job, endpoint, feature = run_inline(tmp_path, SCRIPT, harness="codex", endpoint_class=ResponsesEndpoint,
                                                model="gpt-5", sandbox="workspace-write")

    assert job.state == "succeeded", result.stdout + log_text(job)
    assert [c.message.splitlines()[0] for c in job.commits.all()] == [MESSAGE]


# --- failure paths, with the real Codex -------------------------------------------------------


def test_a_429_to_codex_is_the_rate_limit_path(tmp_path):
    result, job, endpoint, feature = run_inline(tmp_path, [Fail("429", retry_after=1)] * 8, harness="codex",
                                                endpoint_class=ResponsesEndpoint, model="gpt-5", env=NO_WAITS)

    assert job.state == "failed", result.stdout
    assert last_reason(feature) == "rate_limited"
    assert "429 Too Many Requests" in job.error  # stopped at Codex's first reconnect notice


def test_a_stream_cut_mid_event_fails_a_codex_run_with_its_reason(tmp_path):
    result, job, endpoint, feature = run_inline(tmp_path, [Fail("cut")] * 8, harness="codex",
                                                endpoint_class=ResponsesEndpoint, model="gpt-5")

    assert job.state == "failed", result.stdout
    assert last_reason(feature) == "agent_failed"
    assert "stream disconnected before completion" in job.error
    assert len(endpoint.agent_requests) == 6  # Codex's own five reconnects, then it gave up
