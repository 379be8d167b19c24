"""An origin served over the network the way GitHub and GitLab serve one: git smart HTTP
(``git http-backend``, the CGI that ships with git) behind HTTP basic auth, push enabled.

Smart HTTP, not ``git daemon``: the daemon's protocol has no authentication at all (anyone who
reaches the port may push once receive-pack is on), while smart HTTP carries credentials the way
the hosted forges take a token, so the farm's credential handling is exercised for real.

Run as its own process (so a test can start it inside a network namespace)::

    python -m tests.support.git_http --root DIR --host 10.231.0.3 --port 8080 --user U --password P

Every repository under ``--root`` is served at ``http://HOST:PORT/<name>``. A request without the
right credentials gets 401 and never reaches git.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

from tests.support.processes import stop_group

BACKEND = "/usr/lib/git-core/git-http-backend"


class GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path
    credentials: str  # "user:password"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            given = base64.b64decode(header[6:]).decode()
        except ValueError:
            return None
        return given.split(":", 1)[0] if hmac.compare_digest(given, self.credentials) else None

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # pushes above http.postBuffer
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        user = self._authorized()
        if user is None:
            body = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="origin"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        parts = urlsplit(self.path)
        body = self._body() if self.command == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": user,  # an authenticated user may push (receive-pack on)
            "REMOTE_ADDR": self.client_address[0],
            "REQUEST_METHOD": self.command, "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        proc = subprocess.run([BACKEND], input=body, env=env, capture_output=True)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve(root: Path, host: str, port: int, user: str, password: str) -> None:
    handler = type("Handler", (GitHandler,), {"root": root, "credentials": f"{user}:{password}"})
    server = ThreadingHTTPServer((host, port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


def url(host: str, port: int, repo: str, user: str | None = None, password: str | None = None) -> str:
    auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
    return f"http://{auth}{host}:{port}/{repo}"


def wait_listening(host: str, port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the git HTTP origin did not start on {host}:{port}") from None
            time.sleep(0.05)


@contextmanager
def running_git_http(root: Path, *, user: str, password: str, host: str = "127.0.0.1", port: int = 0,
                     log: Path | None = None) -> Iterator[int]:
    """Serve ``root``'s repositories on loopback; yields the port."""
    if not port:
        from tests.support.server import free_port

        port = free_port()
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.git_http", "--root", str(root),
                             "--host", host, "--port", str(port), "--user", user, "--password-env", "ORIGIN_PASSWORD"],
                            cwd=Path(__file__).resolve().parents[2], stdout=out, stderr=out,
                            env={**os.environ, "ORIGIN_PASSWORD": password}, start_new_session=True)
    try:
        wait_listening(host, port, proc)
        yield port
    finally:
        stop_group(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", required=True, help="environment variable holding the password")
    args = parser.parse_args()
    serve(args.root, args.host, args.port, args.user, os.environ[args.password_env])


if __name__ == "__main__":
    main()
