"""What the agent-CLI adapters share: reading one JSON object per output line without ever
raising, short one-line summaries for the job log, the prompt-as-argument size limit, and
the price table for CLIs that report tokens but no cost.

Token convention (the same for every adapter, so one cost ledger can add runs up):

- ``Usage.input_tokens``: every prompt token the model read, cached or not (Claude Code
  reports uncached, cache-write and cache-read input separately; they are added up).
- ``Usage.cached_input_tokens``: the part of ``input_tokens`` read from the prompt cache.
- ``Usage.output_tokens``: generated tokens (reasoning included where the CLI counts it there).

Prices are USD per one million tokens: ``{"model": {"input": 1.25, "cached_input": 0.125,
"output": 10}}``. A model matches its exact key first, then the longest key it starts with
(``gpt-5.1-codex`` matches ``gpt-5.1-codex-max`` only if no longer key fits). A key ``"*"``
prices any other model. No match: the cost stays unknown (``None``), never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from harnesses.base import AgentEvent, Usage

# Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN); larger prompts go on stdin.
ARG_PROMPT_LIMIT = 100_000
SUMMARY_CHARS = 200
TOOL_OUTPUT_CHARS = 8000  # a tool's output is logged whole up to this, then cut with a count
PER_MILLION = Decimal(1_000_000)


MALFORMED = "malformed"  # ``AgentEvent.tool`` of a line that looked like a JSON event and was not one


def log_event(line: str, *, malformed: bool = False) -> AgentEvent:
    """A line kept verbatim: not JSON, malformed, or of a shape the adapter does not know.
    ``malformed``: it began as a JSON event and did not parse (cut short, invalid bytes)."""
    return AgentEvent(kind="log", text=line.rstrip("\r\n"), tool=MALFORMED if malformed else None)


def parse_object(line: str) -> dict | None:
    """The JSON object on ``line``, or None (blank, not JSON, malformed, or not an object)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def parse_json_line(line: str, parse: Callable[[dict], list[AgentEvent] | None]) -> list[AgentEvent]:
    """Events for one output line; ``parse`` turns a decoded object into events (None: unknown
    shape). Never raises: anything that is not a known JSON event becomes a ``log`` event."""
    if not line.strip():
        return []
    obj = parse_object(line)
    if obj is None:
        return [log_event(line, malformed=line.lstrip().startswith("{"))]
    try:
        events = parse(obj)
    except Exception:  # a field of an unexpected type: keep the line, never lose the run
        return [log_event(line, malformed=True)]
    return [log_event(line)] if events is None else events


def as_int(value: object) -> int:
    """A token count from JSON: numbers and numeric strings; anything else counts 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    try:
        return max(int(float(str(value))), 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def as_decimal(value: object) -> Decimal | None:
    """A USD amount from JSON, exact (via ``str``), or None if it is not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def one_line(value: object, limit: int = SUMMARY_CHARS) -> str:
    """A short single-line rendering for the job log (first line of text, compact JSON)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            value = str(value)
    lines = [part.strip() for part in value.strip().splitlines() if part.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text += " …"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def whole(value: object, limit: int = TOOL_OUTPUT_CHARS) -> str:
    """Every line of a tool's output for the job log (the reason a command failed is rarely on
    its first line), cut at ``limit`` characters with the count of what was left out."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def tool_input_summary(tool_input: object) -> str:
    """The telling field of a tool call (command, path, pattern…), else its compact JSON."""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "filePath", "path", "pattern", "query", "url", "description"):
            if isinstance(tool_input.get(key), str) and tool_input[key].strip():
                return one_line(tool_input[key])
    return one_line(tool_input)


def mapping(value: object) -> dict | None:
    """A tool's input as a dict (None when the CLI gave something else)."""
    return value if isinstance(value, dict) else None


def prompt_fits_argv(prompt: str) -> bool:
    return len(prompt.encode("utf-8")) <= ARG_PROMPT_LIMIT


def string_list(value: object) -> list[str]:
    """A config value that may be one string or a list of them."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return [str(value)]


# --- prices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """USD per one million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal

    @classmethod
    def of(cls, value: Mapping) -> Price:
        def amount(key: str, default: object = None) -> Decimal:
            found = as_decimal(value.get(key, default))
            if found is None:
                raise ValueError(f"price needs a number for '{key}'")
            return found

        return cls(input=amount("input"), cached_input=amount("cached_input", value.get("input")),
                   output=amount("output"))


def price_table(raw: Mapping | None) -> dict[str, Price]:
    """``{"model": {"input": …, "cached_input": …, "output": …}}`` → prices. ``cached_input``
    defaults to ``input``. Raises ValueError naming the model whose entry is not usable."""
    table: dict[str, Price] = {}
    for model, entry in (raw or {}).items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"price for '{model}' must be a mapping of input/cached_input/output")
        try:
            table[str(model)] = Price.of(entry)
        except ValueError as exc:
            raise ValueError(f"price for '{model}': {exc}") from None
    return table


def price_for(model: str | None, table: Mapping[str, Price]) -> Price | None:
    if model and model in table:
        return table[model]
    if model:
        prefixes = [key for key in table if key != "*" and model.startswith(key)]
        if prefixes:
            return table[max(prefixes, key=len)]
    return table.get("*")


def cost_of(usage: Usage, price: Price | None) -> Decimal | None:
    """Cost of ``usage`` at ``price`` (cached input at its own rate), or None without a price."""
    if price is None:
        return None
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    uncached = usage.input_tokens - cached
    total = uncached * price.input + cached * price.cached_input + usage.output_tokens * price.output
    return total / PER_MILLION if total else Decimal(0)
