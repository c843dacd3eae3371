"""/api/task-types over real HTTP against a served app and a real Redis (CONTRACT.md §0, §1)."""

from typing import Any

import httpx
import pytest

from tests.helpers.api import assert_error, create_type, utc_time
from tests.helpers.processes import JobcastProcess

TYPE_FIELDS = {
    "id",
    "name",
    "description",
    "parameters_schema",
    "metadata",
    "is_active",
    "executor",
    "timeout_s",
    "max_attempts",
    "created_at",
    "updated_at",
    "workers_online",
}
ROWS_SCHEMA = {
    "type": "object",
    "required": ["rows"],
    "properties": {"rows": {"type": "array", "items": {"type": "integer"}}},
}


async def read_type(http: httpx.AsyncClient, ref: str | int) -> dict[str, Any]:
    response = await http.get(f"/api/task-types/{ref}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed_names(http: httpx.AsyncClient, **params: str) -> list[str]:
    response = await http.get("/api/task-types", params=params)
    assert response.status_code == 200, response.text
    return [task_type["name"] for task_type in response.json()]


# --- create ---------------------------------------------------------------------------------------


async def test_create_returns_201_with_every_field_and_external_defaults(http: httpx.AsyncClient) -> None:
    task_type = await create_type(http, "reports.build")
    assert set(task_type) >= TYPE_FIELDS
    assert isinstance(task_type["id"], int)
    assert task_type["name"] == "reports.build"
    assert task_type["description"] == ""
    assert task_type["parameters_schema"] == {}
    assert task_type["metadata"] == {}
    assert task_type["is_active"] is True
    assert task_type["executor"] == "external"
    assert task_type["timeout_s"] > 0
    assert isinstance(task_type["max_attempts"], int)
    assert task_type["max_attempts"] >= 1
    assert task_type["workers_online"] == 0
    assert utc_time(task_type["created_at"]) <= utc_time(task_type["updated_at"])


async def test_create_keeps_every_given_field(http: httpx.AsyncClient) -> None:
    fields = {
        "description": "Builds a report",
        "parameters_schema": ROWS_SCHEMA,
        "metadata": {"team": "finance", "tags": ["a", "b"]},
        "executor": "worker",
        "timeout_s": 42.5,
        "max_attempts": 7,
    }
    created = await create_type(http, "reports:v2-build_x", **fields)
    by_id = await read_type(http, created["id"])
    by_name = await read_type(http, "reports:v2-build_x")
    for body in (created, by_id, by_name):
        assert {name: body[name] for name in fields} == fields
        assert body["name"] == "reports:v2-build_x"


async def test_fresh_store_without_workers_lists_no_types(http: httpx.AsyncClient) -> None:
    assert await listed_names(http) == []
    assert await listed_names(http, include_inactive="true") == []


async def test_duplicate_name_is_409_already_exists(http: httpx.AsyncClient) -> None:
    first = await create_type(http, "dup.name", description="first")
    response = await http.post("/api/task-types", json={"name": "dup.name", "description": "second"})
    assert_error(response, 409, "already exists")
    assert await read_type(http, "dup.name") == first


async def test_duplicate_of_an_inactive_name_is_still_409(http: httpx.AsyncClient) -> None:
    await create_type(http, "retired.name")
    assert (await http.delete("/api/task-types/retired.name")).status_code == 204
    response = await http.post("/api/task-types", json={"name": "retired.name"})
    assert_error(response, 409, "already exists")


@pytest.mark.parametrize(
    "name",
    ["", "1starts.with.digit", "_underscore", "-dash", "has space", "slash/inside", "ünicode", "a" * 129],
)
async def test_bad_name_is_400(http: httpx.AsyncClient, name: str) -> None:
    response = await http.post("/api/task-types", json={"name": name})
    assert_error(response, 400)
    assert await listed_names(http, include_inactive="true") == []


async def test_longest_allowed_name_is_accepted(http: httpx.AsyncClient) -> None:
    name = "a" + "Z9_.:-" * 21 + "b"  # 128 characters
    assert len(name) == 128
    assert (await create_type(http, name))["name"] == name


async def test_missing_name_is_400(http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/api/task-types", json={"description": "nameless"}), 400)


async def test_unknown_field_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/task-types", json={"name": "mass.assign", "id": 99})
    assert_error(response, 400)
    assert_error(await http.get("/api/task-types/mass.assign"), 404, "not found")


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": ["not", "an", "object"]},
        {"parameters_schema": "not an object"},
        {"is_active": "yes"},
        {"executor": "cron"},
        {"max_attempts": 0},
        {"timeout_s": 0},
    ],
)
async def test_field_of_the_wrong_shape_is_400(http: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    assert_error(await http.post("/api/task-types", json={"name": "bad.shape", **fields}), 400)


async def test_body_that_is_not_an_object_is_400(http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/api/task-types", json=["name", "x"]), 400)
    response = await http.post(
        "/api/task-types", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "no-such-type"},
        {"type": "object", "properties": {"n": {"minimum": "zero"}}},
        {"type": "object", "required": "rows"},
    ],
)
async def test_invalid_parameters_schema_is_422(http: httpx.AsyncClient, schema: dict[str, Any]) -> None:
    response = await http.post("/api/task-types", json={"name": "bad.schema", "parameters_schema": schema})
    assert_error(response, 422)
    assert_error(await http.get("/api/task-types/bad.schema"), 404, "not found")


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "https://example.com/schemas/report.json"},
        {"type": "object", "properties": {"rows": {"$ref": "other.json#/rows"}}},
    ],
)
async def test_non_local_ref_in_schema_is_422(http: httpx.AsyncClient, schema: dict[str, Any]) -> None:
    response = await http.post("/api/task-types", json={"name": "outside.ref", "parameters_schema": schema})
    assert_error(response, 422)
    assert_error(await http.get("/api/task-types/outside.ref"), 404, "not found")


