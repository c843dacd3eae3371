"""TaskStore and TypeStore on a real Redis: atomic changes, history, events, indexes, arq jobs."""

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from jobcast.errors import AlreadyExists, InvalidTransition, NotFound, StaleAttempt
from jobcast.events.protocol import event_frame
from jobcast.model.changes import (
    Delete,
    Finish,
    ReportProgress,
    RequestCancel,
    Requeue,
    Retry,
    Start,
    TaskUpdate,
)
from jobcast.model.tasks import EventKind, Progress, Task, TaskStatus
from jobcast.settings import Settings
from jobcast.store import keys
from jobcast.store.atomic import ABSENT, Atomic, Guard, GuardFailed, Plan
from jobcast.store.envelope import Envelope, decode_envelope
from jobcast.store.queue import ARQ_FUNCTION, job_id_for
from jobcast.store.reconciler import ABORT_MAX_AGE_MS, Reconciler
from jobcast.store.stores import new_reconciler, open_stores
from jobcast.store.task_types import TypeStore
from jobcast.store.tasks import TaskQuery, TaskStore
from tests.helpers.store import add

PENDING, RUNNING = TaskStatus.PENDING, TaskStatus.RUNNING
COMPLETED, FAILED, CANCELLED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED
WAIT_S = 10.0
SENTINEL = b"end-of-test-events"


@pytest.fixture
def stores(settings: Settings, redis: Redis) -> tuple[TaskStore, TypeStore]:
    return open_stores(settings, redis)


@pytest.fixture
def tasks(stores: tuple[TaskStore, TypeStore]) -> TaskStore:
    return stores[0]


@pytest.fixture
def types(stores: tuple[TaskStore, TypeStore]) -> TypeStore:
    return stores[1]


async def started(tasks: TaskStore, **fields: Any) -> Task:
    task = await add(tasks, **fields)
    return (await tasks.change(task.id, Start(1), by_attempt=True)).task


async def ids(tasks: TaskStore, **query: Any) -> list[str]:
    return [task.id for task in (await tasks.page(TaskQuery(**query))).tasks]


async def all_pages(tasks: TaskStore, **query: Any) -> list[str]:
    """Follow the cursor to the end, collecting ids page by page."""
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await tasks.page(TaskQuery(cursor=cursor, **query))
        seen += [task.id for task in page.tasks]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("the cursor never ran out")


async def in_queue(redis: Redis, job_id: str) -> bool:
    return await redis.zscore(keys.ARQ_QUEUE, job_id) is not None


async def command_calls(redis: Redis) -> Counter[str]:
    stats = await redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()})


async def commands_during(redis: Redis, action: Any) -> Counter[str]:
    """Which Redis commands (and how many of each) `action()` issued; INFO itself left out."""
    before = await command_calls(redis)
    await action()
    delta = await command_calls(redis) - before
    del delta["info"]
    return delta


