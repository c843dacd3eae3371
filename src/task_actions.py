"""What callers do to tasks: the checks and steps behind each endpoint, shared by HTTP and
WebSocket, so every path applies the same access rules."""

from typing import Any

import msgspec

from src import keys
from src.access import (
    Principal,
    Role,
    ensure_may_delete,
    ensure_may_filter_owner,
    ensure_may_submit,
    ensure_may_write,
    ensure_visible,
    redacted,
)
from src.errors import BadRequest, Inactive, InvalidParameters
from src.quotas import SubmissionRate
from src.schemas import Bounds, check_bounds, validate_parameters
from src.task_store import Page, TaskQuery, TaskStore, TypesChanged
from src.task_types import Executor, TaskType
from src.tasks import Event, Task, TaskStatus, new_task, utc_now
from src.transitions import Delete, Patch, RequestCancel, Retry
from src.type_store import TypeStore, Versioned


class Submitted(msgspec.Struct, frozen=True):
    task: Task
    created: bool  # False: an idempotent repeat returned the first task
    queued: bool  # True: a worker type's task went onto the queue


class TaskActions:
    def __init__(
        self, tasks: TaskStore, types: TypeStore, bounds: Bounds, rate: SubmissionRate | None = None
    ) -> None:
        self.tasks = tasks
        self.types = types
        self._bounds = bounds
        self._rate = rate

    async def submit(
        self,
        principal: Principal,
        *,
        type_name: str | None,
        type_id: int | None,
        parameters: dict[str, Any],
        priority: int,
        metadata: dict[str, Any],
        idempotency_key: str | None,
    ) -> Submitted:
        """Create and (for worker types) queue a task."""
        ensure_may_submit(principal)
        if self._rate is not None:
            await self._rate.admit(principal.name)
        key = None if idempotency_key is None else keys.idempotency(principal.name, idempotency_key)
        if key is not None and (first := await self.tasks.idempotent_task(key)) is not None:
            return Submitted(first, created=False, queued=False)
        while True:
            versioned = await self._submission_type(type_name, type_id)
            try:
                return await self._create(principal, versioned, parameters, priority, metadata, key)
            except TypesChanged:
                pass
            except (Inactive, InvalidParameters):
                if not versioned.cached:
                    raise  # decided on the stored type, not on this process's copy of it
            self.types.forget()

    async def _create(
        self,
        principal: Principal,
        versioned: Versioned,
        parameters: dict[str, Any],
        priority: int,
        metadata: dict[str, Any],
        key: str | None,
    ) -> Submitted:
        task_type = versioned.task_type
        if not task_type.is_active:
            raise Inactive(f"task type {task_type.name!r} is not active")
        check_bounds(self._bounds, {"/parameters": parameters, "/metadata": metadata})
        validate_parameters(task_type.parameters_schema, parameters)
        task, event = new_task(
            task_type=task_type.name,
            task_type_id=task_type.id,
            parameters=parameters,
            priority=priority,
            metadata=metadata,
            owner=principal.name,
            max_attempts=task_type.max_attempts,
            at=utc_now(),
        )
        queued = task_type.executor is Executor.WORKER
        stored = await self.tasks.create(
            task, event, queued=queued, idempotency_key=key, types_version=versioned.version
        )
        return Submitted(stored, created=stored.id == task.id, queued=queued)

    async def _submission_type(self, type_name: str | None, type_id: int | None) -> Versioned:
        """The type a submission names by `type`, `task_type_id` or both (which must agree)."""
        if type_name is None and type_id is None:
            raise BadRequest("name the task type with `type` or `task_type_id`")
        versioned = await self.types.versioned(type_id if type_id is not None else str(type_name))
        if type_name is not None and versioned.task_type.name != type_name:
            raise BadRequest(f"task_type_id {type_id} is {versioned.task_type.name!r}, not {type_name!r}")
        return versioned

    async def get(self, principal: Principal, task_id: str) -> Task:
        return ensure_visible(principal, await self.tasks.get(task_id))

    async def events(self, principal: Principal, task_id: str) -> list[Event]:
        await self.get(principal, task_id)
        return redacted(principal, await self.tasks.events(task_id))

    async def page(
        self, principal: Principal, query: TaskQuery, type_name: str | None = None, type_id: int | None = None
    ) -> Page:
        """A page of the tasks the caller may see: its own, a worker's those of the types it
        serves, an admin's all; `type_name` and `type_id` filter by type."""
        ensure_may_filter_owner(principal, query.owner)
        wanted = await self._type_filter(type_name, type_id)
        if principal.role is Role.WORKER:
            served = {
                found for name in principal.types if (found := await self.types.find_name(name)) is not None
            }
            wanted = served if wanted is None else wanted & served
        elif not principal.is_admin:
            query = msgspec.structs.replace(query, owner=principal.name)
        if wanted is not None and not wanted:
            return Page([], None)  # no such type, or filters that exclude each other
        return await self.tasks.page(msgspec.structs.replace(query, type_ids=sorted(wanted or ())))

    async def _type_filter(self, type_name: str | None, type_id: int | None) -> set[int] | None:
        """The type ids a listing asks for; None when it names no type."""
        if type_name is None:
            return None if type_id is None else {type_id}
        found = await self.types.find_name(type_name)
        if found is None or type_id not in (None, found):
            return set()
        return {found}

    async def update(self, principal: Principal, task_id: str, patch: Patch, fields: set[str]) -> Task:
        stored = await self.tasks.read(task_id)
        ensure_may_write(principal, stored.task, fields)
        check_bounds(
            self._bounds,
            {f"/{name}": getattr(patch, name) for name in ("metadata", "result") if name in fields},
        )
        if patch.status is TaskStatus.PENDING:
            task_type = await self._active_type(stored.task.task_type_id)
            patch = Patch(
                **{name: getattr(patch, name) for name in fields}, extra_attempts=task_type.max_attempts
            )
        return (await self.tasks.change(task_id, patch, known=stored)).task

    async def cancel(self, principal: Principal, task_id: str) -> Task:
        stored = await self.tasks.read(task_id)
        ensure_visible(principal, stored.task)
        return (await self.tasks.change(task_id, RequestCancel(), known=stored)).task

    async def retry(self, principal: Principal, task_id: str) -> Task:
        stored = await self.tasks.read(task_id)
        ensure_visible(principal, stored.task)
        task_type = await self._active_type(stored.task.task_type_id)
        return (await self.tasks.change(task_id, Retry(task_type.max_attempts), known=stored)).task

    async def delete(self, principal: Principal, task_id: str) -> None:
        stored = await self.tasks.read(task_id)
        ensure_may_delete(principal, stored.task)
        await self.tasks.change(task_id, Delete(), known=stored)

    async def _active_type(self, ref: str | int) -> TaskType:
        task_type = await self.types.read(ref)
        if not task_type.is_active:
            raise Inactive(f"task type {task_type.name!r} is not active")
        return task_type
