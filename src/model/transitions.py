"""The legal moves of a task (CONTRACT.md §2) as one pure function: no I/O, no clock."""

from datetime import datetime, timedelta
from typing import Any

from msgspec import UNSET
from msgspec.structs import replace

from jobcast.errors import InvalidTransition, StaleAttempt
from jobcast.model.changes import (
    Change,
    Delete,
    ExpireCancel,
    Finish,
    PatchRetry,
    ReportProgress,
    RequestCancel,
    Requeue,
    Retry,
    Start,
    TaskUpdate,
    WorkerLost,
)
from jobcast.model.tasks import (
    ACTIVE,
    FINISHED_EVENT,
    RETRYABLE,
    TERMINAL,
    Event,
    EventKind,
    Task,
    TaskStatus,
)

Running = TaskStatus.RUNNING
Pending = TaskStatus.PENDING


Outcome = tuple[Task, Event | None]


def apply(task: Task, change: Change, at: datetime) -> Outcome:
    """The task after `change`, and the event it emits (None when nothing changed)."""
    match change:
        case Start():
            return _start(task, change, at)
        case ReportProgress():
            _check_attempt(task, change.attempt)
            fields = {"progress": change.progress}
            return _emit(task, EventKind.PROGRESS, at, fields, fields)
        case Finish():
            _check_attempt(task, change.attempt)
            return _finish(task, change, at)
        case Requeue():
            _check_attempt(task, change.attempt)
            return _requeue(task, change, at)
        case WorkerLost():
            return _worker_lost(task, change.worker, at)
        case RequestCancel():
            return _request_cancel(task, at)
        case ExpireCancel():
            if task.status is not Running or not task.cancel_requested:
                return task, None
            expired = Finish(task.attempts, TaskStatus.CANCELLED, reason="cancel grace expired")
            return _finish(task, expired, at)
        case Retry():
            return _retry(task, change.extra_attempts, at)
        case TaskUpdate():
            return _patch(task, change, at)
        case PatchRetry():
            return _patch(task, change.patch, at, change.extra_attempts)
        case Delete():
            status = TaskStatus.CANCELLED if task.status in ACTIVE else task.status
            return _emit(task, EventKind.DELETED, at, {}, {"status": status})


def _check_attempt(task: Task, attempt: int) -> None:
    if task.status is not Running or task.attempts != attempt:
        raise StaleAttempt(
            f"attempt {attempt} is no longer current: the task is {task.status} at attempt {task.attempts}"
        )


def _start(task: Task, change: Start, at: datetime) -> Outcome:
    if task.status is not Pending:
        raise InvalidTransition(f"only a pending task can start; this one is {task.status}")
    if change.attempt != task.attempts + 1:
        raise StaleAttempt(f"attempt {change.attempt} is not the next one ({task.attempts + 1})")
    fields = {
        "status": Running,
        "attempts": change.attempt,
        "started_at": at,
        "progress": None,
        "result": None,
        "cancel_requested": False,
        "worker": change.worker,
    }
    return _emit(task, EventKind.STARTED, at, fields, _present(worker=change.worker))


def _finish(task: Task, change: Finish, at: datetime) -> Outcome:
    fields: dict[str, Any] = {"status": change.status, "completed_at": at, "worker": None}
    if task.started_at is None:
        fields["started_at"] = at
    if change.status is TaskStatus.COMPLETED:
        fields |= {"result": change.result, "error_message": None}
    elif change.error_message is not None:
        fields["error_message"] = change.error_message
    extra = _present(
        error_message=fields.get("error_message"), traceback=change.traceback, reason=change.reason
    )
    if change.status is TaskStatus.COMPLETED:
        extra["result"] = change.result
    return _emit(task, FINISHED_EVENT[change.status], at, fields, extra)


def _requeue(task: Task, change: Requeue, at: datetime) -> Outcome:
    if task.cancel_requested:  # asked to stop: the attempt ending is the cancel, not a retry
        cancelled = Finish(
            change.attempt,
            TaskStatus.CANCELLED,
            error_message=change.error_message,
            traceback=change.traceback,
            reason="cancel requested",
        )
        return _finish(task, cancelled, at)
    fields: dict[str, Any] = {
        "status": Pending,
        "progress": None,
        "error_message": change.error_message,
        "worker": None,
    }
    if change.refund:
        fields["max_attempts"] = task.max_attempts + 1
    run_after = at + timedelta(seconds=change.delay_s) if change.delay_s > 0 else None
    extra = _present(error_message=change.error_message, traceback=change.traceback, run_after=run_after)
    return _emit(task, EventKind.RETRYING, at, fields, {"reason": change.reason, "progress": None} | extra)


