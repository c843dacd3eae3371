"""The reconciler and the queue on a real Redis: lost workers, backoffs, priorities, retention."""

import asyncio

import msgspec
import pytest
from redis.asyncio import Redis

from jobcast.errors import NotFound, StaleAttempt
from jobcast.model.changes import Finish, ReportProgress, Requeue, Start, TaskUpdate
from jobcast.model.tasks import EventKind, Progress, TaskStatus
from jobcast.settings import Settings
from jobcast.store import keys
from jobcast.store.queue import queue_score
from jobcast.store.reconciler import Reconciler
from jobcast.store.stores import open_stores
from jobcast.store.tasks import TaskStore
from tests.helpers.runs import eventually
from tests.helpers.store import add

WAIT_S = 10.0


def reconciler_for(redis: Redis, tasks: TaskStore, *, retention_s: float = 3600) -> Reconciler:
    # A negative TTL turns off the grace after a Redis start: this Redis started a moment ago.
    return Reconciler(redis, tasks, heartbeat_ttl_s=-1, retention_s=retention_s)


@pytest.fixture
def tasks(settings: Settings, redis: Redis) -> TaskStore:
    return open_stores(settings, redis)[0]


async def claimed(redis: Redis, tasks: TaskStore, worker: str, *, alive: bool, max_attempts: int = 3) -> str:
    """A task running on `worker`, which is registered and, if `alive`, heartbeating."""
    task = await add(tasks, queued=True, max_attempts=max_attempts)
    await tasks.change(task.id, Start(1, worker=worker), by_attempt=True)
    await redis.zadd(keys.WORKERS, {worker: 1})
    if alive:
        await redis.set(keys.worker(worker), "{}", px=60_000)
    return task.id


async def test_a_lost_workers_task_is_requeued_with_a_fresh_job(redis: Redis, tasks: TaskStore) -> None:
    task_id = await claimed(redis, tasks, "w-lost", alive=False)
    old_job = (await tasks.read(task_id)).job
    await asyncio.wait_for(reconciler_for(redis, tasks).reconcile_once(), WAIT_S)
    stored = await tasks.read(task_id)
    assert (stored.task.status, stored.task.worker, stored.task.attempts) == (TaskStatus.PENDING, None, 1)
    last = (await tasks.events(task_id))[-1]
    assert (last.event, last.reason) == (EventKind.RETRYING, "worker lost")
    assert stored.job != old_job
    assert await redis.zscore(keys.ARQ_QUEUE, stored.job) == queue_score(100, stored.rank)
    assert await redis.exists(keys.arq_job(old_job), keys.arq_in_progress(old_job)) == 0
    assert await redis.scard(keys.worker_tasks("w-lost")) == 0
    assert await redis.zscore(keys.WORKERS, "w-lost") is None
    with pytest.raises(StaleAttempt):  # the lost attempt, should it come back, is fenced off
        await tasks.change(task_id, Finish(1, TaskStatus.COMPLETED, result=1), by_attempt=True)


async def test_a_lost_workers_task_fails_when_its_attempts_are_spent(redis: Redis, tasks: TaskStore) -> None:
    task_id = await claimed(redis, tasks, "w-lost", alive=False, max_attempts=1)
    await asyncio.wait_for(reconciler_for(redis, tasks).reconcile_once(), WAIT_S)
    task = await tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert task.error_message is not None
    assert task.error_message.startswith("worker lost")
    assert await redis.zscore(keys.FINISHED, task_id) is not None


async def test_a_live_workers_task_is_left_alone(redis: Redis, tasks: TaskStore) -> None:
    task_id = await claimed(redis, tasks, "w-alive", alive=True)
    before = await tasks.get(task_id)
    await asyncio.wait_for(reconciler_for(redis, tasks).reconcile_once(), WAIT_S)
    assert await tasks.get(task_id) == before
    assert await redis.sismember(keys.worker_tasks("w-alive"), task_id)
    assert await redis.zscore(keys.WORKERS, "w-alive") is not None


async def test_several_reconcilers_act_once_on_a_lost_task(redis: Redis, tasks: TaskStore) -> None:
    task_id = await claimed(redis, tasks, "w-lost", alive=False)
    reconcilers = [reconciler_for(redis, tasks) for _ in range(4)]
    await asyncio.wait_for(asyncio.gather(*(r.reconcile_once() for r in reconcilers)), WAIT_S)
    events = await tasks.events(task_id)
    assert [e.event for e in events].count(EventKind.RETRYING) == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_no_worker_is_declared_lost_just_after_redis_started(redis: Redis, tasks: TaskStore) -> None:
    task_id = await claimed(redis, tasks, "w-quiet", alive=False)
    graceful = Reconciler(redis, tasks, heartbeat_ttl_s=3600, retention_s=3600)
    await asyncio.wait_for(graceful.reconcile_once(), WAIT_S)
    assert (await tasks.get(task_id)).status is TaskStatus.RUNNING


