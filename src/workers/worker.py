"""`jobcast worker`: an arq Worker whose one function runs every declared task type."""

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import msgspec
from arq.connections import RedisSettings
from arq.worker import func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src.redis_policy import ensure_fit
from src.schemas import struct_schema
from src.services import new_reconciler, open_stores
from src.settings import Settings
from src.task_types import Executor
from src.tasks import utc_now
from src.workers.arq_worker import JobcastWorker, listen_for_wakes
from src.workers.blocking import BlockingPool
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
RECONNECT_MAX_S = 2.0


def build_worker(settings: Settings, definitions: dict[str, TaskDefinition[Any]]) -> JobcastWorker:
    """An arq Worker for these task definitions, configured from settings."""
    if not definitions:
        raise ValueError("no @task handlers found in the given modules")
    lifecycle = Lifecycle(settings, definitions)
    worker = JobcastWorker(
        functions=[func(run_task, name=ARQ_FUNCTION, timeout=ARQ_TIMEOUT_S, max_tries=ARQ_MAX_TRIES)],
        redis_settings=redis_settings(settings),
        on_startup=lifecycle.startup,
        on_shutdown=lifecycle.shutdown,
        max_jobs=settings.worker_concurrency,
        poll_s=settings.poll_s,
        keep_result=0,
        allow_abort_jobs=True,
        job_serializer=msgspec.json.encode,
        job_deserializer=msgspec.json.decode,
        job_completion_wait=settings.shutdown_grace_s,
    )
    # arq marks a job in progress for its longest timeout (a week here); the heartbeat keeps the
    # mark alive instead, so a killed worker's jobs are free again one heartbeat TTL later.
    worker.in_progress_timeout_s = settings.heartbeat_ttl_s
    if settings.log_level.upper() != "DEBUG":
        # arq writes a line as each job starts and another as it ends: jobcast's own events say
        # as much, and formatting them took a tenth of a busy worker's time.
        logging.getLogger("arq.worker").setLevel(logging.WARNING)
    lifecycle.held_jobs = lambda: list(worker.tasks)
    lifecycle.wake = worker.wake
    lifecycle.prefetched = worker.prefetched
    return worker


def redis_settings(settings: Settings) -> RedisSettings:
    """Every command waits out a Redis restart or blip, reconnecting with backoff: a worker
    outlives its Redis, and its writes land once Redis is back."""
    return dataclasses.replace(
        RedisSettings.from_dsn(settings.redis_url_or_default()),
        conn_retries=0,
        retry=Retry(ExponentialBackoff(cap=RECONNECT_MAX_S, base=0.05), retries=-1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
    )


class Lifecycle:
    """Fills the worker state in arq's ctx, declares the types, heartbeats and reconciles."""

    def __init__(self, settings: Settings, definitions: dict[str, TaskDefinition[Any]]) -> None:
        self._settings = settings
        self._definitions = definitions
        self._worker_id = new_worker_id()
        self._blocking = BlockingPool(settings.worker_concurrency)
        self._background: list[asyncio.Task[None]] = []
        self._heartbeat: Heartbeat | None = None
        self.held_jobs: Callable[[], list[str]] = list
        self.wake = asyncio.Event()
        self.prefetched: dict[str, list[Any]] = {}

    async def startup(self, ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        await ensure_fit(redis)
        tasks, types = open_stores(self._settings, redis)
        state = WorkerState(
            self._settings,
            tasks,
            types,
            self._definitions,
            self._worker_id,
            self._blocking,
            prefetched=self.prefetched,
        )
        ctx[STATE_KEY] = state
        for definition in self._definitions.values():
            await types.declare(definition.name, _declared(definition), _defaults(definition))
        info = self._info()
        self._heartbeat = Heartbeat(
            self._settings.redis_url_or_default(),
            info,
            lambda: sorted(state.running),
            self.held_jobs,
            interval_s=self._settings.heartbeat_s,
            ttl_s=self._settings.heartbeat_ttl_s,
        )
        await asyncio.to_thread(self._heartbeat.beat)  # registered before the first job
        self._heartbeat.start()
        reconciler = new_reconciler(self._settings, redis, tasks)
        self._background = [
            asyncio.create_task(reconciler.run_forever(), name="reconciler"),
            asyncio.create_task(listen_for_wakes(redis, self.wake), name="wakes"),
        ]
        log.info("worker %s serving %s", info.id, ", ".join(info.types))

    async def shutdown(self, ctx: dict[str, Any]) -> None:
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._heartbeat is not None:
            await asyncio.to_thread(self._heartbeat.stop)
        self._blocking.close()

    def _info(self) -> WorkerInfo:
        now = utc_now()
        return WorkerInfo(
            id=self._worker_id,
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
