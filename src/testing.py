"""Run a handler in this very process, as `jobcast worker` would, and see what it reported.

    from jobcast.testing import run_task

    async def test_export() -> None:
        run = await run_task(export_pdf, {"copies": 3})
        assert run.task.status == "completed"
        assert [p.current for p in run.progress] == [1, 2, 3]

`run_task` starts a redis-server of its own (unless given `redis_url`), declares the handler's
type, submits one task, runs an arq worker in burst mode until the queue is empty, and returns
the task as stored with its whole history. Breakpoints in the handler stop the test itself.
"""

import tempfile
import warnings
from pathlib import Path
from typing import Any

import msgspec

from jobcast.actions.tasks import TaskActions
from jobcast.model.bounds import Bounds
from jobcast.model.principals import ANONYMOUS
from jobcast.model.submissions import TaskSubmission
from jobcast.model.tasks import Event, EventKind, Progress, Task
from jobcast.runtime.redis_server import RedisServer, find_redis_server
from jobcast.settings import Settings
from jobcast.store.connection import connect_redis
from jobcast.store.stores import open_stores
from jobcast.workers.definition import TaskDefinition
from jobcast.workers.lifecycle import build_worker, declare_types

# Every progress report is stored (none is coalesced), and a retry runs at once.
RUN_SETTINGS = Settings(auth=False, progress_hz=1e9, retry_backoff_s=0, retry_backoff_max_s=0, poll_s=0.05)


class TaskRun(msgspec.Struct, frozen=True):
    """How one task went: the record as it ended, and every event it emitted, in order."""

    task: Task
    events: list[Event]

    @property
    def progress(self) -> list[Progress]:
        """The progress the handler reported, one entry per report."""
        return [
            e.progress
            for e in self.events
            if e.event is EventKind.PROGRESS and isinstance(e.progress, Progress)
        ]


async def run_task(
    definition: TaskDefinition[Any],
    parameters: dict[str, Any] | None = None,
    *,
    redis_url: str | None = None,
    settings: Settings = RUN_SETTINGS,
) -> TaskRun:
    """Submit one task of `definition`'s type with `parameters` and run it until arq's queue is
    empty: to the task's end, retries included. With `settings` whose retry backoff is not 0, a
    retry waits outside the queue and the run returns with the task pending."""
    values = parameters or {}
    if redis_url is not None:
        return await _run(definition, values, msgspec.structs.replace(settings, redis_url=redis_url))
    with tempfile.TemporaryDirectory(prefix="jobcast-testing-") as data_dir:
        binary = find_redis_server(settings.redis_server)
        server = RedisServer(binary, Path(data_dir), appendonly=False).start()
        try:
            return await _run(definition, values, msgspec.structs.replace(settings, redis_url=server.url))
        finally:
            server.stop()


async def _run(definition: TaskDefinition[Any], parameters: dict[str, Any], settings: Settings) -> TaskRun:
    redis = connect_redis(settings)
    try:
        tasks, types = open_stores(settings, redis)
        await declare_types(types, {definition.name: definition})
        actions = TaskActions(
            tasks, types, Bounds(settings.max_parameters_bytes, settings.max_parameters_depth)
        )
        submission = TaskSubmission(type=definition.name, parameters=parameters)
        task_id = (await actions.submit(ANONYMOUS, submission, None)).task.id
        worker = build_worker(settings, {definition.name: definition}, burst=True)
        try:
            await worker.main()
        finally:
            with warnings.catch_warnings():  # arq's close calls redis-py's deprecated close()
                warnings.simplefilter("ignore", DeprecationWarning)
                await worker.close()
        return TaskRun(await tasks.get(task_id), await tasks.events(task_id))
    finally:
        await redis.aclose()
