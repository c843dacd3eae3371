"""API and worker as separate `jobcast` processes, the client in this one."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from tests.helpers.processes import JobcastProcess, start_api
from tests.helpers.wsclient import WsClient, follow, is_running, status_of


@pytest.fixture
def api_port() -> int:
    return free_port()


@pytest.fixture
def api_process(settings: Settings, tmp_path: Path, api_port: int) -> Iterator[JobcastProcess]:
    process = start_api(settings, tmp_path / "api.log", api_port)
    yield process
    process.stop()


async def test_task_runs_across_three_processes(
    settings: Settings, tmp_path: Path, api_port: int, api_process: JobcastProcess, worker: JobcastProcess
) -> None:
    base = f"127.0.0.1:{api_port}"
    async with httpx.AsyncClient(base_url=f"http://{base}", timeout=10) as http:
        body = {"type": "demo.sleep", "parameters": {"seconds": 0.5, "steps": 5}}
        response = await http.post("/api/tasks", json=body)
        assert response.status_code == 202
        task_id = response.json()["id"]
        frames = await follow(f"ws://{base}", task_id)
        stored = (await http.get(f"/api/tasks/{task_id}/events")).json()
    assert status_of(frames[-1]) == "completed"
    snapshot_seq = frames[1]["task"]["seq"]
    assert [f["seq"] for f in frames[2:]] == [e["seq"] for e in stored[snapshot_seq:]]


async def test_resubscribing_after_an_api_restart_ends_in_the_right_state(
    settings: Settings, tmp_path: Path, api_port: int, worker: JobcastProcess
) -> None:
    base = f"127.0.0.1:{api_port}"
    api = start_api(settings, tmp_path / "api.log", api_port)
    try:
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=10) as http:
            body = {"type": "demo.sleep", "parameters": {"seconds": 3, "steps": 30}}
            task_id = (await http.post("/api/tasks", json=body)).json()["id"]
        ws = await WsClient.connect(f"ws://{base}/ws")
        await ws.send(op="subscribe", task_id=task_id)
        frames = await ws.until(lambda f: is_running(f) and f.get("seq", 0) >= 4)
        last_seq = max(f.get("seq", f.get("task", {}).get("seq", 0)) for f in frames)
        api.kill()
        assert await ws.close_code() is not None  # the client saw the connection drop
    finally:
        api.stop()
    api = start_api(settings, tmp_path / "api-again.log", api_port)
    try:
        frames = await follow(f"ws://{base}", task_id, since=last_seq)
    finally:
        api.stop()
    assert status_of(frames[-1]) == "completed"
    resumed = [f for f in frames if f["type"] in ("snapshot", "event")]
    assert resumed, "a resubscribing client gets the state it missed"
    first_seq = resumed[0]["task"]["seq"] if resumed[0]["type"] == "snapshot" else resumed[0]["seq"]
    assert first_seq > last_seq
