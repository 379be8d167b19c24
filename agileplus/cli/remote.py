"""The CLI against a remote farm: with ``AGILEPLUS_URL`` (and ``AGILEPLUS_TOKEN``) set, the same
commands call the REST API instead of the local database, and print the same screens. The
actor is the token's identity, so ``--actor`` is not offered remotely."""

from __future__ import annotations

import json
import sys
import time

import click
import httpx
from django.conf import settings

from agileplus.cli import render
from agileplus.cli.context import feature_and_wp, json_option
from agileplus.cli.output import echo, emit_error
from agileplus.core.errors import DomainError

EXIT_BY_STATUS = {400: 2, 401: 5, 403: 5, 404: 4, 409: 3, 429: 7}
CONFLICT_CODES = ("illegal_transition", "blocked_by_dependency", "stale_state", "merge_conflict", "merge_busy",
                  "merge_rejected")
POLL_SECONDS = 0.3


class RemoteError(DomainError):
    def __init__(self, status: int, body: dict):
        error = body.get("error") or {}
        super().__init__(error.get("message") or f"HTTP {status}", field=error.get("field"), fix=error.get("fix"))
        self.code = error.get("code") or "http_error"
        self.exit_code = EXIT_BY_STATUS.get(status, 1)
        self.http_status = status


class Farm:
    def __init__(self, url: str, token: str | None) -> None:
        if not token:
            raise DomainError("AGILEPLUS_URL is set but AGILEPLUS_TOKEN is not", field="AGILEPLUS_TOKEN",
                              fix="ask an admin for a token (python manage.py api_token USER --role human)")
        self.http = httpx.Client(base_url=url.rstrip("/") + "/api", timeout=60,
                                 headers={"Authorization": f"Token {token}", "Accept": "application/json"})

    def call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DomainError(f"cannot reach the farm at {self.http.base_url}: {exc}", field="AGILEPLUS_URL",
                              fix="check the address and that `agileplus web` runs there") from None
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"message": response.text[:200]}}
        if response.status_code >= 400:
            raise RemoteError(response.status_code, body)
        return body

    def get(self, path: str, **params) -> dict:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict) -> dict:
        return self.call("POST", path, json=body)

    def wait_request(self, request: dict) -> dict:
        """Poll a review request (answered 202) until a worker has run it; its error is raised."""
        while request["state"] not in ("done", "failed"):
            time.sleep(POLL_SECONDS)
            request = self.get(f"/review-requests/{request['id']}")
        if request["state"] == "failed":
            error = request.get("error") or {}
            raise RemoteError(409 if error.get("code") in CONFLICT_CODES else 400, {"error": error})
        return request


def farm() -> Farm:
    return Farm(settings.REMOTE_URL, settings.REMOTE_TOKEN or None)


def _out(data, as_json: bool, lines: list[str]) -> None:
    echo(json.dumps(data, indent=2, default=str) if as_json else "\n".join(lines))


class RemoteGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DomainError as exc:
            emit_error(exc, as_json=bool(ctx.meta.get("json")))  # marked by --json (context.json_option)
            sys.exit(exc.exit_code)


@click.group(cls=RemoteGroup, context_settings={"help_option_names": ["-h", "--help"]})
def remote_cli() -> None:
    """AgilePlus against a remote farm (AGILEPLUS_URL, AGILEPLUS_TOKEN)."""


@remote_cli.command()
@click.argument("feature", required=False)
@json_option
def status(feature: str | None, as_json: bool) -> None:
    """Show a feature's work packages (or one line per feature)."""
    if feature:
        data = farm().get(f"/features/{feature}")
        _out(data, as_json, render.status_lines(data))
    else:
        rows = farm().get("/features")["results"]
        _out(rows, as_json, render.overview_lines(rows))


@remote_cli.group()
def wp() -> None:
    """Work package commands."""


@wp.command("transition")
@click.argument("refs", nargs=-1, required=True, metavar="FEATURE WP")
@click.option("--to", "target", required=True)
@click.option("--feature", default=None, help="The feature (or give it before WP)")
@click.option("--note", default=None, help="Why: kept in the audit entry's metadata")
@json_option
def wp_transition(refs: tuple[str, ...], target: str, feature: str | None, note: str | None, as_json: bool) -> None:
    feature, wp_code = feature_and_wp(refs, feature)
    if not feature:
        raise DomainError("a remote farm needs the feature of the WP", field="FEATURE",
                          fix=f"agileplus wp transition FEATURE {wp_code} --to {target}")
    data = farm().post(f"/features/{feature}/wps/{wp_code}/transition",
                       {"to": target, **({"note": note} if note else {})})
    _out(data, as_json, [f"{data['wp']}: {data['from']} → {data['to']} (by {data['actor']})"])


