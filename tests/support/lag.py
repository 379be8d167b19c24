"""A TCP forwarder that adds latency and emulated loss, for a kernel without ``tc netem``
(this build machine's has no sch_netem: ``tc qdisc … netem`` answers "qdisc kind is unknown").

Every chunk read in either direction is written ``delay`` seconds later, in order. Loss is
emulated the way TCP shows it to an application: with probability ``loss`` a chunk arrives a
retransmission timeout (0.2 s, Linux's minimum RTO) late, and everything behind it waits (head of
line blocking). A real lost segment can cost more (exponential back-off on a repeated loss).

    python -m tests.support.lag --listen 10.231.0.7:5432 --to 10.231.0.2:5432 --delay 0.05 --loss 0.01

``--delay 0.05`` each way is 100 ms more round-trip time, what ``netem delay 100ms`` on one side adds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

RTO = 0.2


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, loss: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    last_due = 0.0
    try:
        while True:
            data = await reader.read(65536)
            due = time.monotonic() + delay + (RTO if data and random.random() < loss else 0.0)
            last_due = max(due, last_due)  # in order: a late chunk holds back the ones behind it
            await queue.put((last_due, data))
            if not data:
                break
        await sender
    except (ConnectionError, asyncio.CancelledError):
        sender.cancel()
        writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], delay: float, loss: float) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, delay, loss),
                             pipe(server_reader, client_writer, delay, loss), return_exceptions=True)

    server = await asyncio.start_server(handle, *listen)
    async with server:
        await server.serve_forever()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=address, action="append", required=True)
    parser.add_argument("--to", type=address, action="append", required=True)
    parser.add_argument("--delay", type=float, required=True, help="seconds added in each direction")
    parser.add_argument("--loss", type=float, default=0.0, help="share of chunks delayed by one RTO")
    args = parser.parse_args()
    if len(args.listen) != len(args.to):
        parser.error("give one --to per --listen")

    async def run_all() -> None:
        await asyncio.gather(*(serve(a, b, args.delay, args.loss) for a, b in zip(args.listen, args.to, strict=True)))

    asyncio.run(run_all())


if __name__ == "__main__":
    main()
