"""An API instance keeps a copy of the task types it submits to, and a submission is stored
only if no type was written since that copy was read: a change made through another instance
applies to the very next submission here."""

from collections.abc import AsyncIterator

import httpx
import pytest

from jobcast.settings import Settings
from tests.conftest import ServedApp
from tests.helpers.api import assert_error, create_type

ROWS = {"type": "object", "properties": {"rows": {"type": "integer"}}, "required": ["rows"]}
TITLE = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


@pytest.fixture
async def other(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second API instance on the same Redis."""
    async with ServedApp(settings) as served, httpx.AsyncClient(base_url=served.http_url) as client:
        yield client


async def post_task(http: httpx.AsyncClient, **parameters: object) -> httpx.Response:
    return await http.post("/api/tasks", json={"type": "report", "parameters": parameters})


async def test_a_type_changed_elsewhere_applies_to_the_next_submission_here(
    http: httpx.AsyncClient, other: httpx.AsyncClient
) -> None:
    await create_type(http, "report", parameters_schema=ROWS)
    assert (await post_task(http, rows=3)).status_code == 201  # this instance now holds a copy
    assert (await other.delete("/api/task-types/report")).status_code == 204
    assert_error(await post_task(http, rows=3), 400, "not active")
    assert (await other.put("/api/task-types/report", json={"is_active": True})).status_code == 200
    assert (await post_task(http, rows=3)).status_code == 201  # a refusal on a copy is decided again
    changed = await other.put("/api/task-types/report", json={"parameters_schema": TITLE})
    assert changed.status_code == 200
    assert_error(await post_task(http, rows=3), 422)
    assert (await post_task(http, title="May")).status_code == 201
    listed = (await http.get("/api/tasks", params={"type": "report"})).json()
    assert [task["parameters"] for task in listed] == [{"title": "May"}, {"rows": 3}, {"rows": 3}]
