"""A small JSON WebSocket client for tests: every wait is bounded."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

Frame = dict[str, Any]
WAIT_S = 15.0


class WsClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, url: str, **options: Any) -> "WsClient":
        return cls(await asyncio.wait_for(websockets.connect(url, **options), WAIT_S))

    async def send(self, **frame: Any) -> None:
        await self.connection.send(json.dumps(frame))

    async def recv(self, timeout_s: float = WAIT_S) -> Frame:
        frame: Frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout_s))
        return frame

    async def until(self, done: Callable[[Frame], bool], timeout_s: float = WAIT_S) -> list[Frame]:
        """Frames received up to and including the first one for which `done` is true."""
        frames: list[Frame] = []
        async with asyncio.timeout(timeout_s):
            while True:
                frames.append(await self.recv(timeout_s))
                if done(frames[-1]):
                    return frames

    async def rest(self, timeout_s: float = WAIT_S) -> list[Frame]:
        """Every frame until the server closes the connection."""
        frames: list[Frame] = []
        try:
            async with asyncio.timeout(timeout_s):
                async for message in self.connection:
                    frames.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        return frames

    async def close_code(self, timeout_s: float = WAIT_S) -> int | None:
        """Read until the server closes; return its close code."""
        try:
            async with asyncio.timeout(timeout_s):
                async for _ in self.connection:
                    pass
        except websockets.ConnectionClosed:
            pass
        return self.connection.close_code

    async def close(self) -> None:
        await self.connection.close()

    async def __aenter__(self) -> "WsClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def status_of(frame: Frame) -> str | None:
    """The task status a snapshot or event frame reports."""
    if frame.get("type") == "snapshot":
        return str(frame["task"]["status"])
    return frame.get("status") if frame.get("type") == "event" else None


def is_running(frame: Frame) -> bool:
    return status_of(frame) == "running"


FINAL_EVENTS = {"task.completed", "task.failed", "task.cancelled", "task.deleted"}
TERMINAL = {"completed", "failed", "cancelled"}


def is_final(frame: Frame) -> bool:
    """A final event, or a snapshot of a task that had already finished."""
    if frame.get("type") == "snapshot":
        return frame["task"]["status"] in TERMINAL
    return frame.get("type") == "event" and frame.get("event") in FINAL_EVENTS


async def follow(
    ws_url: str, task_id: str, since: int | None = None, timeout_s: float = WAIT_S
) -> list[Frame]:
    """All frames of /ws/tasks/{id}: subscribed, a snapshot, events up to the final one."""
    query = "" if since is None else f"?since={since}"
    async with await WsClient.connect(f"{ws_url}/ws/tasks/{task_id}{query}") as ws:
        frames = await ws.rest(timeout_s)
        assert ws.connection.close_code == 1000, ws.connection.close_code
    return frames
