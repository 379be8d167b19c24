"""docker/smoke's root-escape check inside a worker container.

    python3 docker/sandbox_escapes.py script tests/security/test_no_root_in_the_sandbox.py > attack.sh
    docker cp docker/sandbox_escapes.py WORKER:/tmp/ && docker exec -i WORKER python /tmp/sandbox_escapes.py < attack.sh

The attack is the root-sandbox test's own escapes (taken from the test file), run in the sandbox the
worker container makes for a job (harnesses.sandbox, as the worker does). It checks the agent's uid
is not 0, it has no capability, no escape printed LEAK, and no process outside the sandbox is
visible. Exit 0 when all hold, else one FAILED line per problem.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUTSIDE_PID = "__OUTSIDE_PID__"  # the runner's own pid, outside the sandbox (ptrace's target)


def attack_script(test_file: Path) -> str:
    """The escapes of the root-sandbox test (mount, remount, ptrace, raw socket, mknod, unix sockets,
    open_by_handle_at), taken from the test file itself, plus what only a container shows."""
    names = {}
    for node in ast.parse(test_file.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id in {"ESCAPES", "SOCKETS"}:
            names[target.id] = ast.literal_eval(node.value)
    return (
        'echo "agent-uid:$(id -u)"; grep "^CapEff" /proc/self/status\n'
        'awk \'{print $5}\' /proc/self/mountinfo > /tmp/mounts\n'
        'while read -r m; do mount -o remount,bind,rw "$m" 2>/dev/null && echo "LEAK:remount:$m"; done < /tmp/mounts\n'
        '(mkdir -p /tmp/m && mount -t tmpfs none /tmp/m) 2>/dev/null && echo "LEAK:mount" || echo "blocked:mount"\n'
        '(touch /dev/planted) 2>/dev/null && echo "LEAK:dev" || echo "blocked:dev"\n'
        + names["ESCAPES"].format(outside_pid=OUTSIDE_PID, sockets=names["SOCKETS"])
        + 'for p in /proc/[0-9]*; do echo "proc:$(tr "\\0" " " < $p/cmdline 2>/dev/null)"; done\n'
    )


def run_in_sandbox(attack: str) -> str:
    sys.path.insert(0, "/app")
    from harnesses.sandbox import Sandbox, SandboxSpec

    with tempfile.TemporaryDirectory(dir=os.environ.get("AGILEPLUS_WORKER_DIR")) as work, \
            Sandbox(SandboxSpec(workdir=Path(work))) as sandbox:
        attack = attack.replace(OUTSIDE_PID, str(os.getpid()))
        proc = subprocess.run(sandbox.wrap(["sh", "-c", attack]), preexec_fn=sandbox.preexec,
                              env=sandbox.environment({"PATH": os.environ["PATH"]}),
                              capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def verdict(output: str) -> list[str]:
    problems = [line for line in output.splitlines() if line.startswith("LEAK:")]
    lines = output.splitlines()
    if "agent-uid:0" in lines or not any(line.startswith("agent-uid:") for line in lines):
        problems.append("the agent's uid is 0 (or unknown)")
    caps = [line.split()[-1] for line in lines if line.startswith("CapEff")]
    if caps != ["0000000000000000"]:
        problems.append(f"the agent keeps capabilities: CapEff {caps}")
    outside = [line for line in lines if line.startswith("proc:") and ("celery" in line or "agileplus" in line)]
    if outside:
        problems.append(f"processes outside the sandbox are visible: {outside[:3]}")
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["script"]:
        print(attack_script(Path(argv[1])), end="")
        return 0
    output = run_in_sandbox(sys.stdin.read())
    blocked = sorted({line.split(":", 1)[1] for line in output.splitlines() if line.startswith("blocked:")})
    print(f"  agent {next((x for x in output.splitlines() if x.startswith('agent-uid:')), '?')}, "
          f"{next((x for x in output.splitlines() if x.startswith('CapEff')), 'CapEff ?')}; "
          f"refused: {', '.join(blocked)}")
    problems = verdict(output)
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
