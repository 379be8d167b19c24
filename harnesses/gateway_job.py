"""One job's side of the model gateway (``harnesses.gateway`` serves it): the providers the job
may call (``Route``: base URL and the worker's credential), each call as the gateway saw it
(``GatewayCall``: usage, cost, outcome), why ``admit`` turns one away (``Refusal``), the job's
placeholder key and its spend tally (``GatewayJob``: spent plus reserved, what a budget counts),
and how a refusal reads to the agent's CLI (``error_body`` in the provider's own error shape,
``parked_refusal`` for a parked account).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from harnesses.account_parks import PARKS, AccountParks
from harnesses.base import Usage
from harnesses.jsonlines import Price

PLACEHOLDER_PREFIX = "agileplus-gateway-"


@dataclass
class Route:
    """One provider the job may call: its real base URL and the headers carrying the real key."""

    provider: str
    base_url: str
    auth: dict[str, str] = field(default_factory=dict)  # header → value (the worker's credential)
    account: str = ""  # which provider account the key is (for the ledger and account limits)


@dataclass
class GatewayCall:
    """One model call as the gateway saw it: what the provider reported, priced."""

    provider: str
    method: str
    path: str
    status: int = 0
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    reported: bool = False  # the provider's answer carried usage figures
    cost_usd: Decimal | None = None  # None: no price for this model ("unknown", never $0)
    outcome: str = "ok"  # ok | truncated | refused | upstream_error
    detail: str = ""
    client_gone: bool = False  # the agent stopped reading (killed): the answer was read to its end anyway
    account: str = ""
    started_at: float = field(default_factory=time.time)
    first_byte_ms: float | None = None
    duration_ms: float = 0.0
    tallied: bool = False  # counted in the job's spend (GatewayJob.add)


@dataclass
class Refusal:
    """Why ``admit`` turned a call away; ``kind`` names it in the provider-shaped error."""

    kind: str  # budget_exceeded | account_parked | ...
    message: str
    status: int = 403
    # a check the loop cannot make (it needs the database): run off the loop, its answer is final
    recheck: Callable[[GatewayCall], Refusal | None] | None = None


@dataclass
class GatewayJob:
    """One job's side of the gateway: its placeholder, routes, prices and callbacks."""

    routes: dict[str, Route]
    prices: dict[str, Price] = field(default_factory=dict)
    placeholder: str = field(default_factory=lambda: PLACEHOLDER_PREFIX + secrets.token_urlsafe(24))
    on_call: Callable[[GatewayCall], None] = lambda _call: None  # runs on a thread of its own
    admit: Callable[[GatewayCall], Refusal | None] = lambda _call: None  # runs on the loop: in memory only
    refused: list[str] = field(default_factory=list)
    parks: AccountParks = field(default_factory=lambda: PARKS)
    # a 429 with a reset: (account, until) is handed here off the loop, to park it for the farm
    on_limit: Callable[[GatewayCall, float], None] = lambda _call, _until: None
    parked_until: float | None = None  # this job's account is parked: the runner parks the job
    spent: Decimal = Decimal(0)  # the priced cost of this job's calls so far, added as each ends
    # calls admitted and not ended yet, each reserved at the last ended call's cost: an agent's
    # next call (or parallel calls) cannot slip past a budget while one is still being billed
    reserved: dict[int, Decimal] = field(default_factory=dict)
    last_cost: Decimal = Decimal(0)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def committed(self) -> Decimal:
        """Spent plus reserved: what a budget check counts."""
        with self._lock:
            return self.spent + sum(self.reserved.values(), Decimal(0))

    def reserve(self, call: GatewayCall) -> None:
        with self._lock:
            self.reserved[id(call)] = self.last_cost

    def add(self, call: GatewayCall) -> None:
        with self._lock:
            if call.tallied:
                return
            call.tallied = True
            self.reserved.pop(id(call), None)
            if call.cost_usd is not None:
                self.spent += call.cost_usd
                self.last_cost = call.cost_usd


def error_body(provider: str, status: int, kind: str, message: str) -> bytes:
    """An error the provider's own SDK (so the CLI) parses and shows."""
    if provider == "anthropic":
        body: dict = {"type": "error", "error": {"type": "permission_error" if status == 403 else kind,
                                                 "message": message}}
    elif provider == "gemini":
        body = {"error": {"code": status, "message": message, "status": "PERMISSION_DENIED"}}
    else:
        body = {"error": {"message": message, "type": kind, "code": kind, "param": None}}
    return json.dumps(body).encode()


def parked_refusal(account: str, until: float) -> tuple[str, int]:
    """What a call on a parked account is answered, and its retry-after (seconds)."""
    wait = max(0.0, until - time.time())
    stamp = dt.datetime.fromtimestamp(until, tz=dt.UTC).strftime("%H:%M:%S")
    return (f"AgilePlus: provider account {account} is parked for the farm until {stamp} UTC (the provider "
            f"answered 429); retry after {wait:.0f} seconds", max(1, round(wait)))
