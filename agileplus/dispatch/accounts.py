"""Provider accounts parked for the whole farm.

A provider that answers 429 with a reset (``harnesses.account_parks.reset_time``) parks the
account the worker's key belongs to until then, here, for every worker: each worker's gateways
read the parks (``PARKS.load`` is ``parked_accounts``) and refuse calls on a parked account
without reaching the provider; the runner then parks each such job until the reset
(``services.park_rate_limited``: no attempt spent, its session resumed). When the reset has
passed, the first reader resumes the account. Each change is an event in the outbox, written
in the transaction that makes it: ``agileplus.account.parked`` and ``agileplus.account.resumed``.
"""

from __future__ import annotations

import datetime as dt

from django.db import close_old_connections, transaction
from django.utils import timezone

from agileplus.dispatch.models import ProviderAccount
from agileplus.events import subjects
from agileplus.events.services import record_event
from harnesses.account_parks import PARKS


def account_subject(kind: str) -> str:
    """``agileplus.account.parked`` | ``agileplus.account.resumed``."""
    return f"{subjects.PREFIX}.account.{kind}"


def known_accounts(accounts: dict[str, str]) -> None:
    """Each account (name → provider) a worker's keys belong to has its row (for ``agents list``)."""
    for name, provider in accounts.items():
        ProviderAccount.objects.get_or_create(name=name, defaults={"provider": provider})


def park_account(name: str, provider: str, until: dt.datetime, *, worker: str, reason: str) -> bool:
    """Park the account until ``until`` for every worker; True when this parked it (it was not
    parked as long already). The event says when it resumes and why."""
    close_old_connections()  # called from the gateway's threads
    known_accounts({name: provider})
    with transaction.atomic():
        account = ProviderAccount.objects.select_for_update().get(name=name)
        if account.parked_until is not None and account.parked_until >= until:
            return False
        account.parked_until, account.parked_by, account.parked_reason = until, worker[:255], reason[:300]
        account.save()
        record_event(account_subject("parked"), {"account": name, "provider": provider, "until": until.isoformat(),
                                                 "worker": worker, "reason": reason[:300]})
    return True


def resume_due_accounts() -> list[str]:
    """Resume the accounts whose reset has passed (each by one caller only); their names."""
    resumed = []
    for account in ProviderAccount.objects.filter(parked_until__lte=timezone.now()):
        with transaction.atomic():
            won = ProviderAccount.objects.filter(pk=account.pk, parked_until=account.parked_until).update(
                parked_until=None, parked_reason="", updated_at=timezone.now())
            if won:
                record_event(account_subject("resumed"), {"account": account.name, "provider": account.provider,
                                                          "parked_until": account.parked_until.isoformat()})
                resumed.append(account.name)
    return resumed


def parked_accounts() -> dict[str, float]:
    """The accounts parked now → until when (epoch seconds); those whose reset passed are resumed."""
    close_old_connections()
    resume_due_accounts()
    return {name: until.timestamp() for name, until in ProviderAccount.objects.filter(
        parked_until__gt=timezone.now()).values_list("name", "parked_until")}


def account_states() -> list[dict]:
    """Each known account: its provider, whether it is parked, until when and why."""
    now = timezone.now()
    return [{"account": a.name, "provider": a.provider,
             "state": "parked" if a.parked_until and a.parked_until > now else "ok",
             "parked_until": a.parked_until.isoformat() if a.parked_until and a.parked_until > now else None,
             "reason": a.parked_reason if a.parked_until and a.parked_until > now else ""}
            for a in ProviderAccount.objects.all()]


def watch_parks() -> None:
    """This worker process's gateways read the farm's parks (once now, then in the background)."""
    PARKS.load = parked_accounts
    PARKS.refresh()
