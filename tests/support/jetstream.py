"""Reading a JetStream stream as a subscriber would: every message, once, acked."""

from __future__ import annotations

import json


async def drain_stream(url: str, stream: str, *, durable: str, batch: int = 100, timeout: float = 1) -> list[dict]:
    """Every message of ``stream`` under ``agileplus.>`` through the durable consumer ``durable``
    (acked: a second call gets only what came since): its ``msg_id``, ``subject`` and JSON body."""
    import nats  # only the tests that reach NATS need the client

    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe("agileplus.>", durable=durable, stream=stream)
    got = []
    while True:
        try:
            msgs = await sub.fetch(batch, timeout=timeout)
        except Exception:  # noqa: BLE001 - fetch times out when the stream is drained
            break
        for msg in msgs:
            got.append({"msg_id": msg.headers.get("Nats-Msg-Id"), "subject": msg.subject,
                        "body": json.loads(msg.data)})
            await msg.ack()
    await nc.close()
    return got