@remote_cli.command()
@click.argument("feature")
@click.argument("wp_code", metavar="WP")
@click.option("--to", "target", required=True)
@json_option
def move(feature: str, wp_code: str, target: str, as_json: bool) -> None:
    """Move a WP; to done merges it (humans and CI only)."""
    remote = farm()
    data = remote.post(f"/features/{feature}/wps/{wp_code}/move", {"to": target})
    if "url" in data:  # through the merge queue, on a review worker
        data = remote.wait_request(data)["result"]
    lines = [f"{data['wp']} moved to {data['to']}"]
    if data.get("unblocked"):
        lines.append("Now unblocked: " + ", ".join(data["unblocked"]))
    _out(data, as_json, lines)


@remote_cli.command()
@click.argument("feature")
@click.option("--wp", "wp_code")
@click.option("--all", "all_ready", is_flag=True)
@click.option("--agent")
@click.option("--timeout", type=int)
@click.option("--fresh", is_flag=True)
@json_option
def implement(feature: str, wp_code: str | None, all_ready: bool, agent: str | None, timeout: int | None,
              fresh: bool, as_json: bool) -> None:
    """Dispatch a WP (or every ready WP) on the remote farm; --fresh starts the WP over from main."""
    body = {k: v for k, v in {"wp": wp_code, "all": all_ready or None, "agent": agent, "timeout": timeout,
                              "fresh": fresh or None}.items() if v is not None}
    data = farm().post(f"/features/{feature}/implement", body)
    moved = render.fresh_start_lines(data["jobs"][0]["wp"], data["fresh_start"]) if data.get("fresh_start") else []
    _out(data, as_json, moved + [f"{j['wp']} → {j['harness']} (job {j['id']})" for j in data["jobs"]])


@remote_cli.command()
@click.argument("feature")
@click.argument("wp_code", metavar="WP")
@click.option("--apply", is_flag=True)
@json_option
def review(feature: str, wp_code: str, apply: bool, as_json: bool) -> None:
    """Queue the review on the farm's review workers and wait for its report."""
    remote = farm()
    report = remote.wait_request(remote.post(f"/features/{feature}/wps/{wp_code}/review", {"apply": apply}))["report"]
    _out(report, as_json, [report["text"]])
    if not report["approved"]:
        sys.exit(1)


@remote_cli.group()
def jobs() -> None:
    """Dispatch jobs."""


@jobs.command("list")
@click.option("--feature")
@click.option("--state")
@json_option
def jobs_list(feature: str | None, state: str | None, as_json: bool) -> None:
    rows = farm().get("/jobs", feature=feature, state=state)["results"]
    _out(rows, as_json, [f"{j['id']}  {j['feature']} {j['wp']}  {j['harness']:<12} {j['state']:<10} "
                         f"attempt {j['attempt']}  {j['worker'] or '-'}" for j in rows] or ["No jobs."])


@jobs.command("show")
@click.argument("job_id")
@json_option
def jobs_show(job_id: str, as_json: bool) -> None:
    data = farm().get(f"/jobs/{job_id}")
    _out(data, as_json, [f"{k}: {data[k]}" for k in ("id", "feature", "wp", "harness", "state", "attempt",
                                                     "worker", "branch", "base_commit", "error") if data.get(k)])


@jobs.command("cancel")
@click.argument("job_id")
def jobs_cancel(job_id: str) -> None:
    data = farm().post(f"/jobs/{job_id}/cancel", {})
    echo(f"{data['id']}: {'cancelled' if data['state'] == 'cancelled' else 'cancel requested'}")


@remote_cli.group()
def events() -> None:
    """The audit chain."""


@events.command("audit-verify")
@click.option("--feature", required=True)
@json_option
def audit_verify(feature: str, as_json: bool) -> None:
    data = farm().get(f"/features/{feature}/audit/verify")
    _out(data, as_json, render.verification_lines(data))
    if not data.get("ok"):
        sys.exit(1)
