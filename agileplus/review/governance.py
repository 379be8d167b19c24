"""Governance, enforced authoritatively on the result: every commit between the base
and the branch head is checked — paths (renames, deletions, symlinks, submodules,
`.git`, case and `..` tricks), blob sizes, commit messages, and history rewrites."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from agileplus.core.redaction import fingerprint
from agileplus.review.secret_scan import held_secret_findings, scan_messages, scan_range
from harnesses.git import GitError, git, is_ancestor, log_fields

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"


@dataclass
class Violation:
    rule: str
    detail: str
    path: str | None = None
    commit: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in {"rule": self.rule, "detail": self.detail, "path": self.path,
                                  "commit": self.commit}.items() if v is not None}


@dataclass
class GovernanceReport:
    base: str
    head: str
    commits: int = 0
    paths: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def convention_regex(convention: str, wp_code: str) -> re.Pattern:
    """`feat({wp}): <description>` → ^feat\\(WP02\\): \\S.*"""
    pattern = re.escape(convention.replace("{wp}", wp_code))
    pattern = re.sub(r"\\<[^>]*\\>|<[^>]*>", r"\\S.*", pattern)
    return re.compile(f"^{pattern}$")


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.strip()
    if not prefix:
        return False
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def _under_folded(path: str, prefix: str) -> bool:
    return _under(path.casefold(), prefix.casefold())


def check_path(path: str, *, allowed: list[str], forbidden: list[str], others: dict[str, list[str]],
               own: list[str]) -> list[tuple[str, str]]:
    """Violations of one changed path, as (rule, detail)."""
    found = []
    parts = path.split("/")
    if path.startswith("/") or ".." in parts or posixpath.normpath(path) != path:
        found.append(("path_escape", f"{path} is not a plain path inside the repository"))
    if any(p.casefold() == ".git" for p in parts) or any(p.casefold().startswith(".git/") for p in parts):
        found.append(("git_internals", f"{path} touches .git"))
    for prefix in forbidden:
        if _under_folded(path, prefix):
            found.append(("forbidden_path", f"{path} is under forbidden {prefix}"))
    if allowed and not any(_under(path, a) for a in allowed):
        if any(_under_folded(path, a) for a in allowed):
            found.append(("case_trick", f"{path} differs only in case from an allowed path"))
        else:
            found.append(("outside_allowed", f"{path} is outside the allowed paths ({', '.join(allowed)})"))
    for code, paths in others.items():
        if any(_under_folded(path, p) for p in paths) and not any(_under(path, p) for p in own):
            found.append(("other_wp_domain", f"{path} belongs to {code}"))
    return found


def _raw_changes(repo: Path, base: str, head: str) -> tuple[list[str], list[tuple[str, str, str, str, list[str]]]]:
    """Every commit of base..head (empty and merge commits too), and (commit, old_mode, new_mode,
    new_blob, paths) for every change of every commit."""
    out = git("log", "--format=%x1e%H", "--raw", "-M", "--no-abbrev", "--diff-merges=first-parent",
              f"{base}..{head}", cwd=repo)
    shas, changes = [], []
    for record in out.split("\x1e"):
        lines = [line for line in record.splitlines() if line.strip()]
        if not lines:
            continue
        sha = lines[0].strip()
        shas.append(sha)
        for line in lines[1:]:
            if not line.startswith(":"):
                continue
            meta, *paths = line.split("\t")
            old_mode, new_mode, _old_blob, new_blob, _status = meta[1:].split()[:5]
            changes.append((sha, old_mode, new_mode, new_blob, paths))
    return shas, changes


def _blob_sizes(repo: Path, blobs: list[str]) -> dict[str, int]:
    """The size of each of ``blobs``: one ``cat-file --batch-check`` for all, not one git per blob."""
    if not blobs:
        return {}
    out = git("cat-file", "--batch-check=%(objectname) %(objectsize)", cwd=repo, input="\n".join(blobs) + "\n")
    sizes = {name: int(size) for name, _, size in (line.partition(" ") for line in out.splitlines())
             if size.isdigit()}
    missing = sorted(set(blobs) - set(sizes))
    if missing:
        raise GitError(f"git cat-file: objects missing from {repo}: {', '.join(missing[:5])}")
    return sizes


def check_range(repo: Path, base: str, head: str, *, constraints: dict, wp_code: str,
                own: list[str] | None = None, others: dict[str, list[str]] | None = None) -> GovernanceReport:
    report = GovernanceReport(base, head)
    if not is_ancestor(repo, base, head):
        report.violations.append(Violation("history_rewrite", f"base {base[:7]} is not an ancestor of {head[:7]}: "
                                           "history was rewritten"))
        return report
    allowed = list(constraints.get("allowed_paths") or [])
    forbidden = list(constraints.get("forbidden_paths") or [])
    max_size = constraints.get("max_file_size")
    convention = constraints.get("commit_convention")
    shas, changes = _raw_changes(repo, base, head)
    report.commits = len(shas)
    if convention:
        commits = [(sha, subject) for sha, subject, _rest in log_fields(repo, ["%H", "%s"], f"{base}..{head}")]
        report.violations += convention_violations(repo, commits, convention, wp_code)
    sizes = _blob_sizes(repo, [blob for _sha, _old, mode, blob, _paths in changes
                               if mode not in (GITLINK_MODE, SYMLINK_MODE) and set(blob) != {"0"}]) if max_size else {}
    seen = set()
    for sha, _old_mode, new_mode, blob, paths in changes:
        for path in paths:
            if path not in seen:
                seen.add(path)
                report.paths.append(path)
            for rule, detail in check_path(path, allowed=allowed, forbidden=forbidden, others=others or {},
                                           own=own or []):
                report.violations.append(Violation(rule, detail, path=path, commit=sha))
        target = paths[-1]
        if set(blob) == {"0"}:
            continue  # deletion
        if new_mode == GITLINK_MODE:
            report.violations.append(Violation("submodule", f"{target} adds a submodule", path=target, commit=sha))
            continue
        if new_mode == SYMLINK_MODE:
            link = git("cat-file", "-p", blob, cwd=repo)
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(target), link))
            if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                report.violations.append(Violation("symlink_escape", f"{target} links outside the repository "
                                                   f"({link})", path=target, commit=sha))
            else:
                for _rule, detail in check_path(resolved, allowed=[], forbidden=forbidden + [".git"], others={},
                                               own=[]):
                    report.violations.append(Violation("symlink_target", f"{target} → {link}: {detail}",
                                                       path=target, commit=sha))
            continue
        if max_size:
            size = sizes[blob]
            if size > int(max_size):
                report.violations.append(Violation("file_size", f"{target} is {size:,} bytes (limit "
                                                   f"{int(max_size):,})", path=target, commit=sha))
    if constraints.get("secret_scan", True):
        report.violations += secret_violations(repo, base, head)
    return report


def convention_violations(repo: Path, commits: list[tuple[str, str]], convention: str,
                          wp_code: str) -> list[Violation]:
    """The commits (``(sha, subject)``) whose subject does not follow ``convention``; merge
    commits are exempt."""
    rx = convention_regex(convention, wp_code)
    found = []
    for sha, subject in commits:
        if subject.startswith("Merge ") and len(git("rev-list", "--parents", "-n1", sha, cwd=repo).split()) > 2:
            continue
        if not rx.match(subject):
            # The subject is the agent's text and the detail reaches the audit chain: a fingerprint.
            found.append(Violation(
                "commit_message", f"the subject of {sha[:7]} ({fingerprint(subject)}) does not follow "
                                  f"'{convention.replace('{wp}', wp_code)}'", commit=sha))
    return found


def secret_violations(repo: Path, base: str, head: str) -> list[Violation]:
    """What looks like a secret in the files or the commit messages of base..head."""
    found = [Violation("secret", finding.describe(), path=finding.path) for finding in scan_range(repo, base, head)]
    for sha, kind, message in scan_messages(repo, base, head):
        found.append(Violation("secret", f"the message of {sha[:7]} ({fingerprint(message)}) "
                                         f"carries what looks like a {kind}", commit=sha))
    return found


def held_secret_violations(repo: Path, base: str, head: str, secret_values: list[str] | tuple = ()) -> list[Violation]:
    """The commits of base..head whose message, or the lines they add, carry a form of a secret
    this process holds (or of ``secret_values``): what never leaves the worker, whatever the
    project's ``secret_scan`` says."""
    found = []
    for sha, path, line in held_secret_findings(repo, base, head, tuple(secret_values)):
        where = f"{path}:{line} adds" if path else f"the message of {sha[:7]} carries"
        found.append(Violation("secret", f"{where} a form of a secret the farm holds", path=path, commit=sha))
    return found
