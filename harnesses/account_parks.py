"""Provider accounts parked farm-wide: a 429 with a reset parks its account for every job of
every worker until the reset (the model gateway refuses their calls meanwhile, without reaching
the provider, and the runner parks each job until then: ``agileplus/dispatch/accounts.py``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import re
import threading
import time
from collections.abc import Callable

from harnesses.upstream import Headers


class AccountParks:
    """Which provider accounts are parked (a 429 with a reset) and until when (epoch seconds): one
    per worker process, shared by every job's gateway, so a 429 one job gets stops the others at
    their next call. ``load`` (the farm's record, set by the dispatch layer) is read in the
    background at most every ``every`` seconds, so parks made by other workers arrive too."""

    def __init__(self, every: float = 2.0):
        self.until: dict[str, float] = {}
        self.load: Callable[[], dict[str, float]] | None = None
        self.every = every
        self._loaded_at = float("-inf")
        self._loading = threading.Lock()

    def parked_until(self, account: str) -> float | None:
        """Until when ``account`` is parked, None when it is not (checked in memory)."""
        stale = self.load is not None and time.monotonic() - self._loaded_at >= self.every
        if stale and self._loading.acquire(blocking=False):
            threading.Thread(target=self._refresh_and_release, daemon=True).start()
        until = self.until.get(account)
        return until if until is not None and until > time.time() else None

    def park(self, account: str, until: float) -> None:
        self.until[account] = max(until, self.until.get(account, 0.0))

    def refresh(self) -> None:
        """The farm's parks now (what other workers parked, and resumed), kept with this worker's own."""
        fresh = self.load() if self.load is not None else {}
        now = time.time()
        kept = {a: u for a, u in self.until.items() if u > now}  # this worker's own, maybe not written yet
        self.until = {a: max(u, kept.get(a, 0.0)) for a, u in {**kept, **fresh}.items()}
        self._loaded_at = time.monotonic()

    def _refresh_and_release(self) -> None:
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - a database hiccup: keep what is known, try at the next call
            self._loaded_at = time.monotonic()
        finally:
            self._loading.release()


PARKS = AccountParks()


def reset_time(headers: Headers, now: float) -> float | None:
    """When a 429's limit resets (epoch seconds), from the provider's headers: ``retry-after``
    (seconds or a date), else the latest of Anthropic's ``anthropic-ratelimit-*-reset`` (RFC 3339)
    and OpenAI's ``x-ratelimit-reset-*`` (``6m0s``, ``20ms``). None when they do not say."""
    retry_after = (headers.get("retry-after") or "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", retry_after):
        return now + float(retry_after)
    if retry_after:
        with contextlib.suppress(TypeError, ValueError):
            return email.utils.parsedate_to_datetime(retry_after).timestamp()
    resets: list[float] = []
    for name, value in headers.items():
        if name.startswith("anthropic-ratelimit-") and name.endswith("-reset"):
            with contextlib.suppress(ValueError):
                resets.append(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        elif name.startswith("x-ratelimit-reset-"):
            parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
            if parts:
                resets.append(now + sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts))
    return max(resets) if resets else None
