"""What callers do to tasks: the checks and steps behind each endpoint, shared by HTTP and
WebSocket, so every path applies the same access rules."""

import msgspec

from jobcast.auth.access import (
    ensure_may_delete,
    ensure_may_filter_owner,
    ensure_may_submit,
    ensure_may_write,
    ensure_visible,
    redacted,
)
from jobcast.errors import Inactive, InvalidParameters
from jobcast.model.bounds import Bounds, check_bounds
from jobcast.model.changes import Change, Delete, PatchRetry, RequestCancel, Retry, TaskUpdate
from jobcast.model.principals import Principal, Role
from jobcast.model.submissions import TaskSubmission, task_of
from jobcast.model.task_types import Executor, TaskType
from jobcast.model.tasks import Event, Task, TaskStatus, utc_now
from jobcast.store import keys
from jobcast.store.quotas import SubmissionRate
from jobcast.store.task_types import TypeCopy, TypeStore
from jobcast.store.tasks import Page, TaskQuery, TaskStore, TypesChanged


class Submitted(msgspec.Struct, frozen=True):
    """What a submission did: the task, whether it is new, and whether it was queued."""

    task: Task
    created: bool  # False: an idempotent repeat returned the first task
    queued: bool  # True: a worker type's task went onto the queue


class TaskActions:
    """The task operations of the API, each with its access check: what HTTP and WebSocket call."""

    def __init__(
        self, tasks: TaskStore, types: TypeStore, bounds: Bounds, rate: SubmissionRate | None = None
    ) -> None:
        self.tasks = tasks
        self.types = types
        self._bounds = bounds
        self._rate = rate

    async def submit(
        self, principal: Principal, submission: TaskSubmission, idempotency_key: str | None
    ) -> Submitted:
        """Create and (for worker types) queue a task."""
        ensure_may_submit(principal)
        if self._rate is not None:
            await self._rate.admit(principal.name)
        key = None if idempotency_key is None else keys.idempotency(principal.name, idempotency_key)
        if key is not None and (first := await self.tasks.idempotent_task(key)) is not None:
            return Submitted(first, created=False, queued=False)
        while True:
            copy = await self.types.copy_of(submission.type_ref())
            try:
                return await self._create(principal, submission, copy, key)
            except TypesChanged:
                pass
            except (Inactive, InvalidParameters):
                if not copy.cached:
                    raise  # decided on the stored type, not on this process's copy of it
            self.types.forget()

    async def _create(
        self, principal: Principal, submission: TaskSubmission, copy: TypeCopy, key: str | None
    ) -> Submitted:
        """Store the task if `copy` of its type is still current (TypesChanged otherwise)."""
        task_type = copy.task_type
        task, event = task_of(submission, task_type, principal.name, self._bounds, utc_now())
        queued = task_type.executor is Executor.WORKER
        stored = await self.tasks.create(
            task, event, queued=queued, idempotency_key=key, types_version=copy.version
        )
        return Submitted(stored, created=stored.id == task.id, queued=queued)

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

    async def update(self, principal: Principal, task_id: str, update: TaskUpdate) -> Task:
        stored = await self.tasks.read(task_id)
        fields = update.fields()
        ensure_may_write(principal, stored.task, fields)
        check_bounds(
            self._bounds,
            {f"/{name}": getattr(update, name) for name in ("metadata", "result") if name in fields},
        )
        change: Change = update
        if update.status is TaskStatus.PENDING:
            task_type = await self._active_type(stored.task.task_type_id)
            change = PatchRetry(update, task_type.max_attempts)
        return (await self.tasks.change(task_id, change, known=stored)).task

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
