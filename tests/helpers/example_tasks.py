"""Task handlers used by tests through `jobcast worker --tasks tests.helpers.example_tasks`."""

import asyncio
import logging
import os
import time

import msgspec

from jobcast import BlockingContext, TaskContext, task

log = logging.getLogger(__name__)


class Rows(msgspec.Struct, forbid_unknown_fields=True):
    rows: list[int]
    fail: bool = False


@task("test.sum", timeout_s=30, max_attempts=1)
async def sum_rows(ctx: TaskContext, params: Rows) -> dict[str, int]:
    """Adds the rows, reporting progress on every one (far faster than the progress rate)."""
    log.info("summing %d rows", len(params.rows))
    total = 0
    for index, value in enumerate(params.rows, start=1):
        total += value
        await ctx.progress(index, len(params.rows), f"row {index}")
    if params.fail:
        raise ValueError(f"refusing to sum {len(params.rows)} rows")
    return {"sum": total}


class Wait(msgspec.Struct):
    seconds: float


@task("test.wait", timeout_s=60, max_attempts=2)
async def wait(ctx: TaskContext, params: Wait) -> str:
    """Sleeps without reporting progress; ignores nothing (cancellation stops it)."""
    await asyncio.sleep(params.seconds)
    return "waited"


class Crunch(msgspec.Struct):
    seconds: float
    steps: int = 10
    fail: bool = False


@task("test.crunch", timeout_s=120, max_attempts=1, blocking=True)
def crunch(ctx: BlockingContext, params: Crunch) -> dict[str, int]:
    """Blocks its thread for `seconds` (CPU-bound work, as the worker sees it), in `steps`."""
    log.info("crunching for %ss", params.seconds)
    for step in range(1, params.steps + 1):
        time.sleep(params.seconds / params.steps)
        ctx.progress(step, params.steps)
    if params.fail:
        raise ValueError("crunch refused")
    return {"pid": os.getpid()}


@task("test.hog", timeout_s=120, max_attempts=2)
async def hog(ctx: TaskContext, params: Wait) -> int:
    """Misbehaves: blocks the worker's event loop for `seconds`, as undeclared CPU work would."""
    time.sleep(params.seconds)  # noqa: ASYNC251 - blocking the loop is what this handler is for
    return os.getpid()
