"""The connections and stores one API process holds, opened and closed by the app's lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src.atomic import Atomic
from src.events.hub import Hub
from src.quotas import ConnectionSlots, SubmissionRate
from src.reconciler import RECONCILE_INTERVAL_S, Reconciler
from src.redis_policy import ensure_fit
from src.schemas import Bounds
from src.settings import Settings
from src.task_actions import TaskActions
from src.task_store import TaskStore
from src.tokens import TokenStore
from src.type_store import TypeStore
from src.writes import Limits

HUB_START_WAIT_S = 5.0
API_RETRIES = 3


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: Redis
    tasks: TaskStore
    types: TypeStore
    actions: TaskActions
    hub: Hub
    tokens: TokenStore
    connections: ConnectionSlots | None  # None with auth off: no per-principal quotas


def connect_redis(settings: Settings) -> Redis:
    """A request rides out a blip of a few hundred milliseconds; a longer outage is a 503."""
    return Redis.from_url(
        settings.redis_url_or_default(),
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=API_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def open_stores(settings: Settings, redis: Redis) -> tuple[TaskStore, TypeStore]:
    atomic = Atomic(redis)
    # A reconciler acts at its first pass after a cancel deadline: leave it time to get there.
    deadline_s = max(0.0, settings.cancel_grace_s - 2 * RECONCILE_INTERVAL_S)
    limits = Limits(
        cancel_grace_ms=int(deadline_s * 1000),
        history_max=settings.history_max,
        idempotency_ttl_s=settings.idempotency_ttl_s,
    )
    return TaskStore(redis, atomic, limits), TypeStore(redis, atomic)


def new_reconciler(settings: Settings, redis: Redis, tasks: TaskStore) -> Reconciler:
    ttl_s, retention_s = settings.heartbeat_ttl_s, settings.retention_s
    return Reconciler(redis, tasks, heartbeat_ttl_s=ttl_s, retention_s=retention_s)


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Redis, the stores, the hub and the reconciler; closed in reverse order."""
    redis = connect_redis(settings)
    await ensure_fit(redis)
    tasks, types = open_stores(settings, redis)
    hub = Hub(redis, tasks)
    connections = ConnectionSlots(redis, settings.ws_max_connections) if settings.auth else None
    rate = SubmissionRate(redis, settings.submit_rate) if settings.auth else None
    bounds = Bounds(settings.max_parameters_bytes, settings.max_parameters_depth)
    actions = TaskActions(tasks, types, bounds, rate)
    background = [
        asyncio.create_task(new_reconciler(settings, redis, tasks).run_forever(), name="reconciler")
    ]
    if connections is not None:
        background.append(asyncio.create_task(connections.refresh_forever(), name="connection-slots"))
    try:
        await hub.start(HUB_START_WAIT_S)
        yield Services(settings, redis, tasks, types, actions, hub, TokenStore(redis), connections)
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.stop()
        await redis.aclose()
