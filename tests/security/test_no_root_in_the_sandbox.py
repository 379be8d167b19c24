"""A worker that runs as root gives its agent no root (issue 23): the hostile agent (the `command`
harness running a shell and python script, a real worker) tries what root's capabilities would
allow — remount a bind mount writable, plant a .pth in the project's venv, mount,
open_by_handle_at, ptrace, raw sockets, mknod — and to reach the database's unix socket, the
project folder and the host's RAM through /dev/shm. Each attempt is refused, with the worker
running as root and as an ordinary user; a job over its memory limit (several processes, each
under it) is stopped as a whole with the reason memory_limit."""

from __future__ import annotations

import contextlib
import os
import sysconfig
import uuid
from pathlib import Path

import pytest

from agileplus.events.models import Event
from agileplus.events.subjects import job_event
from agileplus.features.models import WorkPackage
from harnesses.sandbox import SANDBOX_UID
from tests.security.support import COMMIT, WP, hostile, job_log
from tests.security.workers import WorkerAs, delegated_cgroups, require_root
from tests.support.farm import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SOCKETS = ["/run/postgresql/.s.PGSQL.5432", "/var/run/postgresql/.s.PGSQL.5432", "/tmp/.s.PGSQL.5432",
           "/run/redis/redis-server.sock", "/var/run/redis/redis.sock", "/tmp/redis.sock", "/tmp/nats.sock"]
SHM_MB = 16
# The project folder's own files: its source, its git directory (the origin's refs), its settings.
PROJECT = ("agileplus", "harnesses", ".git", "pyproject.toml", "README.md", "scripts")
SITE = Path(sysconfig.get_paths()["purelib"])  # the project venv's site-packages (mounted read-only)
PTH = SITE / f"agileplus_evil_{os.getpid()}.pth"

ESCAPES = '''python3 - <<'PY'
import ctypes, os, socket, stat
libc = ctypes.CDLL(None, use_errno=True)
def said(name, ok):
    print(("LEAK:" if ok else "blocked:") + name, flush=True)
class Handle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("f", ctypes.c_ubyte * 128)]
handle, mount_id = Handle(bytes=128), ctypes.c_int()
print("name_to_handle_at:", libc.name_to_handle_at(-100, b"/", ctypes.byref(handle), ctypes.byref(mount_id), 0))
said("open_by_handle_at", libc.open_by_handle_at(-100, ctypes.byref(handle), os.O_RDONLY) >= 0)
said("ptrace", libc.ptrace(16, {outside_pid}, None, None) == 0)  # PTRACE_ATTACH, the test's own pid
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    said("raw_socket", True)
except OSError:
    said("raw_socket", False)
for target in ("/tmp/null2", "null2"):
    try:
        os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        said("mknod:" + target, True)
    except OSError:
        said("mknod:" + target, False)
for path in {sockets!r}:
    try:
        socket.socket(socket.AF_UNIX).connect(path)
        said("unix:" + path, True)
    except OSError:
        said("unix:" + path, False)
PY
'''


