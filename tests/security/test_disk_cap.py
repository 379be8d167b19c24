"""The disk an agent's job uses is capped for the whole job (agent.limits.disk_mb), not only per
file: an agent writing many files, each well under the file-size limit, is stopped once its
repository grew past the cap, and the job fails saying so."""

from __future__ import annotations

import re

import pytest

from agileplus.events.models import Event
from agileplus.events.subjects import job_event
from agileplus.features.models import WorkPackage
from tests.security.support import COMMIT, WP, hostile, job_log

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CAP_MB = 20


def test_many_files_each_under_the_limits_stop_the_job_at_its_disk_cap(tmp_path):
    # 1 MB a file, 20 files a second: 200 MB if nothing stopped it.
    script = WP + ('mkdir -p fill && for i in $(seq 1 200); do '
                   'dd if=/dev/zero of=fill/f$i bs=1M count=1 2>/dev/null; echo "wrote $i"; sleep 0.05; done\n'
                   'echo FINISHED\n')
    attack = hostile(tmp_path, script, agent={"limits": {"disk_mb": CAP_MB}})

    job = attack.run()

    log = job_log(job)
    written = max(int(n) for n in re.findall(r"wrote (\d+)", log))
    assert job.state == "failed" and f"over the job's disk cap of {CAP_MB} MB" in job.error, job.error
    assert "FINISHED" not in log
    assert written < CAP_MB + 25  # stopped within about a second of writes past the cap, not at 200 MB
    assert attack.chain_verifies()


def test_an_agent_that_fills_the_disk_and_exits_before_a_check_still_fails_the_job(tmp_path):
    script = WP + f'for i in $(seq 1 {CAP_MB + 10}); do dd if=/dev/zero of=f$i bs=1M count=1 2>/dev/null; done\n'
    attack = hostile(tmp_path, script, agent={"limits": {"disk_mb": CAP_MB}})

    job = attack.run()

    assert job.state == "failed" and "disk cap" in job.error, job.error


def test_a_job_over_its_disk_cap_is_recorded_as_disk_limit_and_blocks_its_wp_keeping_its_commits(tmp_path):
    script = WP + COMMIT + 'mkdir -p fill && for i in $(seq 1 200); do dd if=/dev/zero of=fill/f$i bs=1M count=1 ' \
                           '2>/dev/null; sleep 0.05; done\n'
    attack = hostile(tmp_path, script, agent={"limits": {"disk_mb": CAP_MB}})
    main_before = attack.repo.head("main")

    job = attack.run()

    assert job.current_activity == "disk_limit" and job.result["limit"]["reason"] == "disk_limit", job.error
    assert "Limit: disk_limit" in job_log(job)
    assert Event.objects.filter(subject=job_event(job.id, "limit_exceeded")).exists()
    wp = WorkPackage.objects.get(feature=attack.feature, code="WP01")
    assert wp.state == "blocked" and attack.repo.has_branch("feat/003-auth-system-WP01")
    assert attack.repo.head("main") == main_before
