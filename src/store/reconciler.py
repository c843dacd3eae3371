"""Finishes what no process finished. Every API and worker process runs one; each repair is an
atomic task change or plan guarded by what it read, so exactly one of them acts on a task.

Each pass: cancels whose grace ran out, tasks of workers that stopped heartbeating, deferred
jobs whose backoff is over, finished tasks past their retention, and stale arq aborts. Every
few passes it also audits a page of pending tasks: one whose arq job vanished (deleted by
something else than jobcast) gets a new one.
"""

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobcast.errors import NotFound
from jobcast.model.changes import ExpireCancel, WorkerLost
from jobcast.model.tasks import TERMINAL, TaskStatus
from jobcast.store import keys
from jobcast.store.atomic import ABSENT, Atomic, Guard, GuardFailed, Plan
from jobcast.store.tasks import TaskStore

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 0.5
ABORT_MAX_AGE_MS = 60_000
BATCH = 100
AUDIT_EVERY = 10  # passes


class Reconciler:
    """Repairs what no process finished, on every API and worker: lost workers' tasks, expired
    cancels, waited-out backoffs, finished tasks past retention."""

    def __init__(self, redis: Redis, tasks: TaskStore, *, heartbeat_ttl_s: float, retention_s: float) -> None:
        self._redis = redis
        self._tasks = tasks
        self._atomic = Atomic(redis)
        self._heartbeat_ttl_s = heartbeat_ttl_s
        self._retention_ms = int(retention_s * 1000)
        self._passes = 0
        self._audit_from = "+inf"  # rank to continue the audit below; a cursor, not state

    async def run_forever(self, interval_s: float = RECONCILE_INTERVAL_S) -> None:
        while True:
            try:
                await self.reconcile_once()
            except RedisError as error:
                log.warning("reconcile pass failed: %s", error)
            await asyncio.sleep(interval_s)

    async def reconcile_once(self) -> None:
        now_ms = int(time.time() * 1000)
        await self.expire_cancels(now_ms)
        await self.recover_lost_workers()
        await self.promote_deferred(now_ms)
        await self.expire_finished(now_ms)
        # arq only clears aborts of jobs it was running; a job that ended first leaves one behind.
        await self._redis.zremrangebyscore(keys.ARQ_ABORTS, "-inf", now_ms - ABORT_MAX_AGE_MS)
        self._passes += 1
        if self._passes % AUDIT_EVERY == 0:
            await self.audit_pending()

    async def expire_cancels(self, now_ms: int) -> None:
        for task_id in await self._due(keys.CANCEL_DEADLINES, now_ms):
            try:
                task = (await self._tasks.change(task_id, ExpireCancel())).task
            except NotFound:
                task = None
            if task is None or task.status is not TaskStatus.RUNNING or not task.cancel_requested:
                await self._redis.zrem(keys.CANCEL_DEADLINES, task_id)

    async def recover_lost_workers(self) -> None:
        """Tasks of a worker whose heartbeat expired run again (or fail, attempts spent)."""
        worker_ids = [raw.decode() for raw in await self._redis.zrange(keys.WORKERS, 0, -1)]
        if not worker_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids:
                pipe.exists(keys.worker(worker_id))
            alive = await pipe.execute()
        lost = [worker_id for worker_id, is_alive in zip(worker_ids, alive, strict=True) if not is_alive]
        if not lost or await self._redis_restarted_lately():
            return  # heartbeats may have expired while Redis was down: give workers time to return
        for worker_id in lost:
            await self._recover(worker_id)

    async def _recover(self, worker_id: str) -> None:
        claimed = await self._redis.smembers(keys.worker_tasks(worker_id))
        if claimed:
            log.warning("worker %s lost while running %d task(s): recovering them", worker_id, len(claimed))
        for raw_id in claimed:
            task_id = raw_id.decode()
            try:
                await self._tasks.change(task_id, WorkerLost(worker_id))
            except NotFound:
                await self._redis.srem(keys.worker_tasks(worker_id), task_id)
        forget = Plan(
            guards=[
                Guard("worker gone", ABSENT, ["GET", keys.worker(worker_id)]),
                Guard("no tasks claimed", "0", ["SCARD", keys.worker_tasks(worker_id)]),
            ],
            writes=[["ZREM", keys.WORKERS, worker_id]],
        )
        with contextlib.suppress(GuardFailed):  # it came back, or claimed a task: look again next pass
            await self._atomic.run(forget)

    async def _redis_restarted_lately(self) -> bool:
        info = await self._redis.info("server")
        return float(info.get("uptime_in_seconds", 0)) < self._heartbeat_ttl_s + 1

    async def promote_deferred(self, now_ms: int) -> None:
        for job_id in await self._due(keys.DEFERRED, now_ms):
            task_id = job_id.split(":", 1)[0]
            try:
                stored = await self._tasks.read(task_id)
            except NotFound:
                stored = None
            if stored is None or stored.job != job_id:  # left behind: its task moved on
                await self._redis.zrem(keys.DEFERRED, job_id)
                await self._redis.delete(keys.arq_job(job_id))
                continue
            await self._tasks.promote(stored)

    async def expire_finished(self, now_ms: int) -> None:
        for task_id in await self._due(keys.FINISHED, now_ms - self._retention_ms):
            try:
                stored = await self._tasks.read(task_id)
            except NotFound:
                await self._redis.zrem(keys.FINISHED, task_id)
                continue
            if stored.task.status in TERMINAL:
                await self._tasks.expire(stored)

    async def audit_pending(self) -> None:
        """Check the next page of pending tasks for a job that is neither queued nor deferred."""
        index = keys.task_index(TaskStatus.PENDING)
        rows = await self._redis.zrevrangebyscore(
            index, self._audit_from, "-inf", start=0, num=BATCH, withscores=True
        )
        self._audit_from = f"({int(rows[-1][1])}" if len(rows) == BATCH else "+inf"
        for raw_id, _ in rows:
            try:
                stored = await self._tasks.read(raw_id.decode())
            except NotFound:
                continue
            if (
                stored.task.status is TaskStatus.PENDING
                and stored.job
                and not await self._job_exists(stored.job)
            ):
                log.warning("task %s: its job %s vanished; issuing a new one", stored.task.id, stored.job)
                await self._tasks.reissue(stored, None)

    async def _job_exists(self, job_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.exists(keys.arq_job(job_id))
            pipe.zscore(keys.ARQ_QUEUE, job_id)
            pipe.zscore(keys.DEFERRED, job_id)
            payload, queued, deferred = await pipe.execute()
        return bool(payload) and (queued is not None or deferred is not None)

    async def _due(self, key: str, until_ms: int) -> list[str]:
        members = await self._redis.zrangebyscore(key, "-inf", until_ms, start=0, num=BATCH)
        return [member.decode() for member in members]
