"""Runs INSIDE the sandbox (stdlib only, any python3): the agent's only way out under
``agent.network: model``.

The sandbox has its own network namespace (only loopback). This launcher binds TCP listeners
on 127.0.0.1 that relay bytes to the worker's egress proxy (a unix socket mounted into the
sandbox), forks a child that serves them, and execs the agent at once: a connection made before
the child accepts waits in the listen backlog, so nothing waits for the child to be ready.

- ``--proxy PORT``: an HTTP proxy address for HTTPS_PROXY/HTTP_PROXY (the worker's proxy reads
  the CONNECT or absolute-form request and allows only the harness's hosts);
- ``--forward PORT`` (repeatable): 127.0.0.1:PORT inside reaches 127.0.0.1:PORT outside (a
  loopback model endpoint in ANTHROPIC_BASE_URL, say), through the same proxy with a CONNECT.

When the agent exits, the sandbox's PID namespace ends and the forwarder with it.

It is on every ``network: model`` job's start path, so it imports only built-in modules
(``_socket``, ``_thread``, ``posix``), not ``socket``, ``threading`` or ``os``, whose imports (enum,
collections, selectors, abc) took longer than the interpreter's own start (bench/bench_sandbox.py).

Usage: python3 egress_forwarder.py --socket PATH [--proxy PORT] [--forward PORT]... -- ARGV...
"""

from __future__ import annotations

import _socket
import _thread
import posix
import sys


def _pump(src: _socket.socket, dst: _socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((dst, _socket.SHUT_WR), (src, _socket.SHUT_RD)):
            try:  # noqa: SIM105 - contextlib's import is what this module avoids
                sock.shutdown(how)
            except OSError:
                pass


def _connect_through_proxy(upstream: _socket.socket, port: int) -> None:
    upstream.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = upstream.recv(1)
        if not chunk:
            raise OSError("proxy closed")
        head += chunk
    if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        raise OSError(head.split(b"\r\n", 1)[0].decode(errors="replace"))


def _relay(client: _socket.socket, socket_path: str, connect_to: int | None) -> None:
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
        if connect_to is not None:
            _connect_through_proxy(upstream, connect_to)
        done = _thread.allocate_lock()
        done.acquire()

        def back() -> None:
            _pump(upstream, client)
            done.release()

        _thread.start_new_thread(back, ())
        _pump(client, upstream)
        done.acquire()
    except OSError:
        pass
    finally:
        client.close()
        upstream.close()


def _listener(port: int) -> _socket.socket:
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    return server


def _serve(server: _socket.socket, socket_path: str, connect_to: int | None) -> None:
    while True:
        fd, _address = server._accept()
        client = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
        _thread.start_new_thread(_relay, (client, socket_path, connect_to))


def main(argv: list[str]) -> int:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    socket_path, proxy, forwards = "", None, []
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag == "--socket":
            socket_path = value
        elif flag == "--proxy":
            proxy = int(value)
        elif flag == "--forward":
            forwards.append(int(value))
    # Bound before the fork: the agent's first connection queues even if the child is not serving yet.
    served = ([(_listener(proxy), None)] if proxy else []) + [(_listener(port), port) for port in forwards]
    if posix.fork() == 0:  # the forwarder
        # Not the agent's output: the worker reads the agent's pipes until they close.
        devnull = posix.open("/dev/null", posix.O_RDWR)
        for fd in (0, 1, 2):
            posix.dup2(devnull, fd)
        for server, connect_to in served[1:]:
            _thread.start_new_thread(_serve, (server, socket_path, connect_to))
        if served:
            _serve(served[0][0], socket_path, served[0][1])
        posix._exit(0)
    # The listeners are close-on-exec (Python's default): the agent does not inherit them.
    posix.execv(_which(command[0]), command)
    return 127


def _which(name: str) -> str:
    if "/" in name:
        return name
    for folder in posix.environ.get(b"PATH", b"/usr/bin:/bin").decode().split(":"):
        candidate = f"{folder or '.'}/{name}"
        if posix.access(candidate, posix.X_OK):
            return candidate
    return name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