async def test_local_ref_in_schema_is_accepted(http: httpx.AsyncClient) -> None:
    schema = {
        "$defs": {"row": {"type": "integer"}},
        "type": "object",
        "properties": {"rows": {"type": "array", "items": {"$ref": "#/$defs/row"}}},
    }
    assert (await create_type(http, "local.ref", parameters_schema=schema))["parameters_schema"] == schema


# --- list and read --------------------------------------------------------------------------------


async def test_list_is_ordered_by_id_ascending(http: httpx.AsyncClient) -> None:
    created = [await create_type(http, name) for name in ("zeta", "alpha", "mid")]
    response = await http.get("/api/task-types")
    assert response.status_code == 200
    listed = response.json()
    assert [t["name"] for t in listed] == ["zeta", "alpha", "mid"]
    ids = [t["id"] for t in listed]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert listed == created


async def test_inactive_types_are_listed_only_with_include_inactive(http: httpx.AsyncClient) -> None:
    for name in ("kept.one", "gone", "kept.two"):
        await create_type(http, name)
    await create_type(http, "born.inactive", is_active=False)
    assert (await http.delete("/api/task-types/gone")).status_code == 204
    assert await listed_names(http) == ["kept.one", "kept.two"]
    assert await listed_names(http, include_inactive="false") == ["kept.one", "kept.two"]
    everything = ["kept.one", "gone", "kept.two", "born.inactive"]
    assert await listed_names(http, include_inactive="true") == everything


