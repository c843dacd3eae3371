"""Submitting to a served API, watching over WebSocket, and waiting on workers."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.processes import JobcastProcess, start_worker
from tests.helpers.wsclient import Frame, WsClient

EXAMPLE_TASKS = "tests.helpers.example_tasks"


async def watch(app: ServedApp, task_id: str) -> WsClient:
    """A client subscribed to one task, its `subscribed` frame already read."""
    ws = await WsClient.connect(app.ws_url + "/ws")
    await ws.send(op="subscribe", task_id=task_id)
    assert (await ws.recv())["type"] == "subscribed"
    return ws


def event_frames(frames: list[Frame]) -> list[Frame]:
    return [{k: v for k, v in f.items() if k != "type"} for f in frames if f["type"] == "event"]


async def eventually(read: Callable[[], Awaitable[Any]], expected: Any, timeout_s: float) -> None:
    """Poll `read` until it returns `expected` (a readiness poll: Redis has nothing to wait on)."""
    async with asyncio.timeout(timeout_s):
        while (await read()) != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def worker_pid(task: dict[str, Any]) -> int:
    """Worker ids read `host:pid:random`."""
    return int(task["worker"].split(":")[-2])


def event_is(kind: str, attempt: int | None = None) -> Any:
    def matches(frame: Frame) -> bool:
        return frame.get("event") == kind and (attempt is None or frame.get("attempt") == attempt)

    return matches


class Workers:
    """Several `jobcast worker` processes; stopped at the end of the test."""

    def __init__(self, settings: Settings, tmp_path: Path, *arguments: str) -> None:
        self._settings = settings
        self._tmp_path = tmp_path
        self._arguments = arguments
        self.processes: list[JobcastProcess] = []

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            log = self._tmp_path / f"worker{len(self.processes)}.log"
            self.processes.append(start_worker(self._settings, log, *self._arguments))

    def running(self, task: dict[str, Any]) -> JobcastProcess:
        return next(p for p in self.processes if p.pid == worker_pid(task))

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
