"""Running git as the worker does, and the origin's credentials: ``git_run`` (and ``git`` over it)
is THE way every caller runs a git command, hardened against the repository it runs in
(``HARDENED_CONFIG`` on the command line, which beats every config file: hooks, fsmonitor, pager,
editor and askpass off; no system or global config, ``AGILEPLUS_GIT_CONFIG`` naming the one file an
operator wants, e.g. for push credentials); ``SAFE_UPLOAD_PACK`` is the fixed upload-pack a fetch
from an agent's repository runs (``harnesses.git``). An origin's credentials
(``https://user:token@host/repo.git``) never reach a git command line, a clone's ``.git/config``
(which the agent's worktree shares) or a message: git gets the URL without them (``remote_url``)
and an ``Authorization`` header scoped to that URL through ``GIT_CONFIG_*`` environment variables
of its own process only; every message shows the URL redacted (``redact_url``:
``https://***@host/repo.git``).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "AgilePlus",
    "GIT_AUTHOR_EMAIL": "agileplus@localhost",
    "GIT_COMMITTER_NAME": "AgilePlus",
    "GIT_COMMITTER_EMAIL": "agileplus@localhost",
    # A network origin that stops answering mid-transfer fails the command after a minute
    # instead of hanging the job until the kernel gives the connection up.
    "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
    "GIT_HTTP_LOW_SPEED_TIME": "60",
}


class GitError(Exception):
    pass


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
# Clean origin URL -> "Authorization: Basic …" header, for this process's git commands only.
_AUTH_HEADERS: dict[str, str] = {}


def redact_url(text: str) -> str:
    """``text`` with the user/password part of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def remote_url(origin: str) -> str:
    """``origin`` without its credentials, which are kept for this process's git commands.

    Only http(s) credentials are taken out: an ssh origin (``git@host:repo`` or
    ``ssh://git@host/repo``) names a user, not a secret, and authenticates with the host's key.
    """
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return origin
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, ""))
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    _AUTH_HEADERS[clean] = f"Authorization: Basic {token}"
    return clean


def _auth_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for i, (url, header) in enumerate(_AUTH_HEADERS.items()):
        # http.<url>.extraHeader: sent only to that URL (and below it), never to another host.
        env[f"GIT_CONFIG_KEY_{i}"] = f"http.{url}.extraHeader"
        env[f"GIT_CONFIG_VALUE_{i}"] = header
    if env:
        env["GIT_CONFIG_COUNT"] = str(len(_AUTH_HEADERS))
    return env


# Command-line config beats every config file, so these hold whatever a repository says.
HARDENED_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.pager=cat",
    "core.editor=true",
    "core.askPass=",
    "core.alternateRefsCommand=true",
    "core.sshCommand=ssh",
    "gpg.program=false",
    "sequence.editor=true",
    "credential.helper=",
    "protocol.ext.allow=never",
)
# Variables of the worker's environment that would make git run something or read other config.
_DROPPED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "GIT_EDITOR",
                "GIT_ASKPASS", "SSH_ASKPASS", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
                "GIT_EXEC_PATH", "GIT_PROXY_COMMAND", "GIT_SEQUENCE_EDITOR")
# The fixed upload-pack a fetch from an agent's repository runs (in that repository).
SAFE_UPLOAD_PACK = "git " + " ".join(f"-c {item}" for item in HARDENED_CONFIG) + " upload-pack"


def git_env() -> dict[str, str]:
    """The environment of a git process this module does not run itself (e.g. ``merge-tree``,
    whose exit code is the answer): hardened like every other, with the origin's credentials."""
    return hardened_env(_auth_env())


def hardened_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(GIT_ENV)
    env.update({
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.environ.get("AGILEPLUS_GIT_CONFIG") or os.devnull,
        "GIT_PAGER": "cat", "PAGER": "cat", "GIT_EDITOR": "true",
    })
    env.update(extra or {})
    return env


def git_run(args: list[str] | tuple[str, ...], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
            input: str | None = None, text: bool = True) -> subprocess.CompletedProcess:
    """THE way every caller runs git: hooks off, fsmonitor off, no system/global config, no
    repository config that executes (see ``HARDENED_CONFIG``)."""
    argv = ["git"]
    for item in HARDENED_CONFIG:
        argv += ["-c", item]
    args = tuple(remote_url(a) if _USERINFO.match(a) else a for a in args)
    return subprocess.run([*argv, *args], cwd=cwd, capture_output=True, text=text,
                          env=hardened_env({**_auth_env(), **(env or {})}), input=input)


def git(*args: str, cwd: Path | str | None = None, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None) -> str:
    proc = git_run(args, cwd=cwd, env=env, input=input)
    if check and proc.returncode != 0:
        raise GitError(redact_url(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}"))
    return proc.stdout.strip()
