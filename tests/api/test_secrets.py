"""Errors that tell the caller what to fix and an attacker nothing: handler tracebacks reach
admins only, tokens never reach a log line, and `jobcast dev` will not listen beyond loopback."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from jobcast.auth.log_redaction import redact
from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.callers import ADMIN, BAD, OWNER, Callers, make_callers
from tests.helpers.processes import JobcastProcess, environment, start_api
from tests.helpers.wsclient import Frame, WsClient


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, auth=True)


@pytest.fixture
async def callers(redis: Redis) -> Callers:
    return await make_callers(redis)


async def failed_event(ws: WsClient) -> Frame:
    frames = await ws.until(lambda frame: frame.get("event") == "task.failed", timeout_s=30)
    return frames[-1]


async def test_a_handler_traceback_reaches_admins_only(
    app: ServedApp, http: httpx.AsyncClient, callers: Callers, worker: JobcastProcess
) -> None:
    admin, owner = callers.headers(ADMIN), callers.headers(OWNER)
    assert (await http.put("/api/task-types/demo.sleep", json={"max_attempts": 1}, headers=admin)).is_success
    async with (
        await WsClient.connect(app.ws_url + "/ws" + callers.query(OWNER)) as owner_ws,
        await WsClient.connect(app.ws_url + "/ws" + callers.query(ADMIN)) as admin_ws,
    ):
        for ws, target in [(owner_ws, {"owner": "me"}), (admin_ws, {"all": True})]:
            await ws.send(op="subscribe", **target)
            assert (await ws.recv())["type"] == "subscribed"
        parameters: dict[str, Any] = {"seconds": 0.2, "steps": 2, "fail_at_step": 2}
        submitted = await http.post(
            "/api/tasks", json={"type": "demo.sleep", "parameters": parameters}, headers=owner
        )
        assert submitted.status_code == 202, submitted.text
        seen_by_owner, seen_by_admin = await failed_event(owner_ws), await failed_event(admin_ws)
    assert "failed at step 2" in seen_by_owner["error_message"]
    assert "traceback" not in seen_by_owner
    assert "Traceback (most recent call last)" in seen_by_admin["traceback"]
    events_url = f"/api/tasks/{submitted.json()['id']}/events"
    owner_history = (await http.get(events_url, headers=owner)).json()
    admin_history = (await http.get(events_url, headers=admin)).json()
    assert not any("traceback" in event for event in owner_history)
    assert "Traceback" in admin_history[-1]["traceback"]
    assert {k: v for k, v in admin_history[-1].items() if k != "traceback"} == owner_history[-1]


async def test_no_token_reaches_a_log_line(settings: Settings, callers: Callers, tmp_path: Path) -> None:
    """A debug-level API sees tokens in headers, in WebSocket queries, valid and not: its log
    shows none of them."""
    port = free_port()
    log_path = tmp_path / "api.log"
    api = start_api(msgspec.structs.replace(settings, log_level="DEBUG"), log_path, port)
    try:
        base = f"127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=10) as http:
            assert (await http.get("/api/tasks", headers=callers.headers(OWNER))).status_code == 200
            assert (await http.get("/api/tasks" + callers.query(OWNER))).status_code == 401
            assert (await http.get("/api/tasks", headers=callers.headers(BAD))).status_code == 401
        async with await WsClient.connect(f"ws://{base}/ws" + callers.query(OWNER)) as ws:
            await ws.send(op="ping")
            assert (await ws.recv())["type"] == "pong"
        with pytest.raises(InvalidStatus):
            await WsClient.connect(f"ws://{base}/ws" + callers.query(BAD))
    finally:
        api.stop()
    log = log_path.read_text()
    assert "/ws?token=[redacted]" in log, "the WebSocket requests were logged, masked"
    for caller in (OWNER, BAD):
        assert callers.tokens[caller] not in log
        assert callers.tokens[caller][3:20] not in log


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_jobcast_dev_will_not_listen_beyond_loopback(settings: Settings, host: str, tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "jobcast", "dev", "--host", host, "--port", str(free_port())],
        env=environment(settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1
    assert "auth is off" in refused.stdout
    assert "jobcast api" in refused.stdout
    assert not (tmp_path / ".jobcast").exists(), "nothing was started"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (
            '"WebSocket /ws?token=jc_abc-DEF_123&since=3" [accepted]',
            '"WebSocket /ws?token=[redacted]&since=3" [accepted]',
        ),
        ("< authorization: Bearer anything.at.all", "< authorization: Bearer [redacted]"),
        ("refused jc_abcdef0123 for alice", "refused jc_[redacted] for alice"),
        (
            '"GET /api/tasks?limit=3&status=running HTTP/1.1" 200',
            '"GET /api/tasks?limit=3&status=running HTTP/1.1" 200',
        ),
    ],
)
def test_secrets_are_masked_and_the_rest_of_the_line_kept(line: str, masked: str) -> None:
    assert redact(line) == masked
