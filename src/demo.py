"""The demo task types (CONTRACT.md §8), served by `jobcast worker` unless told other modules."""

import asyncio
from typing import Annotated

import msgspec
from msgspec import Meta

from jobcast import TaskContext, task


class SleepParameters(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    seconds: Annotated[float, Meta(ge=0, le=3600, description="Total time to sleep.")]
    steps: Annotated[int, Meta(ge=1, le=10000, description="Equal sleeps, each followed by progress.")] = 10
    fail_at_step: Annotated[int, Meta(ge=1, description="Raise at this step instead.")] | None = None


class SleepResult(msgspec.Struct):
    slept: float
    steps: int


@task("demo.sleep", timeout_s=3900, max_attempts=3)
async def sleep(ctx: TaskContext, params: SleepParameters) -> SleepResult:
    """Sleeps `seconds` in `steps` equal parts, reporting progress after each;
    with `fail_at_step: k` it fails at step k."""
    for step in range(1, params.steps + 1):
        await asyncio.sleep(params.seconds / params.steps)
        if step == params.fail_at_step:
            raise RuntimeError(f"failed at step {step}")
        await ctx.progress(step, params.steps, f"step {step} of {params.steps}")
    return SleepResult(slept=params.seconds, steps=params.steps)
