"""Tasks in Redis: the record hash, its event history and the listing indexes.

Every change is read → transitions.apply → one atomic check-then-write guarded by `seq`;
when another writer got there first, the change is re-applied to what it wrote.
"""

import heapq
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from jobcast.errors import InvalidTransition, NotFound
from jobcast.model.changes import Change
from jobcast.model.tasks import Event, Task, TaskStatus, utc_now
from jobcast.model.transitions import apply
from jobcast.store import keys
from jobcast.store.atomic import Atomic, GuardFailed, Plan
from jobcast.store.queue import job_id_for
from jobcast.store.stored import STORED_FIELDS, Stored, decode_task, stored_from
from jobcast.store.task_plans import (
    IDEMPOTENCY_KEY,
    TYPES_VERSION,
    Limits,
    change_plan,
    create_plan,
    expire_plan,
    job_after,
    promote_plan,
    reissue_plan,
)

decode_events = msgspec.json.Decoder(list[Event]).decode


class Page(msgspec.Struct, frozen=True):
    """One page of a listing, and where the next one starts."""

    tasks: list[Task]
    next_cursor: int | None  # rank to continue below, when more rows exist


class TaskQuery(msgspec.Struct, frozen=True):
    """Which tasks a listing wants: statuses, types, owner, page size and cursor."""

    statuses: Sequence[TaskStatus] = ()
    type_ids: Sequence[int] = ()  # any of these types; none: every type
    owner: str | None = None
    limit: int = 100
    cursor: int | None = None


class TypesChanged(Exception):
    """A type was written since the copy a submission was checked against: nothing was stored."""


class _Lost(Exception):
    """A write's guard failed: someone else wrote first, or this very write landed earlier and
    only its reply was lost (a command retried after a dropped connection)."""

    def __init__(self, intended: Task) -> None:
        self.intended = intended


