"""Redis restarts and misconfiguration: workers, the hub and the API carry on, and say the truth."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from jobcast.runtime.network import free_port
from jobcast.runtime.redis_server import RedisServer
from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.api import assert_error, history, submit
from tests.helpers.processes import JobcastProcess, start_api, start_worker
from tests.helpers.runs import eventually, watch
from tests.helpers.wsclient import WsClient, is_final, is_running

SLEEP = {"type": "demo.sleep", "parameters": {"seconds": 0.1}}


async def ready_status(http: httpx.AsyncClient) -> int:
    return (await http.get("/health/ready")).status_code


async def test_a_redis_restart_loses_no_task_and_no_client(
    app: ServedApp, http: httpx.AsyncClient, redis_server: RedisServer, worker: JobcastProcess
) -> None:
    task = await submit(http, "demo.sleep", seconds=4, steps=8)
    async with await watch(app, task["id"]) as ws:
        await ws.until(is_running)
        await asyncio.to_thread(redis_server.stop)

        for _ in range(3):  # each waits out the API's short reconnect budget: a real outage
            refused = await http.post("/api/tasks", json=SLEEP)
            assert_error(refused, 503, "unavailable")
            assert refused.headers["Retry-After"].isdigit()
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["detail"] == "Redis is not reachable", "the error itself goes to the log only"

        await asyncio.to_thread(redis_server.start)
        frames = await ws.until(is_final, timeout_s=60)
    assert frames[-1]["event"] == "task.completed"
    assert any(f["type"] == "snapshot" for f in frames), "the hub resubscribed and sent a fresh snapshot"
    events = await history(http, task["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert worker.alive()
    await eventually(lambda: ready_status(http), 200, 30)
    after = await submit(http, "demo.sleep", seconds=0.1, steps=1)
    async with await watch(app, after["id"]) as ws:
        assert (await ws.until(is_final))[-1]["event"] == "task.completed"


async def test_a_submission_during_an_outage_is_never_stored_half_way(
    app: ServedApp, http: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    await asyncio.to_thread(redis_server.stop)
    for _ in range(5):
        assert_error(await http.post("/api/tasks", json=SLEEP), 503)
    await asyncio.to_thread(redis_server.start)
    await eventually(lambda: ready_status(http), 200, 30)
    listed = await http.get("/api/tasks")
    assert listed.status_code == 200
    assert listed.json() == []


@pytest.fixture
async def evicting_redis(redis_binary: str, tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path / "evicting", appendonly=True).start()
    client = Redis.from_url(server.url)
    await client.config_set("maxmemory-policy", "allkeys-lru")
    await client.aclose()
    yield server
    server.stop()


async def test_an_evicting_redis_fails_readiness_with_a_clear_message(
    app: ServedApp, http: httpx.AsyncClient, redis: Redis
) -> None:
    await eventually(lambda: ready_status(http), 200, 10)
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    ready = await http.get("/health/ready")
    assert ready.status_code == 503
    assert "maxmemory-policy is 'allkeys-lru'" in ready.json()["detail"]
    assert "noeviction" in ready.json()["detail"]
    await redis.config_set("maxmemory-policy", "noeviction")
    assert await ready_status(http) == 200


async def test_api_and_worker_refuse_to_start_on_an_evicting_redis(
    evicting_redis: RedisServer, tmp_path: Path
) -> None:
    evicting = Settings(redis_url=evicting_redis.url)
    with pytest.raises(RuntimeError, match="maxmemory-policy"):
        start_api(evicting, tmp_path / "api.log", free_port())
    with pytest.raises(RuntimeError, match="maxmemory-policy"):
        start_worker(evicting, tmp_path / "worker.log")


async def test_group_subscribers_hear_that_events_may_be_missing_after_a_lost_subscription(
    app: ServedApp, redis: Redis
) -> None:
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await ws.send(op="subscribe", all=True)
        assert (await ws.recv())["type"] == "subscribed"
        await redis.client_kill_filter(_type="pubsub")  # the hub's subscription drops
        frame = await ws.recv()
    assert (frame["type"], frame["code"]) == ("error", "events_missed")
    assert "reload" in frame["detail"]
