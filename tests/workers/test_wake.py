"""Workers are woken when work arrives, not at their next poll: with a 30-second poll, a
submission starts, a busy worker takes its next job and a cancel reaches the handler, each
within a few seconds."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.api import submit
from tests.helpers.processes import JobcastProcess, start_worker
from tests.helpers.wsclient import WsClient, follow, is_final, is_running, status_of

POLL_S = 30.0  # longer than any wait below: only a wake-up can explain a quick start
QUICK_S = 5.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, poll_s=POLL_S, cancel_grace_s=20.0)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[JobcastProcess]:
    """One worker running one task at a time."""
    process = start_worker(settings, tmp_path / "worker.log", "--concurrency", "1")
    yield process
    process.stop()


async def sleep_task(http: httpx.AsyncClient, **parameters: Any) -> str:
    return str((await submit(http, "demo.sleep", **parameters))["id"])


async def test_a_submission_starts_at_once(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    for _ in range(3):  # the worker's first look at the queue, at start, is long past after one
        task_id = await sleep_task(http, seconds=0, steps=1)
        frames = await follow(app.ws_url, task_id, timeout_s=QUICK_S)
        assert status_of(frames[-1]) == "completed"


async def test_a_busy_worker_takes_its_next_job_as_soon_as_one_ends(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    task_ids = [await sleep_task(http, seconds=0.2, steps=1) for _ in range(5)]
    finals = await asyncio.gather(
        *(follow(app.ws_url, task_id, timeout_s=QUICK_S * 2) for task_id in task_ids)
    )
    assert [frames[-1]["event"] for frames in finals] == ["task.completed"] * 5


async def test_a_cancel_reaches_the_running_handler_at_once(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    task_id = await sleep_task(http, seconds=600, steps=600)
    async with await WsClient.connect(app.ws_url + f"/ws/tasks/{task_id}") as ws:
        await ws.until(is_running, timeout_s=QUICK_S)
        assert (await http.post(f"/api/tasks/{task_id}/cancel")).status_code == 200
        frames = await ws.until(is_final, timeout_s=QUICK_S)
    assert frames[-1]["event"] == "task.cancelled"
    assert frames[-1]["reason"] == "cancel requested", "the handler was cancelled, not the grace run out"
