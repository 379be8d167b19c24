"""The provider accounts' lines of `agileplus agents list`: each account the workers' keys belong
to, and whether it is parked for the farm (a 429 with a reset) until when."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from agileplus.cli.output import echo
from agileplus.dispatch.accounts import account_states


def echo_accounts() -> None:
    """Nothing when no model call went through a worker's gateway yet."""
    states = account_states()
    if not states:
        return
    echo("Provider accounts:")
    for account in states:
        if account["state"] == "parked":
            until = timezone.localtime(dt.datetime.fromisoformat(account["parked_until"]))
            echo(f"  {account['account']}: parked until {until:%H:%M:%S} ({account['reason']})")
        else:
            echo(f"  {account['account']}: ok")
