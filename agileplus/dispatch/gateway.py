"""The model gateway of one job (harnesses/gateway.py does the proxying): which providers it may
call with the worker's keys, what the agent is told instead (the gateway's address and a
placeholder), the ledger row of each call, and the budget check before each call.

The worker's credential variables for the harness (``core.secrets.harness_credentials``) name the
providers: ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_AUTH_TOKEN`` (+ ``ANTHROPIC_BASE_URL``),
``OPENAI_API_KEY`` / ``CODEX_API_KEY`` (+ ``OPENAI_BASE_URL`` or ``OPENAI_API_BASE``),
``GEMINI_API_KEY`` / ``GOOGLE_API_KEY`` (+ ``GOOGLE_GEMINI_BASE_URL``). For each one present the
agent's environment gets the gateway's URL and the job's placeholder in their place; the real
values stay in the worker. Credential files holding a login (``auth.json``, ``.credentials.json``,
``oauth_creds.json``) are then not mounted, the CLIs' settings files are: the gateway serves API keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Count, Q, Sum

from agileplus.dispatch import accounts, reservations
from agileplus.dispatch.costs import usage_cost
from agileplus.dispatch.models import DispatchJob, ModelCall
from harnesses.gateway import DEFAULT_BASES, GATEWAY_PORT, Gateway, GatewayCall, GatewayJob, Refusal, Route
from harnesses.jsonlines import Price, price_table
from harnesses.prices import PRICES
from harnesses.process import StopReason

log = logging.getLogger(__name__)

# provider → (key variables, first found wins; base URL variables; the header the key goes in)
PROVIDER_ENV = {
    "anthropic": (("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), ("ANTHROPIC_BASE_URL",)),
    "openai": (("OPENAI_API_KEY", "CODEX_API_KEY"), ("OPENAI_BASE_URL", "OPENAI_API_BASE")),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GOOGLE_GEMINI_BASE_URL",)),
}


# The credential files that hold a login or key (not the CLI's settings): not mounted when the gateway serves.
KEY_FILES = re.compile(r"(credentials|auth|oauth_creds)\.json$")


def settings_files(files: dict[str, Path]) -> dict[str, Path]:
    """The credential files the agent still gets under the gateway: its CLI's settings, no login."""
    return {inside: host for inside, host in files.items() if not KEY_FILES.search(inside)}


def _auth(provider: str, name: str, value: str) -> dict[str, str]:
    if provider == "anthropic" and name == "ANTHROPIC_API_KEY":
        return {"x-api-key": value}
    if provider == "gemini":
        return {"x-goog-api-key": value}
    return {"authorization": f"Bearer {value}"}


def account_of(provider: str, key: str) -> str:
    """A stable name for the provider account a key belongs to, that does not reveal the key."""
    return f"{provider}:{hashlib.sha256(key.encode()).hexdigest()[:10]}"


@dataclass
class GatewayPlan:
    """What the agent is given instead of the worker's keys, and the routes the gateway serves."""

    routes: dict[str, Route]
    agent_env: dict[str, str]  # the credential variables as the agent sees them
    placeholder: str
    base: str = ""  # the gateway's URL as the agent reaches it
    local_port: int | None = None  # no sandbox: the gateway listens on the worker's loopback
    job: GatewayJob | None = None
    gateway: Gateway | None = None
    refusals: list[Refusal] = field(default_factory=list)
    job_id: str = ""  # the job whose reservation this gateway's calls spend

    def close(self) -> None:
        """No new calls, and the job's reservation released (the job ended)."""
        if self.gateway is not None:
            self.gateway.stop()
        if self.job_id:
            reservations.release(self.job_id)

    @property
    def accounts(self) -> list[str]:
        return sorted({r.account for r in self.routes.values()})


