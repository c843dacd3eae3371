"""Property-based fuzzing of the HTTP API from its own OpenAPI document: a real `jobcast api`
process with auth on, requests generated from the document (valid and invalid ones), each
answer checked: never a 5xx, and always a status, content type, headers and body the document
declares for that operation. The number of examples is bounded so CI stays quick."""

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from redis.asyncio import Redis
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from src.app import create_app
from src.redis_server import RedisServer, free_port
from src.settings import Settings
from tests.callers import ADMIN, Callers, make_callers, make_types, submit_as
from tests.conftest import FAST
from tests.processes import start_api

EXAMPLES = 40  # per operation and mode: enough to find a crash, bounded for CI


class FuzzTarget(msgspec.Struct):
    url: str
    callers: Callers


@pytest.fixture(scope="module")
def target(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """One Redis and one API process for every operation, with a few tasks to find."""
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    redis_server = RedisServer(redis_binary, workdir / "redis", appendonly=False).start()
    settings = Settings(redis_url=redis_server.url, **{**FAST, "auth": True})  # type: ignore[arg-type]
    port = free_port()
    api = start_api(settings, workdir / "api.log", port)
    url = f"http://127.0.0.1:{port}"
    try:
        yield FuzzTarget(url, asyncio.run(_prepare(url, settings)))
    finally:
        api.stop()
        redis_server.stop()


# The operations to fuzz, from the document the app itself generates (and serves: see below).
DOCUMENT = create_app(Settings()).openapi_schema.to_schema()
OPERATIONS = [result.ok() for result in schemathesis.openapi.from_dict(DOCUMENT).get_all_operations()]


def test_the_api_serves_the_document_fuzzed_here(target: FuzzTarget) -> None:
    assert httpx.get(target.url + "/schema/openapi.json").json() == msgspec.json.decode(
        msgspec.json.encode(DOCUMENT)
    )


# No input that the document constrains, so no request the document forbids: nothing to
# generate in negative mode (a non-boolean include_inactive is tested in test_api_task_types).
NOTHING_TO_BREAK = {"GET /api/task-types", "GET /health/live", "GET /health/ready", "GET /metrics"}
CASES = [
    pytest.param(operation, mode, real, id=f"{operation.label} {mode}{' real ids' if real else ''}")
    for operation in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or operation.label not in NOTHING_TO_BREAK
    for real in ([False, True] if operation.path_parameters else [False])
]


@pytest.mark.parametrize(("operation", "mode", "real_ids"), CASES)
def test_every_answer_is_one_the_document_declares(
    operation: APIOperation, mode: GenerationMode, real_ids: bool, target: FuzzTarget
) -> None:
    """Never a 5xx; always a declared status, content type, headers and body. Negative cases
    (requests the document forbids) must be refused with a 4xx. With real ids the path names
    an existing task or type, so the generated bodies reach the code behind the lookup."""
    path = _real_path_parameters(target) if real_ids else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path)

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answer_conforms(case: schemathesis.Case) -> None:
        # A request valid by the document may still name something that does not exist (404)
        # or a move that is not legal now (409): the document cannot say which ids exist.
        case.call_and_validate(
            base_url=target.url,
            headers=target.callers.headers(ADMIN),
            excluded_checks=[positive_data_acceptance],
        )

    answer_conforms()


def _real_path_parameters(target: FuzzTarget) -> dict[str, str]:
    """A fresh type and a fresh task of it: a case may deactivate or delete either."""
    admin = target.callers.headers(ADMIN)
    name = f"fuzzed.{secrets.token_hex(4)}"
    created = httpx.post(target.url + "/api/task-types", json={"name": name}, headers=admin)
    assert created.status_code == 201, created.text
    submitted = httpx.post(target.url + "/api/tasks", json={"type": name}, headers=admin)
    assert submitted.status_code == 201, submitted.text
    return {"task_id": submitted.json()["id"], "ref": name}


async def _prepare(url: str, settings: Settings) -> Callers:
    redis = Redis.from_url(settings.redis_url_or_default())
    try:
        callers = await make_callers(redis)
    finally:
        await redis.aclose()
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await make_types(http, callers)
        for _ in range(3):
            await submit_as(http, callers)
    return callers