async def test_include_inactive_that_is_not_a_boolean_is_400(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/task-types", params={"include_inactive": "perhaps"}), 400)


async def test_get_by_id_and_by_name_return_the_same_type(http: httpx.AsyncClient) -> None:
    await create_type(http, "other")
    created = await create_type(http, "by.ref", description="found either way")
    assert await read_type(http, created["id"]) == created
    assert await read_type(http, "by.ref") == created


@pytest.mark.parametrize("ref", ["999", "no.such.type", "²", "٣", "1²", "9" * 20, "1" * 4301])
async def test_get_unknown_type_is_404_not_found(http: httpx.AsyncClient, ref: str) -> None:
    await create_type(http, "exists")
    assert_error(await http.get(f"/api/task-types/{ref}"), 404, "not found")
    assert_error(await http.put(f"/api/task-types/{ref}", json={"description": "x"}), 404, "not found")
    assert_error(await http.delete(f"/api/task-types/{ref}"), 404, "not found")


# --- update ---------------------------------------------------------------------------------------


async def test_put_changes_only_the_fields_sent(http: httpx.AsyncClient) -> None:
    created = await create_type(
        http, "partial", description="before", metadata={"k": 1}, max_attempts=4, timeout_s=60
    )
    response = await http.put("/api/task-types/partial", json={"description": "after", "max_attempts": 9})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["description"] == "after"
    assert updated["max_attempts"] == 9
    unchanged = set(TYPE_FIELDS) - {"description", "max_attempts", "updated_at"}
    assert {k: updated[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert utc_time(updated["updated_at"]) >= utc_time(created["updated_at"])
    assert await read_type(http, created["id"]) == updated


async def test_put_by_id_updates_schema_and_can_reactivate(http: httpx.AsyncClient) -> None:
    created = await create_type(http, "by.id", is_active=False)
    response = await http.put(
        f"/api/task-types/{created['id']}", json={"parameters_schema": ROWS_SCHEMA, "is_active": True}
    )
    assert response.status_code == 200, response.text
    assert response.json()["parameters_schema"] == ROWS_SCHEMA
    assert response.json()["is_active"] is True
    assert await listed_names(http) == ["by.id"]


async def test_put_with_its_own_name_is_accepted(http: httpx.AsyncClient) -> None:
    await create_type(http, "same.name")
    response = await http.put("/api/task-types/same.name", json={"name": "same.name", "description": "d"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "same.name"
    assert response.json()["description"] == "d"


async def test_put_naming_another_name_is_400_and_renames_nothing(http: httpx.AsyncClient) -> None:
    created = await create_type(http, "original")
    response = await http.put("/api/task-types/original", json={"name": "renamed", "description": "x"})
    assert_error(response, 400)
    assert await read_type(http, "original") == created
    assert_error(await http.get("/api/task-types/renamed"), 404, "not found")


async def test_put_unknown_field_is_400(http: httpx.AsyncClient) -> None:
    created = await create_type(http, "strict.put")
    for fields in ({"workers_online": 5}, {"created_at": "2020-01-01T00:00:00Z"}, {"id": 7}):
        assert_error(await http.put("/api/task-types/strict.put", json=fields), 400)
    assert await read_type(http, "strict.put") == created


async def test_put_invalid_schema_is_422_and_keeps_the_old_one(http: httpx.AsyncClient) -> None:
    created = await create_type(http, "schema.put", parameters_schema=ROWS_SCHEMA)
    response = await http.put("/api/task-types/schema.put", json={"parameters_schema": {"type": 12}})
    assert_error(response, 422)
    response = await http.put(
        "/api/task-types/schema.put", json={"parameters_schema": {"$ref": "http://example.com/s.json"}}
    )
    assert_error(response, 422)
    assert await read_type(http, "schema.put") == created


async def test_put_unknown_type_is_404(http: httpx.AsyncClient) -> None:
    assert_error(await http.put("/api/task-types/ghost", json={"description": "x"}), 404, "not found")
    assert await listed_names(http, include_inactive="true") == []


# --- delete ---------------------------------------------------------------------------------------


async def test_delete_is_204_and_soft(http: httpx.AsyncClient) -> None:
    created = await create_type(http, "soft.delete", description="still here")
    response = await http.delete(f"/api/task-types/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    for ref in (created["id"], "soft.delete"):
        read = await read_type(http, ref)
        assert read["is_active"] is False
        assert read["description"] == "still here"
        assert read["id"] == created["id"]


async def test_delete_by_name_hides_it_from_the_default_list(http: httpx.AsyncClient) -> None:
    await create_type(http, "to.hide")
    assert (await http.delete("/api/task-types/to.hide")).status_code == 204
    assert await listed_names(http) == []


async def test_delete_unknown_type_is_404(http: httpx.AsyncClient) -> None:
    assert_error(await http.delete("/api/task-types/nobody"), 404, "not found")


# --- workers_online -------------------------------------------------------------------------------


async def test_workers_online_is_zero_without_a_worker(http: httpx.AsyncClient) -> None:
    created = await create_type(http, "demo.sleep", executor="worker")
    assert created["workers_online"] == 0
    assert (await read_type(http, "demo.sleep"))["workers_online"] == 0


async def test_workers_online_counts_a_live_worker(http: httpx.AsyncClient, worker: JobcastProcess) -> None:
    demo = await read_type(http, "demo.sleep")
    assert demo["workers_online"] == 1
    assert demo["executor"] == "worker"
    assert demo["is_active"] is True
    listed = {t["name"]: t for t in (await http.get("/api/task-types")).json()}
    assert listed["demo.sleep"]["workers_online"] == 1


async def test_workers_online_cannot_be_written(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/task-types", json={"name": "counted", "workers_online": 3})
    assert_error(response, 400)
