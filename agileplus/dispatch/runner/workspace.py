"""A run's workspace and launch: the project's mirror and the WP's worktree (``Workspace``), then
what the agent is started with (``Launch``: environment with secrets resolved, the job's API token,
prompt file, sandbox, model gateway, a resumed session, the manifest a replay repeats). Part of
``JobRun`` (``WorkspaceSteps``); ``worker_root`` and ``farm_id`` say where and whose.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection

from agileplus.api.tokens import mint_job_token
from agileplus.core.canonical import sha256_hex
from agileplus.core.secrets import HarnessCredentials, agent_base_environment, harness_credentials, resolve_environment
from agileplus.dispatch import sessions
from agileplus.dispatch.candidacy import CANDIDATE_ENV
from agileplus.dispatch.gateway import plan_gateway, settings_files, wire_gateway
from agileplus.dispatch.models import AgentSession, DispatchJob
from agileplus.dispatch.prompt import PackagedPrompt, build_prompt
from agileplus.dispatch.reaper import worker_name
from agileplus.dispatch.sandboxing import job_sandbox, start_egress
from harnesses import git as g
from harnesses.adapters.command import PROMPT_FILE_ENV
from harnesses.base import HarnessAdapter, HarnessError, Invocation, RunSpec, cli_version
from harnesses.process import JOB_MARK_ENV
from harnesses.sandbox import SANDBOX_HOME, Sandbox, sandbox_status

JOB_TOKEN_ENV, JOB_ID_ENV = "AGILEPLUS_TOKEN", "AGILEPLUS_JOB_ID"  # what the remote CLI / API client reads


def worker_root(name: str | None = None) -> Path:
    return settings.WORKER_DATA_DIR / (name or worker_name())


@dataclass
class Workspace:
    """Where the agent works: its worktree on ``branch``, started from ``base``."""

    worktree: Path
    base: str
    branch: str
    main: str
    name: str  # the worktree's folder name under .worktrees/
    original: DispatchJob | None = None  # the job a replay repeats
    mirror: Path | None = None  # the worker's mirror: the only repository the worker runs git in
    refs_before: dict[str, str] = field(default_factory=dict)  # the agent repository's refs at the start


@dataclass
class Launch:
    """How the agent is started: prompt (and its file), command, environment, manifest."""

    prompt: PackagedPrompt
    prompt_file: Path
    mark: str  # JOB_MARK_ENV: finds every process the agent began
    env: dict[str, str]
    invocation: Invocation
    manifest: dict
    sandbox: Sandbox | None = None
    egress: object | None = None  # harnesses.egress.EgressProxy under agent.network: model
    resumed: AgentSession | None = None  # the stored session this run resumes


def build_manifest(job: DispatchJob, adapter: HarnessAdapter, invocation: Invocation, prompt_text: str,
                   workspace: Workspace, environment_names: list[str], sandbox: dict | None = None) -> dict:
    """Everything that determines a run (no secret values), and its hash: a replay runs this again."""
    feature, config = job.feature, job.feature.agent_config or {}
    manifest = {
        "prompt_sha256": sha256_hex(prompt_text), "argv": invocation.argv, "harness": job.harness,
        "cli_version": getattr(adapter, "pinned_version", "") or installed_version(invocation.argv[0]),
        "base_sha": workspace.base, "branch": workspace.branch,
        "constraints": feature.constraints or {}, "timeout_seconds": job.timeout_seconds,
        "environment_names": environment_names, "budget": config.get("budget") or {}, "model": config.get("model"),
        "max_turns": config.get("max_turns"), "idle_timeout_seconds": config.get("idle_timeout_seconds"),
        "gates": [c.get("name") for c in ((feature.project.config or {}).get("review") or {}).get("checks") or []
                  if isinstance(c, dict)],
        **({"sandbox": sandbox} if sandbox is not None else {}),
    }
    manifest["hash"] = sha256_hex(manifest)
    return manifest


def installed_version(binary: str) -> str:
    """The agent CLI's own ``--version`` line (cached per binary), "" if it cannot say."""
    try:
        return cli_version(binary) or ""
    except (OSError, subprocess.SubprocessError):
        return ""


def farm_id() -> str:
    """Which farm (database) a process belongs to: agents' marks carry it, so one machine can
    host workers of several farms without one reaping the other's agents."""
    db = connection.settings_dict
    return sha256_hex(f"{connection.vendor}|{db.get('HOST')}|{db.get('PORT')}|{db.get('NAME')}")[:10]


