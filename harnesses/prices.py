"""The price of each model, per million tokens, from the versioned table ``harnesses/prices.json``
(change a price there, with its new version date). A model is matched exactly, else by its
longest prefix in the table (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4``); a model the
table does not know has no price: its cost is unknown, never $0."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from harnesses.base import HarnessError, Usage
from harnesses.jsonlines import Price, cost_of, price_for, price_table

TABLE_FILE = Path(__file__).with_name("prices.json")
_TABLE = json.loads(TABLE_FILE.read_text())
VERSION: str = _TABLE["version"]
PRICES: dict[str, Price] = price_table(_TABLE["models"])


def models_starting(*prefixes: str) -> dict[str, Price]:
    """The table's models whose names start with one of ``prefixes``: an adapter's default prices
    for its running estimate (its own provider's models, no other's)."""
    return {model: price for model, price in PRICES.items() if model.startswith(prefixes)}


def run_prices(harness: str, options: Mapping, default: dict[str, Price]) -> dict[str, Price]:
    """A run's prices: its ``agent.prices`` option when set, else ``default``. A HarnessError
    names the harness and the entry that is not usable."""
    if not options.get("prices"):
        return default
    try:
        return price_table(options["prices"])
    except ValueError as exc:
        raise HarnessError(f"harness '{harness}': agent.prices: {exc}") from None


def estimated_cost(usage: Usage, model: str | None, table: Mapping[str, Price]) -> Decimal | None:
    """What ``usage`` cost at ``model``'s price in ``table``; None when the table has no price for it."""
    return cost_of(usage, price_for(model, table))
