"""A full disk under the worktrees, and PostgreSQL connections killed in the middle of
transitions: nothing half-written, every WP in a legal state, the chains verify."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from django.db import connection

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob
from agileplus.events.models import Event
from agileplus.features.models import WorkPackage
from tests.factories import make_feature_with_wps
from tests.support.farm import ROOT, import_target, job_env, make_target_repo
from tests.support.server import subprocess_env
from tests.support.services import in_ci

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]


@contextmanager
def tiny_filesystem(path, size: str = "4m"):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here ({mounted.stderr.strip()}): needs root"
        pytest.fail(reason) if in_ci() else pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_under_the_worktrees_fails_the_job_cleanly(tmp_path):
    repo = make_target_repo(tmp_path, wps={"WP01": []}, behaviour="big:wp01/huge.bin:8000000",
                            constraints={"max_file_size": 100_000_000})
    feature = import_target(repo)
    with tiny_filesystem(tmp_path / "small") as small:
        env = job_env(tmp_path / "cli", None, AGILEPLUS_WORKER_DIR=str(small))
        result = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01", "--inline"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    job = DispatchJob.objects.get(feature=feature)
    assert job.state == "failed" and job.error
    assert feature.work_packages.get(code="WP01").state == "blocked"
    assert repo.subjects("main") == ["initial"]
    assert verify_chain(feature).ok


# Each try reads the WP and moves it; a kill may land on either (the read included: a writer
# that died on it would report nothing) and the writer reconnects for the next try.
WRITER = """
import sys, django
django.setup()
from django.db import connection
from agileplus.features.models import WorkPackage
from agileplus.features.services import transition_wp
ok = 0
for i in range(int(sys.argv[2])):
    try:
        wp = WorkPackage.objects.get(pk=int(sys.argv[1]))
        transition_wp(wp, "blocked" if wp.state == "planned" else "planned", actor="human:alice")
        ok += 1
    except Exception:
        connection.close()
print(ok)
"""


def test_transitions_survive_their_database_connections_being_killed(on_postgres):
    feature, wps = make_feature_with_wps(4, chain=False)
    env = {**subprocess_env(), "DJANGO_SETTINGS_MODULE": "agileplus.settings"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(wp.pk), "60"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for wp in wps]
    killed = 0
    db = connection.settings_dict["NAME"]
    while any(w.poll() is None for w in writers):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", [db])
            killed += cursor.fetchone()[0]
        time.sleep(0.15)
    committed = sum(int((w.stdout.read() or "0").strip() or 0) for w in writers)

    assert killed > 0 and committed > 0
    # A kill can land after the server committed but before the client heard it, so the client's
    # count is a lower bound; what must hold is that every committed transition is whole:
    moves = AuditEntry.objects.filter(feature=feature, wp__isnull=False, transition__contains="->")
    assert moves.count() >= committed
    wp_events = Event.objects.filter(feature=feature, subject__contains=".wp.", subject__endswith=".state.changed")
    assert wp_events.count() == moves.count()
    for wp in WorkPackage.objects.filter(feature=feature):
        state = "planned"
        for transition in moves.filter(wp=wp).order_by("seq").values_list("transition", flat=True):
            source, target = transition.split(":", 1)[1].split("->")
            assert source == state, f"{wp.code}: {transition} after {state}"
            state = target
        assert wp.state == state
    assert verify_chain(feature).ok
