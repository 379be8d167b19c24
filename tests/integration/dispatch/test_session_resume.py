"""An agent's session survives its worker: the real Claude Code, killed with its worker mid-run,
is resumed by the next attempt on another worker (its own data folder) from the transcript the
first worker stored in the database, with the scripted Anthropic endpoint as the model."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from agileplus.dispatch import sessions
from agileplus.dispatch.models import AgentSession, DispatchJob, ModelCall
from harnesses.endpoints import Run, Say, Turn, Write
from harnesses.endpoints.anthropic import AnthropicEndpoint
from harnesses.endpoints.gemini import GeminiEndpoint
from harnesses.endpoints.openai_chat import ChatEndpoint
from harnesses.endpoints.openai_responses import ResponsesEndpoint
from harnesses.sessions import member_texts, pack_folder
from tests.integration.dispatch.test_real_clis import agileplus, log_text, target
from tests.support.farm import import_target, running_with, running_workers, start_worker, stop, wait_ready, wait_until
from tests.support.real_clis import hold_delayed_replies, released_once_the_agent_is_gone, worker_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BRANCH = "feat/003-auth-system-WP01"
FIRST, SECOND = "feat(WP01): add file_1", "feat(WP01): add file_2"
# Attempt 1 writes and commits file_1, then waits on a slow reply and its worker is killed;
# attempt 2 (resumed) writes and commits file_2.
SCRIPT = [Turn([Say("Adding file_1."), Write("wp01/file_1.txt", "one\n")]),
          Turn([Run(f"git add wp01/file_1.txt && git commit -q -m '{FIRST}'")]),
          Turn([Say("Thinking slowly.")], delay=90),
          Turn([Say("Continuing with file_2."), Write("wp01/file_2.txt", "two\n")]),
          Turn([Run(f"git add wp01/file_2.txt && git commit -q -m '{SECOND}'")])]


def branch_subjects(repo) -> list[str]:
    return repo.subjects(BRANCH) if repo.has_branch(BRANCH) else []


def session_holding(feature, text: str) -> AgentSession | None:
    """The WP's stored session if its transcript holds ``text``."""
    session = AgentSession.objects.filter(wp__feature=feature, files_count__gt=0).first()
    if session is None or not session.files:
        return None
    return session if any(text in body for body in member_texts(bytes(session.files)).values()) else None


def tool_inputs(body: dict) -> list[dict]:
    return [block.get("input") or {} for message in body.get("messages") or [] if message.get("role") == "assistant"
            for block in message.get("content") or [] if isinstance(block, dict) and block.get("type") == "tool_use"]