class Listener:
    """Subscribed to the events channel before the test acts; `drain` returns what was published."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub = redis.pubsub()

    async def __aenter__(self) -> "Listener":
        await self._pubsub.subscribe(keys.EVENTS_CHANNEL)
        async with asyncio.timeout(WAIT_S):  # the confirmation: the server has us subscribed now
            while await self._pubsub.get_message(timeout=1.0) is None:
                pass
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pubsub.aclose()

    async def drain(self) -> list[tuple[Envelope, dict[str, Any]]]:
        """Every envelope published so far (and its decoded frame), up to a sentinel we publish."""
        await self._redis.publish(keys.EVENTS_CHANNEL, SENTINEL)
        received: list[tuple[Envelope, dict[str, Any]]] = []
        async with asyncio.timeout(WAIT_S):
            while True:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                if message["data"] == SENTINEL:
                    return received
                envelope = decode_envelope(message["data"])
                frame = json.loads(event_frame(bytes(envelope.event)))
                assert frame["type"] == "event"
                received.append((envelope, frame))


@pytest.fixture
async def listener(redis: Redis) -> AsyncIterator[Listener]:
    async with Listener(redis) as subscribed:
        yield subscribed


async def stored_history(redis: Redis, task_id: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in await redis.lrange(keys.task_events(task_id), 0, -1)]


def published_for(received: list[tuple[Envelope, dict[str, Any]]], task_id: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in frame.items() if k != "type"} for env, frame in received if env.task_id == task_id
    ]


# --- create, read, history, events -----------------------------------------------------------


async def test_create_then_read_and_history(tasks: TaskStore, redis: Redis, listener: Listener) -> None:
    task = await add(tasks, metadata={"a": 1})
    stored = await tasks.read(task.id)
    assert stored.task == task
    assert stored.job == ""
    assert stored.rank > 0
    assert await tasks.get(task.id) == task
    history = await tasks.events(task.id)
    assert [(e.seq, e.event, e.status) for e in history] == [(1, EventKind.CREATED, PENDING)]
    received = await listener.drain()
    assert [(env.task_id, env.seq, env.kind, env.owner, env.task_type) for env, _ in received] == [
        (task.id, 1, EventKind.CREATED, "alice", "type1")
    ]


async def test_every_change_is_recorded_and_published_in_order(
    tasks: TaskStore, redis: Redis, listener: Listener
) -> None:
    task = await add(tasks)
    await tasks.change(task.id, Start(1), by_attempt=True)
    await tasks.change(task.id, ReportProgress(1, Progress(current=1, total=2)), by_attempt=True)
    done = await tasks.change(task.id, Finish(1, COMPLETED, result={"x": 1}), by_attempt=True)
    assert (done.task.status, done.task.result, done.task.seq) == (COMPLETED, {"x": 1}, 4)
    history = await tasks.events(task.id)
    assert [e.event for e in history] == [
        EventKind.CREATED,
        EventKind.STARTED,
        EventKind.PROGRESS,
        EventKind.COMPLETED,
    ]
    assert [e.seq for e in history] == [1, 2, 3, 4]
    record = await tasks.get(task.id)
    assert record == done.task
    assert record.seq == history[-1].seq == int(await redis.hget(keys.task(task.id), "seq"))
    assert published_for(await listener.drain(), task.id) == await stored_history(redis, task.id)


async def test_reads_of_a_missing_task_are_not_found(tasks: TaskStore) -> None:
    with pytest.raises(NotFound):
        await tasks.get("nope")
    with pytest.raises(NotFound):
        await tasks.events("nope")
    with pytest.raises(NotFound):
        await tasks.change("nope", RequestCancel())


async def test_a_refused_change_writes_nothing(tasks: TaskStore, redis: Redis, listener: Listener) -> None:
    task = await add(tasks)
    with pytest.raises(StaleAttempt):
        await tasks.change(task.id, Finish(1, COMPLETED), by_attempt=True)
    with pytest.raises(InvalidTransition):
        await tasks.change(task.id, Retry(1))
    assert await tasks.get(task.id) == task
    assert len(await tasks.events(task.id)) == 1
    assert [env.seq for env, _ in await listener.drain()] == [1]


async def test_a_change_based_on_an_outdated_read_is_reapplied_on_the_current_record(
    tasks: TaskStore,
) -> None:
    task = await add(tasks)
    outdated = await tasks.read(task.id)
    await tasks.change(task.id, TaskUpdate(priority=7))
    after = await tasks.change(task.id, TaskUpdate(metadata={"b": 2}), known=outdated)
    assert (after.task.priority, after.task.metadata, after.task.seq) == (7, {"b": 2}, 3)
    assert [e.seq for e in await tasks.events(task.id)] == [1, 2, 3]
    assert await tasks.get(task.id) == after.task


async def test_a_change_that_became_illegal_meanwhile_is_refused(tasks: TaskStore) -> None:
    task = await add(tasks)
    outdated = await tasks.read(task.id)
    await tasks.change(task.id, RequestCancel())
    with pytest.raises(InvalidTransition):
        await tasks.change(task.id, Start(1), known=outdated, by_attempt=True)
    assert (await tasks.get(task.id)).status is CANCELLED
    assert [e.seq for e in await tasks.events(task.id)] == [1, 2]


async def test_atomic_plan_with_a_failing_guard_writes_nothing(redis: Redis) -> None:
    atomic = Atomic(redis)
    await redis.set("k", "v")
    holds, absent = Guard("holds", "v", ["GET", "k"]), Guard("absent", ABSENT, ["GET", "k"])
    with pytest.raises(GuardFailed) as failed:
        await atomic.run(Plan(guards=[holds, absent], writes=[["SET", "other", "1"]]))
    assert (failed.value.guard, failed.value.found) == ("absent", "v")
    assert await redis.exists("other") == 0
    await atomic.run(Plan(guards=[holds], writes=[["SET", "other", "1"]]))
    assert await redis.get("other") == b"1"


# --- compare-and-set under concurrency ---------------------------------------------------------

WRITERS = 50


@pytest.mark.parametrize("kind", ["metadata", "progress"])
async def test_concurrent_changes_all_land_with_gapless_seqs(
    tasks: TaskStore, redis: Redis, listener: Listener, kind: str
) -> None:
    task = await started(tasks) if kind == "progress" else await add(tasks)
    first = task.seq

    async def write(i: int) -> None:
        if kind == "metadata":
            await tasks.change(task.id, TaskUpdate(metadata={"writer": i}))
        else:
            await tasks.change(
                task.id, ReportProgress(1, Progress(current=i, total=WRITERS)), by_attempt=True
            )

    async def write_all() -> None:
        await asyncio.wait_for(asyncio.gather(*(write(i) for i in range(WRITERS))), WAIT_S * 3)

    cost = await commands_during(redis, write_all)
    assert cost["evalsha"] > WRITERS  # the writers did collide: some guards failed and were retried
    history = await tasks.events(task.id)
    assert [e.seq for e in history] == list(range(1, first + WRITERS + 1))
    landed = history[first:]
    if kind == "metadata":
        values = [e.metadata["writer"] for e in landed]  # type: ignore[index]
    else:
        values = [e.progress.current for e in landed]  # type: ignore[union-attr]
    assert sorted(values) == list(range(WRITERS))
    record = await tasks.get(task.id)
    assert record.seq == history[-1].seq == first + WRITERS
    if kind == "metadata":
        assert record.metadata == {"writer": values[-1]}
    else:
        assert record.progress is not None
        assert record.progress.current == values[-1]
    published = published_for(await listener.drain(), task.id)
    assert [frame["seq"] for frame in published] == list(range(1, first + WRITERS + 1))
    assert published == await stored_history(redis, task.id)


# --- idempotency -------------------------------------------------------------------------------


@pytest.mark.parametrize("queued", [False, True])
async def test_a_repeated_idempotency_key_returns_the_first_task(
    tasks: TaskStore, redis: Redis, queued: bool
) -> None:
    key = keys.idempotency("alice", "K-1")
    first = await add(tasks, key=key, queued=queued)
    repeat = await add(tasks, key=key, queued=queued)
    assert repeat == first
    assert await ids(tasks) == [first.id]
    assert await redis.zcard(keys.ARQ_QUEUE) == (1 if queued else 0)
    assert await tasks.idempotent_task(key) == first
    other = await add(tasks, key=keys.idempotency("bob", "K-1"))
    assert other.id != first.id
    assert 0 < await redis.ttl(key) <= 24 * 3600


async def test_an_idempotency_key_of_a_deleted_task_is_free_again(tasks: TaskStore, redis: Redis) -> None:
    key = keys.idempotency("alice", "K-2")
    first = await add(tasks, key=key)
    await tasks.change(first.id, Delete())
    assert await tasks.idempotent_task(key) is None
    second = await add(tasks, key=key)
    assert second.id != first.id
    assert await tasks.idempotent_task(key) == second


# --- listing -----------------------------------------------------------------------------------


async def test_listing_is_newest_first(tasks: TaskStore) -> None:
    created = [(await add(tasks)).id for _ in range(6)]
    assert await ids(tasks) == created[::-1]
    assert await ids(tasks, limit=2) == created[:3:-1]


async def test_status_filters_single_and_several(tasks: TaskStore) -> None:
    a = await add(tasks)
    b = await started(tasks)
    c = await add(tasks)
    await tasks.change(c.id, TaskUpdate(status=COMPLETED, result=1))
    d = await add(tasks)
    await tasks.change(d.id, RequestCancel())
    e = await started(tasks)
    assert await ids(tasks, statuses=[PENDING]) == [a.id]
    assert await ids(tasks, statuses=[RUNNING]) == [e.id, b.id]
    assert await ids(tasks, statuses=[COMPLETED]) == [c.id]
    assert await ids(tasks, statuses=[RUNNING, PENDING]) == [e.id, b.id, a.id]
    assert await ids(tasks, statuses=[CANCELLED, COMPLETED, RUNNING]) == [e.id, d.id, c.id, b.id]
    assert await ids(tasks, statuses=[FAILED]) == []
    assert await ids(tasks) == [e.id, d.id, c.id, b.id, a.id]


async def test_type_and_owner_filters(tasks: TaskStore) -> None:
    a = await add(tasks, type_id=1, owner="alice")
    b = await add(tasks, type_id=2, owner="alice")
    c = await add(tasks, type_id=1, owner="bob")
    d = await started(tasks, type_id=2, owner="bob")
    assert await ids(tasks, type_ids=[1]) == [c.id, a.id]
    assert await ids(tasks, owner="alice") == [b.id, a.id]
    assert await ids(tasks, type_ids=[2], owner="bob") == [d.id]
    assert await ids(tasks, type_ids=[2], owner="bob", statuses=[PENDING]) == []
    assert await ids(tasks, type_ids=[2], statuses=[PENDING, RUNNING]) == [d.id, b.id]
    assert await ids(tasks, owner="carol") == []
    assert await ids(tasks, type_ids=[3]) == []


@pytest.mark.parametrize("limit", [1, 4, 7, 23, 24])
async def test_cursor_paging_yields_every_task_exactly_once(tasks: TaskStore, limit: int) -> None:
    created = [(await add(tasks, type_id=1 + i % 2)).id for i in range(23)]
    for task_id in created[::3]:
        await tasks.change(task_id, Start(1), by_attempt=True)

    def where(keep: Any) -> list[str]:
        return [task_id for i, task_id in enumerate(created) if keep(i)][::-1]

    assert await all_pages(tasks, limit=limit) == created[::-1]
    assert await all_pages(tasks, limit=limit, statuses=[RUNNING]) == where(lambda i: i % 3 == 0)
    assert await all_pages(tasks, limit=limit, type_ids=[1]) == where(lambda i: i % 2 == 0)
    assert await all_pages(tasks, limit=limit, statuses=[PENDING], type_ids=[2]) == where(
        lambda i: i % 2 == 1 and i % 3 != 0
    )
    assert await all_pages(tasks, limit=limit, statuses=[RUNNING, PENDING]) == created[::-1]


async def test_next_cursor_is_given_exactly_when_more_rows_exist(tasks: TaskStore) -> None:
    for _ in range(10):
        await add(tasks)
    assert (await tasks.page(TaskQuery(limit=10))).next_cursor is None
    assert (await tasks.page(TaskQuery(limit=11))).next_cursor is None
    page = await tasks.page(TaskQuery(limit=9))
    assert page.next_cursor is not None
    rest = await tasks.page(TaskQuery(limit=9, cursor=page.next_cursor))
    assert (len(rest.tasks), rest.next_cursor) == (1, None)


async def test_index_membership_follows_the_status(tasks: TaskStore, redis: Redis) -> None:
    task = await add(tasks, type_id=4, owner="dora")
    await tasks.change(task.id, Start(1), by_attempt=True)
    assert await ids(tasks, statuses=[PENDING]) == []
    assert await ids(tasks, statuses=[PENDING], type_ids=[4], owner="dora") == []
    assert await ids(tasks, statuses=[RUNNING], type_ids=[4], owner="dora") == [task.id]
    for index in [keys.task_index(PENDING, t, o) for t in (4, keys.ANY) for o in ("dora", keys.ANY)]:
        assert await redis.zscore(index, task.id) is None, index
    for index in keys.task_indexes(RUNNING, 4, "dora"):
        assert await redis.zscore(index, task.id) is not None, index
    await tasks.change(task.id, Finish(1, FAILED, error_message="x"), by_attempt=True)
    assert await ids(tasks, statuses=[RUNNING]) == []
    assert await ids(tasks, statuses=[FAILED], owner="dora") == [task.id]
    await tasks.change(task.id, Retry(1))
    assert await ids(tasks, statuses=[FAILED]) == []
    assert await ids(tasks, statuses=[PENDING], type_ids=[4]) == [task.id]


@pytest.mark.parametrize("status", [PENDING, RUNNING, COMPLETED])
async def test_delete_removes_record_history_and_index_entries(
    tasks: TaskStore, redis: Redis, listener: Listener, status: TaskStatus
) -> None:
    keep = await add(tasks, type_id=5, owner="erin")
    task = await (started if status is not PENDING else add)(tasks, type_id=5, owner="erin")
    if status is COMPLETED:
        await tasks.change(task.id, Finish(1, COMPLETED), by_attempt=True)
    await tasks.change(task.id, Delete())
    assert await redis.exists(keys.task(task.id), keys.task_events(task.id)) == 0
    for index in keys.task_indexes(status, 5, task.owner):
        assert await redis.zscore(index, task.id) is None, index
    assert await ids(tasks) == [keep.id]
    with pytest.raises(NotFound):
        await tasks.get(task.id)
    with pytest.raises(NotFound):
        await tasks.events(task.id)
    last_env, last_frame = (await listener.drain())[-1]
    assert (last_env.task_id, last_env.kind) == (task.id, EventKind.DELETED)
    assert last_frame["status"] == (CANCELLED if status is not COMPLETED else COMPLETED)


# --- the arq job -------------------------------------------------------------------------------


async def test_a_worker_task_is_queued_as_an_arq_job(tasks: TaskStore, redis: Redis) -> None:
    task = await add(tasks, queued=True)
    stored = await tasks.read(task.id)
    assert stored.job == job_id_for(task.id, 1)
    assert await in_queue(redis, stored.job)
    payload = json.loads(await redis.get(keys.arq_job(stored.job)))
    assert (payload["f"], payload["a"]) == (ARQ_FUNCTION, [task.id])
    external = await add(tasks)
    assert (await tasks.read(external.id)).job == ""
    assert await redis.zcard(keys.ARQ_QUEUE) == 1


@pytest.mark.parametrize(
    "finish", [RequestCancel(), TaskUpdate(status=COMPLETED, result=1), TaskUpdate(status=FAILED), Delete()]
)
async def test_a_pending_task_finished_early_leaves_no_job_behind(
    tasks: TaskStore, redis: Redis, finish: Any
) -> None:
    task = await add(tasks, queued=True)
    job = (await tasks.read(task.id)).job
    await tasks.change(task.id, finish)
    assert not await in_queue(redis, job)
    assert await redis.exists(keys.arq_job(job)) == 0
    assert await redis.zscore(keys.ARQ_ABORTS, job) is None


async def test_retrying_a_failed_worker_task_enqueues_a_new_job(tasks: TaskStore, redis: Redis) -> None:
    task = await add(tasks, queued=True, max_attempts=1)
    old_job = (await tasks.read(task.id)).job
    await redis.zrem(keys.ARQ_QUEUE, old_job)  # what arq does when a worker picks the job up
    await tasks.change(task.id, Start(1), by_attempt=True)
    await tasks.change(task.id, Finish(1, FAILED, error_message="boom"), by_attempt=True)
    retried = await tasks.change(task.id, Retry(2))
    assert retried.task.status is PENDING
    assert retried.job != old_job
    assert retried.job == job_id_for(task.id, retried.task.seq)
    assert (await tasks.read(task.id)).job == retried.job
    assert await in_queue(redis, retried.job)
    assert not await in_queue(redis, old_job)
    payload = json.loads(await redis.get(keys.arq_job(retried.job)))
    assert payload["a"] == [task.id]
    await tasks.change(task.id, TaskUpdate(status=FAILED))
    again = await tasks.change(task.id, TaskUpdate(status=PENDING))
    assert again.job not in {old_job, retried.job}
    assert await in_queue(redis, again.job)


async def test_cancel_of_a_running_task_aborts_its_job_and_sets_a_deadline(
    tasks: TaskStore, redis: Redis, settings: Settings
) -> None:
    task = await started(tasks, queued=True)
    job = (await tasks.read(task.id)).job
    before_ms = time.time() * 1000
    after = await tasks.change(task.id, RequestCancel())
    assert (after.task.status, after.task.cancel_requested) == (RUNNING, True)
    assert await redis.zscore(keys.ARQ_ABORTS, job) is not None
    deadline_ms = await redis.zscore(keys.CANCEL_DEADLINES, task.id)
    assert deadline_ms is not None
    assert before_ms < deadline_ms <= time.time() * 1000 + settings.cancel_grace_s * 1000
    await tasks.change(task.id, Finish(1, CANCELLED, reason="cancel requested"), by_attempt=True)
    assert await redis.zscore(keys.CANCEL_DEADLINES, task.id) is None


async def test_an_admin_finishing_a_running_task_aborts_its_job(tasks: TaskStore, redis: Redis) -> None:
    task = await started(tasks, queued=True)
    job = (await tasks.read(task.id)).job
    await tasks.change(task.id, TaskUpdate(status=FAILED, error_message="stopped by admin"))
    assert await redis.zscore(keys.ARQ_ABORTS, job) is not None
    own = await started(tasks, queued=True)
    await tasks.change(own.id, Finish(1, COMPLETED), by_attempt=True)
    assert await redis.zscore(keys.ARQ_ABORTS, (await tasks.read(own.id)).job) is None


# --- the reconciler: cancel deadlines ---------------------------------------------------------


def sweeper_with_grace(redis: Redis, settings: Settings, grace_s: float) -> tuple[TaskStore, Reconciler]:
    tasks, _ = open_stores(msgspec.structs.replace(settings, cancel_grace_s=grace_s), redis)
    return tasks, new_reconciler(settings, redis, tasks)


async def test_sweeper_cancels_a_task_whose_cancel_grace_ran_out(
    redis: Redis, settings: Settings, listener: Listener
) -> None:
    tasks, sweeper = sweeper_with_grace(redis, settings, 1e-9)  # the deadline is the request itself
    task = await started(tasks, queued=True)
    await tasks.change(task.id, RequestCancel())
    await asyncio.wait_for(sweeper.reconcile_once(), WAIT_S)
    swept = await tasks.get(task.id)
    assert (swept.status, swept.seq) == (CANCELLED, 4)
    assert swept.completed_at is not None
    assert await redis.zscore(keys.CANCEL_DEADLINES, task.id) is None
    last = (await tasks.events(task.id))[-1]
    assert (last.event, last.reason) == (EventKind.CANCELLED, "cancel grace expired")
    assert published_for(await listener.drain(), task.id) == await stored_history(redis, task.id)
    with pytest.raises(StaleAttempt):  # the cancelled attempt's late result
        await tasks.change(task.id, Finish(1, COMPLETED), by_attempt=True)


async def test_sweeper_leaves_a_task_within_its_grace(redis: Redis, settings: Settings) -> None:
    tasks, sweeper = sweeper_with_grace(redis, settings, 60)
    task = await started(tasks)
    await tasks.change(task.id, RequestCancel())
    await asyncio.wait_for(sweeper.reconcile_once(), WAIT_S)
    assert (await tasks.get(task.id)).status is RUNNING
    assert await redis.zscore(keys.CANCEL_DEADLINES, task.id) is not None


async def test_sweeper_drops_deadlines_of_tasks_that_ended_or_vanished(
    redis: Redis, settings: Settings
) -> None:
    tasks, sweeper = sweeper_with_grace(redis, settings, 1e-9)
    done = await started(tasks)
    await tasks.change(done.id, Finish(1, COMPLETED), by_attempt=True)
    await redis.zadd(keys.CANCEL_DEADLINES, {"gone": 1, done.id: 1})
    await asyncio.wait_for(sweeper.reconcile_once(), WAIT_S)
    assert await redis.zcard(keys.CANCEL_DEADLINES) == 0
    assert (await tasks.get(done.id)).status is COMPLETED


async def test_a_cancel_request_survives_the_attempt_giving_up(redis: Redis, settings: Settings) -> None:
    """CONTRACT §2: a running task with a cancel request reaches `cancelled` within the grace, even
    when its attempt fails (and would be requeued) before it notices the cancel."""
    tasks, sweeper = sweeper_with_grace(redis, settings, 1e-9)
    task = await started(tasks, queued=True)
    await tasks.change(task.id, RequestCancel())
    with contextlib.suppress(InvalidTransition):  # refusing it is fine: the sweeper then cancels
        await tasks.change(task.id, Requeue(1, reason="error", error_message="x"), by_attempt=True)
    await asyncio.wait_for(sweeper.reconcile_once(), WAIT_S)
    assert (await tasks.get(task.id)).status is CANCELLED


async def test_sweeper_clears_stale_arq_aborts(redis: Redis, settings: Settings, tasks: TaskStore) -> None:
    now_ms = time.time() * 1000
    await redis.zadd(keys.ARQ_ABORTS, {"old-job": now_ms - ABORT_MAX_AGE_MS - 1000, "new-job": now_ms})
    await asyncio.wait_for(new_reconciler(settings, redis, tasks).reconcile_once(), WAIT_S)
    assert await redis.zscore(keys.ARQ_ABORTS, "old-job") is None
    assert await redis.zscore(keys.ARQ_ABORTS, "new-job") is not None


# --- listing cost does not grow with the store ---------------------------------------------------

PAGE_QUERIES: list[dict[str, Any]] = [
    {},
    {"statuses": [PENDING]},
    {"statuses": [PENDING, RUNNING]},
    {"type_ids": [1]},
    {"owner": "alice"},
    {"statuses": [PENDING], "type_ids": [1], "owner": "alice"},
]


async def page_costs(tasks: TaskStore, redis: Redis) -> list[Counter[str]]:
    costs = []
    for query in PAGE_QUERIES:
        first = await tasks.page(TaskQuery(limit=10, **query))
        assert len(first.tasks) == 10
        assert first.next_cursor is not None

        async def second_page(query: dict[str, Any] = query, cursor: int = first.next_cursor) -> None:
            assert len((await tasks.page(TaskQuery(limit=10, cursor=cursor, **query))).tasks) == 10

        async def first_page(query: dict[str, Any] = query) -> None:
            assert len((await tasks.page(TaskQuery(limit=10, **query))).tasks) == 10

        costs += [await commands_during(redis, first_page), await commands_during(redis, second_page)]
    return costs


async def test_a_page_costs_the_same_commands_in_a_small_and_a_large_store(
    tasks: TaskStore, redis: Redis
) -> None:
    for _ in range(24):
        await add(tasks)
    await started(tasks)
    small = await page_costs(tasks, redis)
    for _ in range(20):
        await asyncio.wait_for(asyncio.gather(*(add(tasks) for _ in range(249))), WAIT_S * 3)
        await started(tasks)
    assert await redis.zcard(keys.task_index()) >= 5000
    large = await page_costs(tasks, redis)
    assert large == small
    for query, cost in zip([q for q in PAGE_QUERIES for _ in "12"], small, strict=True):
        indexes = len(query.get("statuses", [])) or 1
        assert cost == Counter({"zrevrangebyscore": indexes, "hget": 10}), (query, cost)


# --- task types --------------------------------------------------------------------------------


def type_fields(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "executor": "external", **extra}


async def test_type_create_and_get_by_id_and_name(types: TypeStore) -> None:
    first = await types.create(type_fields("report", description="d", timeout_s=30))
    second = await types.create(type_fields("export"))
    assert (first.id, second.id) == (1, 2)
    assert (first.description, first.timeout_s, first.is_active) == ("d", 30, True)
    for ref in (1, "1", "report"):
        assert await types.get(ref) == first
    assert (await types.get("export")).id == 2
    assert await types.find_name("report") == 1
    assert await types.find_name("nope") is None
    for missing in (99, "99", "nope"):
        with pytest.raises(NotFound):
            await types.get(missing)


async def test_type_duplicate_name_is_refused(types: TypeStore) -> None:
    first = await types.create(type_fields("report", description="first"))
    with pytest.raises(AlreadyExists):
        await types.create(type_fields("report", description="second"))
    assert await types.get("report") == first
    assert [t.id for t in await types.all(include_inactive=True)] == [first.id]


async def test_type_update_changes_fields_and_updated_at(types: TypeStore) -> None:
    created = await types.create(type_fields("report"))
    updated = await types.update("report", {"description": "new", "max_attempts": 5})
    assert (updated.description, updated.max_attempts, updated.created_at) == ("new", 5, created.created_at)
    assert updated.updated_at > created.updated_at
    assert await types.get(created.id) == updated
    unchanged = await types.update(created.id, {"description": "new"})
    assert unchanged == updated
    with pytest.raises(NotFound):
        await types.update("nope", {"description": "x"})


async def test_concurrent_type_updates_of_different_fields_all_land(types: TypeStore) -> None:
    await types.create(type_fields("report"))
    changes: list[dict[str, Any]] = [
        {"description": "described"},
        {"timeout_s": 11.0},
        {"max_attempts": 9},
        {"metadata": {"team": "x"}},
        {"parameters_schema": {"type": "object"}},
        {"is_active": False},
    ]
    for round_ in range(5):
        round_changes = [{**change} for change in changes]
        round_changes[0] = {"description": f"described {round_}"}
        await asyncio.wait_for(
            asyncio.gather(*(types.update("report", change) for change in round_changes)), WAIT_S
        )
        final = await types.get("report")
        assert final.description == f"described {round_}"
        assert (final.timeout_s, final.max_attempts, final.is_active) == (11.0, 9, False)
        assert (final.metadata, final.parameters_schema) == ({"team": "x"}, {"type": "object"})
        await types.update("report", {"timeout_s": 1.0, "max_attempts": 1, "is_active": True, "metadata": {}})


async def test_declare_creates_then_refreshes_code_owned_fields_only(types: TypeStore) -> None:
    declared = {"description": "v1", "parameters_schema": {"type": "object"}, "executor": "worker"}
    created = await types.declare("demo.sleep", declared, {"timeout_s": 60.0, "max_attempts": 2})
    assert (created.executor, created.description, created.timeout_s, created.max_attempts) == (
        "worker",
        "v1",
        60.0,
        2,
    )
    await types.update("demo.sleep", {"timeout_s": 99.0, "max_attempts": 7})
    refreshed_schema = {"type": "object", "required": ["seconds"]}
    refreshed = await types.declare(
        "demo.sleep",
        {**declared, "description": "v2", "parameters_schema": refreshed_schema},
        {"timeout_s": 5.0, "max_attempts": 1},
    )
    assert (refreshed.id, refreshed.created_at) == (created.id, created.created_at)
    assert (refreshed.description, refreshed.parameters_schema) == ("v2", refreshed_schema)
    assert (refreshed.timeout_s, refreshed.max_attempts) == (99.0, 7)
    assert await types.get(created.id) == refreshed


async def test_concurrent_declares_make_one_type(types: TypeStore, redis: Redis) -> None:
    declared = {"description": "v1", "executor": "worker"}
    results = await asyncio.wait_for(
        asyncio.gather(*(types.declare("demo.sleep", declared, {"max_attempts": 2}) for _ in range(10))),
        WAIT_S,
    )
    assert len({t.id for t in results}) == 1
    assert await redis.hlen(keys.TYPE_NAMES) == 1
    assert [t.name for t in await types.all(include_inactive=True)] == ["demo.sleep"]


async def test_all_lists_in_id_order_and_hides_inactive_unless_asked(types: TypeStore) -> None:
    for name in ("c", "a", "b"):
        await types.create(type_fields(name))
    await types.update("a", {"is_active": False})
    assert [t.name for t in await types.all(include_inactive=True)] == ["c", "a", "b"]
    assert [t.name for t in await types.all(include_inactive=False)] == ["c", "b"]
    assert (await types.get("a")).is_active is False


async def test_types_report_live_workers(types: TypeStore, redis: Redis) -> None:
    await types.create(type_fields("report"))
    now_ms = time.time() * 1000
    await redis.zadd(keys.type_workers("report"), {"w1": now_ms + 60_000, "w2": now_ms - 60_000})
    assert (await types.get("report")).workers_online == 1
    assert [t.workers_online for t in await types.all(include_inactive=False)] == [1]
