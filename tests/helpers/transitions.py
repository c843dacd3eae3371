"""Hypothesis strategies and checks for task changes, shared by the pure and the store tests."""

from datetime import datetime

from hypothesis import strategies as st
from msgspec import UNSET

from jobcast.errors import InvalidTransition
from jobcast.model.changes import (
    Change,
    Finish,
    ReportProgress,
    Requeue,
    Start,
    TaskUpdate,
)
from jobcast.model.tasks import (
    Event,
    Progress,
    Task,
    TaskStatus,
)
from jobcast.model.transitions import apply

statuses = st.sampled_from(list(TaskStatus))

maybe = st.just(UNSET)

PENDING, RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING


COMPLETED, FAILED, CANCELLED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED


progresses = st.one_of(
    st.integers(1, 100).flatmap(
        lambda total: st.builds(Progress, current=st.integers(0, total), total=st.just(total))
    ),
    st.builds(Progress, current=st.integers(0, 50), message=st.sampled_from(["a", "b"])),
)


values = st.one_of(st.none(), st.integers(-3, 3), st.lists(st.integers(0, 2), max_size=2))


texts = st.sampled_from(["boom", "timeout", "no rows"])


def patches() -> st.SearchStrategy[TaskUpdate]:
    return st.builds(
        TaskUpdate,
        status=st.one_of(maybe, statuses),
        progress=st.one_of(maybe, maybe, st.none(), progresses),
        result=st.one_of(maybe, maybe, values),
        error_message=st.one_of(maybe, maybe, st.none(), texts),
        priority=st.one_of(maybe, st.integers(1, 1000)),
        metadata=st.one_of(maybe, st.dictionaries(st.sampled_from("ab"), st.integers(0, 2), max_size=2)),
    )


def try_apply(task: Task, change: Change, when: datetime) -> tuple[Task, Event | None] | InvalidTransition:
    try:
        return apply(task, change, when)
    except InvalidTransition as error:
        return error


def fencing_refuses(task: Task, change: Change) -> bool:
    """Whether the change names an attempt that is not the current one (or, to start, the next)."""
    if isinstance(change, TaskUpdate):
        return change.attempt is not UNSET and not is_current(task, change)
    return is_stale(task, change)


def is_stale(task: Task, change: Change) -> bool:
    match change:
        case ReportProgress() | Finish() | Requeue():
            return task.status is not RUNNING or change.attempt != task.attempts
        case Start():
            return task.status is PENDING and change.attempt != task.attempts + 1
    return False


def is_current(task: Task, patch: TaskUpdate) -> bool:
    """Whether a patch naming its attempt comes from the task's current attempt (a claim: the next)."""
    if patch.status is RUNNING and task.status is PENDING:
        return patch.attempt == task.attempts + 1
    return task.status is RUNNING and patch.attempt == task.attempts
