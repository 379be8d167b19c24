"""Finishing a WP whose worker died halfway: the next attempt resumes the agent's session, against
the baseline of a fresh session (what every attempt was before sessions were stored), in the
same run, with the same endpoint script and the real Claude Code (tools/agent-clis).

The scripted model follows its conversation, as a model does: its reply to a request is the step
after the work turns (tool calls) the request already carries, so a fresh session starts the work over
and a resumed one continues it. Each request is billed by its size (4 characters a token, the
system prompt and tools included), so a resumed request pays for the history it carries. The
work: 6 parts, one file and one commit each; the worker (w1) is killed (SIGKILL) while the model
thinks over part 4, after parts 1–3 reached the origin. Figures: the input tokens and wall time of
attempt 2 (on w2, its own data folder) from its claim to the job's end, as the job records them.
Usage: .venv/bin/python bench/bench_resume.py [--quick]
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, emit, is_quick  # noqa: E402
from _farm import setup  # noqa: E402

PARTS = 6
KILL_AT = 3  # the 0-based part whose reply is slow the first time: attempt 1 dies waiting for it
QUICK = is_quick()


def part_turn(i: int):
    from harnesses.endpoints import Run, Turn

    path = f"wp01/part_{i}.txt"
    return Turn([Run(f"mkdir -p wp01 && printf 'part {i}\\n' > {path} && git add {path} && "
                     f"git commit -q -m 'feat(WP01): add part {i}'")])


def conversation_endpoint():
    """An Anthropic endpoint whose step is the count of work turns (assistant messages with a tool
    call) in the request: a resumed Claude Code adds a text-only turn for the interrupted request."""
    from harnesses.endpoints import Say, Turn
    from harnesses.endpoints.anthropic import AnthropicEndpoint

    class ConversationEndpoint(AnthropicEndpoint):
        def __init__(self) -> None:
            super().__init__([part_turn(i) for i in range(PARTS)] + [Turn([Say("All parts committed.")])])
            self.served: set[int] = set()

        def _handle(self, handler, method: str) -> None:  # noqa: ANN001 - BaseHTTPRequestHandler
            self._conversation_handle(handler, method)

        def _conversation_handle(self, handler, method: str) -> None:  # noqa: ANN001
            length = int(handler.headers.get("content-length") or 0)
            body = json.loads(handler.rfile.read(length) or b"null")
            from harnesses.endpoints import LoggedRequest

            agent = method == "POST" and isinstance(body, dict) and self.is_agent_request(handler.path, body)
            step = sum(1 for m in body.get("messages") or [] if m.get("role") == "assistant" and any(
                isinstance(b, dict) and b.get("type") == "tool_use" for b in m.get("content") or [])) if agent else None
            with self._lock:
                self.requests.append(LoggedRequest(method, handler.path, dict(handler.headers.items()), body, step))
            if not agent:
                self.reply_side(handler, handler.path, body)
                return
            turn = self.script[min(step, len(self.script) - 1)]
            size = len(json.dumps({k: body.get(k) for k in ("system", "messages", "tools")}))
            turn.input_tokens, turn.delay = size // 4, 0.0
            if step == KILL_AT and step not in self.served:
                turn.delay = 600  # attempt 1 waits here until its worker is killed
            self.served.add(step)
            if turn.delay:
                time.sleep(turn.delay)
            self.reply_turn(handler, turn, body)

    return ConversationEndpoint()


def one_wp(root: Path, *, resume: bool) -> tuple[int, float, int]:
    """(input tokens, seconds, model calls) of attempt 2, after w1 died halfway through WP01."""
    from agileplus.dispatch.models import AgentSession, DispatchJob
    from tests.support.farm import (
        import_target,
        make_target_repo,
        running_with,
        start_beat,
        start_worker,
        stop,
        wait_ready,
        wait_until,
    )
    from tests.support.real_clis import worker_environment

    with conversation_endpoint() as endpoint:
        env = worker_environment("claude-code", endpoint, root / "home")
        slug = f"{zlib.crc32(root.name.encode()) % 900 + 100}-{root.name}"  # a feature of its own per run
        branch = f"feat/{slug}-WP01"
        repo = make_target_repo(root, wps={"WP01": []}, agent={"harness": "claude-code", "timeout_seconds": 900},
                                slug=slug,
                                environment={"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                                             "DISABLE_AUTOUPDATER": "1"})
        feature = import_target(repo)
        wp = feature.work_packages.get(code="WP01")
        broker = Path(os.environ["AGILEPLUS_BROKER_DIR"])  # where this process rings the doorbell
        w1 = start_worker("w1", root / "w1", broker_url=None, broker_dir=broker, harnesses="claude-code", **env)
        beat = start_beat(root / "beat", broker_url=None, broker_dir=broker)
        w2 = None
        try:
            wait_ready([w1])
            from agileplus.dispatch.services import enqueue_job

            job = enqueue_job(wp, harness="claude-code", actor="human:bench")
            wait_until(lambda: KILL_AT in endpoint.served and AgentSession.objects.filter(wp=wp).exists(),
                       timeout=300, what="attempt 1 halfway")
            time.sleep(3)  # three heartbeats (lease 3 s / 3): the stored transcript has the turns so far
            wait_until(lambda: repo.has_branch(branch) and len(repo.subjects(branch)) > KILL_AT, timeout=60,
                       what="parts pushed")
            w1.kill()
            for pid in running_with(f"AGILEPLUS_DATA_DIR={root / 'w1'}"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not resume:  # the baseline: no stored session, as every attempt was before
                AgentSession.objects.filter(wp=wp).delete()
            calls_before = sum(1 for r in endpoint.requests if r.consumed_step is not None)
            w2 = start_worker("w2", root / "w2", broker_url=None, broker_dir=broker, harnesses="claude-code", **env)
            wait_until(lambda: DispatchJob.objects.get(pk=job.pk).state in ("succeeded", "failed"), timeout=600,
                       what="attempt 2 to finish")
        finally:
            stop([p for p in (w1, beat, w2) if p is not None])
        job.refresh_from_db()
        steps = [r.consumed_step for r in endpoint.requests if r.consumed_step is not None][calls_before:]
        calls = len(steps)
    assert job.state == "succeeded" and job.attempt == 2, job.error
    assert bool(job.manifest.get("resumed_from_session")) == resume
    assert repo.subjects(branch)[0] == f"feat(WP01): add part {PARTS - 1}", steps
    assert {f"feat(WP01): add part {i}" for i in range(PARTS)} <= set(repo.subjects(branch)), steps
    print(f"{'resumed' if resume else 'fresh'}: attempt 2's model calls were the steps {steps}", file=sys.stderr)
    return int(job.usage["input_tokens"]), (job.finished_at - job.claimed_at).total_seconds(), calls


def main() -> None:
    root = setup("resume")
    rounds = 1 if QUICK else 2
    resumed, fresh = [], []
    for n in range(rounds):  # interleaved: the machine's load hits both alike
        fresh.append(one_wp(root / f"fresh-{n}", resume=False))
        resumed.append(one_wp(root / f"resumed-{n}", resume=True))
    mean = lambda xs, i: sum(x[i] for x in xs) / len(xs)  # noqa: E731
    note = (f"real Claude Code 2.1.328, scripted model; worker killed after {KILL_AT} of {PARTS} parts; "
            f"{rounds} round(s); model calls {mean(resumed, 2):.0f} vs {mean(fresh, 2):.0f}")
    emit("resume", [
        Figure("WP finished after its worker died halfway: attempt 2 input tokens, session resumed",
               mean(resumed, 0), "tokens", baseline="fresh session on the same branch", baseline_value=mean(fresh, 0),
               note=note),
        Figure("WP finished after its worker died halfway: attempt 2 wall time, session resumed",
               mean(resumed, 1), "s", baseline="fresh session on the same branch", baseline_value=mean(fresh, 1),
               note="claim of attempt 2 → job finished (push, governance, test count included)"),
    ])


if __name__ == "__main__":
    main()
