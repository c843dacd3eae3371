"""A WebSocket client's bounded outbox: frames the hub queued, drained by the client's sender.

Lighter than asyncio.Queue (one deque, made when the first frame comes, and at most one waiter
instead of four deques and an Event), which matters at thousands of idle connections.
"""

import asyncio
from collections import deque

END_OF_STREAM = ""  # what a closed outbox gives its sender: nothing more will come


class Outbox:
    """At most `limit` frames waiting for one client; `get` waits for the next."""

    __slots__ = ("_closed", "_frames", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._frames: deque[str] | None = None
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put_nowait(self, frame: str) -> None:
        """Queue a frame; asyncio.QueueFull when `limit` frames are already waiting."""
        if self._frames is None:
            self._frames = deque()
        elif len(self._frames) >= self._limit:
            raise asyncio.QueueFull
        self._frames.append(frame)
        self._wake()

    def get_nowait(self) -> str:
        if not self._frames:
            raise asyncio.QueueEmpty
        return self._frames.popleft()

    def empty(self) -> bool:
        return not self._frames

    def qsize(self) -> int:
        return len(self._frames or ())

    async def get(self) -> str:
        """The next frame; END_OF_STREAM once the outbox is closed and empty."""
        while not self._frames:
            if self._closed:
                return END_OF_STREAM
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frames = self._frames
        frame = frames.popleft()
        if not frames:
            self._frames = None  # idle again: no block held
        return frame

    def close(self) -> None:
        """Drop what is queued; the sender's `get` ends."""
        self._frames = None
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