def attack_script(outside_pid: int) -> str:
    probe = lambda name, command: f'( {command} ) >/dev/null 2>&1 && echo "LEAK:{name}" || echo "blocked:{name}"\n'  # noqa: E731
    return WP + (
        'echo "agent-uid:$(id -u)"; grep "^CapEff" /proc/self/status\n'
        'awk \'{print $5}\' /proc/self/mountinfo > /tmp/mounts; echo "mounts:$(wc -l < /tmp/mounts)"\n'
        'while read -r m; do mount -o remount,bind,rw "$m" 2>/dev/null && echo "LEAK:remount:$m"; done < /tmp/mounts\n'
        + probe("pth", f"echo 'import os' > '{PTH}'")
        + probe("mount", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m")
        + ESCAPES.format(outside_pid=outside_pid, sockets=SOCKETS)
        + 'for p in /proc/[0-9]*; do echo "proc:$(tr "\\0" " " < $p/cmdline 2>/dev/null)"; done\n'
        'find / -path /proc -prune -o -type s -print 2>/dev/null | sed "s/^/socket:/"\n'
        + "".join(probe("project", f"test -e '{ROOT / name}'") for name in PROJECT)
        + 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>/dev/null; echo "shm-bytes:$(stat -c %s /dev/shm/fill)"\n'
        + probe("dev", "touch /dev/planted")
    ) + COMMIT


_RUNS: dict[str, dict] = {}  # one hostile job per worker identity, shared by the tests that read it


@pytest.fixture(params=["root", "user"])
def escapes(request, transactional_db, tmp_path_factory):
    """What the hostile job printed and what the worker recorded (run once per worker identity)."""
    require_root()
    if request.param not in _RUNS:
        _RUNS[request.param] = _run_escapes(request.param, tmp_path_factory)
    return _RUNS[request.param]


def _run_escapes(who: str, tmp_path_factory) -> dict:
    with pytest.MonkeyPatch.context() as monkeypatch:
        worker = WorkerAs(who, monkeypatch)
        try:
            attack = hostile(worker.folder(tmp_path_factory.mktemp(who)), attack_script(os.getpid()),
                             agent={"network": "none", "limits": {"shm_mb": SHM_MB}})
            worker.prepare(attack)
            main_before = attack.repo.head("main")
            job = worker.run(attack)
            return {"who": who, "log": job_log(job), "state": job.state, "manifest": job.manifest,
                    "main_moved": attack.repo.head("main") != main_before, "chain": attack.chain_verifies()}
        finally:
            worker.close()
            PTH.unlink(missing_ok=True)


def leaks(log: str) -> list[str]:
    return [line for line in log.splitlines() if "LEAK:" in line]


def test_the_agent_runs_without_any_capability_as_a_non_root_uid(escapes):
    assert f"agent-uid:{SANDBOX_UID}" in escapes["log"], escapes["log"]
    assert "CapEff:\t0000000000000000" in escapes["log"]


def test_the_manifest_shows_the_agent_capabilities_and_uid(escapes):
    sandbox = escapes["manifest"]["sandbox"]
    assert (sandbox["capabilities"], sandbox["uid"]) == ("none", SANDBOX_UID)


def test_no_mount_of_the_sandbox_can_be_remounted_writable(escapes):
    mounts = int(escapes["log"].split("mounts:")[1].split()[0])
    assert mounts > 10  # every mount was tried
    assert not [line for line in leaks(escapes["log"]) if "remount" in line]


def test_the_manifest_says_what_bounds_the_memory_the_job_or_each_process_and_why(escapes):
    memory = escapes["manifest"]["sandbox"]["memory"]
    if escapes["who"] == "root":
        assert memory == {"scope": "job", "cgroup": "v1" if Path("/sys/fs/cgroup/memory").is_dir() else "v2"}
    else:  # no cgroup folder delegated to this user: the honest fallback
        assert memory["scope"] == "process" and "delegate" in memory["why"], memory


def test_a_pth_file_cannot_be_planted_in_the_project_venv(escapes):
    assert "blocked:pth" in escapes["log"] and not PTH.exists()


@pytest.mark.parametrize("attempt", ["mount", "open_by_handle_at", "ptrace", "raw_socket", "mknod:/tmp/null2",
                                     "mknod:null2", "dev"])
def test_root_only_system_calls_are_refused(escapes, attempt):
    assert f"blocked:{attempt}" in escapes["log"], escapes["log"]


def test_no_process_outside_the_sandbox_is_visible(escapes):
    processes = [line for line in escapes["log"].splitlines() if line.startswith("proc:")]
    assert processes and len(processes) < 10
    # bwrap's own first process, the agent's shell and its children: not the worker, not this test
    assert not [p for p in processes if "-m pytest" in p or "-m agileplus" in p], processes


def test_the_database_redis_and_nats_unix_sockets_are_not_in_the_agent_view(escapes):
    assert [f"blocked:unix:{path}" in escapes["log"] for path in SOCKETS] == [True] * len(SOCKETS)
    assert [line for line in escapes["log"].splitlines() if line.startswith("socket:")] == []


def test_the_project_folder_is_not_in_the_agent_view_but_its_read_only_install_folders(escapes):
    assert escapes["log"].count("blocked:project") == len(PROJECT)


def test_dev_shm_is_a_tmpfs_capped_at_the_job_limit(escapes):
    assert f"shm-bytes:{SHM_MB << 20}" in escapes["log"], escapes["log"]


def test_every_refused_escape_leaves_the_job_done_main_unchanged_and_the_chain_whole(escapes):
    assert leaks(escapes["log"]) == []
    assert escapes["state"] == "succeeded" and not escapes["main_moved"] and escapes["chain"]


HOG = ('python3 -c "import time; b = bytearray({mb} << 20); b[::4096] = b\'x\' * len(b[::4096]); '
       'print(\'holding\', flush=True); time.sleep(30)" &\n')


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["root", "user"])
def test_three_processes_each_under_the_limit_stop_the_job_at_its_memory_limit(who, tmp_path, monkeypatch):
    require_root()
    worker = WorkerAs(who, monkeypatch)
    marker = uuid.uuid4().hex[:8]
    script = WP + COMMIT + f"echo {marker}\n" + HOG.format(mb=150) * 3 + "wait\necho SURVIVED\n"
    try:
        attack = hostile(worker.folder(tmp_path), script, agent={"network": "none", "limits": {"memory_mb": 256}})
        worker.prepare(attack)
        main_before = attack.repo.head("main")
        with delegated_cgroups(worker.user) if worker.user else contextlib.nullcontext():
            job = worker.run(attack)
        log = job_log(job)

        assert job.state == "failed" and job.current_activity == "memory_limit", (job.error, log)
        assert "over its memory limit of 256 MB" in job.error and "SURVIVED" not in log
        assert "Limit: memory_limit" in log and job.result["limit"]["reason"] == "memory_limit"
        assert Event.objects.filter(subject=job_event(job.id, "limit_exceeded")).exists()
        wp = WorkPackage.objects.get(feature=attack.feature, code="WP01")
        assert wp.state == "blocked" and job.manifest["sandbox"]["memory"]["scope"] == "job"
        assert attack.repo.has_branch("feat/003-auth-system-WP01")  # the partial commit kept
        assert attack.repo.head("main") == main_before and attack.chain_verifies()
    finally:
        worker.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["root", "user"])
