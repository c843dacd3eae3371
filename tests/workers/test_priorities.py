"""Priorities on a saturated worker: lower numbers start first, equal ones in submission order."""

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.processes import start_worker
from tests.helpers.runs import event_is
from tests.helpers.wsclient import WsClient, is_running

LOW, HIGH = 500, 1


async def submit_all(http: httpx.AsyncClient, priority: int, count: int) -> list[str]:
    """Submit `count` instant tasks one after the other (so their order is known); their ids."""
    body = {"type": "demo.sleep", "parameters": {"seconds": 0, "steps": 1}, "priority": priority}
    return [(await http.post("/api/tasks", json=body)).json()["id"] for _ in range(count)]


async def started_order(ws: WsClient, count: int) -> list[str]:
    """Task ids in the order their `task.started` events were published."""
    order: list[str] = []
    while len(order) < count:
        frame = await ws.recv(timeout_s=30)
        if frame.get("event") == "task.started":
            order.append(frame["task_id"])
    return order


@pytest.mark.slow
async def test_high_priority_tasks_start_before_every_queued_low_one(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    one_at_a_time = msgspec.structs.replace(settings, worker_concurrency=1)
    worker = start_worker(one_at_a_time, tmp_path / "worker.log")
    try:
        blocker: dict[str, Any] = (
            await http.post("/api/tasks", json={"type": "demo.sleep", "parameters": {"seconds": 3600}})
        ).json()
        async with await WsClient.connect(app.ws_url + "/ws") as ws:
            await ws.send(op="subscribe", task_id=blocker["id"])
            await ws.until(is_running)  # the worker is saturated from here on
            await ws.send(op="subscribe", all=True)
            await ws.until(lambda f: f.get("type") == "subscribed")
            lows = await submit_all(http, LOW, 1000)
            highs = await submit_all(http, HIGH, 50)
            promoted = lows[-1]  # now as urgent as the high ones, and submitted before them
            assert (await http.put(f"/api/tasks/{promoted}", json={"priority": HIGH})).status_code == 200
            assert (await http.post(f"/api/tasks/{blocker['id']}/cancel")).status_code == 200
            await ws.until(event_is("task.cancelled"))
            order = await started_order(ws, len(highs) + 10)
    finally:
        worker.stop()
    assert order[0] == promoted, "a re-prioritised task moves in the queue"
    assert order[1 : len(highs) + 1] == highs, "high ones before any low one, first come first"
    assert order[len(highs) + 1 :] == lows[: len(order) - len(highs) - 1], "then the low ones, first come"
