"""What can happen to a task: every change as a Struct, applied by transitions.apply."""

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from jobcast.model.tasks import Priority, Progress, TaskStatus

ATTEMPT_HELP = (
    "Fencing for workers: the attempt this write comes from. A claim (status running) names the next "
    "attempt; any other write the current one. A write from an attempt that is no longer current gets 409."
)


class Start(msgspec.Struct, frozen=True):
    """Attempt number `attempt` of a pending task begins, on `worker` when a worker runs it."""

    attempt: int
    worker: str | None = None


class ReportProgress(msgspec.Struct, frozen=True):
    attempt: int
    progress: Progress


class Finish(msgspec.Struct, frozen=True):
    """The running attempt ends the task: completed, failed or cancelled."""

    attempt: int
    status: TaskStatus
    result: Any = None
    error_message: str | None = None
    traceback: str | None = None
    reason: str | None = None


class Requeue(msgspec.Struct, frozen=True):
    """The running attempt gave up but attempts remain: back to pending (`task.retrying`).

    `refund`: the attempt does not count (its worker was stopped, the handler did not fail).
    `delay_s`: the next attempt waits this long (a backoff).
    """

    attempt: int
    reason: str
    error_message: str | None = None
    traceback: str | None = None
    refund: bool = False
    delay_s: float = 0.0


class WorkerLost(msgspec.Struct, frozen=True):
    """`worker` stopped heartbeating: its attempt of the task is over, counted as used."""

    worker: str


class RequestCancel(msgspec.Struct, frozen=True):
    """Cancel: at once when pending; a running task is asked to stop."""


class ExpireCancel(msgspec.Struct, frozen=True):
    """The cancel grace ran out: a task still running after a cancel request is cancelled."""


class Retry(msgspec.Struct, frozen=True):
    """A failed or cancelled task runs again, with `extra_attempts` more attempts."""

    extra_attempts: int


class TaskUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """PUT /api/tasks/{id}: the request body and the change it makes; UNSET fields are left alone."""

    status: TaskStatus | UnsetType = UNSET
    progress: Progress | UnsetType | None = UNSET
    result: Any = UNSET
    error_message: str | UnsetType | None = UNSET
    priority: Priority | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    attempt: Annotated[int, Meta(ge=1, description=ATTEMPT_HELP)] | UnsetType = UNSET

    def fields(self) -> set[str]:
        """The names of the fields this patch sets."""
        return {name for name in self.__struct_fields__ if getattr(self, name) is not UNSET}


class PatchRetry(msgspec.Struct, frozen=True):
    """A patch that moves a failed or cancelled task back to pending: a retry, granting the
    `extra_attempts` its type gives one."""

    patch: TaskUpdate
    extra_attempts: int


class Delete(msgspec.Struct, frozen=True):
    """The task is removed; an active one is cancelled on the way out."""


Change = (
    Start
    | ReportProgress
    | Finish
    | Requeue
    | WorkerLost
    | RequestCancel
    | ExpireCancel
    | Retry
    | TaskUpdate
    | PatchRetry
    | Delete
)
