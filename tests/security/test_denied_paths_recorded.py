"""An agent's failed attempts to reach what the sandbox hides (the worker's data folder: its
database, secrets file, other worktrees) or to write on a read-only mount are recorded: a log line
each and the job's ``denied_paths``. A limited form: seen only when the agent's output says so
(its tools print the error); refused connections are recorded by the egress proxy instead."""

from __future__ import annotations

import pytest

from tests.security.support import COMMIT, WP, hostile, job_log

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_reads_of_the_hidden_data_folder_and_writes_on_read_only_mounts_are_recorded(tmp_path):
    secrets_file = tmp_path / "cli" / "secrets.env"
    script = WP + (f"cat '{secrets_file}'\n"
                   "echo planted > /usr/planted.txt\n") + COMMIT
    attack = hostile(tmp_path, script)

    job = attack.run()

    log = job_log(job)
    assert job.state == "succeeded"
    assert str(secrets_file) in job.result["denied_paths"] and "/usr/planted.txt" in job.result["denied_paths"]
    assert f"Sandbox: the agent was refused {secrets_file}" in log
    assert "Sandbox: the agent was refused /usr/planted.txt" in log


def test_an_agent_that_reaches_nothing_hidden_has_no_denied_paths(tmp_path):
    attack = hostile(tmp_path, WP + "cat README.md\n" + COMMIT)

    job = attack.run()

    assert job.state == "succeeded" and "denied_paths" not in job.result
