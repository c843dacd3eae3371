"""Task types for benches: `jobcast worker --tasks bench.tasks`."""

import asyncio
import time
from typing import Annotated

import msgspec
from msgspec import Meta

from jobcast import TaskContext, task


class NoParameters(msgspec.Struct, forbid_unknown_fields=True):
    pass


class TickParameters(msgspec.Struct, forbid_unknown_fields=True):
    rate_hz: Annotated[float, Meta(gt=0, le=1000)]
    count: Annotated[int, Meta(ge=1)]
    delay_s: Annotated[float, Meta(ge=0, le=600)] = 0.0


@task("bench.noop")
async def noop(ctx: TaskContext, params: NoParameters) -> None:
    """Does nothing: what is left is jobcast's own cost per task."""


@task("bench.ticks", timeout_s=3600)
async def ticks(ctx: TaskContext, params: TickParameters) -> None:
    """After `delay_s`, reports progress `count` times at `rate_hz`; each message is `t=<time.time()>` of the
    call, so a client can tell how long the event took to reach it."""
    await asyncio.sleep(params.delay_s)  # time for the clients to subscribe
    interval_s = 1 / params.rate_hz
    start = time.monotonic()
    for step in range(1, params.count + 1):
        await ctx.progress(step, params.count, f"t={time.time():.6f}")
        await asyncio.sleep(max(0.0, start + step * interval_s - time.monotonic()))
