"""/metrics, /api/stats and /api/workers: the figures match what the test did, on every API
instance alike, and /metrics parses with Prometheus' own text parser."""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from redis.asyncio import Redis

from jobcast.model.principals import Role
from jobcast.settings import Settings
from jobcast.store.tokens import TokenStore
from tests.conftest import ServedApp
from tests.helpers.api import assert_error, create_type, submit
from tests.helpers.processes import JobcastProcess
from tests.helpers.wsclient import WsClient, follow

DEMO = "demo.sleep"


async def scrape(http: httpx.AsyncClient) -> dict[str, list[Sample]]:
    """Samples by metric family name, as Prometheus reads them."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


async def run_the_scenario(app: ServedApp, http: httpx.AsyncClient) -> dict[str, Any]:
    """3 demo tasks complete, 2 fail; an external type gets 3 tasks: one cancelled, one deleted
    while pending, one left waiting."""
    await http.put(f"/api/task-types/{DEMO}", json={"max_attempts": 1})
    done = [await submit(http, DEMO, seconds=0.2, steps=2) for _ in range(3)]
    failed = [await submit(http, DEMO, seconds=0.2, steps=2, fail_at_step=1) for _ in range(2)]
    for task in done + failed:
        await follow(app.ws_url, task["id"])
    await create_type(http, "ext")
    cancelled, deleted, waiting = [await submit(http, "ext") for _ in range(3)]
    assert (await http.post(f"/api/tasks/{cancelled['id']}/cancel")).status_code == 200
    assert (await http.delete(f"/api/tasks/{deleted['id']}")).status_code == 204
    return {"done": done, "failed": failed, "waiting": waiting}


async def test_metrics_count_what_happened_and_parse_as_prometheus_text(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess, settings: Settings
) -> None:
    await run_the_scenario(app, http)
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await ws.send(op="subscribe", all=True)
        assert (await ws.recv())["type"] == "subscribed"
        await submit(http, "ext")  # one event the open client is sent
        assert (await ws.recv())["event"] == "task.created"
        metrics = await scrape(http)
        async with ServedApp(settings) as other, httpx.AsyncClient(base_url=other.http_url) as other_http:
            elsewhere = await scrape(other_http)

    assert value(metrics["jobcast_tasks_submitted"], "jobcast_tasks_submitted_total", type=DEMO) == 5
    assert value(metrics["jobcast_tasks_submitted"], "jobcast_tasks_submitted_total", type="ext") == 4
    assert value(metrics["jobcast_tasks_completed"], "jobcast_tasks_completed_total", type=DEMO) == 3
    assert value(metrics["jobcast_tasks_failed"], "jobcast_tasks_failed_total", type=DEMO) == 2
    assert value(metrics["jobcast_tasks_completed"], "jobcast_tasks_completed_total", type="ext") == 0
    assert value(metrics["jobcast_tasks_cancelled"], "jobcast_tasks_cancelled_total", type="ext") == 2
    durations = metrics["jobcast_task_duration_seconds"]
    completed = {"type": DEMO, "status": "completed"}
    assert value(durations, "jobcast_task_duration_seconds_count", **completed) == 3
    assert value(durations, "jobcast_task_duration_seconds_count", type=DEMO, status="failed") == 2
    assert 0.3 <= value(durations, "jobcast_task_duration_seconds_sum", **completed) < 30
    assert value(durations, "jobcast_task_duration_seconds_bucket", le="0.1", **completed) == 0
    assert value(durations, "jobcast_task_duration_seconds_bucket", le="+Inf", **completed) == 3
    buckets = [s.value for s in durations if s.name.endswith("_bucket") and s.labels["status"] == "completed"]
    assert buckets == sorted(buckets)
    assert value(metrics["jobcast_tasks"], "jobcast_tasks", type="ext", status="pending") == 2
    assert value(metrics["jobcast_tasks"], "jobcast_tasks", type=DEMO, status="completed") == 3
    assert value(metrics["jobcast_queue_depth"], "jobcast_queue_depth") == 2
    assert value(metrics["jobcast_workers_online"], "jobcast_workers_online") == 1
    published = metrics["jobcast_events_published"]
    assert value(published, "jobcast_events_published_total", event="task.created") == 9
    assert value(published, "jobcast_events_published_total", event="task.completed") == 3
    assert value(published, "jobcast_events_published_total", event="task.failed") == 2
    assert value(published, "jobcast_events_published_total", event="task.deleted") == 1
    (connections,) = metrics["jobcast_websocket_connections"]
    assert connections.value == 1
    assert connections.labels["process"]
    assert value(metrics["jobcast_events_delivered"], "jobcast_events_delivered_total") >= 1
    total_events = sum(s.value for s in published if s.name.endswith("_total"))
    assert value(metrics["jobcast_events_received"], "jobcast_events_received_total") == total_events
    assert (
        value(metrics["jobcast_websocket_slow_client_closes"], "jobcast_websocket_slow_client_closes_total")
        == 0
    )

    for name in ["jobcast_tasks_submitted", "jobcast_tasks_completed", "jobcast_task_duration_seconds"]:
        assert elsewhere[name] == metrics[name], name  # counted in Redis: every instance agrees
    assert value(elsewhere["jobcast_websocket_connections"], "jobcast_websocket_connections") == 0


async def test_stats_and_workers(app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess) -> None:
    scenario = await run_the_scenario(app, http)
    stats = (await http.get("/api/stats")).json()
    assert stats["tasks"] == {"pending": 1, "running": 0, "completed": 3, "failed": 2, "cancelled": 1}
    assert stats["types"][DEMO] | {"tasks": None} == {
        "tasks": None, "submitted": 5, "completed": 3, "failed": 2, "cancelled": 0,
    }  # fmt: skip
    assert stats["types"]["ext"]["cancelled"] == 2
    assert stats["queue_depth"] == 1
    assert stats["workers_online"] == 1
    minutes = stats["throughput"]
    assert len(minutes) == 15
    assert [m["minute"] for m in minutes] == sorted(m["minute"] for m in minutes)
    assert sum(m["submitted"] for m in minutes) == 8
    assert sum(m["completed"] for m in minutes) == 3
    assert sum(m["failed"] for m in minutes) == 2
    (durations,) = [d for d in stats["durations"] if d["type"] == DEMO and d["status"] == "completed"]
    assert durations["count"] == 3
    assert 0.1 <= durations["mean_s"] < 10

    assert scenario["waiting"]["status"] == "pending"

    long = await submit(http, DEMO, seconds=60, steps=60)
    async with asyncio.timeout(10):  # the worker lists what it runs at its next heartbeat
        while (listed := (await http.get("/api/workers")).json())[0]["running"] != [long["id"]]:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    (worker_info,) = listed
    assert worker_info["types"] == [DEMO]
    assert worker_info["concurrency"] >= 1
    assert worker_info["id"].startswith(f"{worker_info['hostname']}:{worker_info['pid']}:")
    assert worker_info["heartbeat_at"].endswith(("Z", "+00:00"))


async def test_metrics_are_open_and_stats_and_workers_are_for_admins_when_auth_is_on(
    settings: Settings, redis: Redis
) -> None:
    tokens = TokenStore(redis)
    _, admin = await tokens.create("ops", Role.ADMIN, [])
    _, submitter = await tokens.create("alice", Role.SUBMITTER, [])
    secured = msgspec.structs.replace(settings, auth=True)
    async with ServedApp(secured) as app, httpx.AsyncClient(base_url=app.http_url) as http:
        assert (await http.get("/metrics")).status_code == 200
        for path in ["/api/stats", "/api/workers"]:
            assert_error(await http.get(path), 401)
            assert_error(
                await http.get(path, headers={"Authorization": f"Bearer {submitter}"}), 403, "admins"
            )
            assert (await http.get(path, headers={"Authorization": f"Bearer {admin}"})).status_code == 200
        for path in ["/", "/dashboard/app.js", "/dashboard/style.css"]:
            assert (await http.get(path)).status_code == 200, path


def test_the_dashboards_files_ship_with_the_package() -> None:
    from jobcast.routes.dashboard import ASSETS

    names = {path.name for path in Path(ASSETS).iterdir()}
    assert {"index.html", "app.js", "style.css"} <= names
