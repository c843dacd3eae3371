"""Finishes what no process finished: cancel requests past their grace, stale arq aborts.

Any number of API and worker processes run one each; the atomic task change makes sure
exactly one of them acts on a given task.
"""

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from src import keys
from src.errors import NotFound
from src.task_store import TaskStore
from src.tasks import TaskStatus
from src.transitions import ExpireCancel

log = logging.getLogger(__name__)

ABORT_MAX_AGE_MS = 60_000
SWEEP_INTERVAL_S = 0.5
BATCH = 100


class Sweeper:
    def __init__(self, redis: Redis, tasks: TaskStore, interval_s: float) -> None:
        self._redis = redis
        self._tasks = tasks
        self._interval_s = interval_s

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except RedisError as error:
                log.warning("sweep failed: %s", error)
            await asyncio.sleep(self._interval_s)

    async def sweep_once(self) -> None:
        now_ms = int(time.time() * 1000)
        due = await self._redis.zrangebyscore(keys.CANCEL_DEADLINES, "-inf", now_ms, start=0, num=BATCH)
        for raw_id in due:
            await self._expire_cancel(raw_id.decode())
        # arq only clears aborts of jobs it was running; a job that ended first leaves one behind.
        await self._redis.zremrangebyscore(keys.ARQ_ABORTS, "-inf", now_ms - ABORT_MAX_AGE_MS)

    async def _expire_cancel(self, task_id: str) -> None:
        try:
            task = (await self._tasks.change(task_id, ExpireCancel())).task
        except NotFound:
            task = None
        if task is None or task.status is not TaskStatus.RUNNING or not task.cancel_requested:
            await self._redis.zrem(keys.CANCEL_DEADLINES, task_id)
