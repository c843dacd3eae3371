"""HTTP helpers shared by the tests: each asserts the call succeeded before returning its body."""

from datetime import datetime, timedelta
from typing import Any

import httpx


def body_of(response: httpx.Response, status_code: int = 200) -> Any:
    assert response.status_code == status_code, response.text
    return response.json()


async def create_type(http: httpx.AsyncClient, name: str = "ext", **fields: Any) -> dict[str, Any]:
    """POST a task type (external unless told otherwise) and return it."""
    task_type: dict[str, Any] = body_of(
        await http.post("/api/task-types", json={"name": name, **fields}), 201
    )
    return task_type


async def submit(http: httpx.AsyncClient, task_type: str, **parameters: Any) -> dict[str, Any]:
    """POST a task of `task_type` with these parameters: queued (202) for a worker type, waiting
    to be claimed (201) for an external one. The task as answered."""
    response = await http.post("/api/tasks", json={"type": task_type, "parameters": parameters})
    assert response.status_code in (201, 202), response.text
    task: dict[str, Any] = response.json()
    return task


async def read_task(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = body_of(await http.get(f"/api/tasks/{task_id}"))
    return task


async def history(http: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """GET /api/tasks/{id}/events."""
    events: list[dict[str, Any]] = body_of(await http.get(f"/api/tasks/{task_id}/events"))
    return events


def assert_error(response: httpx.Response, status_code: int, words: str | None = None) -> dict[str, Any]:
    """The contract's error shape, with `words` in the detail when given."""
    assert response.status_code == status_code, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["status_code"] == status_code
    assert isinstance(body["detail"], str)
    assert body["detail"].strip()
    if words is not None:
        assert words in body["detail"].lower(), body
    return body


def utc_time(value: str) -> datetime:
    """Parse an ISO 8601 UTC string with a `Z` or `+00:00` suffix."""
    assert value.endswith(("Z", "+00:00")), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    return parsed