async def test_a_backoff_waits_in_the_deferred_set_then_queues_by_priority(
    redis: Redis, tasks: TaskStore
) -> None:
    task_id = await claimed(redis, tasks, "w", alive=True)
    requeue = Requeue(1, reason="error", error_message="boom", delay_s=0.2)
    stored = await tasks.change(task_id, requeue, by_attempt=True)
    assert (await tasks.events(task_id))[-1].run_after is not msgspec.UNSET
    assert await redis.zscore(keys.DEFERRED, stored.job) is not None
    assert await redis.zscore(keys.ARQ_QUEUE, stored.job) is None
    reconciler = reconciler_for(redis, tasks)

    async def promoted() -> bool:
        await reconciler.reconcile_once()
        return await redis.zscore(keys.ARQ_QUEUE, stored.job) is not None

    await eventually(promoted, True, WAIT_S)
    assert await redis.zscore(keys.DEFERRED, stored.job) is None
    assert await redis.zscore(keys.ARQ_QUEUE, stored.job) == queue_score(100, stored.rank)


async def test_queue_scores_order_by_priority_then_submission() -> None:
    assert queue_score(1, 10**9) < queue_score(2, 1) < queue_score(2, 2) < queue_score(1000, 1) < 0
    assert float(queue_score(1, 2**43 - 1)) == queue_score(1, 2**43 - 1)  # exact as a Redis score


async def test_changing_a_pending_tasks_priority_moves_its_job(redis: Redis, tasks: TaskStore) -> None:
    task = await add(tasks, queued=True)
    stored = await tasks.read(task.id)
    await tasks.change(task.id, TaskUpdate(priority=7))
    assert await redis.zscore(keys.ARQ_QUEUE, stored.job) == queue_score(7, stored.rank)


async def test_a_finished_task_expires_after_its_retention(redis: Redis, tasks: TaskStore) -> None:
    task_id = await claimed(redis, tasks, "w", alive=True)
    kept = await add(tasks, queued=True)
    await tasks.change(task_id, Finish(1, TaskStatus.COMPLETED, result=1), by_attempt=True)
    reconciler = reconciler_for(redis, tasks, retention_s=0.001)

    async def expired() -> bool:
        await reconciler.reconcile_once()
        return not await redis.exists(keys.task(task_id))

    await eventually(expired, True, WAIT_S)
    with pytest.raises(NotFound):
        await tasks.events(task_id)
    assert await redis.zscore(keys.FINISHED, task_id) is None
    for index in keys.task_indexes(TaskStatus.COMPLETED, 1, "alice"):
        assert await redis.zscore(index, task_id) is None
    assert (await tasks.get(kept.id)).status is TaskStatus.PENDING, "active tasks never expire"


async def test_a_retried_task_leaves_the_retention_set(redis: Redis, tasks: TaskStore) -> None:
    task_id = await claimed(redis, tasks, "w", alive=True)
    await tasks.change(task_id, Finish(1, TaskStatus.FAILED, error_message="x"), by_attempt=True)
    assert await redis.zscore(keys.FINISHED, task_id) is not None
    await tasks.change(task_id, TaskUpdate(status=TaskStatus.PENDING))
    assert await redis.zscore(keys.FINISHED, task_id) is None


async def test_history_keeps_the_newest_events_up_to_its_cap(redis: Redis, settings: Settings) -> None:
    tasks = open_stores(msgspec.structs.replace(settings, history_max=5), redis)[0]
    task = await add(tasks, queued=True)
    await tasks.change(task.id, Start(1, worker="w"), by_attempt=True)
    for step in range(1, 11):
        await tasks.change(task.id, ReportProgress(1, Progress(step, 10)), by_attempt=True)
    events = await tasks.events(task.id)
    record = await tasks.get(task.id)
    assert [e.seq for e in events] == list(range(record.seq - 4, record.seq + 1))
    assert events[-1].progress == Progress(10, 10)


async def test_a_reissued_job_replaces_the_old_one(redis: Redis, tasks: TaskStore) -> None:
    task = await add(tasks, queued=True)
    stored = await tasks.read(task.id)
    assert await tasks.reissue(stored, None)
    again = await tasks.read(task.id)
    assert again.job != stored.job
    assert again.task == stored.task, "a reissue is not a change of the task"
    assert await redis.zscore(keys.ARQ_QUEUE, again.job) is not None
    assert await redis.exists(keys.arq_job(stored.job)) == 0
    assert not await tasks.reissue(stored, None), "a stale reissue writes nothing"


async def test_a_pending_task_whose_job_vanished_gets_a_new_one(redis: Redis, tasks: TaskStore) -> None:
    lost = await add(tasks, queued=True)
    fine = await add(tasks, queued=True)
    old = await tasks.read(lost.id)
    await redis.delete(keys.arq_job(old.job))
    await redis.zrem(keys.ARQ_QUEUE, old.job)
    untouched = await tasks.read(fine.id)
    await asyncio.wait_for(reconciler_for(redis, tasks).audit_pending(), WAIT_S)
    renewed = await tasks.read(lost.id)
    assert renewed.job != old.job
    assert await redis.zscore(keys.ARQ_QUEUE, renewed.job) is not None
    assert await tasks.read(fine.id) == untouched