def test_kill_9_of_the_worker_mid_run_resumes_the_claude_session_on_another_worker(tmp_path):
    with AnthropicEndpoint(SCRIPT) as endpoint:
        worker_env = worker_environment("claude-code", endpoint, tmp_path / "home")
        repo = target(tmp_path, "claude-code")
        feature = import_target(repo)
        with running_workers(tmp_path, 1, broker_url=None, with_beat=True, harnesses="claude-code",
                             **worker_env) as procs:
            queued = agileplus(tmp_path, "implement", "003", "--wp", "WP01", "--agent", "claude-code", "--no-wait")
            assert queued.returncode == 0, queued.stdout + queued.stderr
            job = DispatchJob.objects.get(feature=feature)
            # the slow third reply is awaited, file_1's commit reached the origin, and a transcript that
            # holds the commit's turn is stored (the heartbeat stores it every few seconds: an earlier one
            # may hold only the first turn)
            stored = wait_until(lambda: len(endpoint.agent_requests) >= 3 and FIRST in branch_subjects(repo)
                                and session_holding(feature, FIRST),
                                timeout=120, what="attempt 1 waiting on its slow reply, its session stored")
            procs[0].kill()  # kill -9 of w1's process group, and of any of its processes that left it
            for pid in running_with(f"AGILEPLUS_DATA_DIR={tmp_path / 'w1'}"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            w2 = start_worker("w2", tmp_path / "w2", broker_url=None, broker_dir=tmp_path / "broker",
                              harnesses="claude-code", **worker_env)
            try:
                wait_ready([w2])
                wait_until(lambda: DispatchJob.objects.get(pk=job.pk).state in ("succeeded", "failed"), timeout=180,
                           what="attempt 2 to finish")
            finally:
                stop([w2])
        job.refresh_from_db()
        before_kill = 3
        assert len(endpoint.agent_requests) > before_kill, f"{job.state} {job.attempt} {job.error}\n" + log_text(job)
        resumed_request = endpoint.agent_requests[before_kill]
        attempt_2_requests = endpoint.agent_requests[before_kill:]
        billed = dict(endpoint.billed)

    assert job.state == "succeeded", job.error + log_text(job)
    assert (job.attempt, job.worker) == (2, "worker@w2")  # its own data folder: tmp_path / "w2"
    assert job.manifest["resumed_from_session"] == stored.session_id
    assert f"Claude Code session {stored.session_id} " in log_text(job)  # the same session id continues
    # the resumed conversation carries attempt 1's turns, then says what happened
    first_worktree = tmp_path / "w1" / "worker" / "worker@w1" / ".worktrees" / "003-auth-system-WP01"
    assert {"file_path": f"{first_worktree}/wp01/file_1.txt", "content": "one\n"} in tool_inputs(resumed_request.body)
    last_prompt = json.dumps(resumed_request.body["messages"][-3:])
    assert "Your previous session on worker worker@w1 ended: the worker was lost" in last_prompt
    # billed as the endpoint billed: attempt 2's calls and attempt 1's, made before its worker was
    # killed (the gateway wrote each one's ledger row as it ended)
    assert (job.usage["input_tokens"], job.usage["output_tokens"]) == (billed["input_tokens"], billed["output_tokens"])
    assert sorted(set(ModelCall.objects.filter(job=job).values_list("attempt", flat=True))) == [1, 2]
    assert len(attempt_2_requests) >= 1
    # attempt 1's commit reached the origin as it was made (its worker then died); attempt 2 added its own
    assert branch_subjects(repo)[:2] == [SECOND, FIRST]

    reviewed = agileplus(tmp_path, "review", "003", "WP01", "--apply", "--inline", "--actor", "human:alice")
    assert reviewed.returncode == 0, reviewed.stdout + reviewed.stderr
    assert (repo.git("show", "main:wp01/file_1.txt"), repo.git("show", "main:wp01/file_2.txt")) == ("one", "two")
    assert sessions.purge_sessions() == 1  # the WP is done: its session goes


# Attempt 1 commits file_1 then times out waiting on a slow reply; attempt 2 (resumed) commits file_2.
TIMEOUT_SCRIPT = [Turn([Say("Adding file_1."), Write("wp01/file_1.txt", "one\n")]),
                  Turn([Run(f"git add wp01/file_1.txt && git commit -q -m '{FIRST}'")]),
                  Turn([Say("Thinking slowly.")], delay=60),
                  Turn([Say("Continuing with file_2."), Write("wp01/file_2.txt", "two\n")]),
                  Turn([Run(f"git add wp01/file_2.txt && git commit -q -m '{SECOND}'")]),
                  Turn([Say("Both files are committed.")])]


@dataclass
class TimedOutThenResumed:
    repo: object
    stored: AgentSession  # what attempt 1 stored
    second: DispatchJob
    second_output: str
    resumed_request: dict  # the body of the resumed run's first model call
    second_run_calls: int
    second_billed: dict  # what the endpoint billed during the second run (its side calls too)


def time_out_then_implement_again(tmp_path, harness: str, endpoint, model: str, timeout: int,
                                  second_worker_dir: str | None = None,
                                  between: Callable[[AgentSession], None] | None = None,
                                  first_run_calls: int = 3, drain: str = "", **agent) -> TimedOutThenResumed:
    """`implement --inline --timeout N` (attempt 1 times out on the slow reply, its
    ``first_run_calls``-th), the WP back to planned (``between`` then given the stored session),
    `implement --inline` again (in ``second_worker_dir``: a new worktree path). ``drain``: how long
    attempt 1's gateway waits for its calls in flight. ``agent``: the feature's other agent settings."""
    repo = target(tmp_path, harness, model=model, **agent)
    feature = import_target(repo)
    extra = {**worker_environment(harness, endpoint, tmp_path / "home"), "grace": "1",
             **({"AGILEPLUS_MODEL_GATEWAY_DRAIN_SECONDS": drain} if drain else {})}
    implement = ("implement", "003", "--wp", "WP01", "--agent", harness, "--inline")
    # the slow reply comes once the timeout has killed the agent: the gateway reads it to its end
    # (billed to attempt 1) and attempt 1 ends then, not at the end of the reply's 60-90 s delay
    with released_once_the_agent_is_gone(hold_delayed_replies(endpoint), feature):
        timed_out = agileplus(tmp_path, *implement, "--timeout", str(timeout), extra_env=extra)
    first = DispatchJob.objects.get(feature=feature)
    assert first.state == "timed_out", timed_out.stdout + log_text(first)
    stored = AgentSession.objects.get(wp__feature=feature)
    reset = agileplus(tmp_path, "wp", "transition", "WP01", "--to", "planned", "--actor", "human:alice")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    if between:
        between(stored)
    if second_worker_dir:
        extra["AGILEPLUS_WORKER_DIR"] = second_worker_dir
    before = dict(endpoint.billed)
    again = agileplus(tmp_path, *implement, extra_env=extra)
    second_billed = {k: endpoint.billed[k] - before[k] for k in before}
    second = DispatchJob.objects.filter(feature=feature).exclude(pk=first.pk).get()
    return TimedOutThenResumed(repo, stored, second, again.stdout + log_text(second),
                               endpoint.agent_requests[first_run_calls].body,
                               len(endpoint.agent_requests) - first_run_calls,  # attempt 1's: answered, then timed out
                               second_billed)


def assert_the_session_continued(run: TimedOutThenResumed, conversation: str, timeout: int) -> None:
    """Attempt 2 resumed attempt 1's session id, was told it timed out with attempt 1's turns in
    its first call, committed file_2 after file_1, and was billed only its own calls (1000 input /
    100 output tokens each, as scripted): what every resuming harness must show."""
    second, stored = run.second, run.stored
    assert second.state == "succeeded", run.second_output
    assert second.manifest.get("resumed_from_session") == stored.session_id == second.session_id, run.second_output
    assert "Adding file_1." in conversation and f"ended: timeout after {timeout} s" in conversation
    assert branch_subjects(run.repo)[:2] == [SECOND, FIRST]
    # billed its own calls only, as the endpoint billed them (not the resumed session's earlier turns)
    assert (second.usage["input_tokens"], second.usage["output_tokens"]) == (run.second_billed["input_tokens"],
                                                                             run.second_billed["output_tokens"])
    assert run.second_run_calls >= 1


def test_after_a_timeout_the_next_run_resumes_the_codex_session(tmp_path):
    """Codex (``codex exec resume ID``): a run that timed out waiting on the model is resumed by
    the next `implement`, told it timed out, with the earlier turns in the conversation."""
    with ResponsesEndpoint(TIMEOUT_SCRIPT) as endpoint:
        run = time_out_then_implement_again(tmp_path, "codex", endpoint, "gpt-5", 20)

    # Codex reports the thread's usage: billed its own calls only once the earlier turns are subtracted
    assert_the_session_continued(run, json.dumps(run.resumed_request.get("input")), timeout=20)
    assert run.second.manifest["argv"][-3:] == ["resume", run.stored.session_id, "-"]


def test_after_a_timeout_the_next_run_resumes_the_gemini_session_in_a_new_worktree_path(tmp_path):
    """Gemini CLI (``gemini --resume ID``, its chats restored under the worktree's project slug):
    a run that timed out waiting on the model is resumed by the next `implement` on another
    worker's data folder (a new worktree path), told it timed out, with the earlier turns."""
    with GeminiEndpoint(TIMEOUT_SCRIPT) as endpoint:
        run = time_out_then_implement_again(tmp_path, "gemini", endpoint, "gemini-2.5-flash", 40,
                                            second_worker_dir=str(tmp_path / "w2"))
    conversation = json.dumps(run.resumed_request.get("contents"))

    assert_the_session_continued(run, conversation, timeout=40)  # Gemini CLI's stats are the run's own
    assert run.stored.files_count > 0
    assert f"Gemini CLI session {run.stored.session_id} " in run.second_output  # the same session id continues
    # attempt 1's turns name its worktree, the resumed one runs in the new one
    assert f"{tmp_path / 'worker'}/" in conversation and f"{tmp_path / 'w2'}/" in conversation


def test_after_a_timeout_the_next_run_resumes_the_opencode_session_in_a_new_worktree_path(tmp_path):
    """opencode (``opencode run --session ID``, its SQLite session store restored, the session
    moved to the new worktree): a run that timed out is resumed by the next `implement` on
    another worker's data folder, told it timed out, with the earlier turns."""
    with AnthropicEndpoint(TIMEOUT_SCRIPT) as endpoint:
        run = time_out_then_implement_again(tmp_path, "opencode", endpoint, "anthropic/claude-sonnet-4-5", 40,
                                            second_worker_dir=str(tmp_path / "w2"))
    conversation = json.dumps(run.resumed_request.get("messages"))

    assert_the_session_continued(run, conversation, timeout=40)  # opencode reports each step's own tokens
    assert run.stored.files_count > 0
    assert run.second.manifest["argv"][-2:] == ["--session", run.stored.session_id]
    assert f"opencode session {run.stored.session_id}" in run.second_output  # the same session id continues
    assert f"{tmp_path / 'worker'}/" in conversation  # attempt 1's turns, in its worktree
    assert f"{tmp_path / 'w2'}/" in json.dumps(run.resumed_request.get("system"))  # the resumed run's worktree


def test_an_opencode_session_store_that_does_not_open_gives_a_fresh_session_with_the_last_log_lines(tmp_path):
    """The stored folder is the agent's writing: a store that is not a database is not resumed,
    the next run starts a fresh session told the previous attempt's last log lines."""
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "opencode.db").write_bytes(b"not a database " * 100)

    def garble(stored: AgentSession) -> None:
        stored.files = pack_folder(tmp_path / "garbled", 1 << 20).data
        stored.save(update_fields=["files"])

    with AnthropicEndpoint(TIMEOUT_SCRIPT) as endpoint:
        run = time_out_then_implement_again(tmp_path, "opencode", endpoint, "anthropic/claude-sonnet-4-5", 40,
                                            between=garble)
    first_call = json.dumps(run.resumed_request.get("messages"))

    assert run.second.state == "succeeded", run.second_output
    assert "resumed_from_session" not in run.second.manifest and run.second.session_id != run.stored.session_id
    assert (f"Not resuming session {run.stored.session_id}: harness 'opencode': the restored session database "
            "cannot be read") in run.second_output
    assert "ended; its last log lines:" in first_call and "Adding file_1." in first_call  # told, not replayed
    assert len(run.resumed_request["messages"]) == 1


