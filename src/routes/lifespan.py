"""The connections and stores one API process holds, opened and closed by the app's lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from jobcast.actions.tasks import TaskActions
from jobcast.events.hub import Hub
from jobcast.model.bounds import Bounds
from jobcast.settings import Settings
from jobcast.store.connection import connect_redis, ensure_fit
from jobcast.store.quotas import ConnectionSlots, SubmissionRate
from jobcast.store.stores import new_reconciler, open_stores
from jobcast.store.task_types import TypeStore
from jobcast.store.tasks import TaskStore
from jobcast.store.tokens import TokenStore

HUB_START_WAIT_S = 5.0


@dataclass(frozen=True)
class Services:
    """What the API's handlers are given: the settings, the stores, the actions and the hub."""

    settings: Settings
    redis: Redis
    tasks: TaskStore
    types: TypeStore
    actions: TaskActions
    hub: Hub
    tokens: TokenStore
    connections: ConnectionSlots | None  # None with auth off: no per-principal quotas


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Redis, the stores, the hub and the reconciler; closed in reverse order."""
    redis = connect_redis(settings)
    await ensure_fit(redis)
    tasks, types = open_stores(settings, redis)
    tokens = TokenStore(redis)
    hub = Hub(redis, tasks, tokens if settings.auth else None)
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
        yield Services(settings, redis, tasks, types, actions, hub, tokens, connections)
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.stop()
        await redis.aclose()
