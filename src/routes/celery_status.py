"""GET /api/tasks/{id}/status: a task in the shape Celery-era polling clients read."""

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from jobcast.model.tasks import TERMINAL, Task, TaskStatus

CELERY_STATES = {
    TaskStatus.PENDING: "PENDING",
    TaskStatus.RUNNING: "STARTED",
    TaskStatus.COMPLETED: "SUCCESS",
    TaskStatus.FAILED: "FAILURE",
    TaskStatus.CANCELLED: "REVOKED",
}


class CeleryProgress(msgspec.Struct):
    current: int | float
    total: int | float | None
    percent: float | None


class CeleryStatus(msgspec.Struct):
    task_id: str
    status: str
    ready: bool
    result: Any = UNSET
    progress: CeleryProgress | UnsetType = UNSET


def celery_status(task: Task) -> CeleryStatus:
    """PROGRESS once a running task reported progress; `result` once it is ready."""
    view = CeleryStatus(task.id, CELERY_STATES[task.status], ready=task.status in TERMINAL)
    if task.status is TaskStatus.RUNNING and task.progress is not None:
        view.status = "PROGRESS"
    if task.progress is not None:
        view.progress = CeleryProgress(task.progress.current, task.progress.total, task.progress.percent)
    if task.status is TaskStatus.COMPLETED:
        view.result = task.result
    elif task.status is TaskStatus.FAILED:
        view.result = task.error_message
    return view