# Aider makes one model call per message, and one more for each error it sends back to fix: attempt
# 1's edit (file_1, committed by Aider) fails the WP's test command (file_2 is missing), Aider asks
# the model to fix it and times out waiting on the slow reply; attempt 2 (resumed) adds file_2.
AIDER_TIMEOUT_SCRIPT = [Turn([Say("Adding file_1."), Write("wp01/file_1.txt", "one\n")]),
                        Turn([Say("Thinking slowly.")], delay=90),
                        Turn([Say("Continuing with file_2."), Write("wp01/file_2.txt", "two\n")])]
AIDER_TEST_FAILS_WITHOUT_FILE_2 = ["--auto-test", "--test-cmd", "test -f wp01/file_2.txt"]


def prompt_lines(text: str) -> list[str]:
    """A message's lines as Aider's chat history gives them back (each user line ends in two spaces)."""
    return [line.rstrip() for line in text.strip().splitlines()]


def test_after_a_timeout_the_next_run_resumes_the_aider_session_in_a_new_worktree_path(tmp_path):
    """Aider (its chat history kept in ~/.aider-sessions/<id>.chat.history.md under the adapter's
    own session id; ``--restore-chat-history``): a run that timed out waiting on the model is
    resumed by the next `implement` on another worker's data folder, told it timed out, with
    attempt 1's prompt and reply in the conversation it sends; the stored session then holds both
    runs (a third attempt would restore both) and `jobs session` shows it."""
    with ChatEndpoint(AIDER_TIMEOUT_SCRIPT, commit_message=[FIRST, SECOND]) as endpoint:
        # its slow reply comes 90 s after the call: the gateway waits for it (billed to attempt 1)
        # whatever the machine's load, not only the default 60 s after the agent's timeout
        run = time_out_then_implement_again(tmp_path, "aider", endpoint, "openai/gpt-4o", 40, drain="150",
                                            second_worker_dir=str(tmp_path / "w2"), first_run_calls=2,
                                            edit_format="whole", extra_args=AIDER_TEST_FAILS_WITHOUT_FILE_2)
        first_prompt = endpoint.agent_requests[0].body["messages"][-2]["content"]
    messages, argv, session = run.resumed_request["messages"], run.second.manifest["argv"], run.stored.session_id
    after = AgentSession.objects.get(wp__feature=run.second.feature)
    [history] = member_texts(bytes(after.files)).values()
    shown = agileplus(tmp_path, "jobs", "session", run.second.id)

    assert_the_session_continued(run, json.dumps(messages), timeout=40)
    # its one edit call and its commit-message call (10 / 5 tokens) at gpt-4o's prices, not attempt 1's too
    assert Decimal(run.second.usage["cost_usd"]) == Decimal("0.003575")
    assert run.second.worktree.startswith(f"{tmp_path / 'w2'}/")
    assert f"Aider session {session} (openai/gpt-4o)" in run.second_output  # the same session id continues
    assert "Restored previous conversation history." in run.second_output  # Aider's words
    # the history in the session folder of the sandbox's HOME, not in the worktree
    history_file = f"/tmp/home/.aider-sessions/{session}.chat.history.md"
    assert argv[argv.index("--chat-history-file") + 1:][:2] == [history_file, "--restore-chat-history"]
    assert any(m["role"] == "user" and prompt_lines(m["content"]) == prompt_lines(first_prompt) for m in messages)
    assert (after.session_id, after.job_id) == (session, run.second.id)
    assert history.count("# aider chat started at") == 2
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"Session: {session} (aider, WP01)" in shown.stdout and f"{session}.chat.history.md:" in shown.stdout
