"""/api/tasks over real HTTP against a served app and a real Redis (CONTRACT.md §0, §2, §6)."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.api import assert_error, create_type, history, read_task, utc_time
from tests.helpers.wsclient import WsClient

TASK_FIELDS = {
    "id",
    "type",
    "task_type_id",
    "status",
    "parameters",
    "priority",
    "metadata",
    "owner",
    "progress",
    "result",
    "error_message",
    "attempts",
    "max_attempts",
    "cancel_requested",
    "worker",
    "seq",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "status_url",
    "events_url",
}
REPORT_SCHEMA = {
    "type": "object",
    "required": ["title", "rows"],
    "properties": {
        "title": {"type": "string"},
        "rows": {"type": "array", "items": {"type": "integer"}},
    },
    "additionalProperties": False,
}
LINK_NEXT = re.compile(r'^<([^>]+)>; rel="next"$')
BIG_BODY_BYTES = 1_100_000  # just over the default JOBCAST_MAX_BODY_BYTES of 1 MiB


# --- helpers --------------------------------------------------------------------------------------


async def post_task(
    http: httpx.AsyncClient, type_name: str | None = "ext", key: str | None = None, **fields: Any
) -> httpx.Response:
    body = {"parameters": {}, **fields}
    if type_name is not None:
        body["type"] = type_name
    headers = {} if key is None else {"Idempotency-Key": key}
    return await http.post("/api/tasks", json=body, headers=headers)


async def new_task(http: httpx.AsyncClient, type_name: str = "ext", **fields: Any) -> dict[str, Any]:
    """Submit a task of an external type (201) and return it."""
    response = await post_task(http, type_name, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def put(http: httpx.AsyncClient, task_id: str, **fields: Any) -> httpx.Response:
    return await http.put(f"/api/tasks/{task_id}", json=fields)


async def change(http: httpx.AsyncClient, task: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """PUT a legal change; it must succeed and bump `seq` by exactly one."""
    response = await put(http, task["id"], **fields)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["seq"] == task["seq"] + 1
    return body


async def post_action(http: httpx.AsyncClient, task_id: str, action: str) -> httpx.Response:
    return await http.post(f"/api/tasks/{task_id}/{action}")


async def task_in(http: httpx.AsyncClient, status: str) -> dict[str, Any]:
    """A fresh external task driven over HTTP into `status`."""
    task = await new_task(http)
    if status == "running":
        task = await change(http, task, status="running")
    elif status in {"completed", "failed", "cancelled"}:
        task = await change(http, await change(http, task, status="running"), status=status)
    assert task["status"] == status
    return task


async def listed(http: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await http.get("/api/tasks", params=params)
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()]


async def celery(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/tasks/{task_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["task_id"] == task_id
    return body


def next_link(response: httpx.Response) -> str | None:
    """The target of the `Link: <...>; rel="next"` header, if there is one."""
    link = response.headers.get("Link")
    if link is None:
        return None
    match = LINK_NEXT.match(link)
    assert match, link
    return match.group(1)


# --- submit ---------------------------------------------------------------------------------------


async def test_submit_external_type_is_201_with_every_field(http: httpx.AsyncClient) -> None:
    task_type = await create_type(http, "ext", max_attempts=4)
    response = await post_task(http, "ext", parameters={"a": 1})
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    task = response.json()
    assert set(task) >= TASK_FIELDS
    assert isinstance(task["id"], str)
    assert task["type"] == "ext"
    assert task["task_type_id"] == task_type["id"]
    assert task["status"] == "pending"
    assert task["parameters"] == {"a": 1}
    assert task["priority"] == 100
    assert task["metadata"] == {}
    assert isinstance(task["owner"], str)
    assert task["progress"] is None
    assert task["result"] is None
    assert task["error_message"] is None
    assert task["attempts"] == 0
    assert task["max_attempts"] == 4
    assert task["cancel_requested"] is False
    assert task["seq"] == 1
    assert utc_time(task["created_at"]) <= utc_time(task["updated_at"])
    assert task["started_at"] is None
    assert task["completed_at"] is None
    assert await read_task(http, task["id"]) == task


async def test_submit_worker_type_is_202_and_queued(http: httpx.AsyncClient) -> None:
    await create_type(http, "queued", executor="worker")
    response = await post_task(http, "queued", parameters={"n": 1}, priority=5, metadata={"who": "me"})
    assert response.status_code == 202, response.text
    task = response.json()
    assert set(task) >= TASK_FIELDS
    assert (task["status"], task["priority"], task["metadata"]) == ("pending", 5, {"who": "me"})
    assert await read_task(http, task["id"]) == task


async def test_submit_location_and_urls_lead_to_the_task(http: httpx.AsyncClient) -> None:
    await create_type(http)
    response = await post_task(http)
    task = response.json()
    assert (await http.get(response.headers["Location"])).json() == task
    assert (await http.get(task["status_url"])).json()["task_id"] == task["id"]
    assert [e["seq"] for e in (await http.get(task["events_url"])).json()] == [1]


async def test_task_ids_are_opaque_random_and_not_sequential(http: httpx.AsyncClient) -> None:
    await create_type(http)
    ids = [(await new_task(http))["id"] for _ in range(20)]
    assert len(set(ids)) == 20
    for task_id in ids:
        assert not task_id.isdigit()
        assert re.fullmatch(r"[A-Za-z0-9_-]{11,}", task_id), task_id  # >= 64 bits in base64url
    assert ids != sorted(ids)
    assert ids != sorted(ids, reverse=True)


async def test_submit_by_task_type_id_or_both_agreeing(http: httpx.AsyncClient) -> None:
    task_type = await create_type(http)
    by_id = await post_task(http, None, task_type_id=task_type["id"])
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["type"] == "ext"
    both = await post_task(http, "ext", task_type_id=task_type["id"])
    assert both.status_code == 201, both.text
    assert both.json()["task_type_id"] == task_type["id"]


async def test_submit_unknown_type_is_404(http: httpx.AsyncClient) -> None:
    await create_type(http)
    assert_error(await post_task(http, "no.such.type"), 404, "not found")
    assert_error(await post_task(http, None, task_type_id=999), 404, "not found")
    assert await listed(http) == []


async def test_submit_inactive_type_is_400_not_active(http: httpx.AsyncClient) -> None:
    await create_type(http, "retired")
    assert (await http.delete("/api/task-types/retired")).status_code == 204
    assert_error(await post_task(http, "retired"), 400, "not active")
    assert await listed(http) == []


async def test_submit_type_and_task_type_id_naming_different_types_is_400(http: httpx.AsyncClient) -> None:
    await create_type(http, "first")
    second = await create_type(http, "second")
    assert_error(await post_task(http, "first", task_type_id=second["id"]), 400)
    assert await listed(http) == []


async def test_submit_naming_no_type_is_400(http: httpx.AsyncClient) -> None:
    await create_type(http)
    assert_error(await post_task(http, None), 400)


async def test_parameters_failing_the_schema_are_422_with_every_failure(http: httpx.AsyncClient) -> None:
    await create_type(http, "report", parameters_schema=REPORT_SCHEMA)
    response = await post_task(http, "report", parameters={"rows": [1, 2, 3, "four", 5], "colour": "red"})
    body = assert_error(response, 422)
    failures = body["extra"]
    assert {failure["path"] for failure in failures} == {
        "/parameters/title",
        "/parameters/rows/3",
        "/parameters/colour",
    }
    for failure in failures:
        assert isinstance(failure["message"], str)
        assert failure["message"]
    assert await listed(http) == []


async def test_parameters_matching_the_schema_are_accepted(http: httpx.AsyncClient) -> None:
    await create_type(http, "report", parameters_schema=REPORT_SCHEMA)
    task = await new_task(http, "report", parameters={"title": "Q3", "rows": [1, 2]})
    assert task["parameters"] == {"title": "Q3", "rows": [1, 2]}


async def test_submit_unknown_field_is_400(http: httpx.AsyncClient) -> None:
    await create_type(http)
    assert_error(await post_task(http, owner="someone-else"), 400)
    assert_error(await post_task(http, status="completed"), 400)
    assert await listed(http) == []


@pytest.mark.parametrize("priority", [0, -1, 1001])
async def test_priority_out_of_range_is_400(http: httpx.AsyncClient, priority: int) -> None:
    await create_type(http)
    assert_error(await post_task(http, priority=priority), 400)


async def test_priority_bounds_are_accepted(http: httpx.AsyncClient) -> None:
    await create_type(http)
    assert (await new_task(http, priority=1))["priority"] == 1
    assert (await new_task(http, priority=1000))["priority"] == 1000


@pytest.mark.parametrize(
    "fields",
    [
        {"priority": "high"},
        {"priority": 1.5},
        {"parameters": ["not", "an", "object"]},
        {"metadata": "text"},
        {"type": 12},
        {"task_type_id": "one"},
    ],
)
async def test_field_of_the_wrong_json_type_is_400(http: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    await create_type(http)
    assert_error(await http.post("/api/tasks", json={"type": "ext", "parameters": {}, **fields}), 400)


async def test_body_that_is_not_a_json_object_is_400(http: httpx.AsyncClient) -> None:
    await create_type(http)
    assert_error(await http.post("/api/tasks", json=[{"type": "ext"}]), 400)
    bad_json = await http.post(
        "/api/tasks", content=b'{"type": "ext",', headers={"Content-Type": "application/json"}
    )
    assert_error(bad_json, 400)


# --- idempotency ----------------------------------------------------------------------------------


async def test_repeat_with_the_same_idempotency_key_returns_the_first_task(http: httpx.AsyncClient) -> None:
    await create_type(http)
    first = await post_task(http, key="order-17", parameters={"n": 1})
    assert first.status_code == 201, first.text
    repeat = await post_task(http, key="order-17", parameters={"n": 1})
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == first.json()
    assert repeat.headers["Location"] == first.headers["Location"]
    assert await listed(http) == [first.json()["id"]]


async def test_idempotent_repeat_of_a_worker_type_is_200_too(http: httpx.AsyncClient) -> None:
    await create_type(http, "queued", executor="worker")
    first = await post_task(http, "queued", key="k")
    assert first.status_code == 202, first.text
    repeat = await post_task(http, "queued", key="k")
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["id"] == first.json()["id"]
    assert len(await listed(http)) == 1


async def test_a_different_idempotency_key_creates_a_new_task(http: httpx.AsyncClient) -> None:
    await create_type(http)
    first = await post_task(http, key="a")
    second = await post_task(http, key="b")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert len(await listed(http)) == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_empty_or_oversized_idempotency_key_is_400(http: httpx.AsyncClient, key: str) -> None:
    await create_type(http)
    assert_error(await post_task(http, key=key), 400)
    assert await listed(http) == []


# --- list -----------------------------------------------------------------------------------------


async def test_list_is_newest_first(http: httpx.AsyncClient) -> None:
    await create_type(http)
    ids = [(await new_task(http))["id"] for _ in range(4)]
    response = await http.get("/api/tasks")
    assert response.status_code == 200
    assert [task["id"] for task in response.json()] == ids[::-1]
    assert "Link" not in response.headers


async def test_list_filters_by_one_status_or_several(http: httpx.AsyncClient) -> None:
    await create_type(http)
    pending = await task_in(http, "pending")
    running = await task_in(http, "running")
    completed = await task_in(http, "completed")
    failed = await task_in(http, "failed")
    assert await listed(http, status="pending") == [pending["id"]]
    assert await listed(http, status="running") == [running["id"]]
    assert await listed(http, status="running,completed") == [completed["id"], running["id"]]
    assert await listed(http, status="failed,pending") == [failed["id"], pending["id"]]
    assert await listed(http, status="cancelled") == []


async def test_list_filters_by_type_name_and_type_id(http: httpx.AsyncClient) -> None:
    first = await create_type(http, "first")
    second = await create_type(http, "second")
    a1 = await new_task(http, "first")
    b1 = await new_task(http, "second")
    a2 = await new_task(http, "first")
    assert await listed(http, type="first") == [a2["id"], a1["id"]]
    assert await listed(http, type="second") == [b1["id"]]
    assert await listed(http, task_type_id=first["id"]) == [a2["id"], a1["id"]]
    assert await listed(http, task_type_id=second["id"]) == [b1["id"]]
    assert await listed(http, type="first", status="pending") == [a2["id"], a1["id"]]


async def test_list_filters_by_owner(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    assert await listed(http, owner=task["owner"]) == [task["id"]]
    assert await listed(http, owner="somebody-else") == []


async def test_list_with_a_bad_status_is_400(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/tasks", params={"status": "done"}), 400)
    assert_error(await http.get("/api/tasks", params={"status": "pending,nope"}), 400)


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten"])
async def test_list_limit_outside_1_to_1000_is_400(http: httpx.AsyncClient, limit: str) -> None:
    assert_error(await http.get("/api/tasks", params={"limit": limit}), 400)


async def test_list_limit_bounds_are_accepted(http: httpx.AsyncClient) -> None:
    await create_type(http)
    ids = [(await new_task(http))["id"] for _ in range(2)]
    assert await listed(http, limit=1000) == ids[::-1]
    assert await listed(http, limit=1) == [ids[1]]


async def test_paging_follows_link_headers_through_every_task_once(http: httpx.AsyncClient) -> None:
    await create_type(http)
    ids = [(await new_task(http))["id"] for _ in range(7)]
    pages: list[list[str]] = []
    url: str | None = "/api/tasks?limit=3"
    while url is not None:
        assert len(pages) < 5, "the Link header never ends"
        response = await http.get(url)
        assert response.status_code == 200, response.text
        pages.append([task["id"] for task in response.json()])
        url = next_link(response)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [task_id for page in pages for task_id in page] == ids[::-1]


async def test_no_next_link_when_the_last_page_is_exactly_full(http: httpx.AsyncClient) -> None:
    await create_type(http)
    for _ in range(6):
        await new_task(http)
    first = await http.get("/api/tasks", params={"limit": 3})
    link = next_link(first)
    assert link is not None
    second = await http.get(link)
    assert len(second.json()) == 3
    assert next_link(second) is None


async def test_paging_keeps_the_filters(http: httpx.AsyncClient) -> None:
    await create_type(http)
    wanted = []
    for index in range(5):
        task = await new_task(http)
        if index % 2 == 0:
            wanted.append(task["id"])
        else:
            await change(http, task, status="running")
    first = await http.get("/api/tasks", params={"status": "pending", "limit": 2})
    link = next_link(first)
    assert link is not None
    second = await http.get(link)
    assert next_link(second) is None
    seen = [t["id"] for t in first.json() + second.json()]
    assert seen == wanted[::-1]


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "", "²", "٣", "9" * 20, "1" * 4301])
async def test_malformed_cursor_is_400(http: httpx.AsyncClient, cursor: str) -> None:
    assert_error(await http.get("/api/tasks", params={"cursor": cursor}), 400)


@pytest.mark.parametrize("name", ["task_type_id", "limit"])
async def test_a_number_of_thousands_of_digits_in_the_query_is_400(
    http: httpx.AsyncClient, name: str
) -> None:
    assert_error(await http.get("/api/tasks", params={name: "1" * 4301}), 400)


# --- read and update ------------------------------------------------------------------------------


async def test_get_unknown_task_is_404_not_found(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/tasks/no-such-task"), 404, "not found")


async def test_put_unknown_task_is_404(http: httpx.AsyncClient) -> None:
    assert_error(await put(http, "no-such-task", status="running"), 404, "not found")


async def test_pending_to_running_sets_started_at_and_attempts(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    running = await change(http, task, status="running")
    assert running["status"] == "running"
    assert running["attempts"] == 1
    assert utc_time(running["started_at"]) >= utc_time(task["created_at"])
    assert running["completed_at"] is None
    assert await read_task(http, task["id"]) == running


async def test_running_to_completed_sets_completed_at_and_result(http: httpx.AsyncClient) -> None:
    await create_type(http)
    running = await task_in(http, "running")
    done = await change(http, running, status="completed", result={"rows": 3, "ok": True})
    assert done["status"] == "completed"
    assert done["result"] == {"rows": 3, "ok": True}
    assert done["started_at"] == running["started_at"]
    assert utc_time(done["completed_at"]) >= utc_time(running["started_at"])
    assert await read_task(http, done["id"]) == done


async def test_running_to_failed_keeps_the_error_message(http: httpx.AsyncClient) -> None:
    await create_type(http)
    running = await task_in(http, "running")
    failed = await change(http, running, status="failed", error_message="disk full")
    assert (failed["status"], failed["error_message"]) == ("failed", "disk full")
    assert failed["completed_at"] is not None


async def test_pending_to_completed_sets_started_at_too(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    done = await change(http, task, status="completed", result=[1, 2])
    assert done["status"] == "completed"
    assert done["result"] == [1, 2]
    assert done["started_at"] is not None
    assert done["completed_at"] is not None
    assert utc_time(done["started_at"]) <= utc_time(done["completed_at"])


async def test_pending_to_cancelled_by_put(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    cancelled = await change(http, task, status="cancelled")
    assert cancelled["status"] == "cancelled"
    assert cancelled["completed_at"] is not None


@pytest.mark.parametrize("finished", ["failed", "cancelled"])
async def test_put_pending_retries_a_finished_task(http: httpx.AsyncClient, finished: str) -> None:
    await create_type(http)
    task = await task_in(http, finished)
    again = await change(http, task, status="pending")
    assert again["id"] == task["id"]
    assert again["status"] == "pending"
    assert again["completed_at"] is None
    assert (await history(http, task["id"]))[-1]["event"] == "task.retrying"
    rerun = await change(http, again, status="running")
    assert rerun["attempts"] == 2


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("completed", "running"),
        ("completed", "pending"),
        ("completed", "failed"),
        ("completed", "completed"),
        ("failed", "running"),
        ("failed", "completed"),
        ("cancelled", "running"),
        ("cancelled", "cancelled"),
        ("running", "pending"),
        ("running", "running"),
        ("pending", "pending"),
    ],
)
async def test_illegal_status_move_is_409_and_changes_nothing(
    http: httpx.AsyncClient, start: str, target: str
) -> None:
    await create_type(http)
    task = await task_in(http, start)
    assert_error(await put(http, task["id"], status=target), 409)
    assert await read_task(http, task["id"]) == task


async def test_second_claim_of_a_running_task_is_409(http: httpx.AsyncClient) -> None:
    """Two external workers claiming one task by PUT status=running: only the first may win."""
    await create_type(http)
    task = await new_task(http)
    first, second = await asyncio.gather(
        put(http, task["id"], status="running"), put(http, task["id"], status="running")
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    assert (await read_task(http, task["id"]))["attempts"] == 1


async def test_put_progress_reports_percent(http: httpx.AsyncClient) -> None:
    await create_type(http)
    running = await task_in(http, "running")
    updated = await change(http, running, progress={"current": 3, "total": 4, "message": "three"})
    assert updated["progress"] == {"current": 3, "total": 4, "percent": 75.0, "message": "three"}
    assert updated["status"] == "running"


async def test_put_progress_beyond_total_is_400(http: httpx.AsyncClient) -> None:
    await create_type(http)
    running = await task_in(http, "running")
    assert_error(await put(http, running["id"], progress={"current": 5, "total": 4}), 400)
    assert await read_task(http, running["id"]) == running


@pytest.mark.parametrize(
    "fields",
    [{"owner": "someone"}, {"attempts": 9}, {"seq": 99}, {"progress": {"current": 1, "extra": 2}}],
)
async def test_put_unknown_field_is_400(http: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    await create_type(http)
    running = await task_in(http, "running")
    assert_error(await put(http, running["id"], **fields), 400)
    assert await read_task(http, running["id"]) == running


@pytest.mark.parametrize("fields", [{"status": "done"}, {"priority": 0}, {"priority": 1001}, {"metadata": 3}])
async def test_put_field_of_the_wrong_shape_is_400(http: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    await create_type(http)
    task = await new_task(http)
    assert_error(await put(http, task["id"], **fields), 400)
    assert await read_task(http, task["id"]) == task


async def test_put_priority_and_metadata_of_a_pending_task(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http, metadata={"a": 1})
    task = await change(http, task, priority=7)
    task = await change(http, task, metadata={"b": 2})
    assert (task["status"], task["priority"], task["metadata"]) == ("pending", 7, {"b": 2})
    assert [e["event"] for e in await history(http, task["id"])] == [
        "task.created",
        "task.updated",
        "task.updated",
    ]


# --- events ---------------------------------------------------------------------------------------


async def test_every_change_bumps_seq_by_one_and_events_hold_the_whole_history(
    http: httpx.AsyncClient,
) -> None:
    await create_type(http)
    task = await new_task(http)
    steps: list[dict[str, Any]] = [
        {"priority": 50},
        {"status": "running"},
        {"progress": {"current": 1, "total": 3}},
        {"progress": {"current": 2, "total": 3}},
        {"status": "failed", "error_message": "boom"},
        {"status": "pending"},
        {"status": "running"},
        {"status": "completed", "result": "ok"},
    ]
    for fields in steps:
        task = await change(http, task, **fields)
    events = await history(http, task["id"])
    assert [e["seq"] for e in events] == list(range(1, len(steps) + 2))
    assert events[-1]["seq"] == task["seq"] == len(steps) + 1
    assert [e["event"] for e in events] == [
        "task.created",
        "task.updated",
        "task.started",
        "task.progress",
        "task.progress",
        "task.failed",
        "task.retrying",
        "task.started",
        "task.completed",
    ]
    assert {e["task_id"] for e in events} == {task["id"]}
    assert [e["status"] for e in events][-1] == "completed"
    assert events[-1]["result"] == "ok"
    assert events[5]["error_message"] == "boom"
    assert events[4]["progress"]["current"] == 2
    for event in events:
        utc_time(event["at"])
        assert isinstance(event["attempt"], int)


async def test_events_of_unknown_task_is_404(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/tasks/no-such-task/events"), 404, "not found")


# --- delete ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "running", "completed"])
async def test_delete_is_204_and_every_later_read_is_404(http: httpx.AsyncClient, status: str) -> None:
    await create_type(http)
    task = await task_in(http, status)
    other = await new_task(http)
    response = await http.delete(f"/api/tasks/{task['id']}")
    assert response.status_code == 204
    for path in ("", "/events", "/status"):
        assert_error(await http.get(f"/api/tasks/{task['id']}{path}"), 404, "not found")
    assert await listed(http) == [other["id"]]


async def test_delete_unknown_task_is_404(http: httpx.AsyncClient) -> None:
    assert_error(await http.delete("/api/tasks/no-such-task"), 404, "not found")


# --- cancel ---------------------------------------------------------------------------------------


async def test_cancel_pending_task_is_cancelled_at_once(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    response = await post_action(http, task["id"], "cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["seq"] == task["seq"] + 1
    assert cancelled["completed_at"] is not None
    assert (await history(http, task["id"]))[-1]["event"] == "task.cancelled"
    assert await read_task(http, task["id"]) == cancelled


@pytest.mark.parametrize("finished", ["completed", "failed", "cancelled"])
async def test_cancel_finished_task_is_409(http: httpx.AsyncClient, finished: str) -> None:
    await create_type(http)
    task = await task_in(http, finished)
    assert_error(await post_action(http, task["id"], "cancel"), 409)
    assert await read_task(http, task["id"]) == task


async def test_cancel_unknown_task_is_404(http: httpx.AsyncClient) -> None:
    assert_error(await post_action(http, "no-such-task", "cancel"), 404, "not found")


async def cancel_and_wait(
    app: ServedApp, http: httpx.AsyncClient, task_id: str
) -> tuple[dict[str, Any], float]:
    """POST cancel on a running task, check it is only asked to stop, and wait (over WebSocket)
    for `task.cancelled`; return the cancel response and the seconds waited."""
    async with await WsClient.connect(app.ws_url + "/ws") as ws:
        await ws.send(op="subscribe", task_id=task_id)
        await ws.until(lambda frame: frame.get("type") == "snapshot")
        asked_at = time.monotonic()
        response = await post_action(http, task_id, "cancel")
        assert response.status_code == 200, response.text
        frames = await ws.until(lambda frame: frame.get("event") == "task.cancelled")
        waited_s = time.monotonic() - asked_at
    assert frames[-1]["status"] == "cancelled"
    asked: dict[str, Any] = response.json()
    return asked, waited_s


async def test_cancel_running_task_asks_it_to_stop_then_cancels_it(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings
) -> None:
    await create_type(http)
    running = await task_in(http, "running")
    asked, waited_s = await cancel_and_wait(app, http, running["id"])
    assert (asked["status"], asked["cancel_requested"], asked["seq"]) == ("running", True, running["seq"] + 1)
    assert waited_s <= settings.cancel_grace_s + 1.5, waited_s  # loose: wall clock on a busy machine
    cancelled = await read_task(http, running["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["completed_at"] is not None
    events = await history(http, running["id"])
    assert [e["seq"] for e in events] == list(range(1, cancelled["seq"] + 1))
    assert events[-1]["event"] == "task.cancelled"


async def test_later_writes_from_the_cancelled_attempt_are_409(
    app: ServedApp, http: httpx.AsyncClient
) -> None:
    await create_type(http)
    running = await task_in(http, "running")
    await cancel_and_wait(app, http, running["id"])
    cancelled = await read_task(http, running["id"])
    assert_error(await put(http, running["id"], status="completed", result="late"), 409)
    assert_error(await put(http, running["id"], status="failed", error_message="late"), 409)
    assert_error(await put(http, running["id"], progress={"current": 1, "total": 2}), 409)
    assert_error(await put(http, running["id"], result="late"), 409)
    assert await read_task(http, running["id"]) == cancelled


async def test_cancelled_lands_within_the_grace_of_the_cancel_request(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings
) -> None:
    """Measured on the server's own event times, so client latency does not count."""
    await create_type(http)
    running = await task_in(http, "running")
    await cancel_and_wait(app, http, running["id"])
    events = await history(http, running["id"])
    asked = next(e for e in events if e.get("cancel_requested") is True)
    cancelled = events[-1]
    assert cancelled["event"] == "task.cancelled"
    grace = timedelta(seconds=settings.cancel_grace_s)
    assert utc_time(cancelled["at"]) - utc_time(asked["at"]) <= grace


