"""The agent is untrusted code with a shell (issue 12): a hostile agent (real processes, the
`command` harness running a shell script) tries to reach what is not its own. Each attempt fails
inside the sandbox; main is unchanged, the audit chain verifies and the worker takes the next job."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from agileplus.events.models import Event
from agileplus.events.subjects import job_event
from harnesses.sandbox import runtime_paths
from tests.security.support import COMMIT, WP, hostile, job_log
from tests.support.farm import running_with, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(300)]


def probe(name: str, command: str) -> str:
    """A shell line that prints ``LEAK:<name>`` only if ``command`` succeeds."""
    return f'( {command} ) >/dev/null 2>&1 && echo "LEAK:{name}" || echo "blocked:{name}"\n'


def home_entries_not_mounted() -> list[Path]:
    mounted = [p.resolve() for p in runtime_paths()]
    return [e for e in Path.home().iterdir() if not any(m == e or e in m.parents for m in mounted)]


def test_the_job_manifest_records_the_sandbox_mode_and_network_policy(tmp_path):
    attack = hostile(tmp_path, WP + COMMIT)

    job = attack.run()

    assert job.state == "succeeded", job_log(job)
    assert job.manifest["sandbox"]["mode"] == "bwrap"
    assert job.manifest["sandbox"]["network"] == "model"
    assert "Sandbox: bwrap, network model" in job_log(job)


def test_the_worker_data_folder_other_worktrees_and_the_database_are_not_in_the_agent_view(tmp_path):
    other = tmp_path / "cli" / "worker" / "w-sec" / ".worktrees" / "003-auth-system-WP09"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("another WP's work\n")
    secrets_file = tmp_path / "cli" / "secrets.env"
    secrets_file.write_text("DEPLOY_TOKEN=tok-from-secrets-file-0042\n")
    secrets_file.chmod(0o600)
    (tmp_path / "broker").mkdir()
    database = settings.DATABASES["default"]["NAME"] if "sqlite" in settings.DATABASES["default"]["ENGINE"] \
        else tmp_path / "cli"
    script = WP + "".join([
        probe("database", f"cat '{database}'"),
        probe("secrets_file", f"cat '{secrets_file}'"),
        probe("broker", f"ls '{tmp_path / 'broker'}'"),
        probe("other_worktree", f"cat '{other / 'notes.txt'}'"),
        # Only the path down to its own repository exists (empty mount points), nothing else of it.
        probe("data_dir", f"ls -A '{tmp_path / 'cli'}' | grep -vx worker | grep -q ."),
        # The worker's home shows at most the install folders mounted read-only (a pyenv, say).
        *[probe("worker_home", f"test -e '{entry}'") for entry in home_entries_not_mounted()[:5]],
        probe("mirror_listing", f"ls '{tmp_path / 'cli' / 'worker' / 'w-sec' / 'mirrors'}'/*.git/config"),
    ]) + COMMIT
    attack = hostile(tmp_path, script)

    job = attack.run()

    log = job_log(job)
    assert "LEAK:" not in log, log
    for name in ("database", "secrets_file", "broker", "other_worktree", "data_dir", "mirror_listing"):
        assert f"blocked:{name}" in log
    assert "tok-from-secrets-file-0042" not in log
    assert job.state == "succeeded" and attack.chain_verifies()


def test_the_worker_environment_and_secrets_not_given_are_unreachable_through_proc(tmp_path):
    canary = f"canary-{uuid.uuid4().hex}"
    script = WP + (
        'for p in /proc/[0-9]*; do tr "\\0" "\\n" < $p/environ 2>/dev/null; done\n'
        'env\n'
        'ps -eo pid,args 2>/dev/null || ls /proc\n'
    ) + COMMIT
    attack = hostile(tmp_path, script)

    job = attack.run(AGILEPLUS_SECRET_NOT_GIVEN=canary, NOT_GIVEN_EITHER=canary)

    log = job_log(job)
    assert "PATH=" in log  # the agent printed its own environment
    assert canary not in log
    assert "DATABASE_URL" not in log and "AGILEPLUS_DATA_DIR" not in log
    assert job.state == "succeeded" and attack.chain_verifies()


def test_the_agent_cannot_push_to_the_origin_in_any_way(tmp_path):
    script = WP + COMMIT + (
        'git remote -v; echo "remotes:$(git remote | wc -l)"\n'
        f'git push origin HEAD:main && echo LEAK:push_origin\n'
        f'git push --force "{tmp_path / "origin"}" HEAD:main && echo LEAK:push_path\n'
        f'git push --force "file://{tmp_path / "origin"}" HEAD:refs/heads/main && echo LEAK:push_url\n'
        'exit 0\n'
    )
    attack = hostile(tmp_path, script)
    main_before = attack.repo.head("main")

    job = attack.run()

    log = job_log(job)
    assert "remotes:0" in log and "LEAK:" not in log, log
    assert attack.repo.head("main") == main_before
    # The worker, not the agent, pushed the WP branch after governance.
    assert job.state == "succeeded" and job.result["pushed"] is True
    assert attack.repo.has_branch("feat/003-auth-system-WP01")
    assert attack.chain_verifies()


def test_refs_other_than_the_wp_branch_are_ignored_and_reported(tmp_path):
    script = WP + COMMIT + (
        'git update-ref refs/heads/main HEAD && echo moved-main\n'
        'git tag planted HEAD && git branch side HEAD && echo made-refs\n'
    )
    attack = hostile(tmp_path, script)
    main_before = attack.repo.head("main")

    job = attack.run()

    assert "moved-main" in job_log(job)
    assert set(job.result["ignored_refs"]) == {"refs/heads/main", "refs/heads/side", "refs/tags/planted"}
    assert "Ignored: the agent changed refs/heads/main" in job_log(job)
    assert attack.repo.head("main") == main_before
    assert not attack.repo.git("tag", "--list", "planted")
    assert attack.chain_verifies()


def test_the_mirror_git_directory_cannot_be_edited(tmp_path):
    attack = hostile(tmp_path, WP + COMMIT)
    assert attack.run().state == "succeeded"  # the worker has its mirror now
    mirror = attack.mirror()
    config_before = (mirror / "config").read_text()
    # Each write fails, or lands in the sandbox's private /tmp when the data folder is under /tmp:
    # what counts is the mirror on the host.
    script = WP + (
        f"printf '[core]\\n\\tfsmonitor = touch {tmp_path}/pwned\\n' >> '{mirror}/config' 2>/dev/null\n"
        f"mkdir -p '{mirror}/hooks' 2>/dev/null; "
        f"echo 'touch {tmp_path}/pwned' > '{mirror}/hooks/post-update' 2>/dev/null\n"
        f"touch '{mirror}/objects/planted' 2>/dev/null || echo blocked:objects\n"
        'touch "$(git rev-parse --git-common-dir)/../../pwned-common" 2>/dev/null\n'
    ) + COMMIT
    (attack.repo.path / "attack.sh").write_text(script)
    attack.repo.git("commit", "-qam", "attack two")

    job = attack.run("WP02")

    assert "blocked:objects" in job_log(job)  # the object store is mounted read-only
    assert (mirror / "config").read_text() == config_before
    assert not (mirror / "hooks" / "post-update").exists() and not (mirror / "objects" / "planted").exists()
    assert not (tmp_path / "pwned").exists() and not (attack.worker_root / ".worktrees" / "pwned-common").exists()
    assert job.state == "succeeded" and attack.chain_verifies()


def test_writes_outside_the_agent_repository_do_not_land(tmp_path):
    outside = tmp_path / f"outside-{uuid.uuid4().hex[:8]}.txt"
    private = f"/tmp/agent-private-{uuid.uuid4().hex[:8]}"
    # Under /tmp a write "succeeds" into the sandbox's private /tmp: what counts is the host's disk.
    script = WP + f"echo x > '{outside}' 2>/dev/null\n" + probe("usr", "touch /usr/planted") + \
        f'echo private > {private} && echo "tmp-is-private"\n' + COMMIT
    attack = hostile(tmp_path, script)

    job = attack.run()

    log = job_log(job)
    assert "LEAK:" not in log and "tmp-is-private" in log, log
    assert not outside.exists() and not os.path.exists(private) and not os.path.exists("/usr/planted")
    assert job.state == "succeeded"


def test_a_loopback_port_of_the_host_is_unreachable(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    script = WP + (
        f'python3 -c "import socket; socket.create_connection((\'127.0.0.1\', {port}), timeout=3)" '
        '2>&1 && echo LEAK:loopback || echo blocked:loopback\n'
        'python3 -c "import socket; socket.create_connection((\'127.0.0.1\', 6379), timeout=3)" '
        '2>&1 && echo LEAK:redis || echo blocked:redis\n'
        'python3 -c "import socket; socket.create_connection((\'127.0.0.1\', 5432), timeout=3)" '
        '2>&1 && echo LEAK:postgres || echo blocked:postgres\n'
    ) + COMMIT
    attack = hostile(tmp_path, script, agent={"network": "none"})
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()  # reachable from the worker

        job = attack.run()
    finally:
        listener.close()

    log = job_log(job)
    assert "LEAK:" not in log and "blocked:loopback" in log, log
    assert job.manifest["sandbox"]["network"] == "none"


def test_a_fork_bomb_is_contained_and_the_worker_takes_the_next_job(tmp_path):
    script = WP + 'if [ "$WP" = WP01 ]; then bomb() { bomb | bomb & }; bomb; sleep 30; fi\n' + COMMIT
    attack = hostile(tmp_path, script, agent={"limits": {"processes": 64}, "timeout_seconds": 8})
    main_before = attack.repo.head("main")

    bombed = attack.run("WP01", grace="1")
    following = attack.run("WP02")

    assert bombed.state in ("timed_out", "failed", "succeeded")
    assert (bombed.finished_at - bombed.started_at).total_seconds() < 8 + 1 + 10
    wait_until(lambda: not [p for p in running_with(bombed.id)], timeout=10, what="the bomb's processes to die")
    assert following.state == "succeeded", job_log(following)
    assert attack.repo.head("main") == main_before and attack.chain_verifies()


def test_a_5_gb_file_stops_at_the_file_size_limit(tmp_path):
    script = WP + (
        'head -c 5368709120 /dev/zero > big.bin; echo "write-exit:$?"\n'
        'echo "size:$(stat -c %s big.bin)"\nrm -f big.bin\n'
    ) + COMMIT
    attack = hostile(tmp_path, script, agent={"limits": {"file_size_mb": 8}})

    job = attack.run()

    log = job_log(job)
    assert f"size:{8 << 20}" in log, log
    assert "write-exit:0" not in log
    assert job.manifest["sandbox"]["limits"]["file_size_bytes"] == 8 << 20
    assert job.state == "succeeded"


def test_setsid_daemons_die_with_the_job(tmp_path):
    marker = f"{uuid.uuid4().int % 10**6}.5"
    script = WP + (
        f'env -i setsid sleep 1{marker} > /dev/null 2>&1 < /dev/null &\n'
        f'nohup setsid sh -c "sleep 2{marker}" > /dev/null 2>&1 &\n'
        'sleep 0.5; echo started-daemons\n'
    ) + COMMIT
    attack = hostile(tmp_path, script)

    job = attack.run()

    assert "started-daemons" in job_log(job)
    wait_until(lambda: not running_with(f"1{marker}") and not running_with(f"2{marker}"), timeout=10,
               what="the daemons to be gone")
    assert job.state == "succeeded"


PLANT = '''if [ "$WP" = WP01 ]; then
  for hook in pre-commit post-commit post-checkout post-merge pre-push pre-receive post-update reference-transaction \\
              pre-auto-gc post-rewrite fsmonitor-watchman; do
    printf '#!/bin/sh\\ntouch "%s/hook-%s"\\n' "$PWNED" "$hook" > .git/hooks/$hook; chmod +x .git/hooks/$hook
  done
  git config core.hooksPath .git/hooks
  git config core.fsmonitor "touch $PWNED/fsmonitor; false"
  git config diff.external "touch $PWNED/diff-external; false"
  git config filter.evil.clean "touch $PWNED/filter-clean; cat"
  git config filter.evil.smudge "touch $PWNED/filter-smudge; cat"
  git config merge.evil.driver "touch $PWNED/merge-driver; false"
  git config core.pager "touch $PWNED/pager; cat"
  git config core.sshCommand "touch $PWNED/ssh"
  git config uploadpack.packObjectsHook "touch $PWNED/pack-objects-hook; exit 1"
  git config core.alternateRefsCommand "touch $PWNED/alternate-refs"
  git config credential.helper "!touch $PWNED/credential"
  git config gpg.program "touch $PWNED/gpg"
  git config alias.log "!touch $PWNED/alias"
  printf '[core]\\n\\tfsmonitor = touch %s/included\\n' "$PWNED" > .git/evil.config
  git config include.path evil.config
  mkdir -p wp01 && printf '* filter=evil diff=evil merge=evil\\n' > wp01/.gitattributes
  git add wp01/.gitattributes
fi
'''


def test_git_hooks_and_executable_config_the_agent_plants_never_run_outside_the_sandbox(tmp_path):
    pwned = tmp_path / "pwned"
    pwned.mkdir()
    script = WP + PLANT + COMMIT + 'echo uncommitted > "$wp/wip.txt"\necho planted\n'
    attack = hostile(tmp_path, script, wps={"WP01": [], "WP02": [], "WP03": []},
                     environment={"PWNED": str(pwned)})
    main_before = attack.repo.head("main")

    planted = attack.run("WP01")
    later = [attack.run("WP02"), attack.run("WP03")]
    review = attack.cli("review", "003", "WP01", "--inline", "--apply")

    assert planted.state == "succeeded" and "planted" in job_log(planted)
    assert planted.result["salvage_ref"]  # salvage read the agent's files: nothing of its config ran
    assert [job.state for job in later] == ["succeeded", "succeeded"]
    assert review.returncode == 0, review.stdout + review.stderr
    assert attack.repo.head("main") != main_before  # merged, by the worker's merge
    assert "wp01/.gitattributes" in attack.repo.git("ls-tree", "-r", "--name-only", "main")
    assert sorted(os.listdir(pwned)) == []
    assert attack.chain_verifies()


EVIL_TEST = '''import os, sys
outside = {outside!r}
found = [k for k, v in os.environ.items() if k.startswith("AGILEPLUS_SECRET") or "{prefix}" in v]
for target in (outside, os.path.join(".git", "hooks", "pre-push")):
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as handle:
            handle.write("#!/bin/sh\\\\ntouch " + outside + ".hook\\\\n")
        os.chmod(target, 0o755)
        print("wrote", target)
    except OSError as exc:
        print("blocked", target, exc)
print("Ran 1 test in 0.001s")
print()
print("FAILED (failures=1)" if found else "OK")
sys.exit(1 if found else 0)
'''


def test_an_agent_written_test_run_by_the_review_reads_no_secret_and_writes_nothing_outside_its_tree(tmp_path):
    canary = f"canary-{uuid.uuid4().hex}"
    outside = tmp_path / "review-outside.txt"
    # Not the value itself in the test's code: the secret scan of the review would flag it (rightly).
    evil = EVIL_TEST.format(outside=str(outside), prefix=canary[:10])
    script = WP + f"mkdir -p \"$wp\" && cat > \"$wp/test_evil.py\" <<'PYEOF'\n{evil}PYEOF\n" + COMMIT
    checks = [{"name": "tests", "command": "python3 wp01/test_evil.py", "parser": "unittest"},
              {"name": "governance"}, {"name": "commit_convention"}]
    attack = hostile(tmp_path, script, wps={"WP01": []}, review={"checks": checks})
    assert attack.run("WP01").state == "succeeded"

    review = attack.cli("review", "003", "WP01", "--inline", "--apply", AGILEPLUS_SECRET_CANARY=canary)

    assert review.returncode == 0, review.stdout + review.stderr  # approved: the test found no canary
    assert "All tests pass (1/1)" in review.stdout
    assert not outside.exists() and not (tmp_path / "review-outside.txt.hook").exists()
    assert attack.chain_verifies()


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b"model-endpoint-answered"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


def test_under_network_model_only_the_allowed_hosts_are_reachable_and_each_refusal_is_recorded(tmp_path):
    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    allowed_port = endpoint.server_address[1]
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    refused_port = other.getsockname()[1]
    fetch = 'python3 -c "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=10).read().decode())" '
    script = WP + (
        f'{fetch} http://127.0.0.1:{allowed_port}/v1/messages || echo failed:allowed\n'
        f'env NO_PROXY= no_proxy= {fetch} http://127.0.0.1:{refused_port}/ 2>&1 | tail -1\n'
        f'{fetch} https://example.com/ 2>&1 | tail -1\n'
        f'python3 -c "import socket; socket.create_connection((\'93.184.215.14\', 443), timeout=3)" '
        '2>/dev/null && echo LEAK:direct || echo blocked:direct\n'
    ) + COMMIT
    attack = hostile(tmp_path, script, agent={"network": "model", "allowed_hosts": [f"127.0.0.1:{allowed_port}"]})
    try:
        job = attack.run()
    finally:
        endpoint.shutdown()
        other.close()

    log = job_log(job)
    assert "model-endpoint-answered" in log and "LEAK:" not in log, log
    assert set(job.result["refused_connections"]) == {f"127.0.0.1:{refused_port}", "example.com:443"}
    assert f"Network: refused a connection to 127.0.0.1:{refused_port}" in log
    assert Event.objects.filter(subject=job_event(job.id, "network_refused")).exists()
    assert job.state == "succeeded" and attack.chain_verifies()


def test_harness_credentials_come_from_the_worker_read_only_and_are_stored_nowhere(tmp_path):
    home = tmp_path / "worker-home"
    (home / ".mytool").mkdir(parents=True)
    token, file_secret = f"tok-{uuid.uuid4().hex}", f"file-{uuid.uuid4().hex}"
    (home / ".mytool" / "cred.json").write_text(file_secret)
    script = WP + (
        '[ -n "$MY_TOOL_TOKEN" ] && echo has-token\n'
        'echo "$MY_TOOL_TOKEN"\n'
        'cat ~/.mytool/cred.json && echo\n'
        'echo tampered >> ~/.mytool/cred.json 2>/dev/null || echo credential-file-read-only\n'
    ) + COMMIT
    attack = hostile(tmp_path, script)

    job = attack.run(HOME=str(home), MY_TOOL_TOKEN=token,
                     AGILEPLUS_HARNESS_CREDENTIALS_COMMAND="MY_TOOL_TOKEN,~/.mytool/cred.json")

    log = job_log(job)
    assert "has-token" in log and "credential-file-read-only" in log, log
    assert (home / ".mytool" / "cred.json").read_text() == file_secret
    job.refresh_from_db()
    events = [str(payload)
              for payload in Event.objects.filter(feature=attack.feature).values_list("payload", flat=True)]
    stored = " ".join([log, str(job.manifest), job.prompt or "", str(job.result), str(job.error), *events])
    assert token not in stored and file_secret not in stored
    assert job.state == "succeeded"
