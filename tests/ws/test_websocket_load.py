"""/ws under load (CONTRACT.md §4): a client that stops reading is closed with 1013 once its buffer
bound is reached, while 100 clients reading every event keep getting each one promptly; and that
1013 still reaches a client that reads again only seconds later.

The API runs as its own process, so the 101 clients here do not share its event loop. Events come
from external tasks moved over HTTP at a steady rate. Each event's `at` is stamped by the API process
when it makes the change; a reader's delay is its wall clock on receipt minus `at` (one machine, one
clock).
"""

import asyncio
import json
import socket
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.api import body_of, create_type, history
from tests.helpers.processes import start_api
from tests.helpers.wsclient import WAIT_S, Frame, WsClient

READERS = 100
TASKS = 10
UPDATES_PER_TASK = 80
EVENTS_PER_S = 150  # progress updates a second, all tasks together
WS_BUFFER = 100
# Makes each event frame about 1.8 kB: the stalled client's buffers fill within the first ~250 events.
MESSAGE = "x" * 1500
P99_BOUND_S = 0.100
RUN_TIMEOUT_S = 60.0
TYPE_NAME = "load"
COMPLETED = '"task.completed"'  # only an event frame's `event` can hold this string
LAG_TICK_S = 0.005


class Api:
    """`jobcast api` as a child process, with an HTTP client on it."""

    def __init__(self, http: httpx.AsyncClient, port: int) -> None:
        self.http = http
        self.port = port


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[Api]:
    port = free_port()
    process = start_api(msgspec.structs.replace(settings, ws_buffer=WS_BUFFER), tmp_path / "api.log", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as http:
            yield Api(http, port)
    finally:
        process.stop()


def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/ws"


class Reader:
    """A client that reads every frame as soon as it arrives and notes when it did.

    Decoding and checking wait until the run is over: a hundred readers decoding 15,000 frames a
    second would double this process's work, and a hundred readers holding tens of thousands of
    decoded events make its garbage collector pause it for 100 ms at a time; either would be
    measured as the server's delay."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.messages: list[str] = []
        self.arrivals: list[float] = []  # time.time() when each message was received

    async def read_until_all_completed(self) -> None:
        completed = 0
        while completed < TASKS:
            message = await self.connection.recv(decode=True)
            self.arrivals.append(time.time())
            self.messages.append(message)
            completed += COMPLETED in message

    def events(self) -> list[Frame]:
        frames = [json.loads(message) for message in self.messages]
        assert all(frame["type"] == "event" for frame in frames)
        return frames

    def delays_s(self) -> list[float]:
        """For each event, how long after its `at` it arrived here."""
        return [
            arrival - datetime.fromisoformat(frame["at"]).timestamp()
            for arrival, frame in zip(self.arrivals, self.events(), strict=True)
        ]


async def subscribe_all(connection: ClientConnection) -> None:
    await asyncio.wait_for(connection.send(json.dumps({"op": "subscribe", "all": True})), WAIT_S)
    frame = json.loads(await asyncio.wait_for(connection.recv(), WAIT_S))
    assert frame == {"type": "subscribed", "subscription": {"all": True}}


async def connect_reader(port: int) -> Reader:
    connection = await asyncio.wait_for(websockets.connect(ws_url(port), compression=None), WAIT_S)
    await subscribe_all(connection)
    return Reader(connection)


async def connect_stalled(port: int) -> ClientConnection:
    """A client subscribed to every task that will read nothing more, on a socket that makes the
    server's side back up after a few hundred kilobytes rather than megabytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Both take effect only when set before connecting. A small receive buffer fixes the window (no
    # autotuning). The segment size is announced in the SYN, and the server's kernel sizes its send
    # buffer in segments: with loopback's 64 kB segments it grows to tcp_wmem's maximum (4 MB by
    # default, thousands of frames) before the server's own outbox of WS_BUFFER frames even starts to fill.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), WAIT_S)
    # max_queue=1: the client library stops reading the socket after one unread frame.
    connection = await asyncio.wait_for(
        websockets.connect(ws_url(port), sock=sock, max_queue=1, compression=None), WAIT_S
    )
    await subscribe_all(connection)
    return connection


async def drain(connection: ClientConnection) -> list[Frame]:
    """Every frame left until the server closes the connection."""
    frames: list[Frame] = []
    try:
        async with asyncio.timeout(WAIT_S):
            async for message in connection:
                frames.append(json.loads(message))
    except websockets.ConnectionClosed:
        pass
    return frames


async def start_tasks(http: httpx.AsyncClient, count: int) -> list[str]:
    """External tasks, each moved to running (events 1 and 2); their ids."""
    await create_type(http, TYPE_NAME)
    ids = []
    for _ in range(count):
        task = body_of(await http.post("/api/tasks", json={"type": TYPE_NAME, "parameters": {}}), 201)
        body_of(await http.put(f"/api/tasks/{task['id']}", json={"status": "running"}))
        ids.append(str(task["id"]))
    return ids


async def report_progress(http: httpx.AsyncClient, task_id: str, current: int, total: int) -> None:
    progress = {"current": current, "total": total, "message": MESSAGE}
    body_of(await http.put(f"/api/tasks/{task_id}", json={"progress": progress}))


async def drive(http: httpx.AsyncClient, task_id: str, offset_s: float) -> None:
    """Progress on one task at EVENTS_PER_S / TASKS updates a second, then its completion."""
    loop = asyncio.get_running_loop()
    interval_s = TASKS / EVENTS_PER_S
    start = loop.time() + offset_s
    for current in range(1, UPDATES_PER_TASK + 1):
        await asyncio.sleep(max(0.0, start + current * interval_s - loop.time()))  # paces the load
        await report_progress(http, task_id, current, UPDATES_PER_TASK)
    body_of(await http.put(f"/api/tasks/{task_id}", json={"status": "completed", "result": "done"}))


def event_body(frame: Frame) -> Frame:
    """An `event` frame as the event itself, the shape GET /events returns."""
    return {name: value for name, value in frame.items() if name != "type"}


def by_task(frames: list[Frame]) -> dict[str, list[Frame]]:
    grouped: defaultdict[str, list[Frame]] = defaultdict(list)
    for frame in frames:
        grouped[frame["task_id"]].append(event_body(frame))
    return dict(grouped)


def figures_ms(delays_s: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(delays_s, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p99": cuts[98] * 1000, "max": max(delays_s) * 1000}


def shown(figures: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f} ms" for name, value in figures.items())


async def note_loop_lag(lags_s: list[float]) -> None:
    """How late this process wakes from short sleeps: the readers' own lateness, not the server's."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(LAG_TICK_S)
        lags_s.append(loop.time() - before - LAG_TICK_S)


async def run_load(api: Api, task_ids: list[str], readers: list[Reader], lags_s: list[float]) -> float:
    """Drive every task while the readers read; the seconds the driving took."""
    reading = [asyncio.create_task(reader.read_until_all_completed()) for reader in readers]
    watching = asyncio.create_task(note_loop_lag(lags_s))
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            started = time.monotonic()
            await asyncio.gather(
                *(drive(api.http, task_id, n / EVENTS_PER_S) for n, task_id in enumerate(task_ids))
            )
            driven_s = time.monotonic() - started
            await asyncio.gather(*reading)
    finally:
        for task in [*reading, watching]:
            task.cancel()
    return driven_s


@pytest.mark.slow
async def test_a_client_that_stops_reading_is_closed_with_1013_while_100_readers_keep_p99_under_100_ms(
    api: Api,
) -> None:
    task_ids = await start_tasks(api.http, TASKS)
    stalled = await connect_stalled(api.port)
    readers: list[Reader] = []
    lags_s: list[float] = []
    try:
        readers.extend([await connect_reader(api.port) for _ in range(READERS)])
        cpu_before_s = time.process_time()
        driven_s = await run_load(api, task_ids, readers, lags_s)  # all 101 are subscribed by now
        cpu_s = time.process_time() - cpu_before_s
        published = {task_id: (await history(api.http, task_id))[2:] for task_id in task_ids}
        left_for_stalled = await drain(stalled)
    finally:
        await asyncio.gather(*(reader.connection.close() for reader in readers), stalled.close())

    total = sum(len(events) for events in published.values())
    delays = figures_ms([delay for reader in readers for delay in reader.delays_s()])
    print(
        f"\n{total} events in {driven_s:.2f} s ({total / driven_s:.0f}/s) to {READERS} readers each;"
        f" delay {shown(delays)}; this process: {cpu_s:.2f} CPU s, loop lag {shown(figures_ms(lags_s))};"
        f" the stalled client got {len(left_for_stalled)} events, then close code {stalled.close_code}"
    )
    for reader in readers:
        assert by_task(reader.events()) == published  # every event, once each, in seq order
    assert delays["p99"] < P99_BOUND_S * 1000, delays
    # What the stalled client got is an unbroken prefix of each task's events: it was cut off.
    for task_id, events in by_task(left_for_stalled).items():
        assert events == published[task_id][: len(events)]
    assert len(left_for_stalled) < total
    assert stalled.close_code == 1013, (stalled.close_code, stalled.close_reason)


STALLED_BUFFER = 16
STALL_S = 5.0
CUT_OFF_UPDATES = 400  # about twice what the stalled client's buffers and outbox hold


async def test_a_client_that_stops_reading_for_a_few_seconds_is_told_1013(settings: Settings) -> None:
    """The close frame queues behind the frames the client has not read, so the client sees 1013
    once it reads on; a client that stopped reading for more than a moment must still get it."""
    small = msgspec.structs.replace(settings, ws_buffer=STALLED_BUFFER)
    async with (
        ServedApp(small) as app,
        httpx.AsyncClient(base_url=app.http_url, timeout=WAIT_S) as http,
        await connect_stalled(app.port) as stalled,
    ):
        [task_id] = await start_tasks(http, 1)
        async with await WsClient.connect(ws_url(app.port), compression=None) as fast:
            await subscribe_all(fast.connection)
            for current in range(1, CUT_OFF_UPDATES + 1):
                await report_progress(http, task_id, current, CUT_OFF_UPDATES)
                assert (await fast.recv())["seq"] == 2 + current
            # The hub has dispatched every event, so the stalled client's outbox has overflowed. It
            # goes on not reading for a few seconds — the case under test — and then reads again.
            await asyncio.sleep(STALL_S)
            frames = await drain(stalled)
    print(f"\nthe stalled client got {len(frames)} of {CUT_OFF_UPDATES} events, then {stalled.close_code}")
    assert 0 < len(frames) < CUT_OFF_UPDATES
    assert stalled.close_code == 1013, (stalled.close_code, stalled.close_reason)
