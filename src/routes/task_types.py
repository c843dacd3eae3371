"""/api/task-types (CONTRACT.md §1)."""

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import UNSET, UnsetType

from jobcast.auth.access import ensure_admin
from jobcast.model.parameters import check_schema
from jobcast.model.task_types import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_S,
    Description,
    Executor,
    MaxAttempts,
    TaskType,
    TimeoutS,
    TypeName,
)
from jobcast.routes.dependencies import Caller, TypesDep
from jobcast.routes.responses import SECURITY, errors

Ref = Annotated[str, PathParameter(description="The task type's integer id or its name.")]


class TaskTypeCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: TypeName
    description: Description = ""
    parameters_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    is_active: bool = True
    executor: Executor = Executor.EXTERNAL
    timeout_s: TimeoutS = DEFAULT_TIMEOUT_S
    max_attempts: MaxAttempts = DEFAULT_MAX_ATTEMPTS


class TaskTypeUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Partial update; `name` may be sent but must be the type's own."""

    name: str | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    parameters_schema: dict[str, Any] | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET
    executor: Executor | UnsetType = UNSET
    timeout_s: TimeoutS | UnsetType = UNSET
    max_attempts: MaxAttempts | UnsetType = UNSET


class TaskTypeController(Controller):
    """The task-type endpoints: list, read, create, update."""

    path = "/api/task-types"
    tags = ("task types",)
    security = SECURITY

    @post("/", summary="Create a task type", responses=errors(400, 403, 409, 413, 422))
    async def create(self, data: JSONBody[TaskTypeCreate], types: TypesDep, principal: Caller) -> TaskType:
        ensure_admin(principal, "create task types")
        check_schema(data.parameters_schema)
        return await types.create(msgspec.structs.asdict(data))

    @get("/", summary="List task types, in id order", responses=errors(400))
    async def list_types(
        self, types: TypesDep, include_inactive: Annotated[bool, QueryParameter()] = False
    ) -> list[TaskType]:
        return await types.all(include_inactive)

    @get("/{ref:str}", summary="Read a task type by id or name", responses=errors(404))
    async def read(self, ref: Ref, types: TypesDep) -> TaskType:
        return await types.get(ref)

    @put("/{ref:str}", summary="Update some fields of a task type", responses=errors(400, 403, 404, 413, 422))
    async def update(
        self, ref: Ref, data: JSONBody[TaskTypeUpdate], types: TypesDep, principal: Caller
    ) -> TaskType:
        ensure_admin(principal, "change task types")
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
        if "parameters_schema" in changes:
            check_schema(changes["parameters_schema"])
        return await types.update(ref, changes)

    @delete("/{ref:str}", summary="Deactivate a task type (it still reads back)", responses=errors(403, 404))
    async def deactivate(self, ref: Ref, types: TypesDep, principal: Caller) -> None:
        ensure_admin(principal, "delete task types")
        await types.update(ref, {"is_active": False})