class TaskStore:
    """Tasks in Redis: each change applied to a fresh read and written in one atomic plan."""

    def __init__(self, redis: Redis, atomic: Atomic, limits: Limits) -> None:
        self._redis = redis
        self._atomic = atomic
        self.limits = limits

    async def read(self, task_id: str) -> Stored:
        """The task and its store-only fields; NotFound when there is no such task."""
        return stored_from(task_id, await self._redis.hmget(keys.task(task_id), STORED_FIELDS))

    async def get(self, task_id: str) -> Task:
        return (await self.read(task_id)).task

    async def create(
        self,
        task: Task,
        event: Event,
        *,
        queued: bool,
        idempotency_key: str | None,
        types_version: int | None = None,
    ) -> Task:
        """Store a new task (and its arq job when `queued`); with an idempotency key that was
        already used, store nothing and return the task it created. TypesChanged when some
        type was written after `types_version`: the task was checked against an old copy."""
        rank = int(await self._redis.incr(keys.TASK_RANK))
        job_id = job_id_for(task.id, event.seq) if queued else ""
        plan = create_plan(task, event, rank, job_id, idempotency_key, types_version, self.limits)
        try:
            await self._atomic.run(plan)
        except GuardFailed as failed:
            if failed.guard == TYPES_VERSION:
                raise TypesChanged from None
            if failed.guard == IDEMPOTENCY_KEY:  # it names the task that used it first
                return await self.get(failed.found)
            return await self.get(task.id)  # a fresh random id exists: this very write, retried
        return task

    async def idempotent_task(self, idempotency_key: str) -> Task | None:
        """The task an idempotency key created, if the key and the task still exist."""
        task_id = await self._redis.get(idempotency_key)
        if task_id is None:
            return None
        try:
            return await self.get(task_id.decode())
        except NotFound:
            await self._redis.delete(idempotency_key)  # its task was deleted: the key is free
            return None

    async def change(
        self,
        task_id: str,
        change: Change,
        *,
        known: Stored | None = None,
        by_attempt: bool = False,
        job: str | None = None,
    ) -> Stored:
        """Apply `change` atomically and return the task as stored after it.

        `known` is a recent read to try first: it saves a round trip when it is still current.
        If it was not (the change is refused, changes nothing, or loses the race), the change
        is applied to a fresh read instead. With `job`, the change is refused (InvalidTransition)
        once the task's arq job is another one: a worker starts only from the task's own job.
        """
        intended: Task | None = None
        if known is not None and (job is None or known.job == job):
            try:
                stored = await self._commit(known, change, by_attempt)
                if stored is not None:
                    return stored
            except InvalidTransition:
                pass
            except _Lost as lost:
                intended = lost.intended
        while True:
            before = await self.read(task_id)
            if intended is not None and before.task == intended:
                return before  # our own write, whose reply was lost
            if job is not None and before.job != job:
                raise InvalidTransition(f"the task's job is now {before.job!r}, not {job!r}")
            try:
                return await self._commit(before, change, by_attempt) or before
            except _Lost as lost:  # someone else wrote first: apply the change to theirs
                intended = lost.intended

    async def _commit(self, before: Stored, change: Change, by_attempt: bool) -> Stored | None:
        """Write `change` on top of `before`; None when it changes nothing.
        _Lost when `before` is no longer the stored version."""
        task, event = apply(before.task, change, utc_now())
        if event is None:
            return None
        plan = change_plan(before, task, event, by_attempt=by_attempt, limits=self.limits)
        try:
            await self._atomic.run(plan)
        except GuardFailed:
            raise _Lost(task) from None
        return Stored(task, before.rank, job_after(before, task, event))

    async def reissue(self, stored: Stored, due_ms: int | None) -> bool:
        """Give a pending task a new arq job in place of `stored.job` (lost, or not for this
        worker); False when the task no longer waits on that job."""
        old_job = stored.job
        while True:
            now_ms = int(utc_now().timestamp() * 1000)
            job_id = job_id_for(stored.task.id, stored.task.seq, now_ms)
            if await self._run(reissue_plan(stored, job_id, now_ms, due_ms)):
                return True
            try:
                stored = await self.read(stored.task.id)  # edited meanwhile: try on what is there
            except NotFound:
                return False
            if stored.job != old_job or stored.task.status is not TaskStatus.PENDING:
                return False

    async def promote(self, stored: Stored) -> bool:
        """Queue the task's deferred job, whose backoff is over."""
        return await self._run(promote_plan(stored))

    async def expire(self, stored: Stored) -> bool:
        """Remove a finished task past its retention."""
        return await self._run(expire_plan(stored))

    async def _run(self, plan: Plan) -> bool:
        """Run a plan; False when a guard found the task changed meanwhile (nothing written)."""
        try:
            await self._atomic.run(plan)
        except GuardFailed:
            return False
        return True

    async def events(self, task_id: str) -> list[Event]:
        """The task's history, oldest first; NotFound when there is no such task."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(keys.task(task_id))
            pipe.lrange(keys.task_events(task_id), 0, -1)
            exists, items = await pipe.execute()
        if not exists:
            raise NotFound(f"task {task_id!r} not found")
        return decode_events(b"[" + b",".join(items) + b"]")

    async def page(self, query: TaskQuery) -> Page:
        """A page of tasks, newest first, read from the index of each wanted status and type."""
        type_ids: Sequence[int | str] = query.type_ids or [keys.ANY]
        statuses: Sequence[str] = query.statuses or [keys.ANY]
        owner = query.owner or keys.ANY
        indexes = [keys.task_index(status, type_id, owner) for status in statuses for type_id in type_ids]
        upper = "+inf" if query.cursor is None else f"({query.cursor}"
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zrevrangebyscore(index, upper, "-inf", start=0, num=query.limit + 1, withscores=True)
            ranked = await pipe.execute()
        rows = list(heapq.merge(*ranked, key=lambda row: -row[1]))[: query.limit + 1]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        async with self._redis.pipeline(transaction=False) as pipe:
            for member, _ in rows:
                pipe.hget(keys.task(member.decode()), "doc")
            docs = await pipe.execute()
        tasks = [decode_task(doc) for doc in docs if doc is not None]
        wanted = set(query.statuses)
        tasks = [t for t in tasks if not wanted or t.status in wanted]  # moved since the index read
        return Page(tasks, int(rows[-1][1]) if more else None)
