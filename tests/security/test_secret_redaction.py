"""A real agent (a shell script run by the `command` harness, on a real `agileplus worker`) prints
the secret it was given plainly, base64, hex (also as od prints it), reversed and printf-wrapped,
makes it its current activity, writes it to stderr, puts it in two commit messages and in the path
of a forbidden file, and prints a harness credential and another WP's secret of the worker found
in /proc. No form of either is stored in any table, served by the API, the CLI, the dashboard or
the MCP tools, or written into the audit chain, which still verifies; the secret in a commit
message blocks the WP as a governance violation."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from django.test import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from rest_framework.test import APIClient

from agileplus.api.services import create_api_token
from agileplus.audit.chain import verify_chain
from agileplus.audit.models import AuditEntry
from agileplus.dispatch.models import DispatchJob, JobLogLine
from tests.support.farm import (
    ROOT,
    import_target,
    job_env,
    make_target_repo,
    outbox_file,
    start_worker,
    stop,
    wait_until,
)
from tests.support.server import subprocess_env
from tests.support.stored import every_stored_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LEAKY_AGENT = Path(__file__).resolve().parents[1] / "support" / "agents" / "leaky_agent.sh"
HOLD_SECONDS = 120  # the most the agent keeps its last line as the current activity, waiting to be read


def forms(value: str) -> dict[str, str]:
    """The ways the agent prints ``value`` (base64 without its last, padding-dependent characters)."""
    raw = value.encode()
    return {
        "plain": value,
        "reversed": value[::-1],
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "hex bytes as od prints them": " ".join(f"{b:02x}" for b in raw[:8]),
        "base64": base64.b64encode(raw).decode()[:-4],
        "base64 of echo": base64.b64encode(raw + b"\n").decode()[:-4],
    }


def leaks(text: str, values: list[str]) -> list[str]:
    return [f"{name} form of {value[:6]}…" for value in values for name, form in forms(value).items()
            if form in text]


def agileplus(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "agileplus", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    return done.stdout + done.stderr


def mcp_outputs(feature: str) -> str:
    async def calls() -> str:
        params = StdioServerParameters(command=sys.executable, args=["-m", "agileplus", "mcp", "--actor", "human:eve"],
                                       env=subprocess_env(), cwd=str(ROOT))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            results = [await session.call_tool("wp_log", {"feature": feature, "wp": "WP01", "tail": 500}),
                       await session.call_tool("feature_status", {"feature": feature}),
                       await session.call_tool("verify_audit", {"feature": feature})]
        return "\n".join(part.text for r in results for part in r.content if hasattr(part, "text"))

    return anyio.run(calls)


def test_no_form_of_a_secret_the_agent_printed_is_stored_or_served_anywhere(tmp_path, django_user_model):
    secret = "lk-" + secrets.token_hex(12)
    credential = "sk-ant-api03-" + secrets.token_urlsafe(24)
    not_given = "other-" + secrets.token_hex(12)
    read = outbox_file(tmp_path, "activity-read")  # the agent runs on until the test has read its activity
    repo = make_target_repo(tmp_path, wps={"WP01": []}, agent={"command": f"sh {LEAKY_AGENT}"},
                            environment={"LEAK": "${{ secrets.LEAK_TOKEN }}", "HOLD_SECONDS": str(HOLD_SECONDS),
                                         "RELEASE_FILE": str(read)})
    feature = import_target(repo)
    env = job_env(tmp_path / "cli", None, AGILEPLUS_BROKER_DIR=str(tmp_path / "broker"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token('eve', 'human')}")
    dashboard = Client()
    dashboard.force_login(django_user_model.objects.create_superuser("root", password="a-long-password"))
    served: dict[str, str] = {}

    worker = start_worker("w1", tmp_path / "w1", broker_url=None, broker_dir=tmp_path / "broker",
                          AGILEPLUS_SECRET_LEAK_TOKEN=secret, ANTHROPIC_API_KEY=credential,
                          AGILEPLUS_SECRET_OTHER_WP=not_given)
    try:
        implement = subprocess.Popen([sys.executable, "-m", "agileplus", "implement", "003", "--wp", "WP01"], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        job = wait_until(lambda: DispatchJob.objects.filter(feature=feature, current_activity__startswith="activity:")
                         .first(), timeout=90, what="the agent's last line to become its current activity")
        # While the agent runs: its current activity, as every reader serves it.
        served["API job, running"] = json.dumps(api.get(f"/api/jobs/{job.id}").json())
        served["API feature, running"] = json.dumps(api.get(f"/api/features/{feature.slug}").json())
        served["dashboard, running"] = dashboard.get(f"/features/{feature.slug}/panel").content.decode()
        served["status, running"] = agileplus("status", "003", env=env)
        read.touch()
        assert "Current task: activity: " in served["status, running"], "the job ended before its activity was read"
        served["implement"] = implement.communicate(timeout=120)[0]
        job = DispatchJob.objects.get(pk=job.id)
    finally:
        stop([worker])

    log = "\n".join(JobLogLine.objects.filter(job=job).values_list("line", flat=True))
    assert "plain: ***" in log and "wrapped: [***]" in log  # the agent did print them
    assert job.state == "failed" and "carries what looks like a secret value held by the farm" in job.error
    entry = AuditEntry.objects.filter(feature=feature).order_by("-seq").first()
    assert entry.transition == "WP01:doing->blocked" and entry.metadata["reason"] == "governance_violation"
    assert {"secret", "forbidden_path"} <= {e["rule"] for e in entry.evidence_refs}
    assert any(e.get("path") == "secrets/***.txt" for e in entry.evidence_refs)
    assert verify_chain(feature).ok
    served |= {
        "database (every table)": every_stored_text(),
        "worker output": worker.output(),
        "logs": agileplus("logs", "WP01", "--feature", "003", env=env),
        "jobs show --json": agileplus("jobs", "show", job.id, "--json", env=env),
        "status --json": agileplus("status", "003", "--json", env=env),
        "API job": json.dumps(api.get(f"/api/jobs/{job.id}").json()),
        "API job log": json.dumps(api.get(f"/api/jobs/{job.id}/log").json()),
        "API feature": json.dumps(api.get(f"/api/features/{feature.slug}").json()),
        "API events": json.dumps(api.get("/api/events").json()),
        "API audit": json.dumps(api.get(f"/api/features/{feature.slug}/audit").json()),
        "dashboard": dashboard.get(f"/features/{feature.slug}/").content.decode(),
        "MCP tools": mcp_outputs("003"),
    }
    found = {where: leaks(text, [secret, credential, not_given]) for where, text in served.items()}
    assert not {where: what for where, what in found.items() if what}, found
