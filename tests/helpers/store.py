"""Tasks written straight into a store, for tests below the API."""

from typing import Any

from jobcast.model.tasks import Task, new_task, utc_now
from jobcast.store.tasks import TaskStore


async def add(
    tasks: TaskStore,
    *,
    queued: bool = False,
    key: str | None = None,
    type_id: int = 1,
    owner: str = "alice",
    max_attempts: int = 3,
    metadata: dict[str, Any] | None = None,
) -> Task:
    task, event = new_task(
        task_type=f"type{type_id}",
        task_type_id=type_id,
        parameters={"n": 1},
        priority=100,
        metadata=metadata or {},
        owner=owner,
        max_attempts=max_attempts,
        at=utc_now(),
    )
    return await tasks.create(task, event, queued=queued, idempotency_key=key)
