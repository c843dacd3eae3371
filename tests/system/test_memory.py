"""Memory stays bounded under hostile traffic: 10,000 oversized requests refused with 413 and
1,000 WebSocket connect/disconnect cycles grow a real `jobcast api` process's RSS by at most
20 MiB. Run with `-s` to see the figures."""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import psutil
import pytest
from redis.asyncio import Redis

from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from tests.helpers.callers import ADMIN, OWNER, make_callers
from tests.helpers.processes import JobcastProcess, start_api
from tests.helpers.wsclient import WsClient

OVERSIZED_REQUESTS = 10_000
WS_CYCLES = 1_000
# Done first and not measured: allocator pools, per-connection compression buffers and caches
# fill up, then stay at that size (measured: RSS flat from 1,000 to 6,000 cycles).
WARM_UP = 0.5
CONCURRENCY = 20
MAX_GROWTH_MIB = 20
SENT_BODY_BYTES = 16 * 1024  # of the declared 2 MiB: the server must answer without the rest
pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A closed connection's slot is freed once the server has seen the close: leave room.
    return msgspec.structs.replace(settings, auth=True, ws_max_connections=10 * CONCURRENCY)


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[JobcastProcess, int]]:
    port = free_port()
    process = start_api(settings, tmp_path / "api.log", port)
    yield process, port
    process.stop()


async def test_refused_requests_and_connection_churn_leave_memory_bounded(
    api: tuple[JobcastProcess, int], redis: Redis
) -> None:
    process, port = api
    callers = await make_callers(redis)
    statuses: Counter[int] = Counter()

    async def oversized() -> None:
        statuses[await _oversized_post(port, callers.tokens[ADMIN])] += 1

    async def connection_cycle() -> None:
        async with await WsClient.connect(f"ws://127.0.0.1:{port}/ws{callers.query(OWNER)}") as ws:
            await ws.send(op="subscribe", owner="me")
            assert (await ws.recv())["type"] == "subscribed"

    await _many(oversized, int(OVERSIZED_REQUESTS * WARM_UP))
    await _many(connection_cycle, int(WS_CYCLES * WARM_UP))
    before = _rss(process)
    await _many(oversized, OVERSIZED_REQUESTS)
    after_requests = _rss(process)
    await _many(connection_cycle, WS_CYCLES)
    after = _rss(process)

    mib = 1024 * 1024
    print(
        f"\nRSS before {before / mib:.1f} MiB; after {OVERSIZED_REQUESTS} oversized requests "
        f"{after_requests / mib:.1f} MiB; after {WS_CYCLES} WebSocket cycles {after / mib:.1f} MiB; "
        f"growth {(after - before) / mib:+.1f} MiB"
    )
    assert statuses == {413: OVERSIZED_REQUESTS + int(OVERSIZED_REQUESTS * WARM_UP)}
    assert after - before <= MAX_GROWTH_MIB * mib
    assert process.alive()


async def _oversized_post(port: int, token: str) -> int:
    """A submission declaring a 2 MiB body, of which only the start is sent; the status code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n".encode()
            + b'{"type": "'
            + b"x" * SENT_BODY_BYTES
        )
        status_line = await asyncio.wait_for(reader.readline(), 15)
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def _many(action: Callable[[], Awaitable[None]], count: int) -> None:
    """Run `action` `count` times, CONCURRENCY at a time."""
    remaining = iter(range(count))

    async def lane() -> None:
        for _ in remaining:
            await action()

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))


def _rss(process: JobcastProcess) -> int:
    return int(psutil.Process(process.pid).memory_info().rss)
