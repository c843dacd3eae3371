"""The arq job behind every task: claim the attempt, run the handler, store how it ended.

Each step is a transition from jobcast.model.transitions written atomically by the task store, so the
record, its history and the published events agree whatever happens between steps.
"""

import asyncio
import logging
import traceback
from typing import Any

import msgspec

from jobcast.errors import InvalidTransition, NotFound, describe
from jobcast.model.changes import Change, Finish, Requeue, Start, TaskUpdate
from jobcast.model.tasks import TaskStatus, utc_now
from jobcast.runtime.logs import task_logging
from jobcast.store.stored import Stored
from jobcast.workers.blocking import HandlerError
from jobcast.workers.context import TaskContext
from jobcast.workers.definition import TaskDefinition
from jobcast.workers.state import WorkerState, worker_state

log = logging.getLogger("jobcast.worker")

NO_HANDLER_RETRY_S = 1.0


async def run_task(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    """arq's entry point: the job's only argument is a task id; everything else is in Redis.
    A job of any other shape (written by something else) is refused and runs nothing."""
    job_id = str(ctx["job_id"])
    if kwargs or len(args) != 1 or not isinstance(args[0], str):
        log.error("job %s refused: a jobcast job carries one task id, not %r %r", job_id, args, kwargs)
        return
    task_id = args[0]
    state = worker_state(ctx)
    stored = await _claimable(state, task_id, job_id)
    if stored is None:
        return
    with task_logging(task_id, stored.task.type, stored.task.attempts + 1):
        await _run_claimable(state, stored)


async def _run_claimable(state: WorkerState, stored: Stored) -> None:
    """Claim the next attempt of a pending task and run it, unless it cannot run here."""
    task_id = stored.task.id
    definition = state.definitions.get(stored.task.type)
    if definition is None:
        log.info("task %s: this worker has no handler for %r; putting it back", task_id, stored.task.type)
        due_ms = int((utc_now().timestamp() + NO_HANDLER_RETRY_S) * 1000)
        await state.tasks.reissue(stored, due_ms)  # this job ends when the function returns
        return
    if stored.task.attempts >= stored.task.max_attempts:
        error = f"no attempts left ({stored.task.attempts} of {stored.task.max_attempts} used)"
        await _end(state, TaskUpdate(status=TaskStatus.FAILED, error_message=error), stored)
        return
    timeout_s = await state.timeouts.of(stored.task.task_type_id)
    started = await _start(state, stored)
    if started is None:
        return
    state.running.add(task_id)
    try:
        await _attempt(state, definition, started, timeout_s)
    finally:
        state.running.discard(task_id)


async def _claimable(state: WorkerState, task_id: str, job_id: str) -> Stored | None:
    """The task, if this job is its current one and it is still waiting to run. The record
    read when the job was claimed will do: if it changed since, the start write's guard sees
    it and the change is applied to a fresh read."""
    try:
        stored = (
            state.prefetched.pop(job_id) if job_id in state.prefetched else await state.tasks.read(task_id)
        )
    except NotFound:
        stored = None
    if stored is None:
        log.info("job %s: task %s no longer exists", job_id, task_id)
        return None
    if stored.job != job_id or stored.task.status is not TaskStatus.PENDING:
        log.info(
            "job %s: task %s is %s (job %s); nothing to do", job_id, task_id, stored.task.status, stored.job
        )
        return None
    return stored


async def _start(state: WorkerState, stored: Stored) -> Stored | None:
    """Claim the next attempt; None when someone else moved the task first."""
    attempt = stored.task.attempts + 1
    start = Start(attempt, worker=state.worker_id)
    try:
        return await state.tasks.change(stored.task.id, start, known=stored, by_attempt=True, job=stored.job)
    except InvalidTransition as error:
        log.info("task %s: not started: %s", stored.task.id, error)
        return None
    except asyncio.CancelledError:
        await _stop(state, stored.task.id, attempt)  # the start may have been stored before the cancel
        raise


async def _attempt(
    state: WorkerState, definition: TaskDefinition[Any], stored: Stored, timeout_s: float
) -> None:
    """Run the handler. From here on every await is inside the cancellation handler."""
    task = stored.task
    try:
        parameters = msgspec.convert(task.parameters, definition.parameters_type)
    except msgspec.ValidationError as error:
        failed = Finish(task.attempts, TaskStatus.FAILED, error_message=f"invalid parameters: {error}")
        await _end(state, failed, stored)
        return
    ctx = TaskContext(state.tasks, stored, state.settings.progress_hz)
    try:
        async with asyncio.timeout(timeout_s) as deadline:
            if definition.blocking:
                result = await state.blocking.run(definition.module, definition.name, task.parameters, ctx)
            else:
                result = msgspec.to_builtins(await definition(ctx, parameters))
    except asyncio.CancelledError:
        if ctx.superseded:
            ctx.log.info("stopped: %s", ctx.superseded)
            return
        await ctx.flush()
        await _stop(state, ctx.task_id, ctx.attempt)
        raise
    except HandlerError as error:
        await _fail(state, ctx, error.description, error.trace)
    except Exception as error:
        expired = isinstance(error, TimeoutError) and deadline.expired()
        message = f"TimeoutError: the attempt ran longer than {timeout_s}s" if expired else describe(error)
        await _fail(state, ctx, message, traceback.format_exc())
    else:
        await ctx.flush()
        await _end(state, Finish(ctx.attempt, TaskStatus.COMPLETED, result=result), ctx.stored)


async def _fail(state: WorkerState, ctx: TaskContext, message: str, trace: str) -> None:
    """Retry with exponential backoff while attempts remain; otherwise the task has failed."""
    await ctx.flush()
    task, attempt = ctx.stored.task, ctx.attempt
    ctx.log.warning("attempt %d failed: %s", attempt, message)
    if attempt >= task.max_attempts:
        failed = Finish(attempt, TaskStatus.FAILED, error_message=message, traceback=trace)
        await _end(state, failed, ctx.stored)
        return
    delay_s = backoff_s(attempt, state.settings.retry_backoff_s, state.settings.retry_backoff_max_s)
    requeue = Requeue(attempt, reason="error", error_message=message, traceback=trace, delay_s=delay_s)
    await _end(state, requeue, ctx.stored)


async def _stop(state: WorkerState, task_id: str, attempt: int) -> None:
    """The attempt was cancelled: by a cancel request (the task is cancelled), or because this
    worker is stopping (the task goes back to pending for another worker)."""
    try:
        current = await state.tasks.read(task_id)
    except NotFound:
        return
    if current.task.status is not TaskStatus.RUNNING or current.task.attempts != attempt:
        return  # never started, or already decided
    if current.task.cancel_requested:
        change: Change = Finish(attempt, TaskStatus.CANCELLED, reason="cancel requested")
    else:
        change = Requeue(attempt, reason="worker stopped", refund=True)
    await _end(state, change, current)


async def _end(state: WorkerState, change: Change, stored: Stored) -> bool:
    """Store how the attempt ended; False when someone else already decided (cancel grace
    expired, an admin's PUT, a delete)."""
    try:
        await state.tasks.change(stored.task.id, change, known=stored, by_attempt=True)
    except (InvalidTransition, NotFound) as error:
        log.info("task %s: outcome not stored: %s", stored.task.id, error)
        return False
    return True


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before the attempt after `attempt`: base, twice that, four times, ... up to max_s."""
    return float(min(max_s, base_s * 2 ** (attempt - 1)))
