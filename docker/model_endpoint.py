"""docker/smoke's model: a scripted OpenAI Responses endpoint in a container of its own, so a real
pinned Codex CLI in a worker container implements a WP of the demo with no model and no tokens.

    python model_endpoint.py --port 8443 --wp WP01 --demo-agent /srv/model/demo_agent.py --tls /srv/model/tls

The script is the demo agent's for that WP (examples/demo-farm/tools/demo_agent.py): one reply
writing each step's files, one running ``git add`` and ``git commit`` with the feature's convention.
Over HTTPS with ``--tls DIR`` (server.pem, server.key): the worker's model gateway forwards only
over HTTPS off its own host, and trusts the smoke's CA (AGILEPLUS_MODEL_GATEWAY_CA_FILE).
Runs from the app image (``harnesses.endpoints`` is in /app); serves until stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shlex
import signal
import ssl
import sys
import threading

sys.path.insert(0, "/app")

from harnesses.endpoints import Run, Say, Step, Turn, Write  # noqa: E402
from harnesses.endpoints.openai_responses import ResponsesEndpoint  # noqa: E402


def demo_script(demo_agent: str, wp: str) -> list[Step]:
    spec = importlib.util.spec_from_file_location("demo_agent", demo_agent)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    script: list[Step] = []
    for message, files in module.FILES[wp]:
        script.append(Turn([Say(f"{wp}: {message}."), *(Write(path, content) for path, content in files.items())]))
        paths = " ".join(shlex.quote(path) for path in files)
        script.append(Turn([Run(f"git add {paths} && git commit -q -m {shlex.quote(f'feat({wp}): {message}')}")]))
    return script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--tls", help="folder with server.pem and server.key (else plain HTTP)")
    parser.add_argument("--wp", default="WP01")
    parser.add_argument("--demo-agent", default="/srv/model/demo_agent.py")
    args = parser.parse_args()
    endpoint = ResponsesEndpoint(demo_script(args.demo_agent, args.wp), model="gpt-5")
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{args.tls}/server.pem", f"{args.tls}/server.key")
        endpoint.serve_tls(context)
    endpoint.start(host="0.0.0.0", port=args.port)
    scheme = "https" if args.tls else "http"
    print(f"model_endpoint: OpenAI Responses, {scheme} on :{args.port}, the demo's {args.wp} script", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    endpoint.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
