"""TaskContext: what a running handler sees — its task, its attempt, and `progress()`."""

import asyncio
import contextlib
import logging
import time

import msgspec

from jobcast.errors import InvalidTransition, NotFound
from jobcast.model.changes import ReportProgress
from jobcast.model.tasks import Number, Progress
from jobcast.store.stored import Stored
from jobcast.store.tasks import TaskStore


class AttemptSuperseded(Exception):
    """The task was finished, cancelled or deleted without this attempt."""


class TaskContext:
    """Progress is stored at most `progress_hz` times a second; the latest report is kept and
    written when the interval ends, and flushed before the attempt's final state."""

    def __init__(self, tasks: TaskStore, stored: Stored, progress_hz: float) -> None:
        self._tasks = tasks
        self.stored = stored
        self._interval_s = 1 / progress_hz
        self._next_write_s = 0.0
        self._pending: Progress | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.superseded: AttemptSuperseded | None = None
        self.task_id = stored.task.id
        self.attempt = stored.task.attempts
        self.log = logging.LoggerAdapter(
            logging.getLogger("jobcast.task"), {"task_id": self.task_id, "attempt": self.attempt}
        )

    async def progress(
        self, current: Number, total: Number | None = None, message: str | None = None
    ) -> None:
        """Report how far the handler is. Raises CancelledError if the task was finished or
        cancelled by someone else meanwhile: the handler should stop."""
        self._pending = msgspec.convert({"current": current, "total": total, "message": message}, Progress)
        try:
            if self.superseded is not None:
                raise self.superseded
            wait_s = self._next_write_s - time.monotonic()
            if wait_s <= 0:
                await self._write()
            elif self._flusher is None:
                self._flusher = asyncio.create_task(self._write_after(wait_s))
        except AttemptSuperseded as error:
            self.superseded = error
            raise asyncio.CancelledError(str(error)) from error

    async def flush(self) -> None:
        """Store the latest progress now (before the attempt's final state)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(AttemptSuperseded):
            await self._write()

    async def _write_after(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
        self._flusher = None
        try:
            await self._write()
        except AttemptSuperseded as error:
            self.superseded = error

    async def _write(self) -> None:
        progress, self._pending = self._pending, None
        if progress is None:
            return
        self._next_write_s = time.monotonic() + self._interval_s
        change = ReportProgress(self.attempt, progress)
        try:
            self.stored = await self._tasks.change(self.task_id, change, known=self.stored, by_attempt=True)
        except (InvalidTransition, NotFound) as error:
            raise AttemptSuperseded(f"the task moved on without this attempt: {error}") from error
