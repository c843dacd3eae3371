"""Tasks and their events: the records clients read and the shadows every change casts."""

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

Number = int | float
Priority = Annotated[int, Meta(ge=1, le=1000)]
DEFAULT_PRIORITY = 100


class TaskStatus(StrEnum):
    """Where a task is in its life (CONTRACT.md §1)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING})
RETRYABLE = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})


class EventKind(StrEnum):
    """What an event says happened to its task."""

    CREATED = "task.created"
    STARTED = "task.started"
    PROGRESS = "task.progress"
    RETRYING = "task.retrying"
    COMPLETED = "task.completed"
    FAILED = "task.failed"
    CANCELLED = "task.cancelled"
    UPDATED = "task.updated"
    DELETED = "task.deleted"


FINISHED_EVENT = {
    TaskStatus.COMPLETED: EventKind.COMPLETED,
    TaskStatus.FAILED: EventKind.FAILED,
    TaskStatus.CANCELLED: EventKind.CANCELLED,
}
FINAL_EVENTS = frozenset({*FINISHED_EVENT.values(), EventKind.DELETED})


class Progress(msgspec.Struct, forbid_unknown_fields=True):
    """How far a running task is; `percent` is derived from current and total."""

    current: Annotated[int, Meta(ge=0)] | Annotated[float, Meta(ge=0)]
    total: Annotated[int, Meta(gt=0)] | Annotated[float, Meta(gt=0)] | None = None
    percent: float | None = None
    message: Annotated[str, Meta(max_length=2000)] | None = None

    def __post_init__(self) -> None:
        if self.total is None:
            self.percent = None
            return
        if self.current > self.total:
            raise ValueError("progress current must not exceed total")
        self.percent = round(100 * self.current / self.total, 2)


class Task(msgspec.Struct, kw_only=True):
    """A task as stored and as every endpoint returns it (CONTRACT.md §2)."""

    id: str
    type: str
    task_type_id: int
    status: TaskStatus
    parameters: dict[str, Any]
    priority: int
    metadata: dict[str, Any]
    owner: str
    progress: Progress | None = None
    result: Any = None
    error_message: str | None = None
    attempts: int = 0
    max_attempts: int
    cancel_requested: bool = False
    worker: str | None = None  # the worker running the current attempt
    seq: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    status_url: str
    events_url: str


class Event(msgspec.Struct, kw_only=True):
    """One stored change of a task (CONTRACT.md §3); unset fields are left out of the JSON."""

    task_id: str
    seq: int
    event: EventKind
    at: datetime
    status: TaskStatus
    attempt: int
    progress: Progress | UnsetType | None = UNSET
    result: Any = UNSET
    error_message: str | UnsetType | None = UNSET
    priority: int | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    cancel_requested: bool | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    traceback: str | UnsetType = UNSET
    worker: str | UnsetType = UNSET
    run_after: datetime | UnsetType = UNSET  # a retry waits for its backoff until then


def public_event(event: Event) -> Event:
    """The event as a reader who may not see tracebacks reads it: a traceback shows the server's
    code and paths. The one place an event is redacted."""
    if event.traceback is UNSET:
        return event
    return msgspec.structs.replace(event, traceback=UNSET)


def new_task_id() -> str:
    """An opaque, unguessable id: 96 random bits."""
    return secrets.token_urlsafe(12)


def utc_now() -> datetime:
    return datetime.now(UTC)


def task_path(task_id: str) -> str:
    return f"/api/tasks/{task_id}"


def new_task(
    *,
    task_type: str,
    task_type_id: int,
    parameters: dict[str, Any],
    priority: int,
    metadata: dict[str, Any],
    owner: str,
    max_attempts: int,
    at: datetime,
) -> tuple[Task, Event]:
    """A fresh pending task and its `task.created` event."""
    task_id = new_task_id()
    task = Task(
        id=task_id,
        type=task_type,
        task_type_id=task_type_id,
        status=TaskStatus.PENDING,
        parameters=parameters,
        priority=priority,
        metadata=metadata,
        owner=owner,
        max_attempts=max_attempts,
        seq=1,
        created_at=at,
        updated_at=at,
        status_url=task_path(task_id) + "/status",
        events_url=task_path(task_id) + "/events",
    )
    event = Event(task_id=task_id, seq=1, event=EventKind.CREATED, at=at, status=task.status, attempt=0)
    return task, event
