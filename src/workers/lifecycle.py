"""`jobcast worker`: an arq Worker whose one function runs every declared task type."""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import msgspec
from arq.worker import func

from jobcast.model.parameters import struct_schema
from jobcast.model.task_types import Executor
from jobcast.model.tasks import utc_now
from jobcast.settings import Settings
from jobcast.store.connection import ensure_fit, redis_settings
from jobcast.store.queue import ARQ_FUNCTION, Prefetched
from jobcast.store.stores import new_reconciler, open_stores
from jobcast.store.task_types import TypeStore
from jobcast.store.workers import WorkerInfo
from jobcast.workers.arq_worker import JobcastWorker, listen_for_wakes
from jobcast.workers.blocking import BlockingPool
from jobcast.workers.definition import MAX_TIMEOUT_S, TaskDefinition
from jobcast.workers.heartbeat import Heartbeat, new_worker_id
from jobcast.workers.runner import run_task
from jobcast.workers.state import STATE_KEY, WorkerState

log = logging.getLogger("jobcast.worker")

# jobcast counts attempts itself (the task's max_attempts); arq's own limit must never bite.
ARQ_MAX_TRIES = 1_000_000
# Each attempt enforces its type's timeout_s; arq's own timeout only has to be longer.
ARQ_TIMEOUT_S = MAX_TIMEOUT_S + 60


def build_worker(
    settings: Settings, definitions: dict[str, TaskDefinition[Any]], *, burst: bool = False
) -> JobcastWorker:
    """An arq Worker for these task definitions, configured from settings. A `burst` worker runs
    in its caller's process (no signal handlers of its own) and returns once the queue is empty."""
    if not definitions:
        raise ValueError("no @task handlers found in the given modules")
    prefetched: Prefetched = {}  # the worker's claims fill it, its jobs empty it
    lifecycle = Lifecycle(settings, definitions, prefetched)
    worker = JobcastWorker(
        functions=[func(run_task, name=ARQ_FUNCTION, timeout=ARQ_TIMEOUT_S, max_tries=ARQ_MAX_TRIES)],
        redis_settings=redis_settings(settings),
        on_startup=lifecycle.startup,
        on_shutdown=lifecycle.shutdown,
        max_jobs=settings.worker_concurrency,
        poll_s=settings.poll_s,
        prefetched=prefetched,
        keep_result=0,
        allow_abort_jobs=True,
        job_serializer=msgspec.json.encode,
        job_deserializer=msgspec.json.decode,
        job_completion_wait=settings.shutdown_grace_s,
        burst=burst,
        handle_signals=not burst,
    )
    # arq marks a job in progress for its longest timeout (a week here); the heartbeat keeps the
    # mark alive instead, so a killed worker's jobs are free again one heartbeat TTL later.
    worker.in_progress_timeout_s = settings.heartbeat_ttl_s
    if settings.log_level.upper() != "DEBUG":
        # arq writes a line as each job starts and another as it ends: jobcast's own events say
        # as much, and formatting them is a visible share of a busy worker (bench/NOTES.md).
        logging.getLogger("arq.worker").setLevel(logging.WARNING)
    lifecycle.held_jobs = lambda: list(worker.tasks)
    lifecycle.wake = worker.wake
    return worker


class Lifecycle:
    """Fills the worker state in arq's ctx, declares the types, heartbeats and reconciles."""

    def __init__(
        self, settings: Settings, definitions: dict[str, TaskDefinition[Any]], prefetched: Prefetched
    ) -> None:
        self._settings = settings
        self._definitions = definitions
        self._worker_id = new_worker_id()
        self._blocking = BlockingPool(settings.worker_concurrency)
        self._background: list[asyncio.Task[None]] = []
        self._heartbeat: Heartbeat | None = None
        self.held_jobs: Callable[[], list[str]] = list
        self.wake = asyncio.Event()
        self._prefetched = prefetched

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
            prefetched=self._prefetched,
        )
        ctx[STATE_KEY] = state
        await declare_types(types, self._definitions)
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


async def declare_types(types: TypeStore, definitions: dict[str, TaskDefinition[Any]]) -> None:
    """Create each definition's task type, or refresh the fields its code owns."""
    for definition in definitions.values():
        await types.declare(definition.name, _declared(definition), _defaults(definition))


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
