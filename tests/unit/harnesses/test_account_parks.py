"""When a 429's limit resets, from the provider's headers, and a worker's parks in memory."""

from __future__ import annotations

import datetime as dt
import time

from harnesses.account_parks import AccountParks, reset_time
from harnesses.upstream import Headers

NOW = 1_800_000_000.0


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_retry_after_in_seconds_is_the_reset():
    assert reset_time(Headers([("retry-after", "30")]), NOW) == NOW + 30


def test_retry_after_as_a_date_is_the_reset():
    headers = Headers([("retry-after", "Fri, 15 Jan 2027 08:00:00 GMT")])

    assert reset_time(headers, NOW) == epoch("2027-01-15T08:00:00+00:00")


def test_anthropic_s_reset_headers_give_the_latest_reset():
    headers = Headers([("anthropic-ratelimit-requests-reset", "2027-01-15T08:00:10Z"),
                       ("anthropic-ratelimit-tokens-reset", "2027-01-15T08:01:00Z")])

    assert reset_time(headers, NOW) == epoch("2027-01-15T08:01:00+00:00")


def test_openai_s_reset_durations_give_the_latest_reset():
    headers = Headers([("x-ratelimit-reset-requests", "1m30s"), ("x-ratelimit-reset-tokens", "250ms")])

    assert reset_time(headers, NOW) == NOW + 90


def test_a_429_that_does_not_say_when_has_no_reset():
    assert reset_time(Headers([("content-type", "application/json")]), NOW) is None


def test_a_park_holds_until_its_reset_and_a_longer_one_wins():
    parks = AccountParks()
    parks.park("anthropic:abc", time.time() + 60)
    parks.park("anthropic:abc", time.time() + 5)

    assert parks.parked_until("anthropic:abc") > time.time() + 55
    assert parks.parked_until("openai:def") is None


def test_a_park_whose_reset_passed_no_longer_holds():
    parks = AccountParks()
    parks.park("anthropic:abc", time.time() - 1)

    assert parks.parked_until("anthropic:abc") is None
