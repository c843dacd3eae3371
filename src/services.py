"""The connections and stores one API process holds, opened and closed by the app's lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from src.atomic import Atomic
from src.events.hub import Hub
from src.settings import Settings
from src.sweeper import SWEEP_INTERVAL_S, Sweeper
from src.task_actions import TaskActions
from src.task_store import TaskStore
from src.type_store import TypeStore

HUB_START_WAIT_S = 5.0


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: Redis
    tasks: TaskStore
    types: TypeStore
    actions: TaskActions
    hub: Hub


def connect_redis(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url_or_default(), health_check_interval=10)


def open_stores(settings: Settings, redis: Redis) -> tuple[TaskStore, TypeStore]:
    atomic = Atomic(redis)
    # A sweeper acts at its first pass after a cancel deadline: leave it time to get there.
    deadline_s = max(0.0, settings.cancel_grace_s - 2 * SWEEP_INTERVAL_S)
    tasks = TaskStore(
        redis, atomic, cancel_deadline_s=deadline_s, idempotency_ttl_s=settings.idempotency_ttl_s
    )
    return tasks, TypeStore(redis, atomic)


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Redis, the stores, the hub and the sweeper; closed in reverse order."""
    redis = connect_redis(settings)
    tasks, types = open_stores(settings, redis)
    hub = Hub(redis, tasks)
    sweeper = asyncio.create_task(Sweeper(redis, tasks, SWEEP_INTERVAL_S).run_forever(), name="sweeper")
    try:
        await hub.start(HUB_START_WAIT_S)
        yield Services(settings, redis, tasks, types, TaskActions(tasks, types), hub)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await hub.stop()
        await redis.aclose()
