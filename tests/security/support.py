"""A hostile agent: the ``command`` harness running a shell script the test writes, dispatched
for real (`agileplus implement --inline`, a worker process with its own data folder). The script
prints what it managed to do; the tests read the job's log, its result and the disk."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agileplus.audit.chain import verify_chain
from agileplus.dispatch.models import DispatchJob, JobLogLine
from tests.support.farm import ROOT, TargetRepo, import_target, job_env, make_target_repo

WORKER = "w-sec"
SLUG = "003-auth-system"


@dataclass
class Attack:
    tmp_path: Path
    repo: TargetRepo
    feature: object

    @property
    def data_dir(self) -> Path:
        return self.tmp_path / "cli"

    @property
    def worker_root(self) -> Path:
        return self.data_dir / "worker" / WORKER

    def mirror(self) -> Path:
        return next((self.worker_root / "mirrors").glob("*.git"))

    def run(self, wp: str = "WP01", **env: str) -> DispatchJob:
        environment = job_env(self.data_dir, None, AGILEPLUS_BROKER_DIR=str(self.tmp_path / "broker"),
                              AGILEPLUS_WORKER_NAME=WORKER, **env)
        environment.pop("AGILEPLUS_SANDBOX", None)  # the sandbox is on: the default
        done = subprocess.run([sys.executable, "-m", "agileplus", "implement", "003", "--wp", wp, "--inline"],
                              cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240)
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        return DispatchJob.objects.filter(feature=self.feature, wp__code=wp).order_by("-queued_at").first()

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        environment = job_env(self.data_dir, None, AGILEPLUS_BROKER_DIR=str(self.tmp_path / "broker"),
                              AGILEPLUS_WORKER_NAME=WORKER, **env)
        return subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=environment,
                              capture_output=True, text=True, timeout=240)

    def chain_verifies(self) -> bool:
        return verify_chain(self.feature).ok


def job_log(job: DispatchJob) -> str:
    return "\n".join(JobLogLine.objects.filter(job=job).order_by("seq").values_list("line", flat=True))


def hostile(tmp_path: Path, script: str, *, wps: dict[str, list[str]] | None = None, agent: dict | None = None,
            environment: dict[str, str] | None = None, review: dict | None = None) -> Attack:
    """A target repository whose agent runs ``script`` (sh, in its repository) for every WP."""
    (tmp_path / "cli").mkdir(parents=True, exist_ok=True)
    repo = make_target_repo(tmp_path, wps=wps or {"WP01": [], "WP02": []}, files={"attack.sh": script},
                            environment=environment, review=review,
                            agent={"command": "sh attack.sh", "timeout_seconds": 60, "retries": 0, **(agent or {})})
    return Attack(tmp_path, repo, import_target(repo))


# The WP code from the prompt (as the scripted agent reads it), then one commit under <wp>/.
WP = 'WP=$(grep -o "WP[0-9][0-9]" "$AGILEPLUS_PROMPT_FILE" | head -1); wp=$(echo "$WP" | tr A-Z a-z)\n'
COMMIT = ('mkdir -p "$wp" && echo work > "$wp/file_1.txt" && git add -A "$wp" && '
          'git commit -qm "feat($WP): work" && echo COMMITTED\n')


def sandbox_on() -> bool:
    return os.environ.get("AGILEPLUS_SANDBOX", "").lower() != "off"
