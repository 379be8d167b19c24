"""Rate limits wait, they don't fail: a 429 with ``retry-after: 20`` parks the provider account for
the farm and the real Claude Code's job until the reset; another WP's job on the same account,
dispatched meanwhile, is stopped at its first call (refused by the gateway, never reaching the
provider) and waits too; both then resume their sessions and finish, with no fallback harness
and nothing counted as a failure."""

from __future__ import annotations

import datetime as dt

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob, JobLogLine, ProviderAccount
from agileplus.events.models import Event
from harnesses.endpoints import Fail, Run, Say, Turn, Write
from harnesses.endpoints.anthropic import AnthropicEndpoint
from tests.integration.dispatch.test_real_clis import agileplus, log_text
from tests.support.farm import import_target, make_target_repo, running_workers, wait_until
from tests.support.real_clis import worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def commit_turns(wp: str, delay: float = 0.0) -> list[Turn]:
    path, message = f"{wp.lower()}/file_1.txt", f"feat({wp}): add file_1"
    return [Turn([Say(f"Adding {path}."), Write(path, "one\n")], delay=delay),
            Turn([Run(f"git add {path} && git commit -q -m '{message}'")], delay=delay)]


def test_a_429_parks_the_account_and_its_jobs_until_the_reset_then_they_resume(tmp_path):
    # 20 s: long enough that WP02, dispatched once WP01 is parked, starts while the account is parked
    # on a loaded machine (a CLI start and a claim take seconds there)
    scripts = {"WP01": [Fail("429", retry_after=20), *commit_turns("WP01")],
               "WP02": commit_turns("WP02")}
    with AnthropicEndpoint(scripts_by_workdir=scripts) as endpoint:
        worker_env = worker_environment("claude-code", endpoint, tmp_path / "home")
        repo = make_target_repo(tmp_path, wps={"WP01": [], "WP02": []},
                                agent={"harness": "claude-code"},
                                environment={"CLAUDE_CODE_MAX_RETRIES": "0",
                                             "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                                             "DISABLE_AUTOUPDATER": "1"})
        feature = import_target(repo)
        with running_workers(tmp_path, 1, broker_url=None, with_beat=True, harnesses="claude-code",
                             concurrency="2", **worker_env):
            first = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--agent", "claude-code", "--no-wait")
            assert first.returncode == 0, first.stdout + first.stderr
            job = DispatchJob.objects.get(wp__code="WP01", feature=feature)
            parked = wait_until(lambda: DispatchJob.objects.filter(pk=job.pk, not_before__isnull=False).first(),
                                timeout=120, what="WP01's job parked for the rate limit")
            shown = agileplus(tmp_path, "status", "003")
            second = agileplus(tmp_path, "implement", "003", "--wp", "WP02", "--agent", "claude-code", "--no-wait")
            assert second.returncode == 0, second.stdout + second.stderr
            wait_until(lambda: DispatchJob.objects.filter(feature=feature, state="succeeded").count() == 2,
                       timeout=240, what="both WPs' jobs to finish")
        job.refresh_from_db()
        other = DispatchJob.objects.get(wp__code="WP02", feature=feature)
        wp01_requests = [r for r in endpoint.agent_requests if r.route == "WP01"]

    assert job.state == "succeeded", job.error + log_text(job)
    parked_at = JobLogLine.objects.get(job=job, line__startswith="Rate limited: waiting for rate limit until").timestamp
    waited = (parked.not_before - parked_at).total_seconds()
    assert 19.5 <= waited <= 21  # the reset the endpoint gave, not a backoff
    until = parked.not_before.astimezone().strftime('%H:%M')
    assert f"Current task: waiting for rate limit until {until}" in shown.stdout
    # the account was parked for the farm: WP02's job, dispatched meanwhile, waited for the same
    # reset (its refused call never reached the provider: the endpoint saw its two turns and the
    # closing answer, as a run with no rate limit makes them)
    assert JobLogLine.objects.filter(job=other, line__startswith="Rate limited: waiting").exists()
    assert other.claimed_at >= parked.not_before - dt.timedelta(seconds=1)
    assert len([r for r in endpoint.agent_requests if r.route == "WP02"]) == 3
    assert [e.subject for e in Event.objects.filter(subject__startswith="agileplus.account.")] == [
        "agileplus.account.parked", "agileplus.account.resumed"]
    assert ProviderAccount.objects.get().parked_until is None
    assert parked.not_before <= job.claimed_at < parked.not_before + dt.timedelta(seconds=8)
    # the same session resumed: its second run's first request carries the rate-limited prompt
    assert job.manifest["resumed_from_session"]
    assert "rate limited; waited 20.0 s for the reset" in str(wp01_requests[1].body["messages"])
    # not a failure: the job's attempts were not spent, the WP never blocked, no other harness
    assert (job.attempt, job.max_attempts - job.attempt) == (2, 1)
    assert (other.attempt, other.max_attempts - other.attempt) == (2, 1)
    assert set(feature.work_packages.values_list("state", flat=True)) == {"for_review"}
    assert not AuditEntry.objects.filter(transition__contains="blocked").exists()
    assert set(DispatchJob.objects.filter(feature=feature).values_list("harness", flat=True)) == {"claude-code"}
