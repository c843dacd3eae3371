"""Task handlers used by tests through `jobcast worker --tasks tests.example_tasks`."""

import asyncio

import msgspec

from src.workers import TaskContext, task


class Rows(msgspec.Struct, forbid_unknown_fields=True):
    rows: list[int]
    fail: bool = False


@task("test.sum", timeout_s=30, max_attempts=1)
async def sum_rows(ctx: TaskContext, params: Rows) -> dict[str, int]:
    """Adds the rows, reporting progress on every one (far faster than the progress rate)."""
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
