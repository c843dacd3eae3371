"""`jobcast worker`: an arq Worker whose one function runs every declared task type."""

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

import msgspec
from arq.connections import RedisSettings
from arq.worker import Worker, func

from src.schemas import struct_schema
from src.services import open_stores
from src.settings import Settings
from src.sweeper import SWEEP_INTERVAL_S, Sweeper
from src.task_types import Executor
from src.tasks import utc_now
from src.workers.definition import MAX_TIMEOUT_S, TaskDefinition
from src.workers.heartbeat import Heartbeat, WorkerInfo, new_worker_id
from src.workers.runner import run_task
from src.workers.state import STATE_KEY, WorkerState
from src.writes import ARQ_FUNCTION

log = logging.getLogger("jobcast.worker")

# jobcast counts attempts itself (the task's max_attempts); arq's own limit must never bite.
ARQ_MAX_TRIES = 1_000_000
# Each attempt enforces its type's timeout_s; arq's own timeout only has to be longer.
ARQ_TIMEOUT_S = MAX_TIMEOUT_S + 60


def build_worker(settings: Settings, definitions: dict[str, TaskDefinition[Any]]) -> Worker:
    """An arq Worker for these task definitions, configured from settings."""
    if not definitions:
        raise ValueError("no @task handlers found in the given modules")
    lifecycle = Lifecycle(settings, definitions)
    return Worker(
        functions=[func(run_task, name=ARQ_FUNCTION, timeout=ARQ_TIMEOUT_S, max_tries=ARQ_MAX_TRIES)],
        redis_settings=RedisSettings.from_dsn(settings.redis_url_or_default()),
        on_startup=lifecycle.startup,
        on_shutdown=lifecycle.shutdown,
        max_jobs=settings.worker_concurrency,
        poll_delay=settings.poll_s,
        keep_result=0,
        allow_abort_jobs=True,
        job_serializer=msgspec.json.encode,
        job_deserializer=msgspec.json.decode,
    )


class Lifecycle:
    """Fills the worker state in arq's ctx, declares the types, heartbeats and sweeps."""

    def __init__(self, settings: Settings, definitions: dict[str, TaskDefinition[Any]]) -> None:
        self._settings = settings
        self._definitions = definitions
        self._background: list[asyncio.Task[None]] = []
        self._heartbeat: Heartbeat | None = None

    async def startup(self, ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        tasks, types = open_stores(self._settings, redis)
        state = WorkerState(self._settings, tasks, types, self._definitions)
        ctx[STATE_KEY] = state
        for definition in self._definitions.values():
            await types.declare(definition.name, _declared(definition), _defaults(definition))
        info = self._info()
        self._heartbeat = Heartbeat(
            redis,
            info,
            lambda: sorted(state.running),
            interval_s=self._settings.heartbeat_s,
            ttl_s=self._settings.heartbeat_ttl_s,
        )
        await self._heartbeat.beat()
        sweeper = Sweeper(redis, tasks, SWEEP_INTERVAL_S)
        self._background = [
            asyncio.create_task(self._heartbeat.run_forever()),
            asyncio.create_task(sweeper.run_forever()),
        ]
        log.info("worker %s serving %s", info.id, ", ".join(info.types))

    async def shutdown(self, ctx: dict[str, Any]) -> None:
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._heartbeat is not None:
            await self._heartbeat.withdraw()  # workers_online drops at once, not after the TTL

    def _info(self) -> WorkerInfo:
        now = utc_now()
        return WorkerInfo(
            id=new_worker_id(),
            hostname=socket.gethostname(),
            pid=os.getpid(),
            types=sorted(self._definitions),
            concurrency=self._settings.worker_concurrency,
            started_at=now,
            heartbeat_at=now,
            running=[],
        )


def _declared(definition: TaskDefinition[Any]) -> dict[str, Any]:
    """The fields a worker's code owns: refreshed every time a worker starts."""
    return {
        "description": definition.description,
        "parameters_schema": struct_schema(definition.parameters_type),
        "executor": Executor.WORKER,
    }


def _defaults(definition: TaskDefinition[Any]) -> dict[str, Any]:
    """What a new type starts with; operators own these afterwards."""
    return {"timeout_s": definition.timeout_s, "max_attempts": definition.max_attempts}
