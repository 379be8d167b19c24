"""The MCP HTTP tools fuzzed from their own input schemas (the counterpart of the schemathesis run
over the REST schema, which does not cover MCP): hostile strings and numbers for every argument,
through a real `agileplus mcp --http`; every call answers (a result or a tool error naming the
problem), never an internal error, and every WP stays in a legal state."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agileplus.api.services import create_api_token
from agileplus.features.lifecycles import WPState
from tests.support.farm import import_target, make_target_repo
from tests.support.mcp import mcp_http_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HOSTILE_TEXT = st.one_of(st.sampled_from(["003", "003-auth-system", "WP01", "wp2", "done", "doing", "blocked",
                                          "../../etc/passwd", "' OR 1=1 --", "\x00", "WP" + "9" * 40, "",
                                          "a" * 10_000, "🙂", "command", "claude-code"]),
                         st.text(max_size=30))
HOSTILE_INT = st.one_of(st.sampled_from([0, -1, 2**31, -(2**63), 10**30]), st.integers())


def _arguments(schema: dict) -> st.SearchStrategy[dict]:
    """Arguments for a tool from its JSON input schema: every property, typed as declared."""
    properties = schema.get("properties") or {}

    def of(spec: dict):
        kinds = {spec.get("type")} | {s.get("type") for s in spec.get("anyOf", [])}
        return HOSTILE_INT if "integer" in kinds else HOSTILE_TEXT
    return st.fixed_dictionaries({name: of(spec) for name, spec in properties.items()})


@pytest.fixture
def feature(tmp_path):
    return import_target(make_target_repo(tmp_path, wps={"WP01": [], "WP02": ["WP01"]}))


def _examples(strategy: st.SearchStrategy, count: int) -> list:
    found: list = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        found.append(value)

    collect()
    return found


def test_every_mcp_tool_answers_hostile_arguments_without_an_internal_error(feature):
    from agileplus.mcp_server import build_server

    tools = anyio.run(build_server().list_tools)
    planned = [(tool.name, args) for tool in tools for args in _examples(_arguments(tool.input_schema), 15)]
    token = create_api_token("fuzzer", "human")

    async def calls(session):
        answers = []
        for name, args in planned:
            result = await session.call_tool(name, args)
            answers.append((name, args, result.is_error, " ".join(getattr(c, "text", "") for c in result.content)))
        return answers

    answers = mcp_http_session(token, calls)

    assert {name for name, *_ in answers} >= {"list_features", "feature_status", "list_wps", "wp_log", "dispatch",
                                               "transition", "verify_audit"}
    internal = [(name, args, text[:200]) for name, args, is_error, text in answers
                if is_error and ("Traceback" in text or "internal" in text.lower())]
    assert not internal
    assert any(is_error for *_, is_error, _ in answers) and any(not is_error for *_, is_error, _ in answers)
    assert set(feature.work_packages.values_list("state", flat=True)) <= set(WPState.ALL)
