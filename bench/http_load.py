"""HTTP load generator: pre-encoded HTTP/1.1 requests on raw keep-alive sockets.

`python -m bench.http_load PORT --body JSON (--connections C --count N | --rate R --count N)`
prints `{"ready": true}`, waits for a line on stdin, sends, then prints one JSON line: statuses,
accepted per second, response times. Closed loop: C connections, each sends its next request as
soon as the previous answer is in. Open loop: R requests a second whatever the answers do.
"""

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

from bench.harness import control_lines, ms, percentile, say

HEADER_END = b"\r\n\r\n"


def request(port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request outstanding."""

    def __init__(self, payload: bytes, done: "Tally") -> None:
        self.payload = payload
        self.tally = done
        self.buffer = b""
        self.sent_at = 0.0
        self.idle = asyncio.Event()
        self.idle.set()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self) -> None:
        assert self.transport is not None
        self.idle.clear()
        self.sent_at = time.perf_counter()
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(HEADER_END)
        if end < 0:
            return
        head = self.buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        self.buffer = self.buffer[total:]
        self.tally.add(int(head[9:12]), time.perf_counter() - self.sent_at)
        self.idle.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.lost += 1
        self.idle.set()


class Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.latencies_s: list[float] = []
        self.lost = 0
        self.last_at = 0.0

    def add(self, status: int, latency_s: float) -> None:
        self.statuses[status] += 1
        self.latencies_s.append(latency_s)
        self.last_at = time.perf_counter()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    payload = request(args.port, args.path, args.body.encode())
    tally = Tally()
    pool = [
        (await loop.create_connection(lambda: Connection(payload, tally), "127.0.0.1", args.port))[1]
        for _ in range(args.connections)
    ]
    say({"ready": True, "connections": len(pool)})
    await loop.run_in_executor(None, next, control_lines())
    started, cpu_started = time.perf_counter(), time.process_time()
    if args.rate:
        await _open_loop(pool, args.rate, args.count)
    else:
        await _closed_loop(pool, args.count)
    await asyncio.wait_for(asyncio.gather(*(c.idle.wait() for c in pool)), 30)
    elapsed_s = (tally.last_at or time.perf_counter()) - started
    answered = sum(tally.statuses.values())
    return {
        "requests": answered,
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "lost_connections": tally.lost,
        "elapsed_s": round(elapsed_s, 3),
        "cpu_s": round(time.process_time() - cpu_started, 3),
        "per_s": round(answered / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": ms(percentile(tally.latencies_s, 0.5)),
        "p99_ms": ms(percentile(tally.latencies_s, 0.99)),
        "max_ms": ms(max(tally.latencies_s, default=0.0)),
        "latencies_ms": [round(s * 1000, 3) for s in tally.latencies_s] if args.keep_latencies else [],
    }


async def _closed_loop(pool: list[Connection], count: int) -> None:
    remaining = [count]

    async def lane(connection: Connection) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            connection.send()
            await connection.idle.wait()

    await asyncio.gather(*(lane(connection) for connection in pool))


async def _open_loop(pool: list[Connection], rate: float, count: int) -> None:
    start = time.perf_counter()
    for index in range(count):
        delay_s = start + index / rate - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        free = next((c for c in pool if c.idle.is_set()), None)
        if free is None:  # every connection is waiting: the server is behind, wait for one
            await asyncio.wait(
                [asyncio.ensure_future(c.idle.wait()) for c in pool], return_when=asyncio.FIRST_COMPLETED
            )
            free = next(c for c in pool if c.idle.is_set())
        free.send()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/api/tasks")
    parser.add_argument("--body", required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--keep-latencies", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    say(asyncio.run(main(parse())))
