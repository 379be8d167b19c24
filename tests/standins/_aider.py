"""Stand-in for Aider with one message: ``aider --message TEXT`` or ``--message-file FILE``.

Parses options with argparse like the real CLI (unknown option: usage error, exit 2;
``--no-x`` forms of the boolean switches). Writes the file with an edit block and, with
auto-commits on (Aider's default), commits it and prints ``Commit <sha> <message>``. Prints
Aider's plain (``--no-pretty``) output, including the token and cost report, which goes on
two lines when there are both cache writes and cache hits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import commit, emit, planned_change, read_stdin, record, write

VERSION = "aider 0.86.1"
DEFAULT_MODEL = "anthropic/claude-sonnet-4-20250514"
TOKENS_LINE = "Tokens: 12k sent, 2.5k cache write, 8.1k cache hit, 345 received."
COST_LINE = "Cost: $0.0123 message, $0.0123 session."
SWITCHES = ("pretty", "stream", "auto-commits", "dirty-commits", "gitignore", "check-update", "show-release-notes",
            "show-model-warnings", "analytics", "git", "dry-run", "auto-lint", "auto-test", "restore-chat-history",
            "attribute-author", "attribute-committer", "cache-prompts", "suggest-shell-commands", "fancy-input")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aider", description="aider is AI pair programming in your terminal")
    p.add_argument("files", metavar="FILE", nargs="*")
    for name in ("--model", "--weak-model", "--editor-model", "--edit-format", "--map-tokens", "--chat-history-file",
                 "--input-history-file", "--llm-history-file", "--encoding", "--env-file", "--test-cmd",
                 "--commit-prompt", "--timeout", "--reasoning-effort", "--thinking-tokens", "--openai-api-key",
                 "--anthropic-api-key", "--api-key", "--set-env"):
        p.add_argument(name)
    for name in SWITCHES:
        p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--file", action="append")
    p.add_argument("--read", action="append")
    p.add_argument("--lint-cmd", action="append")
    p.add_argument("--yes-always", action="store_true")
    p.add_argument("--analytics-disable", action="store_true")
    p.add_argument("--message", "--msg", "-m")
    p.add_argument("--message-file", "-f")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--version", action="version", version=VERSION)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # exits 2 with "aider: error: …" like the real CLI
    record(argv, read_stdin() if args.message is None and args.message_file is None else "")
    if args.message_file:
        try:
            message = Path(args.message_file).read_text()
        except OSError as exc:
            print(f"Error reading message file: {exc}", file=sys.stderr)
            return 1
    elif args.message is not None:
        message = args.message
    else:
        print("error: this stand-in only runs with --message or --message-file", file=sys.stderr)
        return 2
    change = planned_change("aider", message)
    model = args.model or DEFAULT_MODEL
    lines = [VERSION.replace("aider ", "Aider v"),
             f"Main model: {model} with diff edit format, infinite output",
             "Weak model: anthropic/claude-3-5-haiku-20241022",
             "Git repo: .git with 3 files",
             "Repo-map: using 4096 tokens, auto refresh",
             "",
             f"I'll create {change.path}.",
             "",
             change.path,
             "<<<<<<< SEARCH",
             "=======",
             *change.content.splitlines(),
             ">>>>>>> REPLACE",
             "",
             TOKENS_LINE,
             COST_LINE]
    if args.dry_run:
        lines.append(f"Did not apply edit to {change.path} (--dry-run)")
    else:
        write(change)
        lines.append(f"Applied edit to {change.path}")
        if args.auto_commits is not False:
            ok, out, short = commit(change)
            lines.append(f"Commit {short} {change.message}" if ok else f"Unable to commit: {out}")
    emit(lines)
    return 0