def plan_gateway(credential_env: dict[str, str], *, sandboxed: bool) -> GatewayPlan | None:
    """The routes for the keys among ``credential_env``; None when the gateway is off or there
    is no key to serve (the agent's environment is then the credentials, as before)."""
    if not settings.MODEL_GATEWAY:
        return None
    job = GatewayJob(routes={})
    gateway = Gateway(job, ca_file=settings.MODEL_GATEWAY_CA_FILE or None)
    plan = GatewayPlan(routes=job.routes, agent_env=dict(credential_env), placeholder=job.placeholder, job=job,
                       gateway=gateway)
    for provider, (keys, bases) in PROVIDER_ENV.items():
        name = next((k for k in keys if credential_env.get(k)), None)
        if name is None:
            continue
        key = credential_env[name]
        base = next((credential_env[b] for b in bases if credential_env.get(b)), DEFAULT_BASES[provider])
        job.routes[provider] = Route(provider, base, _auth(provider, name, key), account_of(provider, key))
    if not job.routes:
        return None
    if sandboxed:
        plan.base = f"http://127.0.0.1:{GATEWAY_PORT}"
    else:
        plan.local_port = gateway.listen_locally()
        plan.base = f"http://127.0.0.1:{plan.local_port}"
    for provider in job.routes:
        keys, bases = PROVIDER_ENV[provider]
        for name in keys:
            if name in plan.agent_env:
                plan.agent_env[name] = plan.placeholder
        for name in bases:
            plan.agent_env[name] = f"{plan.base}/{provider}"
    return plan


# --- the ledger -----------------------------------------------------------------------------------
def record_call(job: DispatchJob, attempt: int, worker: str, call: GatewayCall) -> ModelCall:
    """The call's ledger row, written once as it ends (from a gateway thread)."""
    close_old_connections()
    return ModelCall.objects.create(
        job_id=job.id, attempt=attempt, feature_id=job.feature_id, wp_id=job.wp_id, harness=job.harness,
        worker=worker[:255], provider=call.provider[:40], account=call.account[:100], model=call.model[:200],
        method=call.method[:10], path=call.path[:500], status=call.status, outcome=call.outcome,
        detail=call.detail[:300], input_tokens=call.usage.input_tokens, output_tokens=call.usage.output_tokens,
        cached_input_tokens=call.usage.cached_input_tokens, cost_usd=call.cost_usd, client_gone=call.client_gone,
        first_byte_ms=call.first_byte_ms, duration_ms=call.duration_ms,
        started_at=dt.datetime.fromtimestamp(call.started_at, tz=dt.UTC))


def metered_usage(job_id: str) -> dict | None:
    """What the gateway metered for the job (every attempt): tokens, and cost — None when a call
    with tokens had no price ("unknown"). None when no call went through the gateway."""
    calls = ModelCall.objects.filter(job_id=job_id).exclude(outcome="refused")
    totals = calls.aggregate(calls=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"),
                             cached=Sum("cached_input_tokens"), cost=Sum("cost_usd"),
                             unpriced=Count("id", filter=Q(cost_usd__isnull=True) & (
                                 Q(input_tokens__gt=0) | Q(output_tokens__gt=0))))
    if not totals["calls"]:
        return None
    cost = None if totals["unpriced"] else (totals["cost"] or Decimal(0)).normalize()
    return {"input_tokens": totals["input"] or 0, "output_tokens": totals["output"] or 0,
            "cached_input_tokens": totals["cached"] or 0, "cost_usd": None if cost is None else str(cost),
            "calls": totals["calls"], "source": "gateway"}


def billed_usage(job_id: str, cli_usage: dict) -> dict:
    """The job's usage as the ledger keeps it: the gateway's figures when it metered any call
    (the CLI's own beside them as ``cli_reported``, a cross-check), else the CLI's."""
    metered = metered_usage(job_id)
    if metered is None:
        return dict(cli_usage)
    reported = {k: v for k, v in cli_usage.items() if k in ("input_tokens", "output_tokens", "cached_input_tokens",
                                                             "cost_usd")}
    kept = {k: v for k, v in cli_usage.items() if k in ("turns", "model", "tests")}
    return {**kept, **metered, **({"cli_reported": reported} if reported else {})}


