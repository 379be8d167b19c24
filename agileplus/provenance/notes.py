"""Git notes on the origin: ``refs/notes/agent-trace`` (one Agent Trace record per agent commit)
and ``refs/notes/agileplus-attestation`` (one DSSE envelope per first-parent commit of a main move).

Notes are keyed by commit. A rewrite (a waiting branch rebased onto a new main) maps each old
commit to the new commit with the same ``git patch-id --stable`` and copies its note there, with
the mapping recorded in the copy (``metadata["dev.agileplus"]["rewritten_from"]``). Several workers
write notes at once: each write fetches the origin's notes ref into a scratch ref of its own, adds
its notes on top and pushes without force, retrying from the fetch when another push landed first.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import subprocess
import time
from pathlib import Path

from agileplus.provenance.standalone import ATTESTATION_NOTES, TRACE_NOTES
from harnesses.git import GitError, git, git_env

log = logging.getLogger("agileplus.provenance")

PUSH_TRIES = 8
__all__ = ["ATTESTATION_NOTES", "TRACE_NOTES", "carry_trace_notes", "fetch_notes", "patch_ids", "read_note",
           "write_notes"]


def fetch_notes(path: Path, ref: str, into: str | None = None, *, prune: bool = True) -> bool:
    """The origin's notes ``ref`` into the local ref ``into`` (default: ``ref``), replacing it; False
    when the origin has none yet (``into`` is then deleted, unless not ``prune``)."""
    into = into or ref
    if not git("ls-remote", "origin", ref, cwd=path).strip():
        if prune:
            git("update-ref", "-d", into, cwd=path, check=False)
        return False
    git("fetch", "--quiet", "origin", f"+{ref}:{into}", cwd=path)
    return True


def write_notes(path: Path, ref: str, notes: dict[str, str], *, keep_existing: bool = False) -> list[str]:
    """Add ``notes`` ({commit: text}) to the origin's ``ref``; ``keep_existing``: a commit that has
    a note there already keeps it. Returns the commits noted; raises GitError after PUSH_TRIES
    lost races. Built on a scratch ref of its own: jobs of one worker share its mirror."""
    scratch = f"refs/notes/agileplus-write-{secrets.token_hex(6)}"
    last = GitError("no attempt")
    try:
        for attempt in range(PUSH_TRIES):
            try:
                fetch_notes(path, ref, into=scratch)
                existing = set(git("notes", "--ref", scratch, "list", cwd=path, check=False).split()[1::2]) \
                    if keep_existing else set()
                todo = {commit: text for commit, text in notes.items() if commit not in existing}
                for commit, text in todo.items():
                    git("notes", "--ref", scratch, "add", "--force", "--file=-", commit, cwd=path, input=text)
                if todo:
                    git("push", "--quiet", "origin", f"{scratch}:{ref}", cwd=path)
                return list(todo)
            except GitError as exc:  # another writer pushed first: start again from its notes
                last = exc
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        raise last
    finally:
        git("update-ref", "-d", scratch, cwd=path, check=False)


def read_note(path: Path, ref: str, commit: str) -> str | None:
    text = git("notes", "--ref", ref, "show", commit, cwd=path, check=False)
    return text + "\n" if text else None


def patch_ids(path: Path, revisions: str) -> dict[str, str]:
    """{patch id: commit} of the non-merge commits of ``revisions`` (e.g. ``base..head``)."""
    log_proc = subprocess.run(["git", "log", "-p", "--no-merges", "--no-color", revisions], cwd=path,
                              capture_output=True, env=git_env())
    ids = subprocess.run(["git", "patch-id", "--stable"], cwd=path, input=log_proc.stdout, capture_output=True,
                         env=git_env())
    return {patch: commit for patch, commit in (line.split() for line in ids.stdout.decode().splitlines())}


def carry_trace_notes(path: Path, onto: str, old_head: str, new_head: str) -> dict[str, str]:
    """After ``old_head`` was rebased onto ``onto`` as ``new_head``: copy each Agent Trace note to
    the rewritten commit with the same patch id. Returns {old commit: new commit} for those copied.
    Best effort: a failure is logged, the rebase stands (its notes stay on the old commits)."""
    try:
        if not fetch_notes(path, TRACE_NOTES):
            return {}
        old = patch_ids(path, f"{onto}..{old_head}")
        new = patch_ids(path, f"{onto}..{new_head}")
        mapping = {old[p]: new[p] for p in old.keys() & new.keys() if old[p] != new[p]}
        copies = {}
        for before, after in mapping.items():
            text = read_note(path, TRACE_NOTES, before)
            if text:
                copies[after] = _rewritten(text, before, after)
        write_notes(path, TRACE_NOTES, copies)
        return {before: after for before, after in mapping.items() if after in copies}
    except Exception as exc:  # noqa: BLE001 - the rebase is pushed; its notes stay on the old commits
        log.warning("Agent Trace notes not carried from %s to %s: %s", old_head[:12], new_head[:12], exc)
        return {}


def _rewritten(text: str, before: str, after: str) -> str:
    record = json.loads(text)
    record["vcs"] = {**record.get("vcs", {}), "revision": after}
    meta = record.setdefault("metadata", {}).setdefault("dev.agileplus", {})
    meta["rewritten_from"] = [*meta.get("rewritten_from", []), before]
    return json.dumps(record, sort_keys=True, indent=1) + "\n"
