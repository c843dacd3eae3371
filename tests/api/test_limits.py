"""Limits with a setting, a default and a clear answer (CONTRACT.md §0, §5): submissions per
principal per second (429, counted in Redis across API instances), and the size and depth of
the values a task stores (422 with a pointer). Nothing refused is stored."""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from jobcast.settings import Settings
from jobcast.store import keys
from tests.conftest import ServedApp
from tests.helpers.api import assert_error
from tests.helpers.callers import (
    ADMIN,
    NAMES,
    OTHER,
    OWNER,
    TYPE,
    WORKER,
    Callers,
    make_callers,
    make_types,
    submit_as,
)

RATE = 5
MAX_BYTES = 1000
MAX_DEPTH = 4


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, auth=True, submit_rate=RATE, max_parameters_bytes=MAX_BYTES, max_parameters_depth=MAX_DEPTH
    )


@pytest.fixture
async def callers(http: httpx.AsyncClient, redis: Redis) -> Callers:
    made = await make_callers(redis)
    await make_types(http, made)
    return made


@pytest.fixture
async def second_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another API instance on the same Redis."""
    async with (
        ServedApp(settings) as served,
        httpx.AsyncClient(base_url=served.http_url, timeout=10) as client,
    ):
        yield client


def nested(depth: int) -> Any:
    """An object `depth` levels deep: {"a": {"a": ... {}}}."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def task_count(redis: Redis) -> int:
    return sum(not key.endswith(b":events") for key in await redis.keys("jobcast:task:*"))


# --- submissions per second -----------------------------------------------------------------------


async def test_submissions_over_the_rate_get_429_with_retry_after_on_every_instance(
    http: httpx.AsyncClient, second_http: httpx.AsyncClient, callers: Callers, redis: Redis
) -> None:
    """Twelve submissions at once, half on each instance: in each second at most RATE are
    taken, the rest are 429 with Retry-After and store nothing. Another principal is not slowed."""
    started = time.time()
    replies = await asyncio.gather(
        *[
            client.post("/api/tasks", json={"type": TYPE}, headers=callers.headers(OWNER))
            for client in [http, second_http] * 6
        ]
    )
    windows = range(int(started), int(time.time()) + 1)  # the one-second windows the burst spanned
    counted = [int(await redis.get(keys.submissions(NAMES[OWNER], window)) or 0) for window in windows]
    statuses = Counter(reply.status_code for reply in replies)
    assert set(statuses) <= {201, 429}, statuses
    assert sum(counted) == 12  # every submission was counted in the window it came in
    assert statuses[201] == sum(min(count, RATE) for count in counted), (statuses, counted)
    assert statuses[429] == sum(max(0, count - RATE) for count in counted), (statuses, counted)
    for reply in replies:
        if reply.status_code == 429:
            assert_error(reply, 429, "submissions per second")
            assert reply.headers["Retry-After"] == "1"
    assert await task_count(redis) == statuses[201]
    await submit_as(http, callers, OTHER)


async def test_the_rate_frees_up_in_the_next_second(http: httpx.AsyncClient, callers: Callers) -> None:
    for _ in range(3 * RATE):
        reply = await http.post("/api/tasks", json={"type": TYPE}, headers=callers.headers(ADMIN))
        if reply.status_code == 429:
            break
    else:
        pytest.fail("the rate was never reached")
    await asyncio.sleep(float(reply.headers["Retry-After"]))
    await submit_as(http, callers, ADMIN)


# --- size and depth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"parameters": {"blob": "x" * MAX_BYTES}}, "/parameters", "bytes of json"),
        ({"metadata": {"blob": "x" * MAX_BYTES}}, "/metadata", "bytes of json"),
        ({"parameters": {"a": nested(MAX_DEPTH)}}, "/parameters/a/a/a/a", "nested deeper than 4"),
        ({"parameters": {"rows": [[[[1]]]]}}, "/parameters/rows/0/0/0", "nested deeper than 4"),
        ({"metadata": {"a": nested(MAX_DEPTH)}}, "/metadata/a/a/a/a", "nested deeper than 4"),
    ],
)
async def test_a_submission_too_large_or_too_deep_is_422_with_a_pointer(
    http: httpx.AsyncClient, callers: Callers, redis: Redis, fields: dict[str, Any], path: str, words: str
) -> None:
    reply = await http.post("/api/tasks", json={"type": TYPE, **fields}, headers=callers.headers(OWNER))
    body = assert_error(reply, 422, "too large or nested too deeply")
    assert [failure["path"] for failure in body["extra"]] == [path]
    assert words in body["extra"][0]["message"].lower()
    assert await task_count(redis) == 0


async def test_values_at_the_limits_are_taken(http: httpx.AsyncClient, callers: Callers) -> None:
    blob = "x" * (MAX_BYTES - len('{"blob":""}'))
    await submit_as(http, callers, OWNER, parameters={"blob": blob}, metadata={"a": nested(MAX_DEPTH - 1)})


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"result": {"a": nested(MAX_DEPTH)}, "status": "completed"}, "/result/a/a/a/a"),
        ({"result": ["y" * MAX_BYTES], "status": "completed"}, "/result"),
        ({"metadata": {"a": nested(MAX_DEPTH)}}, "/metadata/a/a/a/a"),
    ],
)
async def test_an_update_too_large_or_too_deep_is_422_and_changes_nothing(
    http: httpx.AsyncClient, callers: Callers, change: dict[str, Any], path: str
) -> None:
    task_id = await submit_as(http, callers)
    before = (await http.get(f"/api/tasks/{task_id}", headers=callers.headers(ADMIN))).json()
    reply = await http.put(f"/api/tasks/{task_id}", json=change, headers=callers.headers(WORKER))
    body = assert_error(reply, 422, "too large or nested too deeply")
    assert [failure["path"] for failure in body["extra"]] == [path]
    assert (await http.get(f"/api/tasks/{task_id}", headers=callers.headers(ADMIN))).json() == before
