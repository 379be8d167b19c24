#!/usr/bin/env python3
"""A scripted agent for tests: does what ``AGENT_BEHAVIOUR`` (or ``AGENT_BEHAVIOUR_<WP>``, or for
candidate N of a best-of-N round ``AGENT_BEHAVIOUR_C<N>``) says,
in the worktree it is started in, with real git commits. No model.

Behaviours (comma-separated, run in order):
  commit:N           N commits, each adding ``<wp>/file_<i>.txt`` with ``feat(<WP>): change i``
  write:PATH         commit a file at PATH (may be forbidden, or ``../x``)
  wip:PATH           write a file and leave it uncommitted
  big:PATH:BYTES     commit a file of BYTES bytes
  badmsg             commit with a message that breaks the convention
  rewrite            amend the root commit (the base stops being an ancestor: a history rewrite)
  symlink:PATH:TO    commit a symlink PATH pointing at TO
  apply:DIR          copy the files under DIR into the worktree and commit them
  sleep:S            sleep S seconds
  sleep_first:S      sleep S seconds on the job's first attempt only (a retry goes straight on)
  stubborn           ignore SIGTERM, start a grandchild that ignores it too, sleep forever
  echo_env:NAME      print the value of env NAME (a secret must reach the agent)
  env_to_file:NAME:F write the value of env NAME to file F (outside the worktree)
  print_prompt       print the prompt
  fail:CODE          exit with CODE
  record:FILE        append "<WP> start <t>" now and "<WP> end <t>" at exit to FILE
  meet:S             after record: stay until every WP of its group (``AGENT_MEET``: groups of WP codes,
                     ';'-separated) has started (a start line in the record file), S seconds at most
  flood:N            print N lines
  flood_mb:N         ignore SIGTERM and print N megabytes of lines as fast as it can
  dotdot             commit a tree with an entry named '..' (built with git mktree), leave a file uncommitted
  raid_origin:F      try to push to the origin and write what it could see (git config, env,
                     the push's output) to file F: the origin's credentials must be nowhere in it
  binary             print raw bytes with NUL and a 20,000-character line (untrusted output)
  escapes            print terminal escapes (OSC 0/8/52, CSI, \\r, backspace, BEL) and commit with them in
                     the message body (a hostile agent aiming at the operator's terminal)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

# Window title (OSC 0), hyperlink (OSC 8), clipboard (OSC 52), colour and erase (CSI), \r and backspaces.
ESCAPES = ("\x1b]0;pwned-title\x07 \x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ "
           "\x1b]52;c;cm0gLXJmIH4K\x07 \x1b[31mred\x1b[0m\x1b[2J \rfake\x08\x08\x08\x08ok \x9b31m")


def prompt_text() -> str:
    path = os.environ.get("AGILEPLUS_PROMPT_FILE")
    return Path(path).read_text() if path else sys.stdin.read()


def git(*args: str, input_text: str | None = None) -> str:
    identity = {"GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@localhost", "GIT_COMMITTER_NAME": "agent",
                "GIT_COMMITTER_EMAIL": "agent@localhost"}
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True, input=input_text,
                          env={**os.environ, **identity}).stdout.strip()


def commit(paths: list[str], message: str) -> None:
    git("add", "--", *paths)
    if subprocess.run(["git", "diff", "--cached", "--quiet"]).returncode == 0:
        print(f"already committed: {message}", flush=True)  # a retry in the same worktree
        return
    git("-c", "user.name=agent", "-c", "user.email=agent@localhost", "commit", "-q", "-m", message)
    print(f"committed: {message}", flush=True)


def write(path: str, content: str | bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)


def started(record: Path | None) -> set[str]:
    """The WPs with a start line in the record file."""
    lines = record.read_text().splitlines() if record and record.exists() else []
    return {line.split()[0] for line in lines if line.split()[1:2] == ["start"]}


def main() -> int:
    prompt = prompt_text()
    found = re.search(r"\b(WP\d{2,})\b", prompt)
    wp = found.group(1) if found else "WP00"
    candidate = os.environ.get("AGILEPLUS_CANDIDATE", "")  # best of N: each candidate may be told apart
    plan = (os.environ.get(f"AGENT_BEHAVIOUR_C{candidate}") if candidate else None) or \
        os.environ.get(f"AGENT_BEHAVIOUR_{wp}") or os.environ.get("AGENT_BEHAVIOUR", "commit:1")
    record = None
    print(f"agent starting {wp}: {plan}", flush=True)
    for step in [s for s in plan.split(",") if s]:
        name, _, arg = step.partition(":")
        if name == "commit":
            for i in range(1, int(arg or 1) + 1):
                path = f"{wp.lower()}/file_{i}.txt"
                write(path, f"{wp} change {i}\n")
                commit([path], f"feat({wp}): change {i}")
        elif name == "write":
            write(arg, f"{wp} wrote this\n")
            commit([arg], f"feat({wp}): write {arg}")
        elif name == "wip":
            write(arg, f"{wp} work in progress\n")
        elif name == "big":
            path, size = arg.rsplit(":", 1)
            write(path, b"x" * int(size))
            commit([path], f"feat({wp}): add {path}")
        elif name == "badmsg":
            write(f"{wp.lower()}/bad.txt", "x\n")
            commit([f"{wp.lower()}/bad.txt"], "did some stuff")
        elif name == "rewrite":
            # Squash everything into an amended root commit: the base is no longer an ancestor.
            git("reset", "-q", "--soft", git("rev-list", "--max-parents=0", "HEAD"))
            write("rewritten.txt", "history rewritten\n")
            git("add", "rewritten.txt")
            git("-c", "user.name=agent", "-c", "user.email=agent@localhost", "commit", "-q", "--amend",
                "-m", f"feat({wp}): rewrite history")
        elif name == "symlink":
            path, to = arg.split(":", 1)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(to, path)
            commit([path], f"feat({wp}): link {path}")
        elif name == "apply":
            source = Path(arg)
            paths = []
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                rel = file.relative_to(source).as_posix()
                write(rel, file.read_bytes())
                paths.append(rel)
            commit(paths, f"feat({wp}): apply change")
        elif name == "sleep":
            time.sleep(float(arg))
        elif name == "sleep_first":
            if os.environ.get("AGILEPLUS_JOB_MARK", "").endswith(".1"):
                time.sleep(float(arg))
        elif name == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            subprocess.Popen([sys.executable, "-c",
                              "import signal,time,os\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                              "open(os.environ['GRANDCHILD_PID_FILE'],'w').write(str(os.getpid()))\n"
                              "time.sleep(3600)"])
            print("ignoring SIGTERM", flush=True)
            time.sleep(3600)
        elif name == "echo_env":
            print(f"{arg}={os.environ.get(arg, '<unset>')}", flush=True)
        elif name == "env_to_file":
            var, path = arg.split(":", 1)
            Path(path).write_text(os.environ.get(var, "<unset>"))
        elif name == "print_prompt":
            print(prompt, flush=True)
        elif name == "fail":
            return int(arg or 1)
        elif name == "record":
            record = Path(arg)
            with record.open("a") as handle:
                handle.write(f"{wp} start {time.time()}\n")
        elif name == "meet":
            group = next((g.split() for g in os.environ.get("AGENT_MEET", "").split(";") if wp in g.split()), [wp])
            deadline = time.monotonic() + float(arg)
            while time.monotonic() < deadline and not set(group) <= started(record):
                time.sleep(0.1)
        elif name == "raid_origin":
            seen = [subprocess.run(cmd, capture_output=True, text=True) for cmd in (
                ["git", "config", "--list", "--show-origin"],
                ["git", "push", "origin", f"HEAD:refs/heads/raided-{wp}"])]
            Path(arg).write_text("\n".join(f"{p.args}\nexit {p.returncode}\n{p.stdout}{p.stderr}" for p in seen)
                                 + "\n" + "\n".join(f"{k}={v}" for k, v in os.environ.items()))
        elif name == "flood":
            for i in range(int(arg)):
                print(f"flood line {i}", flush=True)
        elif name == "flood_mb":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            line = b"x" * 99 + b"\n"
            for _ in range(int(arg) * 10_000):
                sys.stdout.buffer.write(line)
            sys.stdout.flush()
        elif name == "dotdot":
            blob = git("hash-object", "-w", "--stdin", input_text="outside\n")
            inner = git("mktree", input_text=f"100644 blob {blob}\tescaped.txt\n")
            head_tree = git("rev-parse", "HEAD^{tree}")
            entries = git("ls-tree", head_tree)
            tree = git("mktree", input_text=f"{entries}\n040000 tree {inner}\t..\n")
            sha = git("commit-tree", tree, "-p", "HEAD", "-m", f"feat({wp}): a tree entry named ..")
            git("update-ref", "HEAD", sha)
            write(f"{wp.lower()}/uncommitted.txt", "left behind\n")
        elif name == "escapes":
            print(f"{ESCAPES} printed", flush=True)
            write(f"{wp.lower()}/escapes.txt", "escapes\n")
            commit([f"{wp.lower()}/escapes.txt"], f"feat({wp}): escapes\n\n{ESCAPES}")
        elif name == "binary":
            sys.stdout.buffer.write(b"binary\x00output\x00\xff\xfe here\n" + b"x" * 20000 + b"\n")
            sys.stdout.buffer.flush()
        else:
            print(f"unknown behaviour {step}", file=sys.stderr)
            return 3
    if record:
        with record.open("a") as handle:
            handle.write(f"{wp} end {time.time()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