# --- retry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("finished", ["failed", "cancelled"])
async def test_retry_finished_task_goes_back_to_pending(http: httpx.AsyncClient, finished: str) -> None:
    await create_type(http)
    task = await task_in(http, finished)
    response = await post_action(http, task["id"], "retry")
    assert response.status_code == 200, response.text
    retried = response.json()
    assert (retried["id"], retried["status"]) == (task["id"], "pending")
    assert retried["seq"] == task["seq"] + 1
    assert retried["completed_at"] is None
    assert retried["error_message"] is None
    last = (await history(http, task["id"]))[-1]
    assert (last["event"], last["seq"], last["status"]) == ("task.retrying", retried["seq"], "pending")


@pytest.mark.parametrize("status", ["pending", "running", "completed"])
async def test_retry_of_a_task_that_did_not_fail_is_409(http: httpx.AsyncClient, status: str) -> None:
    await create_type(http)
    task = await task_in(http, status)
    assert_error(await post_action(http, task["id"], "retry"), 409)
    assert await read_task(http, task["id"]) == task


# --- Celery-style status --------------------------------------------------------------------------


async def test_celery_status_pending(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    view = await celery(http, task["id"])
    assert (view["status"], view["ready"]) == ("PENDING", False)
    assert "progress" not in view


async def test_celery_status_started_before_progress(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await task_in(http, "running")
    view = await celery(http, task["id"])
    assert (view["status"], view["ready"]) == ("STARTED", False)
    assert "progress" not in view


async def test_celery_status_progress_once_reported(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await task_in(http, "running")
    await change(http, task, progress={"current": 1, "total": 4})
    view = await celery(http, task["id"])
    assert (view["status"], view["ready"]) == ("PROGRESS", False)
    assert view["progress"] == {"current": 1, "total": 4, "percent": 25.0}


async def test_celery_status_success_carries_the_result(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await task_in(http, "running")
    await change(http, task, status="completed", result={"answer": 42})
    view = await celery(http, task["id"])
    assert (view["status"], view["ready"], view["result"]) == ("SUCCESS", True, {"answer": 42})


async def test_celery_status_failure(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await task_in(http, "running")
    await change(http, task, status="failed", error_message="boom")
    view = await celery(http, task["id"])
    assert (view["status"], view["ready"]) == ("FAILURE", True)


async def test_celery_status_revoked(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    assert (await post_action(http, task["id"], "cancel")).status_code == 200
    view = await celery(http, task["id"])
    assert (view["status"], view["ready"]) == ("REVOKED", True)


# --- the app as a whole ---------------------------------------------------------------------------


async def test_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    await create_type(http)
    padding = "x" * BIG_BODY_BYTES
    response = await http.post("/api/tasks", json={"type": "ext", "parameters": {"padding": padding}})
    assert_error(response, 413)
    assert await listed(http) == []


async def test_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    """No Content-Length to go by: the limit must hold while the body streams in."""
    await create_type(http)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "ext", "parameters": {"padding": "'
        for _ in range(BIG_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536
        yield b'"}}'

    response = await http.post("/api/tasks", content=chunks(), headers={"Content-Type": "application/json"})
    assert "Content-Length" not in response.request.headers
    assert_error(response, 413)
    assert await listed(http) == []


async def test_body_over_the_limit_on_put_is_413(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    response = await put(http, task["id"], metadata={"padding": "x" * BIG_BODY_BYTES})
    assert_error(response, 413)
    assert await read_task(http, task["id"]) == task


@pytest.mark.parametrize(
    "path", ["/api/nothing-here", "/api/tasks/abc/nothing", "/nothing-here", "/dashboard/no-such-file.js"]
)
async def test_unknown_route_is_404_not_found(http: httpx.AsyncClient, path: str) -> None:
    assert_error(await http.get(path), 404, "not found")


async def test_health_live_and_ready(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health/live")).status_code == 200
    assert (await http.get("/health/ready")).status_code == 200


async def test_openapi_document_lists_the_task_paths(http: httpx.AsyncClient) -> None:
    response = await http.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/tasks" in paths
    assert "/api/tasks/{task_id}" in paths
    assert "/api/task-types" in paths


@pytest.mark.parametrize("depth", [2_000, 50_000])
async def test_a_body_nested_too_deeply_is_400_not_500(http: httpx.AsyncClient, depth: int) -> None:
    await create_type(http)
    body = '{"type": "ext", "parameters": {"a": ' + "[" * depth + "]" * depth + "}}"
    response = await http.post("/api/tasks", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "nested too deeply")
    assert await listed(http) == []


# --- fencing and history limits ------------------------------------------------------------------


async def test_a_put_naming_its_attempt_is_fenced(http: httpx.AsyncClient) -> None:
    await create_type(http)
    task = await new_task(http)
    assert_error(await put(http, task["id"], status="running", attempt=2), 409, "not the next one")
    task = await change(http, task, status="running", attempt=1)
    assert task["attempts"] == 1
    progress = {"current": 1, "total": 2}
    assert_error(await put(http, task["id"], progress=progress, attempt=2), 409, "no longer current")
    task = await change(http, task, progress=progress, attempt=1)
    task = await change(http, task, status="failed", error_message="x", attempt=1)
    task = await change(http, task, status="pending")  # a retry: attempt 2 comes next
    task = await change(http, task, status="running", attempt=2)
    late = await put(http, task["id"], status="completed", result={"from": 1}, attempt=1)
    assert_error(late, 409, "attempt 1 is no longer current")
    assert (await read_task(http, task["id"]))["result"] is None, "the stale attempt changed nothing"


@pytest.mark.parametrize("attempt", [0, -1, 1.5, None, [1]])
async def test_a_bad_attempt_is_400(http: httpx.AsyncClient, attempt: Any) -> None:
    await create_type(http)
    task = await new_task(http)
    assert_error(await put(http, task["id"], status="running", attempt=attempt), 400)
    assert (await read_task(http, task["id"]))["seq"] == task["seq"]


async def test_events_say_how_many_are_kept(http: httpx.AsyncClient, settings: Settings) -> None:
    await create_type(http)
    task = await new_task(http)
    response = await http.get(task["events_url"])
    assert response.headers["Jobcast-History-Limit"] == str(settings.history_max)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/api/tasks?stauts=running", "unknown query parameter 'stauts'"),
        ("/api/tasks?status=running&status=pending", "'status' is given more than once"),
        ("/api/task-types?inactive=true", "unknown query parameter 'inactive'"),
        ("/health/live?verbose=1", "it takes none"),
    ],
)
async def test_unknown_or_repeated_query_parameters_are_400(
    http: httpx.AsyncClient, path: str, words: str
) -> None:
    assert_error(await http.get(path), 400, words)
