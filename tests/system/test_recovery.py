"""Workers that die, stop, block or meet foreign jobs: the task still ends, once, on a live worker."""

import asyncio
import json
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import pytest
from redis.asyncio import Redis

from jobcast.settings import Settings
from jobcast.store import keys
from tests.conftest import ServedApp
from tests.helpers.api import history, read_task, submit, utc_time
from tests.helpers.processes import JobcastProcess
from tests.helpers.runs import (
    EXAMPLE_TASKS,
    Workers,
    event_frames,
    event_is,
    eventually,
    watch,
    worker_pid,
)
from tests.helpers.wsclient import is_final, is_running


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(settings, tmp_path)
    yield group
    group.stop_all()


@pytest.fixture
def example_worker(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    """One worker serving tests/example_tasks.py."""
    group = Workers(settings, tmp_path, "--tasks", EXAMPLE_TASKS)
    group.start()
    yield group
    group.stop_all()


async def running_task(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    task = await read_task(http, task_id)
    assert task["status"] == "running", task
    assert task["worker"], task
    return task


async def test_a_killed_workers_task_runs_again_on_another_within_recovery_time(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, workers: Workers
) -> None:
    workers.start(2)
    task = await submit(http, "demo.sleep", seconds=3600, steps=3600)  # far longer than any wait
    async with await watch(app, task["id"]) as ws:
        await ws.until(is_running)
        first = await running_task(http, task["id"])
        workers.running(first).kill()
        killed_at = time.monotonic()
        frames = await ws.until(event_is("task.started", attempt=2), timeout_s=settings.recovery_s)
        print(f"kill to rerun: {time.monotonic() - killed_at:.2f}s")
    retrying = next(f for f in frames if f.get("event") == "task.retrying")
    assert (retrying["reason"], retrying["status"]) == ("worker lost", "pending")
    assert "worker lost" in retrying["error_message"]
    second = await running_task(http, task["id"])
    assert second["attempts"] == 2
    assert worker_pid(second) != worker_pid(first)
    assert workers.running(second).alive()


async def test_a_killed_workers_task_fails_when_its_attempts_are_spent(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, workers: Workers
) -> None:
    workers.start(2)
    await http.put("/api/task-types/demo.sleep", json={"max_attempts": 1})
    task = await submit(http, "demo.sleep", seconds=3600, steps=3600)
    async with await watch(app, task["id"]) as ws:
        await ws.until(is_running)
        workers.running(await running_task(http, task["id"])).kill()
        frames = await ws.until(is_final, timeout_s=settings.recovery_s)
    assert frames[-1]["event"] == "task.failed"
    assert frames[-1]["error_message"].startswith("worker lost")
    failed = await read_task(http, task["id"])
    assert (failed["status"], failed["attempts"], failed["worker"]) == ("failed", 1, None)


async def test_a_lost_workers_entries_are_cleared_once_its_tasks_are_recovered(
    app: ServedApp, http: httpx.AsyncClient, redis: Redis, settings: Settings, workers: Workers
) -> None:
    workers.start(2)
    task = await submit(http, "demo.sleep", seconds=3600, steps=3600)
    async with await watch(app, task["id"]) as ws:
        await ws.until(is_running)
        first = await running_task(http, task["id"])
        workers.running(first).kill()
        await ws.until(event_is("task.started", attempt=2), timeout_s=settings.recovery_s)
    lost = first["worker"]
    await eventually(lambda: redis.zscore(keys.WORKERS, lost), None, settings.recovery_s)
    assert await redis.exists(keys.worker_tasks(lost)) == 0


@pytest.mark.slow
async def test_a_handler_blocking_its_loop_past_the_heartbeat_ttl_never_runs_twice(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    assert settings.heartbeat_ttl_s == 5
    group = Workers(settings, tmp_path, "--tasks", EXAMPLE_TASKS)
    group.start(2)
    try:
        task = await submit(http, "test.hog", seconds=30)
        async with await watch(app, task["id"]) as ws:
            await ws.until(is_final, timeout_s=60)
    finally:
        group.stop_all()
    events = await history(http, task["id"])
    assert [e["event"] for e in events] == ["task.created", "task.started", "task.completed"]
    done = await read_task(http, task["id"])
    assert (done["attempts"], done["result"]) == (1, worker_pid(events[1]))


async def test_a_blocking_handler_runs_in_a_child_process_and_reports_progress(
    app: ServedApp, http: httpx.AsyncClient, redis: Redis, settings: Settings, example_worker: Workers
) -> None:
    task = await submit(http, "test.crunch", seconds=2 * settings.heartbeat_ttl_s, steps=20)
    async with await watch(app, task["id"]) as ws:
        frames = await ws.until(is_final, timeout_s=60)
    worker_id = (await history(http, task["id"]))[1]["worker"]
    beats = await redis.get(keys.worker(worker_id))
    events = event_frames(frames)
    assert events[-1]["event"] == "task.completed"
    assert events[-1]["result"]["pid"] != example_worker.processes[0].pid
    assert [e["progress"]["current"] for e in events if e["event"] == "task.progress"][-1] == 20
    assert beats is not None, "the worker kept heartbeating while its handler blocked"
    assert [e["event"] for e in events].count("task.started") <= 1


async def test_a_blocking_handler_that_raises_fails_with_its_error(
    app: ServedApp, http: httpx.AsyncClient, example_worker: Workers
) -> None:
    task = await submit(http, "test.crunch", seconds=0.1, steps=2, fail=True)
    async with await watch(app, task["id"]) as ws:
        frames = await ws.until(is_final)
    assert frames[-1]["event"] == "task.failed"
    assert frames[-1]["error_message"] == "ValueError: crunch refused"
    assert "crunch refused" in (await history(http, task["id"]))[-1]["traceback"]


async def test_a_cancelled_blocking_handler_is_stopped_within_the_grace(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, example_worker: Workers
) -> None:
    worker = psutil.Process(example_worker.processes[0].pid)
    task = await submit(http, "test.crunch", seconds=600, steps=600)
    async with await watch(app, task["id"]) as ws:
        await ws.until(event_is("task.progress"), timeout_s=30)
        children = [c for c in worker.children() if "spawn_main" in " ".join(c.cmdline())]
        assert children, "the handler runs in a child of the worker"
        assert (await http.post(f"/api/tasks/{task['id']}/cancel")).status_code == 200
        frames = await ws.until(is_final, timeout_s=settings.cancel_grace_s)
    assert frames[-1]["event"] == "task.cancelled"
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive or all(c.status() == psutil.STATUS_ZOMBIE for c in alive)


async def test_sigterm_lets_a_running_task_finish_within_the_grace(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    workers = Workers(msgspec.structs.replace(settings, shutdown_grace_s=8), tmp_path)
    workers.start()
    try:
        task = await submit(http, "demo.sleep", seconds=2, steps=4)
        async with await watch(app, task["id"]) as ws:
            await ws.until(is_running)
            stopping = asyncio.create_task(asyncio.to_thread(workers.processes[0].stop))
            frames = await ws.until(is_final)
            assert await stopping == 0
    finally:
        workers.stop_all()
    assert frames[-1]["event"] == "task.completed"
    assert frames[-1]["attempt"] == 1


async def test_sigterm_hands_tasks_still_running_after_the_grace_to_another_worker_at_once(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    quick = msgspec.structs.replace(settings, shutdown_grace_s=1)
    group = Workers(quick, tmp_path)
    group.start(2)
    try:
        task = await submit(http, "demo.sleep", seconds=3600, steps=3600)
        async with await watch(app, task["id"]) as ws:
            await ws.until(is_running)
            first = await running_task(http, task["id"])
            assert group.running(first).stop() == 0
            frames = await ws.until(event_is("task.started", attempt=2), timeout_s=10)
        second = await read_task(http, task["id"])
    finally:
        group.stop_all()
    retrying = next(f for f in frames if f.get("event") == "task.retrying")
    assert retrying["reason"] == "worker stopped"
    handover_s = (utc_time(frames[-1]["at"]) - utc_time(retrying["at"])).total_seconds()
    print(f"handover after SIGTERM: {handover_s:.2f}s")
    assert handover_s <= 2
    assert second["max_attempts"] == first["max_attempts"] + 1, "a stopped attempt is not charged"


class RunsCode:
    """A pickle that, if a worker ever unpickled it, would create a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


async def test_foreign_and_malformed_jobs_run_no_code_and_do_not_stop_the_worker(
    app: ServedApp, http: httpx.AsyncClient, redis: Redis, worker: JobcastProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = {"t": 1, "f": "jobcast.run", "et": int(time.time() * 1000)}
    foreign = {
        "pickled": pickle.dumps({**payload, "a": (RunsCode(marker),), "k": {}}),
        "not-json": b"\x80\x04garbage",
        "other-function": json.dumps({**payload, "f": "os.system", "a": [f"touch {marker}"], "k": {}}),
        "wrong-arguments": json.dumps({**payload, "a": [1, 2], "k": {"x": 1}}),
        "unknown-task": json.dumps({**payload, "a": ["no-such-task"], "k": {}}),
    }
    for job_id, body in foreign.items():
        await redis.set(keys.arq_job(job_id), body)
        await redis.zadd(keys.ARQ_QUEUE, {job_id: 1})
    task = await submit(http, "demo.sleep", seconds=0.1, steps=1)
    async with await watch(app, task["id"]) as ws:
        frames = await ws.until(is_final)
    assert frames[-1]["event"] == "task.completed"
    await eventually(lambda: redis.zcard(keys.ARQ_QUEUE), 0, 10)
    assert not marker.exists()
    assert worker.alive()
    log = worker.output()
    assert "refused" in log
    assert "deserializ" in log
