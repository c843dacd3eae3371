"""Property-based fuzzing of the HTTP API from its own OpenAPI document: a real `jobcast api`
process with auth on, requests generated from the document (valid and invalid ones), each
answer checked: never a 5xx, and always a status, content type, headers and body the document
declares for that operation. The number of examples is bounded so CI stays quick."""

import secrets
from collections.abc import Iterator

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobcast.routes.app import create_app
from jobcast.settings import Settings
from tests.helpers.callers import ADMIN, SecuredApi, secured_api

EXAMPLES = 40  # per operation and mode: enough to find a crash, bounded for CI


@pytest.fixture(scope="module")
def target(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    """One API process for every operation, with a few tasks to find."""
    with secured_api(redis_binary, tmp_path_factory.mktemp("fuzz")) as api:
        for _ in range(3):
            api.submit()
        yield api


# The operations to fuzz, from the document the app itself generates (and serves: see below).
DOCUMENT = create_app(Settings()).openapi_schema.to_schema()
OPERATIONS = [result.ok() for result in schemathesis.openapi.from_dict(DOCUMENT).get_all_operations()]


def test_the_api_serves_the_document_fuzzed_here(target: SecuredApi) -> None:
    assert httpx.get(target.http_url + "/schema/openapi.json").json() == msgspec.json.decode(
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
    operation: APIOperation, mode: GenerationMode, real_ids: bool, target: SecuredApi
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
            base_url=target.http_url,
            headers=target.callers.headers(ADMIN),
            excluded_checks=[positive_data_acceptance],
        )

    answer_conforms()


def _real_path_parameters(target: SecuredApi) -> dict[str, str]:
    """A fresh type and a fresh task of it: a case may deactivate or delete either."""
    admin = target.callers.headers(ADMIN)
    name = f"fuzzed.{secrets.token_hex(4)}"
    created = httpx.post(target.http_url + "/api/task-types", json={"name": name}, headers=admin)
    assert created.status_code == 201, created.text
    submitted = httpx.post(target.http_url + "/api/tasks", json={"type": name}, headers=admin)
    assert submitted.status_code == 201, submitted.text
    return {"task_id": submitted.json()["id"], "ref": name}