def _worker_lost(task: Task, worker: str, at: datetime) -> Outcome:
    """Only the attempt that `worker` was running is over; anything newer is left alone."""
    if task.status is not Running or task.worker != worker:
        return task, None
    error = f"worker lost: {worker} stopped heartbeating during attempt {task.attempts}"
    if task.attempts >= task.max_attempts and not task.cancel_requested:
        lost = Finish(task.attempts, TaskStatus.FAILED, error_message=error, reason="worker lost")
        return _finish(task, lost, at)
    return _requeue(task, Requeue(task.attempts, reason="worker lost", error_message=error), at)


def _request_cancel(task: Task, at: datetime) -> Outcome:
    if task.status is Pending:
        return _finish(task, Finish(task.attempts, TaskStatus.CANCELLED, reason="cancel requested"), at)
    if task.status is Running:
        if task.cancel_requested:
            return task, None
        fields = {"cancel_requested": True}
        return _emit(task, EventKind.UPDATED, at, fields, fields)
    raise InvalidTransition(f"task is already {task.status}; there is nothing to cancel")


def _retry(task: Task, extra_attempts: int, at: datetime) -> Outcome:
    if task.status not in RETRYABLE:
        raise InvalidTransition(f"only a failed or cancelled task can be retried; this one is {task.status}")
    fields = {
        "status": Pending,
        "max_attempts": task.attempts + extra_attempts,
        "progress": None,
        "result": None,
        "error_message": None,
        "cancel_requested": False,
        "completed_at": None,
    }
    return _emit(task, EventKind.RETRYING, at, fields, {"reason": "retry requested", "progress": None})


def _patch(task: Task, patch: TaskUpdate, at: datetime, extra_attempts: int = 1) -> Outcome:
    if patch.attempt is not UNSET:
        _check_patch_attempt(task, patch)
    if patch.status is task.status:  # not a move: two workers must not both claim a task
        raise InvalidTransition(f"task is already {task.status}")
    moved = patch.status is not UNSET
    if moved and patch.status is Pending:
        if _changes_outcome(patch):
            raise InvalidTransition("a retry cannot also set progress, result or error_message")
        task, event = _retry(task, extra_attempts, at)
        return _merge_edits(task, event, patch, at)
    if task.status in TERMINAL and _changes_outcome(patch):
        raise InvalidTransition(
            f"task is already {task.status}; its progress, result and error can no longer change"
        )
    if moved:
        return _merge_edits(*_move(task, patch, at), patch, at)
    return _merge_edits(task, None, patch, at)


def _check_patch_attempt(task: Task, patch: TaskUpdate) -> None:
    """A patch naming its attempt: a claim must name the next one, anything else the current one."""
    if patch.status is Running and task.status is Pending:
        if patch.attempt != task.attempts + 1:
            raise StaleAttempt(f"attempt {patch.attempt} is not the next one ({task.attempts + 1})")
        return
    assert isinstance(patch.attempt, int)
    _check_attempt(task, patch.attempt)


def _move(task: Task, patch: TaskUpdate, at: datetime) -> Outcome:
    target = patch.status
    assert isinstance(target, TaskStatus)
    if target is Running and task.status is Pending:
        return _start(task, Start(task.attempts + 1), at)
    if target in TERMINAL and task.status in ACTIVE:
        result = None if patch.result is UNSET else patch.result
        error = None if patch.error_message is UNSET else patch.error_message
        return _finish(task, Finish(task.attempts, target, result, error), at)
    raise InvalidTransition(f"a task cannot move from {task.status} to {target}")


def _merge_edits(task: Task, event: Event | None, patch: TaskUpdate, at: datetime) -> Outcome:
    """Apply a patch's field edits on top of its status move (if any), in the same event."""
    edits = {
        name: value
        for name in ("progress", "result", "error_message", "priority", "metadata")
        if (value := getattr(patch, name)) is not UNSET and value != getattr(task, name)
    }
    if not edits:
        return task, event
    if event is None:
        kind = EventKind.PROGRESS if "progress" in edits else EventKind.UPDATED
        if kind is EventKind.PROGRESS and task.status is not Running:
            raise InvalidTransition(f"progress can only be reported while running; task is {task.status}")
        return _emit(task, kind, at, edits, edits)
    task = replace(task, **edits)
    return task, replace(event, status=task.status, **edits)


def _changes_outcome(patch: TaskUpdate) -> bool:
    return any(value is not UNSET for value in (patch.progress, patch.result, patch.error_message))


def _present(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _emit(
    task: Task, kind: EventKind, at: datetime, fields: dict[str, Any], extra: dict[str, Any] | None = None
) -> Outcome:
    """Bump `seq`, set `fields` on the task and describe the change as event `kind`."""
    seq = task.seq + 1
    task = replace(task, seq=seq, updated_at=at, **fields)
    event_fields: dict[str, Any] = {"progress": task.progress} if task.progress is not None else {}
    event_fields |= extra or {}
    event_fields.setdefault("status", task.status)
    event = Event(task_id=task.id, seq=seq, event=kind, at=at, attempt=task.attempts, **event_fields)
    return task, event
