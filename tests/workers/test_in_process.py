"""jobcast.testing: a handler run in the test's own process, by a burst-mode arq worker on a
real redis-server, step by step as a debugger would follow it."""

import msgspec
import pytest

from jobcast import TaskContext, task
from jobcast.errors import InvalidParameters
from jobcast.model.tasks import EventKind, TaskStatus
from jobcast.testing import run_task


class Rows(msgspec.Struct, forbid_unknown_fields=True):
    rows: list[int]


@task("inprocess.sum", max_attempts=1)
async def sum_rows(ctx: TaskContext, params: Rows) -> dict[str, int]:
    for index in range(1, len(params.rows) + 1):
        await ctx.progress(index, len(params.rows), f"row {index}")
    return {"sum": sum(params.rows)}


attempts_seen: list[int] = []


@task("inprocess.flaky", max_attempts=3)
async def flaky(ctx: TaskContext, params: Rows) -> str:
    attempts_seen.append(ctx.attempt)
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return "third time"


async def test_a_handler_runs_to_completion_with_every_progress_report() -> None:
    run = await run_task(sum_rows, {"rows": [1, 2, 3, 4]})
    assert run.task.status is TaskStatus.COMPLETED
    assert run.task.result == {"sum": 10}
    assert [(p.current, p.total, p.message) for p in run.progress] == [
        (1, 4, "row 1"), (2, 4, "row 2"), (3, 4, "row 3"), (4, 4, "row 4"),
    ]  # fmt: skip
    kinds = [event.event for event in run.events]
    assert kinds[:2] == [EventKind.CREATED, EventKind.STARTED]
    assert kinds[-1] is EventKind.COMPLETED
    assert [event.seq for event in run.events] == list(range(1, len(run.events) + 1))


async def test_a_failing_attempt_is_retried_in_the_same_run() -> None:
    attempts_seen.clear()
    run = await run_task(flaky, {"rows": []})
    assert attempts_seen == [1, 2, 3]  # the handler ran here, in this process
    assert run.task.status is TaskStatus.COMPLETED
    assert run.task.attempts == 3
    assert [e.event for e in run.events].count(EventKind.RETRYING) == 2


async def test_parameters_its_type_refuses_raise_before_anything_runs() -> None:
    attempts_seen.clear()
    with pytest.raises(InvalidParameters, match="parameters_schema"):  # the submission's own 422
        await run_task(flaky, {"rows": "not a list"})
    assert attempts_seen == []
