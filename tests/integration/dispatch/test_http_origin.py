"""An origin reached over the network with credentials: git smart HTTP behind basic auth on
loopback (tests/support/git_http.py). Import, dispatch, mirrors, pushes, salvage refs, the
merge-result gate and merges all go through it, and the password shows up nowhere the farm
writes or shows anything: database rows, API responses, logs, files, the agent's view."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.core.errors import ImportFailed
from agileplus.dispatch.models import DispatchJob, JobLogLine
from agileplus.events.models import Event
from agileplus.features.importer import import_path
from agileplus.features.models import Feature, Project
from agileplus.review.models import MergeLock
from harnesses.git import redact_url, remote_url
from tests.integration.api.conftest import client_for
from tests.support.farm import ROOT, job_env, make_target_repo, outbox_file, running_workers
from tests.support.git_http import running_git_http, url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSWORD = "tok-3f9c1d7e5b2a"  # noqa: S105 - a test credential, searched for everywhere below
CHAIN = {"WP01": [], "WP02": ["WP01"], "WP03": ["WP02"]}


def test_redaction_hides_the_userinfo_of_every_url_in_a_message():
    text = "git clone http://bob:pa55@h:80/r.git and https://x-access-token:ghs_1@github.com/o/r failed"

    assert redact_url(text) == "git clone http://***@h:80/r.git and https://***@github.com/o/r failed"


def test_an_origin_url_loses_its_credentials_before_git_sees_it():
    assert remote_url("https://oauth2:glpat-xyz@gitlab.example/g/r.git") == "https://gitlab.example/g/r.git"
    assert remote_url("git@github.com:o/r.git") == "git@github.com:o/r.git"  # ssh: a user name, no secret


def test_import_with_a_wrong_password_fails_naming_the_url_without_the_password(tmp_path):
    repo = make_target_repo(tmp_path)
    with running_git_http(tmp_path, user="farm", password=PASSWORD) as port, pytest.raises(ImportFailed) as failed:
        import_path(url("127.0.0.1", port, "origin", "farm", "wrong-one"), actor="human:alice")

    message = str(failed.value) + str(failed.value.fix)
    assert "cannot clone http://***@127.0.0.1" in message
    assert "wrong-one" not in message and not Feature.objects.exists() and repo.subjects() == ["initial"]


def rows_text() -> str:
    """Everything the farm wrote to the database that a user, the API or an export can see."""
    parts = [repr(list(model.objects.values())) for model in
             (Event, AuditEntry, DispatchJob, JobLogLine, MergeLock)]
    return "\n".join(parts)


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def test_a_feature_from_an_http_origin_with_a_password_ships_and_the_password_is_nowhere(tmp_path):
    raid = outbox_file(tmp_path, "raid.txt")  # the sandboxed agent may write only there
    repo = make_target_repo(tmp_path, wps=CHAIN, behaviour="commit:1",
                            environment={"AGENT_BEHAVIOUR_WP02": "commit:1,wip:wp02/notes.txt",
                                         "AGENT_BEHAVIOUR_WP03": f"commit:1,raid_origin:{raid}"})
    farm = tmp_path / "farm"
    with running_git_http(tmp_path, user="farm", password=PASSWORD, log=tmp_path / "origin.log") as port:
        origin = url("127.0.0.1", port, "origin", "farm", PASSWORD)
        feature = import_path(origin, actor="human:alice")[0]
        env = job_env(farm / "cli", None, AGILEPLUS_BROKER_DIR=str(farm / "broker"))
        with running_workers(farm, 2, broker_url=None) as workers:
            done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--all", "--wait",
                                   "--actor", "human:alice"], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=240)
            logs = "".join(w.output() for w in workers)
        projects = client_for("human").get("/api/projects").json()["results"]

    assert done.returncode == 0, done.stdout + done.stderr + logs[-3000:]
    assert Feature.objects.get(pk=feature.pk).state == "shipped" and verify_chain(feature).ok
    assert {"wp01/file_1.txt", "wp02/file_1.txt", "wp03/file_1.txt"} <= set(
        repo.git("ls-tree", "-r", "--name-only", "main").splitlines())
    wp02 = DispatchJob.objects.get(wp__code="WP02")
    assert repo.git("show", f"refs/agileplus/salvage/{wp02.id}:wp02/notes.txt") == "WP02 work in progress"
    # The agent had the origin's address but not its password: its push was refused.
    assert "exit 0" not in raid.read_text().split("git', 'push'", 1)[1].split("\n")[1]
    assert not any(b.startswith("raided") for b in repo.git("branch", "--format=%(refname:short)").split())
    assert projects == [{"name": Project.objects.get().name, "main_branch": "main",
                         "repo_url": f"http://***@127.0.0.1:{port}/origin"}]
    for where, text in {"database": rows_text(), "cli": done.stdout + done.stderr, "worker logs": logs,
                        "agent's view": raid.read_text()}.items():
        assert PASSWORD not in text, where
    assert files_containing(farm, PASSWORD.encode()) == []
