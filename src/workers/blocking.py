"""Handlers declared `blocking=True` run in child processes, so CPU-bound work never stalls the
worker's event loop (its heartbeats, its other tasks, its cancel checks).

concurrent.futures.ProcessPoolExecutor cannot stop one running call; jobcast must, to honour a
cancel within its grace and a timeout whatever the handler does. So the pool is ours: each child
runs one handler at a time and is killed (and later replaced) when its attempt is abandoned.
"""

import asyncio
import logging
import multiprocessing
import signal
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, cast

import msgspec

from jobcast.errors import describe
from jobcast.model.tasks import Number
from jobcast.runtime.logs import configure_logging, task_logging
from jobcast.runtime.processes import die_with_parent
from jobcast.workers.context import TaskContext
from jobcast.workers.definition import BlockingHandler, discover

log = logging.getLogger(__name__)

STOP_WAIT_S = 2.0


class BlockingContext:
    """What a blocking handler sees: its task, its attempt, and `progress()`."""

    def __init__(self, conn: Connection, task_id: str, attempt: int) -> None:
        self._conn = conn
        self.task_id = task_id
        self.attempt = attempt
        self.log = logging.LoggerAdapter(
            logging.getLogger("jobcast.task"), {"task_id": task_id, "attempt": attempt}
        )

    def progress(self, current: Number, total: Number | None = None, message: str | None = None) -> None:
        """Report how far the handler is; the worker stores it (coalesced) while this goes on."""
        self._conn.send(("progress", current, total, message))


class HandlerError(Exception):
    """The handler raised in its process: its description and traceback, as text."""

    def __init__(self, description: str, trace: str) -> None:
        super().__init__(description)
        self.description = description
        self.trace = trace


class BlockingPool:
    """Up to `size` child processes, started when first needed and reused."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._idle: list[tuple[BaseProcess, Connection]] = []
        self._context = multiprocessing.get_context("spawn")

    async def run(self, module: str, name: str, parameters: Any, ctx: TaskContext) -> Any:
        """Run handler `name` of `module` in a child; relay its progress to `ctx`.
        Cancelled (cancel, timeout, shutdown): the child is killed at once."""
        process, conn = self._idle.pop() if self._idle else self._spawn()
        try:
            conn.send((module, name, parameters, ctx.task_id, ctx.attempt))
            result = await _relay(conn, process, ctx)
        except BaseException:
            process.kill()
            process.join(STOP_WAIT_S)
            conn.close()
            raise
        self._idle.append((process, conn))
        return result

    def close(self) -> None:
        for process, conn in self._idle:
            conn.send(None)
            process.join(STOP_WAIT_S)
            if process.is_alive():
                process.kill()
            conn.close()
        self._idle.clear()

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        parent_end, child_end = self._context.Pipe()
        level = logging.getLogger().getEffectiveLevel()
        process = self._context.Process(
            target=serve, args=(child_end, level), daemon=True, name="jobcast-blocking"
        )
        process.start()
        child_end.close()
        return process, parent_end


async def _relay(conn: Connection, process: BaseProcess, ctx: TaskContext) -> Any:
    while True:
        try:
            message = await _receive(conn)
        except EOFError:
            process.join(STOP_WAIT_S)
            raise RuntimeError(f"the handler's process died (exit code {process.exitcode})") from None
        match message:
            case ("progress", current, total, text):
                await ctx.progress(current, total, text)
            case ("done", result):
                return result
            case ("error", description, trace):
                raise HandlerError(description, trace)


async def _receive(conn: Connection) -> Any:
    """The next message from the child, without blocking the event loop while it works."""
    loop = asyncio.get_running_loop()
    while not conn.poll():
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _set_once, readable)
        try:
            await readable
        finally:
            loop.remove_reader(conn.fileno())
    return conn.recv()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def serve(conn: Connection, log_level: int = logging.INFO) -> None:
    """A child's loop: run one handler at a time until told to stop (None) or orphaned."""
    die_with_parent()
    configure_logging(log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which decides
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        conn.send(_run(conn, *request))


def _run(
    conn: Connection, module: str, name: str, parameters: Any, task_id: str, attempt: int
) -> tuple[Any, ...]:
    try:
        definition = discover([module])[name]
        params = msgspec.convert(parameters, definition.parameters_type)
        handler = cast(BlockingHandler[Any], definition.handler)
        with task_logging(task_id, name, attempt):
            result = handler(BlockingContext(conn, task_id, attempt), params)
        return ("done", msgspec.to_builtins(result))
    except Exception as error:
        return ("error", describe(error), traceback.format_exc())
