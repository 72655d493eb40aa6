"""A small HTTP/1.1 server on 127.0.0.1 for the real_work experiment's tasks.

``GET /?delay=SECONDS&items=N`` answers, after ``delay`` seconds, with a JSON array of
``N`` records (about 90 bytes each); ``GET /cpu`` with the CPU seconds the server has
used (``time.process_time``), so a client can measure what its requests cost it.
One asyncio loop in its own process: keep-alive connections, no threads, so a request
costs the server little CPU and the delay is the server's, not the client's. Run as
``python -m experiments.local_server``; it prints its port on the first line of stdout
and serves until stdin closes (so it never outlives the process that started it).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from functools import cache
from urllib.parse import parse_qs, urlsplit

_HEADER = (
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    "Connection: keep-alive\r\n\r\n"
)


@cache
def response(items: int) -> bytes:
    """The whole response for ``items`` records, built once per size."""
    records = [
        {"id": index, "name": f"item-{index}", "tags": ["a", "b", "c"], "price": index * 0.37}
        for index in range(items)
    ]
    return _json_response(records)


def _json_response(value: object) -> bytes:
    body = json.dumps(value).encode()
    return _HEADER.format(length=len(body)).encode() + body


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            target = urlsplit(head.split(b"\r\n", 1)[0].split(b" ")[1].decode())
            if target.path == "/cpu":
                self._send(_json_response(time.process_time()))
                continue
            query = parse_qs(target.query)
            delay = float(query.get("delay", ["0"])[0])
            payload = response(int(query.get("items", ["1"])[0]))
            asyncio.get_running_loop().call_later(delay, self._send, payload)

    def _send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", 0, backlog=256)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await loop.run_in_executor(None, sys.stdin.buffer.read)  # returns when stdin closes
    server.close()


if __name__ == "__main__":
    asyncio.run(_serve())