def test_what_the_job_writes_to_its_tmpfs_counts_against_its_memory_limit(who, tmp_path, monkeypatch):
    require_root()
    worker = WorkerAs(who, monkeypatch)
    # /tmp is a 512 MB tmpfs: its own size cap would let 200 MB through; the job's memory does not.
    script = WP + COMMIT + "dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1 | tail -1\necho SURVIVED\n"
    try:
        attack = hostile(worker.folder(tmp_path), script, agent={"network": "none", "limits": {"memory_mb": 96}})
        worker.prepare(attack)
        with delegated_cgroups(worker.user) if worker.user else contextlib.nullcontext():
            job = worker.run(attack)

        assert job.state == "failed" and job.current_activity == "memory_limit", (job.error, job_log(job))
    finally:
        worker.close()


CHECK = """import os
remounted = os.system("mount -o remount,bind,rw / 2>/dev/null") == 0
caps = [line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff")][0]
print("Ran 1 test in 0.001s")
print()
print("OK" if int(caps, 16) == 0 and os.getuid() == {uid} and not remounted else "FAILED (failures=1)")
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["root", "user"])
def test_a_review_check_runs_the_agent_code_without_any_capability(who, tmp_path, monkeypatch):
    require_root()
    worker = WorkerAs(who, monkeypatch)
    test = CHECK.format(uid=SANDBOX_UID)
    script = WP + f"mkdir -p \"$wp\" && cat > \"$wp/test_caps.py\" <<'PYEOF'\n{test}PYEOF\n" + COMMIT
    checks = [{"name": "tests", "command": "python3 wp01/test_caps.py", "parser": "unittest"}, {"name": "governance"}]
    try:
        attack = hostile(worker.folder(tmp_path), script, wps={"WP01": []}, review={"checks": checks})
        worker.prepare(attack)
        assert worker.run(attack).state == "succeeded"

        review = worker.cli(attack, "review", "003", "WP01", "--inline", "--apply")

        assert review.returncode == 0, review.stdout + review.stderr
        assert "All tests pass (1/1)" in review.stdout
    finally:
        worker.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["root", "user"])
def test_a_refused_escape_the_agent_reports_is_recorded_and_blocks_the_wp_keeping_its_commits(
        who, tmp_path, monkeypatch):
    require_root()
    worker = WorkerAs(who, monkeypatch)
    script = WP + COMMIT + "mount -o remount,bind,rw /usr\necho after-the-attempt\n"
    try:
        attack = hostile(worker.folder(tmp_path), script, agent={"network": "none"})
        worker.prepare(attack)
        main_before = attack.repo.head("main")

        job = worker.run(attack)

        log = job_log(job)
        assert job.state == "failed" and job.current_activity == "escape_refused", (job.error, log)
        assert "Sandbox: refused a privileged operation the agent tried: mount" in log
        assert job.result["refused_escapes"] and "mount" in job.result["refused_escapes"][0]
        assert Event.objects.filter(subject=job_event(job.id, "escape_refused")).exists()
        wp = WorkPackage.objects.get(feature=attack.feature, code="WP01")
        assert wp.state == "blocked"
        assert attack.repo.has_branch("feat/003-auth-system-WP01")  # its commit kept
        assert attack.repo.head("main") == main_before and attack.chain_verifies()
    finally:
        worker.close()
