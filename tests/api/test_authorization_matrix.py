"""Who may do what (CONTRACT.md §5), as one table: every route and WebSocket op against every
kind of caller, with the answer each must get. The table is checked against the app's own routes, so
a new route cannot be left out. A refused call stores nothing: Redis is compared byte for
byte before and after it."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
from litestar.routes import HTTPRoute, WebSocketRoute
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.callers import (
    ADMIN,
    CALLERS,
    OTHER,
    OWNER,
    STRANGER,
    TYPE,
    UNAUTHENTICATED,
    WORKER,
    Callers,
    make_callers,
    make_types,
    submit_as,
)
from tests.helpers.wsclient import WsClient

Answers = dict[str, int]


def answers(owner: int, other: int, worker: int, stranger: int, admin: int, anyone: int = 401) -> Answers:
    """The status each caller gets; `anyone` is for callers without a valid token."""
    return {
        OWNER: owner,
        OTHER: other,
        WORKER: worker,
        STRANGER: stranger,
        ADMIN: admin,
        **dict.fromkeys(UNAUTHENTICATED, anyone),
    }


EVERYONE_READS = answers(200, 200, 200, 200, 200)
OPEN = answers(200, 200, 200, 200, 200, anyone=200)
ADMIN_ONLY = answers(403, 403, 403, 403, 200)
ONE_TASK = answers(200, 404, 200, 404, 200)  # its owner, the workers of its type and admins


@dataclass(frozen=True)
class Row:
    method: str
    route: str  # as the app lists it
    answers: Answers
    target: str | None = None  # "pending" or "cancelled": a fresh task of alice's; "type": a fresh type
    body: Callable[[str], Any] | None = None  # the body, given the caller
    query: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.route}{'?' + str(self.query) if self.query else ''} {self.target or ''}"


HTTP_ROWS = [
    Row("GET", "/api/task-types", EVERYONE_READS),
    Row(
        "POST",
        "/api/task-types",
        answers(403, 403, 403, 403, 201),
        body=lambda who: {"name": f"t{CALLERS.index(who)}"},
    ),
    Row("GET", "/api/task-types/{ref:str}", EVERYONE_READS, target="type"),
    Row("PUT", "/api/task-types/{ref:str}", ADMIN_ONLY, target="type", body=lambda _: {"description": "d"}),
    Row("DELETE", "/api/task-types/{ref:str}", answers(403, 403, 403, 403, 204), target="type"),
    Row("POST", "/api/tasks", answers(201, 201, 403, 403, 201), body=lambda _: {"type": TYPE}),
    Row("GET", "/api/tasks", EVERYONE_READS, target="pending"),
    Row("GET", "/api/tasks", answers(200, 403, 403, 403, 200), query={"owner": "alice"}),
    Row("GET", "/api/tasks/{task_id:str}", ONE_TASK, target="pending"),
    Row("PUT", "/api/tasks/{task_id:str}", ONE_TASK, target="pending", body=lambda _: {"priority": 5}),
    Row(
        "PUT",
        "/api/tasks/{task_id:str}",
        answers(403, 404, 200, 404, 200),
        target="pending",
        body=lambda _: {"status": "running"},
    ),
    Row("DELETE", "/api/tasks/{task_id:str}", answers(204, 404, 403, 404, 204), target="pending"),
    Row("POST", "/api/tasks/{task_id:str}/cancel", ONE_TASK, target="pending"),
    Row("POST", "/api/tasks/{task_id:str}/retry", ONE_TASK, target="cancelled"),
    Row("GET", "/api/tasks/{task_id:str}/events", ONE_TASK, target="pending"),
    Row("GET", "/api/tasks/{task_id:str}/status", ONE_TASK, target="pending"),
    Row("GET", "/api/stats", ADMIN_ONLY),
    Row("GET", "/api/workers", ADMIN_ONLY),
    Row("GET", "/metrics", OPEN),
    Row("GET", "/", OPEN),
    Row("GET", "/dashboard/{file_path:path}", OPEN),
    Row("GET", "/health/live", OPEN),
    Row("GET", "/health/ready", OPEN),
    *[
        Row("GET", route, OPEN)
        for route in (
            "/schema",
            "/schema/openapi.json",
            "/schema/openapi.yaml",
            "/schema/openapi.yml",
            "/schema/swagger",
            "/schema/redoc",
            "/schema/elements",
            "/schema/rapidoc",
            "/schema/oauth2-redirect.html",
        )
    ],
    Row("GET", "/schema/{path:str}", answers(404, 404, 404, 404, 404, anyone=404)),
]

SUBSCRIBED, ERROR, REFUSED = "subscribed", "error", "refused"  # what a WebSocket op gets
WS_SEES_TASK = {OWNER: SUBSCRIBED, OTHER: ERROR, WORKER: SUBSCRIBED, STRANGER: ERROR, ADMIN: SUBSCRIBED}
ONLY_ADMIN_SUBSCRIBES = {**dict.fromkeys(CALLERS, ERROR), ADMIN: SUBSCRIBED}
WS_ROWS: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("/ws", {"op": "subscribe", "task_id": "<task>"}, WS_SEES_TASK),
    ("/ws", {"op": "subscribe", "type": TYPE}, {**dict.fromkeys(CALLERS, SUBSCRIBED), STRANGER: ERROR}),
    ("/ws", {"op": "subscribe", "owner": "me"}, dict.fromkeys(CALLERS, SUBSCRIBED)),
    (
        "/ws",
        {"op": "subscribe", "owner": "alice"},
        {**dict.fromkeys(CALLERS, ERROR), OWNER: SUBSCRIBED, ADMIN: SUBSCRIBED},
    ),
    ("/ws", {"op": "subscribe", "all": True}, ONLY_ADMIN_SUBSCRIBES),
    ("/ws", {"op": "unsubscribe", "type": TYPE}, dict.fromkeys(CALLERS, ERROR)),  # nothing to unsubscribe
    ("/ws", {"op": "ping"}, dict.fromkeys(CALLERS, "pong")),
    (
        "/ws/tasks/{task_id:str}",
        {},
        {**WS_SEES_TASK, OWNER: "snapshot", WORKER: "snapshot", ADMIN: "snapshot"},
    ),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, auth=True)


@pytest.fixture
async def callers(http: httpx.AsyncClient, redis: Redis) -> Callers:
    made = await make_callers(redis)
    await make_types(http, made)
    return made


def test_the_table_names_every_route_of_the_app(app: ServedApp) -> None:
    listed = {(method, route.path) for route in app.server.config.app.routes for method in _methods(route)}
    in_table = {(row.method, row.route) for row in HTTP_ROWS} | {("WS", path) for path, _, _ in WS_ROWS}
    assert listed == in_table


@pytest.mark.parametrize("row", HTTP_ROWS, ids=str)
async def test_http(row: Row, http: httpx.AsyncClient, callers: Callers, redis: Redis) -> None:
    wrong = []
    for caller in CALLERS:
        path, task_id = await _fill(row, http, callers, caller)
        before = await _dataset(redis)
        body = None if row.body is None else row.body(caller)
        response = await http.request(
            row.method, path, json=body, params=row.query, headers=callers.headers(caller)
        )
        if response.status_code != row.answers[caller]:
            wrong.append(f"{caller}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and await _dataset(redis) != before:
            wrong.append(f"{caller}: refused with {response.status_code}, yet Redis changed")
        elif row.route == "/api/tasks" and row.method == "GET" and task_id and response.status_code == 200:
            listed = task_id in {task["id"] for task in response.json()}
            if listed != (caller in (OWNER, WORKER, ADMIN)):
                wrong.append(f"{caller}: the listing {'shows' if listed else 'hides'} alice's task")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("path", "op", "expected"), WS_ROWS, ids=[f"{p} {op}" for p, op, _ in WS_ROWS])
async def test_websocket(
    path: str,
    op: dict[str, Any],
    expected: dict[str, str],
    app: ServedApp,
    http: httpx.AsyncClient,
    callers: Callers,
) -> None:
    wrong = []
    task_id = await submit_as(http, callers)
    for caller in CALLERS:
        url = app.ws_url + path.replace("{task_id:str}", task_id) + callers.query(caller)
        got = await _ws_answer(url, {k: task_id if v == "<task>" else v for k, v in op.items()})
        want = REFUSED if caller in UNAUTHENTICATED else expected[caller]
        if got != want:
            wrong.append(f"{caller}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


async def test_group_subscriptions_deliver_only_what_each_caller_may_see(
    app: ServedApp, http: httpx.AsyncClient, callers: Callers
) -> None:
    """Every caller that may subscribes to `ext` and to its own tasks; a change to alice's
    task reaches alice, the worker of `ext` and the admin, and nobody else."""
    task_id = await submit_as(http, callers)
    clients = {}
    for caller in (OWNER, OTHER, WORKER, STRANGER, ADMIN):
        ws = await WsClient.connect(app.ws_url + "/ws" + callers.query(caller))
        targets = [{"owner": "me"}] + ([] if caller == STRANGER else [{"type": TYPE}])
        for target in targets:
            await ws.send(op="subscribe", **target)
            assert (await ws.recv())["type"] == "subscribed"
        clients[caller] = ws
    change = await http.put(f"/api/tasks/{task_id}", json={"priority": 7}, headers=callers.headers(ADMIN))
    assert change.status_code == 200, change.text
    try:
        for caller, ws in clients.items():
            await ws.send(op="ping")
            frames = await ws.until(lambda frame: frame["type"] == "pong")
            events = [frame for frame in frames if frame["type"] == "event"]
            expected = 1 if caller in (OWNER, WORKER, ADMIN) else 0
            assert len(events) == expected, (caller, frames)
    finally:
        for ws in clients.values():
            await ws.close()


async def _fill(row: Row, http: httpx.AsyncClient, callers: Callers, caller: str) -> tuple[str, str | None]:
    """The row's path for this caller, with a fresh task or type where it takes one."""
    if row.target == "type":
        name = "fresh." + _unique(caller)
        created = await http.post("/api/task-types", json={"name": name}, headers=callers.headers(ADMIN))
        assert created.status_code == 201, created.text
        return row.route.replace("{ref:str}", name), None
    if row.target is None:
        return row.route.replace("{path:str}", "nothing-here").replace("{file_path:path}", "app.js"), None
    task_id = await submit_as(http, callers)
    if row.target == "cancelled":
        cancelled = await http.post(f"/api/tasks/{task_id}/cancel", headers=callers.headers(ADMIN))
        assert cancelled.status_code == 200, cancelled.text
    return row.route.replace("{task_id:str}", task_id), task_id


async def _dataset(redis: Redis) -> dict[bytes, bytes]:
    """Every key and its serialized value; rate counters aside (a refused call is still a call)."""
    return {key: await redis.dump(key) for key in await redis.keys("*") if b":submissions:" not in key}


async def _ws_answer(url: str, op: dict[str, Any]) -> str:
    """What the first answer to `op` on a new connection is: a frame type, or "refused"."""
    try:
        ws = await WsClient.connect(url)
    except InvalidStatus as refused:
        return REFUSED if refused.response.status_code == 403 else str(refused.response.status_code)
    async with ws:
        if op:
            await ws.send(**op)
            return str((await ws.recv())["type"])
        frames = await ws.until(lambda frame: frame["type"] != "subscribed")  # /ws/tasks/{id}
        if frames[-1]["type"] == "error":
            assert await ws.close_code() == 1008
        return str(frames[-1]["type"])


def _unique(caller: str) -> str:
    return f"made.by.{CALLERS.index(caller)}"


def _methods(route: Any) -> list[str]:
    if isinstance(route, WebSocketRoute):
        return ["WS"]
    assert isinstance(route, HTTPRoute)
    return sorted(set(route.methods) - {"OPTIONS", "HEAD"})
