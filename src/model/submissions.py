"""A submission (POST /api/tasks): the request body, and the checks that make a task of it."""

from datetime import datetime
from typing import Any

import msgspec

from jobcast.errors import BadRequest, Inactive
from jobcast.model.bounds import Bounds, check_bounds
from jobcast.model.parameters import validate_parameters
from jobcast.model.task_types import TaskType
from jobcast.model.tasks import DEFAULT_PRIORITY, Event, Priority, Task, new_task


class TaskSubmission(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The task type is named by `type`, by `task_type_id`, or by both (which must agree)."""

    type: str | None = None
    task_type_id: int | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: Priority = DEFAULT_PRIORITY
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def type_ref(self) -> str | int:
        """How to look the type up: by id when given, else by name."""
        if self.task_type_id is not None:
            return self.task_type_id
        if self.type is None:
            raise BadRequest("name the task type with `type` or `task_type_id`")
        return self.type


def task_of(
    submission: TaskSubmission, task_type: TaskType, owner: str, bounds: Bounds, at: datetime
) -> tuple[Task, Event]:
    """The pending task a submission makes of its type, and its `task.created` event; raises
    when the type is not the one named or is inactive, or the values fail their checks."""
    if submission.type is not None and task_type.name != submission.type:
        raise BadRequest(f"task_type_id {task_type.id} is {task_type.name!r}, not {submission.type!r}")
    if not task_type.is_active:
        raise Inactive(f"task type {task_type.name!r} is not active")
    check_bounds(bounds, {"/parameters": submission.parameters, "/metadata": submission.metadata})
    validate_parameters(task_type.parameters_schema, submission.parameters)
    return new_task(
        task_type=task_type.name,
        task_type_id=task_type.id,
        parameters=submission.parameters,
        priority=submission.priority,
        metadata=submission.metadata,
        owner=owner,
        max_attempts=task_type.max_attempts,
        at=at,
    )
