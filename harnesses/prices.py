"""The price of each model, per million tokens, from the versioned table ``harnesses/prices.json``
(change a price there, with its new version date). A model is matched exactly, else by its
longest prefix in the table (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4``); a model the
table does not know has no price: its cost is unknown, never $0."""

from __future__ import annotations

import json
from pathlib import Path

from harnesses.jsonlines import Price, price_table

TABLE_FILE = Path(__file__).with_name("prices.json")
_TABLE = json.loads(TABLE_FILE.read_text())
VERSION: str = _TABLE["version"]
PRICES: dict[str, Price] = price_table(_TABLE["models"])