class WorkspaceSteps:
    """The workspace and launch steps of ``JobRun``."""

    def prepare_workspace(self) -> Workspace:
        """The project's mirror and this WP's worktree, on the original's base for a replay."""
        feature, wp = self.job.feature, self.job.wp
        root = worker_root(self.claim.worker)
        mirror = self.mirror = g.ensure_mirror(root, feature.project.repo_url)
        branch = self.branch = self.candidacy.branch if self.candidacy else wp.branch_name
        main = feature.project.main_branch
        original = self._replayed_job()
        name = g.worktree_name(feature.slug, wp.code) + (f"-c{self.candidacy.index}" if self.candidacy else "")
        worktree, base, start = g.create_worktree(mirror, root / ".worktrees", name, branch,
                                                  original.manifest["base_sha"] if original else g.origin_ref(main),
                                                  reset=original is not None)
        # The repository was just made by the worker (init, then the branch at start): its only ref.
        return Workspace(worktree=worktree, base=base, branch=branch, main=main, name=name, original=original,
                         mirror=mirror, refs_before={f"refs/heads/{branch}": start})

    def prepare_launch(self, workspace: Workspace) -> Launch:
        """Environment (secrets resolved, remembered for redaction), prompt file, command, manifest."""
        job, feature = self.job, self.job.feature
        resolved = resolve_environment(self.config.get("environment") or {})
        job_token = mint_job_token(job)  # acts on this job and its WP only, this attempt; revoked in run()
        self.secret_values = [*resolved.secret_values, job_token]
        # A candidate neither resumes the WP's session nor keeps one (its siblings would overwrite it).
        previous = sessions.previous_session(job) if not workspace.original and not self.candidacy else None
        resumed = self.prepare_session(workspace, previous) if not self.candidacy else None
        prompt = self.prepare_prompt(workspace, resolved.names, previous, resumed)
        prompt_dir = Path(tempfile.mkdtemp(prefix=f"agileplus-{job.id}-"))
        prompt_file = prompt_dir / "prompt.md"
        prompt_file.write_text(prompt.text)
        mark = f"{farm_id()}:{job.id}.{self.claim.attempt}"
        # The worker's own model endpoint and key for this harness, never the repository's (they come
        # last: a repository must not point the worker's key at another host); never stored.
        credentials = harness_credentials(job.harness)
        self.secret_values = self.secret_values + credentials.secret_values()  # redacted like injected secrets
        credentials = self.start_gateway(credentials)  # the agent gets the gateway and a placeholder instead
        env = {**agent_base_environment(), **resolved.env, **credentials.env, PROMPT_FILE_ENV: str(prompt_file),
               JOB_MARK_ENV: mark, JOB_TOKEN_ENV: job_token, JOB_ID_ENV: job.id,
               **({CANDIDATE_ENV: str(self.candidacy.index)} if self.candidacy else {})}
        spec = RunSpec(prompt=prompt.text, workdir=workspace.worktree, env=env, model=self.config.get("model"),
                       timeout_seconds=job.timeout_seconds,
                       allowed_paths=list((feature.constraints or {}).get("allowed_paths") or []),
                       forbidden_paths=list((feature.constraints or {}).get("forbidden_paths") or []),
                       options={k: v for k, v in self.config.items() if k not in ("environment",)},
                       resume_session=resumed.session_id if resumed else None,
                       session_dir=self.session_dir(workspace))
        invocation = self.adapter.build_command(spec)
        env.update(invocation.env)
        sandbox = job_sandbox(harness_binary=invocation.argv[0] if invocation.argv else None,
                              worktree=workspace.worktree, mirror=workspace.mirror, prompt_dir=prompt_dir,
                              config=self.config, credentials=credentials, path_env=env.get("PATH"))
        if self.capture is not None:
            sandbox.spec.home_folders[self.adapter.session_folder(workspace.worktree)] = self.capture.folder
        self.egress = start_egress(sandbox, harness=job.harness, config=self.config, env=env, gateway=self.gateway)
        self.sandbox_info = sandbox.describe()
        manifest = build_manifest(job, self.adapter, invocation, prompt.text, workspace, resolved.names,
                                  sandbox=self.sandbox_info)
        if resumed:
            manifest["resumed_from_session"] = resumed.session_id
        return Launch(prompt=prompt, prompt_file=prompt_file, mark=mark, env=env, invocation=invocation,
                      manifest=manifest, sandbox=sandbox, egress=self.egress, resumed=resumed)

    def start_gateway(self, credentials: HarnessCredentials) -> HarnessCredentials:
        """The job's model gateway for the providers the worker holds keys of: each call is
        checked against the budgets, metered and written to the ledger as it ends. Returns the
        credentials as the agent gets them (the gateway's URL and a placeholder; no key files)."""
        network = self.config.get("network", "model")
        sandboxed = sandbox_status()["mode"] == "bwrap" and network == "model"
        self.gateway = plan = plan_gateway(credentials.env, sandboxed=sandboxed)
        if plan is None:
            return credentials
        wire_gateway(plan, self.job, self.claim.attempt, self.claim.worker, self.config)
        self.say(f"Model gateway: {', '.join(sorted(plan.routes))} through the worker "
                 f"(accounts {', '.join(plan.accounts)}); the agent holds a per-job placeholder key")
        return HarnessCredentials(env=plan.agent_env, files=settings_files(credentials.files),
                                  missing=credentials.missing)

    def stop_gateway(self) -> None:
        """No new calls; those in flight (an agent killed mid-answer) are read to their end and billed."""
        if self.gateway is not None:
            self.gateway.gateway.stop()
            if not self.gateway.gateway.drain(settings.MODEL_GATEWAY_DRAIN_SECONDS):
                self.say(f"Model gateway: calls still in flight after {settings.MODEL_GATEWAY_DRAIN_SECONDS:g}s "
                         "are billed when they end")

    def prepare_session(self, workspace: Workspace, previous: AgentSession | None) -> AgentSession | None:
        """Under the sandbox, for a CLI that keeps its session in a folder: that folder is this
        attempt's host folder (captured at each heartbeat). The previous session, when this CLI
        resumes and its files were kept, is restored there: returned, it is the one to resume."""
        folder = self.adapter.session_folder(workspace.worktree)
        if folder is None or sandbox_status()["mode"] != "bwrap":
            return None
        host = worker_root(self.claim.worker) / "sessions" / f"{self.job.id}.{self.claim.attempt}"
        shutil.rmtree(host, ignore_errors=True)
        host.mkdir(parents=True)
        self.capture = sessions.SessionCapture(self.claim, self.job.harness, host, self.adapter.session_databases)
        if previous is None or not self.adapter.resumes or not previous.files:
            return None
        restored = self.capture.restore(previous)
        try:
            self.adapter.adopt_session(self.capture.folder, workspace.worktree, previous.session_id)
        except HarnessError as exc:  # a store that cannot be moved: a fresh session, told what happened
            self.say(f"Not resuming session {previous.session_id}: {exc}")
            self.capture.remove()
            self.capture.folder.mkdir(parents=True)
            return None
        self.capture.session_id = previous.session_id  # the same session continues
        self.say(f"Resuming session {previous.session_id} of attempt {previous.attempt} on "
                 f"{previous.worker or 'another worker'} ({len(restored)} session files restored)")
        return previous

    def session_dir(self, workspace: Workspace) -> str | None:
        """The session folder as the agent sees it, bound into the sandbox's HOME; None when
        this attempt keeps no session folder."""
        if self.capture is None:
            return None
        return f"{SANDBOX_HOME}/{self.adapter.session_folder(workspace.worktree)}"

    def prepare_prompt(self, workspace: Workspace, environment_names: list[str],
                       previous: AgentSession | None = None, resumed: AgentSession | None = None) -> PackagedPrompt:
        """A replay runs the original's exact prompt on the original's base; a resumed session is
        told what happened (and the job's notes: a review's findings); else a fresh prompt, with
        the previous session's last log lines when it could not be resumed."""
        job, original = self.job, workspace.original
        notes = list((job.result or {}).get("notes") or [])
        if original:
            self.say(f"Replaying {original.id} (manifest {original.manifest.get('hash', '')[:12]})")
            return PackagedPrompt(original.prompt, dict(original.prompt_sizes or {}), len(job.wp.deliverables or []))
        if resumed:
            text = sessions.resume_prompt(resumed, job, notes)
            return PackagedPrompt(text, {"RESUME": len(text.encode())}, len(job.wp.deliverables or []))
        if previous:
            notes += sessions.log_summary(previous)
        return build_prompt(job.feature, job.wp, config=self.config, environment_names=environment_names,
                            base_commit=workspace.base, notes=notes, timeout_seconds=job.timeout_seconds,
                            branch=workspace.branch)

    def _replayed_job(self) -> DispatchJob | None:
        replay_of = (self.job.result or {}).get("replay_of")
        return DispatchJob.objects.filter(pk=replay_of).first() if replay_of else None
