"""Scripted model endpoints: loopback HTTP servers that speak a model provider's wire protocol
and answer each request with the next step of a script, so a real agent CLI edits files, runs
its tools, commits and prints its real stream with no model and no tokens spent.

One module per wire protocol (``anthropic``: Messages API with SSE; ``openai_responses``:
the Responses API Codex uses). A script is data: a list of ``Turn``s (what the model "says"
in one reply: text, a file to write, a shell command to run, with the usage it reports) and
failures (``Fail``: an HTTP 429 with ``retry-after``, a 500, a dropped connection, a stream cut
mid-event), each optionally after a delay. Every request is logged whole (``requests``), so a
test can assert what the CLI sent.

Which requests consume the script: only those that offer tools (the agent loop). Side
requests a CLI makes (titles, quota probes, token counts) get a short text reply, logged too.
When the script runs out the endpoint ends the conversation with ``closing_text``.
"""

from __future__ import annotations

from harnesses.endpoints.anthropic import AnthropicEndpoint
from harnesses.endpoints.base import Fail, LoggedRequest, Run, Say, ScriptedEndpoint, Step, Turn, Write, commit_script
from harnesses.endpoints.gemini import GeminiEndpoint
from harnesses.endpoints.openai_chat import ChatEndpoint
from harnesses.endpoints.openai_responses import ResponsesEndpoint

__all__ = ["Fail", "LoggedRequest", "Run", "Say", "ScriptedEndpoint", "Step", "Turn", "Write", "commit_script",
           "endpoint_for"]


def endpoint_for(protocol: str, script: list[Step] | None = None, **kwargs) -> ScriptedEndpoint:
    """The scripted endpoint for ``protocol`` (``anthropic`` | ``openai_responses`` | ``gemini`` |
    ``openai_chat``)."""
    classes = {c.protocol: c for c in (AnthropicEndpoint, ResponsesEndpoint, GeminiEndpoint, ChatEndpoint)}
    return classes[protocol](script, **kwargs)
