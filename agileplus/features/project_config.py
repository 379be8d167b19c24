"""The sections of a project's ``.kittify/config.yaml`` that layers above read, parsed and bounded:
``agent.budget`` (``budget_config``: the dispatch layer's budgets) and ``merge`` (``validate_merge_config``,
``parse_queue_config``: the merge queue's switch and batch size). Here, in the features layer, because
the importer refuses a bad section when the spec is imported, before anything above reads it; each
error names the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from agileplus.core.errors import DomainError

BUDGET_KEYS = ("job_usd", "wp_usd", "feature_usd", "day_usd", "reserve_usd")
QUEUE_KEYS = ("batch_max", "bisect", "speculative")


def budget_config(config: dict) -> dict[str, Decimal]:
    """The budgets in ``agent.budget``; a bad value is refused, naming the key."""
    raw = (config or {}).get("budget") or {}
    if not isinstance(raw, dict):
        raise DomainError("agent.budget must be a mapping like {job_usd: 2.0}", field="agent.budget",
                          fix="set job_usd / wp_usd / feature_usd / day_usd in .kittify/config.yaml")
    limits = {}
    for key, value in raw.items():
        if key not in BUDGET_KEYS:
            raise DomainError(f"unknown budget '{key}'", field=f"agent.budget.{key}",
                              fix=f"use one of {', '.join(BUDGET_KEYS)}")
        try:
            limit = Decimal(str(value))
        except InvalidOperation:
            limit = Decimal(-1)
        if not limit.is_finite() or limit <= 0:  # NaN and infinity too (NaN <= 0 would raise)
            raise DomainError(f"agent.budget.{key} must be a positive amount of USD, not {value!r}",
                              field=f"agent.budget.{key}")
        limits[key] = limit
    return limits


@dataclass(frozen=True)
class QueueConfig:
    enabled: bool = True
    batch_max: int = 8
    bisect: bool = True
    speculative: bool = False


def parse_queue_config(value: object) -> QueueConfig:
    """``merge.queue`` of .kittify/config.yaml: absent/``on`` (the default), ``off``, or a mapping
    ``{batch_max, bisect, speculative}``. Raises DomainError naming the key and the fix."""
    if value is None or value is True or value == "on":
        return QueueConfig()
    if value is False or value == "off":
        return QueueConfig(enabled=False)
    if not isinstance(value, dict):
        raise DomainError(f"merge.queue must be on, off or a mapping, not {value!r}", field="merge.queue",
                          fix="write `queue: off`, or `queue: {batch_max: 8, bisect: true}`")
    unknown = sorted(set(value) - set(QUEUE_KEYS))
    if unknown:
        raise DomainError(f"merge.queue has unknown key(s): {', '.join(map(str, unknown))}",
                          field=f"merge.queue.{unknown[0]}", fix=f"use only {', '.join(QUEUE_KEYS)}")
    batch_max = value.get("batch_max", QueueConfig.batch_max)
    if not isinstance(batch_max, int) or isinstance(batch_max, bool) or not 1 <= batch_max <= 64:
        raise DomainError(f"merge.queue.batch_max must be a whole number from 1 to 64, not {batch_max!r}",
                          field="merge.queue.batch_max", fix="e.g. batch_max: 8 (1 = test every WP alone)")
    for key in ("bisect", "speculative"):
        if not isinstance(value.get(key, False), bool):
            raise DomainError(f"merge.queue.{key} must be true or false, not {value[key]!r}",
                              field=f"merge.queue.{key}", fix=f"write {key}: true or {key}: false")
    if value.get("speculative"):
        raise DomainError("merge.queue.speculative is not built: candidates are tested one batch at a time",
                          field="merge.queue.speculative", fix="remove it or set speculative: false")
    return QueueConfig(True, batch_max, bool(value.get("bisect", True)), False)


def validate_merge_config(merge: object) -> QueueConfig:
    """The whole ``merge`` section: the queue builds merge commits, so another strategy needs it off."""
    if merge is None:
        return QueueConfig()
    if not isinstance(merge, dict):
        raise DomainError("merge must be a mapping (strategy, queue)", field="merge",
                          fix="e.g. merge: {strategy: merge, queue: {batch_max: 8}}")
    config = parse_queue_config(merge.get("queue"))
    strategy = merge.get("strategy", "merge")
    if strategy not in ("merge", "rebase", "fast-forward"):
        raise DomainError(f"merge.strategy must be merge, rebase or fast-forward, not {strategy!r}",
                          field="merge.strategy", fix="e.g. strategy: merge")
    if config.enabled and strategy != "merge":
        raise DomainError(f"merge.strategy {strategy} cannot be used with the merge queue, which merges the "
                          "exact candidate it tested", field="merge.strategy",
                          fix="use strategy: merge, or set queue: off (unsafe: main can break)")
    return config
