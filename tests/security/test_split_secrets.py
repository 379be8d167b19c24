"""A hostile agent (the `command` harness running a script, dispatched for real) splits the secret
its WP was given over two paragraphs of a commit message (`git commit -m A -m B`) and over two
consecutive output lines, and prints it as base32, rot13 and in capitals. The WP is blocked for
a governance violation naming the commit, nothing of its branch reaches the origin, main is
unchanged, and no form of the secret is in the log, the events, the job or any other table, nor
in the current activity while the agent runs."""

from __future__ import annotations

import base64
import codecs
import secrets
import threading
import time

import pytest

from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.features.models import WorkPackage
from tests.security.support import WP, hostile, job_log
from tests.security.workers import WorkerAs
from tests.support.stored import every_stored_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCRIPT = WP + """A=$(printf %s "$DEPLOY" | cut -c1-8); B=$(printf %s "$DEPLOY" | cut -c9-)
printf '%s' "$DEPLOY" | base32
printf '%s\\n' "$DEPLOY" | tr 'A-Za-z' 'N-ZA-Mn-za-m'
printf '%s\\n' "$DEPLOY" | tr a-z A-Z
echo "halves: $A $B"
mkdir -p "$wp" && echo work > "$wp/file_1.txt" && git add -A "$wp"
git -c user.name=agent -c user.email=agent@localhost commit -q -m "feat($WP): work" -m "$A" -m "$B" && echo COMMITTED
echo "token: $A"
echo "$B"
sleep 3
"""


def forms(secret: str) -> dict[str, str]:
    """What must be nowhere: each half, and each encoding the agent printed (base32 cut before
    its last, partly padding, characters)."""
    return {"first half": secret[:8], "second half": secret[8:],
            "base32": base64.b32encode(secret.encode()).decode()[:24], "rot13": codecs.encode(secret, "rot13"),
            "capitals": secret.upper()}


def activities_while(run, feature) -> tuple[object, set[str]]:
    """Run the attack; meanwhile read the job's current activity every 50 ms."""
    seen: set[str] = set()
    done: dict = {}
    thread = threading.Thread(target=lambda: done.setdefault("job", run()))
    thread.start()
    deadline = time.monotonic() + 240
    while thread.is_alive() and time.monotonic() < deadline:
        seen.update(DispatchJob.objects.filter(feature=feature).exclude(current_activity="")
                    .values_list("current_activity", flat=True))
        time.sleep(0.05)
    thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not thread.is_alive(), "the attack did not end within 240 s"
    return done["job"], seen


@pytest.mark.parametrize("who", ["root", "user"])
def test_a_secret_split_and_encoded_by_the_agent_blocks_the_wp_and_is_stored_nowhere(who, tmp_path, monkeypatch):
    worker = WorkerAs(who, monkeypatch)  # the worker as root, and as an ordinary user
    try:
        secret = "dp" + secrets.token_hex(7)  # 16 characters: each half alone is shorter than a fragment
        # no network: the attack needs none (an ordinary-user worker's `network: model` listener
        # failed once under parallel load: "could not listen inside the sandbox's network namespace")
        attack = hostile(worker.folder(tmp_path), SCRIPT, wps={"WP01": []}, agent={"network": "none"},
                         environment={"DEPLOY": "${{ secrets.DEPLOY }}"})
        worker.prepare(attack)
        main_before = attack.repo.head("main")

        job, activities = activities_while(lambda: worker.run(attack, AGILEPLUS_SECRET_DEPLOY=secret),
                                           attack.feature)

        log = job_log(job)
        assert "COMMITTED" in log and "halves: ***" in log and "token: ***" in log  # the agent did print them
        assert job.state == "failed" and job.current_activity == "governance_violation"
        assert "carries" in job.error and "secret value held by the farm" in job.error
        assert "Not pushed to the origin" in log
        wp = WorkPackage.objects.get(feature=attack.feature, code="WP01")
        entry = AuditEntry.objects.filter(feature=attack.feature).order_by("-seq").first()
        assert wp.state == "blocked" and entry.metadata["reason"] == "governance_violation"
        assert any(e["rule"] == "secret" for e in entry.evidence_refs)
        assert not attack.repo.has_branch(wp.branch_name) and attack.repo.head("main") == main_before
        assert "***" in activities  # the last line (the second half), read while the agent slept
        stored = {"database (every table)": every_stored_text(), "activities while running": "\n".join(activities)}
        found = {where: [name for name, form in forms(secret).items() if form in text]
                 for where, text in stored.items()}
        assert not any(found.values()), found
        assert attack.chain_verifies()
    finally:
        worker.close()
