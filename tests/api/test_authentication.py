"""Authentication on: every API route and WebSocket needs a valid token; health and the API
document do not; `jobcast api` will not run without auth unless told `--insecure`."""

import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from jobcast.model.principals import Role
from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from jobcast.store.tokens import TokenStore
from tests.conftest import ServedApp
from tests.helpers.api import assert_error
from tests.helpers.processes import environment, start_api
from tests.helpers.wsclient import WsClient


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This file's app, and the APIs it starts, require tokens."""
    return msgspec.structs.replace(settings, auth=True)


@pytest.fixture
def tokens(redis: Redis) -> TokenStore:
    return TokenStore(redis)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer jc_nope"}],
)
async def test_without_a_valid_token_the_api_answers_401(
    http: httpx.AsyncClient, redis: Redis, headers: dict[str, str]
) -> None:
    for method, path in [("GET", "/api/tasks"), ("POST", "/api/tasks"), ("GET", "/api/task-types")]:
        response = await http.request(method, path, headers=headers, json={})
        body = assert_error(response, 401, "token")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Traceback" not in str(body)
    assert not await redis.keys("jobcast:task:*"), "nothing was stored"


async def test_a_valid_token_is_let_in_and_a_revoked_one_no_more(
    http: httpx.AsyncClient, tokens: TokenStore
) -> None:
    _, token = await tokens.create("ops", Role.ADMIN, [])
    assert (await http.get("/api/tasks", headers=bearer(token))).status_code == 200
    await tokens.revoke("ops")
    assert_error(await http.get("/api/tasks", headers=bearer(token)), 401, "not valid")


async def test_health_and_the_api_document_need_no_token(http: httpx.AsyncClient) -> None:
    for path in ["/health/live", "/health/ready", "/schema/openapi.json"]:
        assert (await http.get(path)).status_code == 200, path


async def test_a_websocket_takes_the_token_from_its_header_or_its_query(
    app: ServedApp, tokens: TokenStore
) -> None:
    _, token = await tokens.create("ops", Role.ADMIN, [])
    for url, headers in [
        (app.ws_url + "/ws", bearer(token)),
        (app.ws_url + f"/ws?token={token}", {}),
    ]:
        async with await WsClient.connect(url, additional_headers=headers) as ws:
            await ws.send(op="ping")
            assert (await ws.recv())["type"] == "pong"


@pytest.mark.parametrize("query", ["", "?token=", "?token=jc_nope"])
async def test_a_websocket_without_a_valid_token_is_refused(app: ServedApp, query: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await WsClient.connect(app.ws_url + "/ws" + query)
    assert refused.value.response.status_code == 403


def test_jobcast_api_refuses_to_run_without_auth_unless_insecure(settings: Settings, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(settings, auth=False)
    refused = subprocess.run(
        [sys.executable, "-m", "jobcast", "api", "--port", str(free_port())],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1
    assert "--insecure" in refused.stderr
    insecure = start_api(settings, tmp_path / "api.log", free_port())
    try:
        assert "auth is off" in insecure.output()
    finally:
        insecure.stop()


async def test_jobcast_api_requires_tokens_by_default(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    api = start_api(settings, tmp_path / "api.log", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert_error(await http.get("/api/tasks"), 401)
    finally:
        api.stop()


async def test_revoking_a_token_closes_its_open_websockets_with_1008(
    app: ServedApp, tokens: TokenStore
) -> None:
    _, token = await tokens.create("alice", Role.SUBMITTER, [])
    _, other = await tokens.create("bob", Role.SUBMITTER, [])
    async with (
        await WsClient.connect(app.ws_url + f"/ws?token={token}") as revoked,
        await WsClient.connect(app.ws_url + f"/ws?token={other}") as kept,
    ):
        await revoked.send(op="ping")
        assert (await revoked.recv())["type"] == "pong"
        started = time.monotonic()
        await tokens.revoke("alice")
        assert await revoked.close_code(timeout_s=5) == 1008
        print(f"closed {time.monotonic() - started:.3f}s after the revocation")
        await kept.send(op="ping")
        assert (await kept.recv())["type"] == "pong"