def cross_check(usage: dict) -> str:
    """A line saying how the CLI's self-report differs from the gateway's meter, or ''."""
    reported = usage.get("cli_reported") or {}
    if usage.get("source") != "gateway" or not reported:
        return ""
    differ = [f"{name} {reported.get(name)} (gateway: {usage.get(name)})"
              for name in ("input_tokens", "output_tokens")
              if int(reported.get(name) or 0) != int(usage.get(name) or 0)]
    return ("Costs: the CLI's self-report differs from the gateway's meter: " + ", ".join(differ)) if differ else ""


# --- budgets at the gateway -------------------------------------------------------------------------
def budget_admit(job_id: str, plan: GatewayPlan):
    """``admit`` for the gateway. The job reserves its expected spend when it starts
    (``reservations.reserve``); its calls are admitted in memory while what they cost (its
    earlier attempts' from the ledger, this attempt's as the gateway tallies them, plus a
    reservation for each call still in flight) stays under that grant. A call past it asks, off
    the loop, for the grant to grow (``reservations.top_up``) and is refused when the budgets
    leave nothing more. The CLI shows the refusal; the runner then stops the job."""
    before = usage_cost(metered_usage(job_id) or {})
    grant = reservations.reserve(job_id)
    plan.job_id = job_id

    def top_up(call: GatewayCall) -> Refusal | None:
        nonlocal grant
        spent = before + plan.job.committed()
        grant = reservations.top_up(job_id, spent)
        if grant is None or spent < grant.amount:
            return None
        refusal = Refusal("budget_exceeded", f"AgilePlus: the {grant.allowance.budget} budget is spent "
                                             f"(${spent.normalize()} of ${grant.allowance.limit} this job may use); "
                                             "no more model calls for it")
        plan.refusals.append(refusal)
        return refusal

    def admit(call: GatewayCall) -> Refusal | None:
        if grant is None or before + plan.job.committed() < grant.amount:
            return None
        return Refusal("budget_exceeded", "", recheck=top_up)

    return admit


def wire_gateway(plan: GatewayPlan, job: DispatchJob, attempt: int, worker: str, config: dict) -> None:
    """The job's side of its gateway: prices, the ledger row of each call, its budget admission
    (with the job's reservation), and account parking for the farm."""
    plan.job.prices = job_prices(config)
    plan.job.on_call = lambda call: record_call(job, attempt, worker, call)
    plan.job.admit = budget_admit(job.id, plan)
    plan.job.on_limit = lambda call, until: accounts.park_account(
        call.account, call.provider, dt.datetime.fromtimestamp(until, tz=dt.UTC), worker=worker,
        reason=f"{call.provider} answered 429 to {call.method} {call.path} (job {job.id})")
    accounts.known_accounts({r.account: r.provider for r in plan.routes.values()})
    accounts.watch_parks()


def gateway_stop(plan: GatewayPlan | None) -> StopReason | None:
    """Why the runner stops the agent because of its gateway: its provider account is parked for
    the farm (the job then waits for the reset: the words say how long), or a call was refused for
    the budget."""
    if plan is None:
        return None
    if plan.job.parked_until is not None:
        wait = max(0.0, plan.job.parked_until - time.time())
        until = dt.datetime.fromtimestamp(plan.job.parked_until, tz=dt.UTC)
        return StopReason("rate_limited", f"the provider answered 429: its account ({', '.join(plan.accounts)}) "
                                          f"is parked for the farm until {until:%H:%M:%S} UTC: "
                                          f"retry after {wait:.0f} seconds")
    if plan.refusals:
        return StopReason("budget", plan.refusals[0].message)
    return None


def job_prices(config: dict) -> dict[str, Price]:
    """The feature's ``agent.prices`` over the repository's price table (``harnesses/prices.json``);
    a ``"*"`` there prices every model the feature's agents call, the table is then not used."""
    own = price_table(config.get("prices") or {})
    return own if "*" in own else {**PRICES, **own}
