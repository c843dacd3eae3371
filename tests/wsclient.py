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


def is_final(frame: Frame) -> bool:
    return frame.get("type") == "event" and frame.get("event") in {
        "task.completed",
        "task.failed",
        "task.cancelled",
        "task.deleted",
    }
