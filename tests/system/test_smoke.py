"""The whole path once: submit over HTTP, run on a worker subprocess, watch over WebSocket."""

import httpx

from tests.conftest import ServedApp
from tests.helpers.processes import JobcastProcess
from tests.helpers.wsclient import WsClient, is_final


async def test_demo_sleep_streams_to_a_subscriber(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess
) -> None:
    response = await http.post(
        "/api/tasks", json={"type": "demo.sleep", "parameters": {"seconds": 0.2, "steps": 4}}
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await ws.send(op="subscribe", task_id=task_id)
        frames = await ws.until(is_final)
    assert frames[-1]["event"] == "task.completed"
    assert frames[-1]["result"] == {"slept": 0.2, "steps": 4}
