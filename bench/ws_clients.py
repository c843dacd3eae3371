"""WebSocket load generator: many cheap clients in one process, written against raw sockets.

`python -m bench.ws_clients PORT --paths P [P ...] --count N [--subscribe JSON ...]` opens N
connections (client i uses paths[i % len] and sends subscribe[i % len] once connected), prints
`{"ready": ...}`, counts from the line `go` on stdin, and prints its figures on the line `stop`.

A client does what a WebSocket client must and no more: a pre-encoded handshake (offering
permessage-deflate as browsers do, with --compress), frames masked with a zero key (the payload
is unchanged: nothing to compute), pongs for pings, inflating compressed frames. An event frame
carries `t=<time>` (its publisher's clock) in its message: the delay is the arrival time minus
that; delays are kept as a histogram of 0.1 ms buckets.
"""

import argparse
import asyncio
import time
import zlib
from collections import Counter
from typing import Any

from bench.harness import control_lines, say

STAMP = b"t="
PROGRESS = b'"task.progress"'
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
BROWSER_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
TEXT, CLOSE, PING, PONG = 1, 8, 9, 10
BUCKETS_PER_MS = 10
TAIL = b"\x00\x00\xff\xff"


def handshake(port: int, path: str, compress: bool) -> bytes:
    offer = BROWSER_OFFER if compress else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    ).encode()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame with the zero mask key."""
    length = len(payload)
    head = bytes([0x80 | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    else:
        head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


class Stats:
    def __init__(self) -> None:
        self.counting = False
        self.histogram: Counter[int] = Counter()
        self.frames = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.closes: Counter[int] = Counter()


class Client(asyncio.Protocol):
    def __init__(self, request: bytes, subscribe: bytes | None, stats: Stats) -> None:
        self.request = request
        self.subscribe = subscribe
        self.stats = stats
        self.buffer = b""
        self.upgraded = False
        self.inflater: Any = None
        self.ready = asyncio.get_running_loop().create_future()
        self.events = 0  # event frames counted since `go`
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.upgraded and not self._upgrade():
            return
        buffer, at = self.buffer, 0
        while len(buffer) - at >= 2:
            first, length = buffer[at], buffer[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                length, start = int.from_bytes(buffer[start : start + 2], "big"), start + 2
            elif length == 127:
                length, start = int.from_bytes(buffer[start : start + 8], "big"), start + 8
            if len(buffer) < start + length:
                break
            self._frame(first, buffer[start : start + length], now)
            at = start + length
        self.buffer = buffer[at:]

    def _upgrade(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        if not head.startswith(b"HTTP/1.1 101"):
            self._fail(int(head[9:12]))
            return False
        if b"permessage-deflate" in head.lower():
            self.inflater = zlib.decompressobj(wbits=-15)
        self.upgraded = True
        assert self.transport is not None
        if self.subscribe is None:
            self._ready()
        else:
            self.transport.write(client_frame(TEXT, self.subscribe))
        return True

    def _frame(self, first: int, payload: bytes, now: float) -> None:
        opcode = first & 0x0F
        if first & 0x40 and self.inflater is not None:
            payload = self.inflater.decompress(payload + TAIL)
        if opcode == TEXT:
            self._text(payload, now)
        elif opcode == PING:
            assert self.transport is not None
            self.transport.write(client_frame(PONG, payload))
        elif opcode == CLOSE:
            self.stats.closes[int.from_bytes(payload[:2], "big") if payload else 1005] += 1
            assert self.transport is not None
            self.transport.close()

    def _text(self, payload: bytes, now: float) -> None:
        stamp = payload.find(STAMP) if PROGRESS in payload else -1
        if stamp < 0:
            if not self.ready.done() and b'"subscribed"' in payload:
                self._ready()
            return
        stats = self.stats
        if not stats.counting:
            return
        end = payload.find(b'"', stamp)
        delay_ms = (now - float(payload[stamp + 2 : end])) * 1000
        stats.histogram[max(0, int(delay_ms * BUCKETS_PER_MS))] += 1
        stats.frames += 1
        stats.last_at = now
        stats.first_at = stats.first_at or now
        self.events += 1

    def _ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(True)

    def _fail(self, status: int) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"handshake answered {status}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before it was ready"))


async def connect(port: int, request: bytes, subscribe: bytes | None, stats: Stats, wait_s: float) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(request, subscribe, stats), "127.0.0.1", port)
    await asyncio.wait_for(client.ready, wait_s)
    return client


async def main(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    requests = [handshake(args.port, path, args.compress) for path in args.paths]
    frames = [s.encode() for s in args.subscribe] or [None]
    limit = asyncio.Semaphore(args.connect_concurrency or args.count)

    async def one(index: int) -> Client:
        async with limit:
            return await connect(args.port, requests[index % len(requests)], frames[index % len(frames)],
                                 stats, args.wait_s)  # fmt: skip

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(args.count)), return_exceptions=True)
    clients = [c for c in outcomes if isinstance(c, Client)]
    failures = Counter(str(e)[:80] for e in outcomes if not isinstance(e, Client))
    say(
        {
            "ready": len(clients),
            "failed": dict(failures),
            "connect_s": round(time.perf_counter() - started, 3),
        }
    )
    lines = control_lines()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, next, lines)
    cpu, stats.counting = time.process_time(), True
    started = time.perf_counter()
    say({"counting": True})
    await loop.run_in_executor(None, next, lines)
    elapsed_s = time.perf_counter() - started
    counts = [c.events for c in clients]
    return {
        "clients": len(clients),
        "failed": dict(failures),
        "frames": stats.frames,
        "per_client_min": min(counts, default=0),
        "per_client_max": max(counts, default=0),
        "clients_with_none": sum(1 for n in counts if n == 0),
        "closes": {str(code): n for code, n in stats.closes.items()},
        "histogram": {str(bucket): n for bucket, n in sorted(stats.histogram.items())},
        "elapsed_s": round(elapsed_s, 3),
        "first_at": stats.first_at,
        "last_at": stats.last_at,
        "cpu_s": round(time.process_time() - cpu, 3),
        "compressed": sum(1 for c in clients if c.inflater is not None),
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--paths", nargs="+", default=["/ws"])
    parser.add_argument("--subscribe", nargs="*", default=[])
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--compress", action="store_true", help="offer permessage-deflate as browsers do")
    parser.add_argument("--connect-concurrency", type=int, default=0, help="0: every client at once")
    parser.add_argument("--wait-s", type=float, default=30.0)
    return parser.parse_args()


if __name__ == "__main__":
    say(asyncio.run(main(parse())))
