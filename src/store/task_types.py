"""Task types in Redis: one JSON record per type, a name→id hash and an id-ordered index."""

import time
from typing import Any

import msgspec
from redis.asyncio import Redis

from jobcast.errors import AlreadyExists, BadRequest, NotFound
from jobcast.model.task_types import TaskType, type_id_or_name
from jobcast.model.tasks import utc_now
from jobcast.store import keys
from jobcast.store.atomic import ABSENT, Atomic, Guard, GuardFailed, Plan, encode

decode_type = msgspec.json.Decoder(TaskType).decode
NEW_VERSION = ["INCR", keys.TYPES_VERSION]
RECENT_MAX = 1000


class TypeCopy(msgspec.Struct, frozen=True):
    """A type as read while the types version was `version`: current as long as it still is."""

    task_type: TaskType
    version: int
    cached: bool = False  # from this process's copy, not read just now


class TypeStore:
    """Task types in Redis; a type is never renamed, and each write bumps the types version."""

    def __init__(self, redis: Redis, atomic: Atomic) -> None:
        self._redis = redis
        self._atomic = atomic
        self._recent: dict[str | int, TypeCopy] = {}  # by the ref a caller used

    async def copy_of(self, ref: str | int) -> TypeCopy:
        """The type with the types version it is current at, from this process's copy when it
        has one: a write that uses it guards on the version (see `forget`)."""
        recent = self._recent.get(ref)
        if recent is not None:
            return recent
        # The version first: a type written after it was read is caught by the guard.
        version = int(await self._redis.get(keys.TYPES_VERSION) or 0)
        task_type = await self.read(ref)
        if len(self._recent) >= RECENT_MAX:
            self._recent.clear()
        self._recent[ref] = TypeCopy(task_type, version, cached=True)
        return TypeCopy(task_type, version)

    def forget(self) -> None:
        """Some type changed since the copies were read: read them again."""
        self._recent.clear()

    async def create(self, fields: dict[str, Any]) -> TaskType:
        """Store a new type from its writable fields; AlreadyExists when the name is taken."""
        type_id = int(await self._redis.incr(keys.TYPE_IDS))
        now = utc_now()
        task_type = msgspec.convert({**fields, "id": type_id, "created_at": now, "updated_at": now}, TaskType)
        doc = encode(task_type).decode()
        plan = Plan(
            guards=[Guard("name free", ABSENT, ["HGET", keys.TYPE_NAMES, task_type.name])],
            writes=[
                ["SET", keys.task_type(type_id), doc],
                ["HSET", keys.TYPE_NAMES, task_type.name, str(type_id)],
                ["ZADD", keys.TYPES, str(type_id), str(type_id)],
                NEW_VERSION,
            ],
        )
        try:
            await self._atomic.run(plan)
        except GuardFailed:
            raise AlreadyExists(f"a task type named {task_type.name!r} already exists") from None
        return task_type

    async def get(self, ref: str | int) -> TaskType:
        """The type with this id or name, with its live worker count; NotFound otherwise."""
        return (await self._with_workers([await self.read(ref)]))[0]

    async def read(self, ref: str | int) -> TaskType:
        """The type as stored (`workers_online` left at 0); NotFound otherwise."""
        task_type, _ = await self._read(ref)
        return task_type

    async def find_name(self, name: str) -> int | None:
        type_id = await self._redis.hget(keys.TYPE_NAMES, name)
        return None if type_id is None else int(type_id)

    async def all(self, include_inactive: bool) -> list[TaskType]:
        """All types in id order; inactive ones only when asked."""
        ids = await self._redis.zrange(keys.TYPES, 0, -1)
        docs = await self._redis.mget([keys.task_type(int(i)) for i in ids]) if ids else []
        types = [decode_type(doc) for doc in docs if doc is not None]
        return await self._with_workers([t for t in types if include_inactive or t.is_active])

    async def update(self, ref: str | int, changes: dict[str, Any]) -> TaskType:
        """Apply `changes` to the current record, retrying if someone else wrote in between.
        A `name` in `changes` must be the type's own: types are never renamed."""
        name = changes.pop("name", None)
        while True:
            current, doc = await self._read(ref)
            if name is not None and name != current.name:
                raise BadRequest(f"a task type cannot be renamed (this one is {current.name!r})")
            updated = msgspec.structs.replace(current, **changes, updated_at=utc_now())
            if updated == msgspec.structs.replace(current, updated_at=updated.updated_at):
                return (await self._with_workers([current]))[0]
            plan = Plan(
                guards=[Guard("type", doc, ["GET", keys.task_type(current.id)])],
                writes=[["SET", keys.task_type(current.id), encode(updated).decode()], NEW_VERSION],
            )
            try:
                await self._atomic.run(plan)
            except GuardFailed:
                continue  # changed since we read it: read again and re-apply
            return (await self._with_workers([updated]))[0]

    async def declare(self, name: str, declared: dict[str, Any], defaults: dict[str, Any]) -> TaskType:
        """Create a worker-declared type, or refresh the fields its code owns.

        `defaults` only seed a new type: once stored, operators own them (a PUT wins over code).
        """
        while True:
            try:
                return await self.update(name, declared)
            except NotFound:
                pass
            try:
                return await self.create({**defaults, **declared, "name": name})
            except AlreadyExists:
                continue  # another worker declared it first: refresh that one

    async def _read(self, ref: str | int) -> tuple[TaskType, str]:
        key = type_id_or_name(ref) if isinstance(ref, str) else ref
        type_id = key if isinstance(key, int) else await self.find_name(key)
        doc = None if type_id is None else await self._redis.get(keys.task_type(type_id))
        if doc is None:
            raise NotFound(f"task type {ref!r} not found")
        return decode_type(doc), doc.decode()

    async def _with_workers(self, types: list[TaskType]) -> list[TaskType]:
        if not types:
            return types
        now_ms = str(int(time.time() * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_type in types:
                pipe.zcount(keys.type_workers(task_type.name), now_ms, "+inf")
            counts = await pipe.execute()
        return [msgspec.structs.replace(t, workers_online=int(n)) for t, n in zip(types, counts, strict=True)]
