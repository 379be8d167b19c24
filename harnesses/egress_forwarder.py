"""Runs INSIDE the sandbox (stdlib only, any python3): the agent's only way out under
``agent.network: model``.

The sandbox has its own network namespace (only loopback). This launcher starts, in a forked
child, TCP listeners on 127.0.0.1 that relay bytes to the worker's egress proxy, a unix socket
mounted into the sandbox, then execs the agent:

- ``--proxy PORT``: an HTTP proxy address for HTTPS_PROXY/HTTP_PROXY (the worker's proxy reads
  the CONNECT or absolute-form request and allows only the harness's hosts);
- ``--forward PORT`` (repeatable): 127.0.0.1:PORT inside reaches 127.0.0.1:PORT outside (a
  loopback model endpoint in ANTHROPIC_BASE_URL, say), through the same proxy with a CONNECT.

When the agent exits, the sandbox's PID namespace ends and the forwarder with it.

Usage: python3 egress_forwarder.py --socket PATH [--proxy PORT] [--forward PORT]... -- ARGV...
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


def _relay(client: socket.socket, socket_path: str, connect_to: int | None) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
        if connect_to is not None:
            upstream.sendall(f"CONNECT 127.0.0.1:{connect_to} HTTP/1.1\r\nHost: 127.0.0.1:{connect_to}\r\n\r\n"
                             .encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = upstream.recv(1)
                if not chunk:
                    raise OSError("proxy closed")
                head += chunk
            if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                raise OSError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
    except OSError:
        pass
    finally:
        client.close()
        upstream.close()


def _listen(port: int, socket_path: str, connect_to: int | None) -> threading.Thread:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def accept() -> None:
        while True:
            client, _ = server.accept()
            threading.Thread(target=_relay, args=(client, socket_path, connect_to), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return thread


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
    ready_r, ready_w = os.pipe()
    if os.fork() == 0:  # the forwarder: listeners up, then tell the launcher, then serve
        os.close(ready_r)
        # Not the agent's output: the worker reads the agent's pipes until they close.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        threads = ([_listen(proxy, socket_path, None)] if proxy else []) + \
                  [_listen(port, socket_path, port) for port in forwards]
        os.write(ready_w, b"1")
        os.close(ready_w)
        for thread in threads:
            thread.join()
        os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
